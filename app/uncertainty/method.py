"""`Uncertainty`: which method makes a run's passes, how many, with which seed; parsed from the
CLI's options or the viewer's one-line spec (``mc-dropout:20``, ``tta:flip-lr,shift:2``,
``ensemble:a.keras,b.keras``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from app.errors import SlicewiseError
from app.uncertainty.augment import parse_augmentations

METHODS = ("mc-dropout", "tta", "ensemble")
DEFAULT_PASSES = 20
MAX_PASSES = 1000


@dataclass(frozen=True)
class Uncertainty:
    """One method: ``mc-dropout`` (``passes`` dropout masks, ``seed``), ``tta`` (the original plus
    each of ``augmentations``) or ``ensemble`` (``paths``: the member models, all fitted alike).

    ``members`` holds the loaded ensemble models (`LoadedModel`), set by whoever loads them
    (`with_members`); the run's own model is the first member."""

    method: str
    passes: int = 0
    seed: int = 0
    augmentations: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    members: tuple[Any, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SlicewiseError(f"unknown uncertainty method {self.method!r}: choose one of {', '.join(METHODS)}")
        if self.method == "mc-dropout" and not 2 <= self.passes <= MAX_PASSES:
            raise SlicewiseError(f"--mc-dropout needs 2 to {MAX_PASSES} passes, not {self.passes}")
        if self.method == "tta":
            parse_augmentations(self.augmentations)  # a bad name fails here, before anything loads
        if self.method == "ensemble" and len(self.paths) < 2:
            raise SlicewiseError(f"--ensemble needs at least two models (A.keras,B.keras), not {len(self.paths)}")

    @property
    def count(self) -> int:
        """The number of passes per slice."""
        if self.method == "mc-dropout":
            return self.passes
        if self.method == "tta":
            return 1 + len(self.augmentations)
        return len(self.paths)

    def with_members(self, members: list[Any]) -> Uncertainty:
        return replace(self, members=tuple(members))

    def spec(self) -> str:
        """The one-line form `parse` reads (what the viewer stores)."""
        detail = {"mc-dropout": str(self.passes), "tta": ",".join(self.augmentations), "ensemble": ",".join(self.paths)}[self.method]
        seed = f"@{self.seed}" if self.method == "mc-dropout" and self.seed else ""
        return f"{self.method}:{detail}{seed}"

    def title(self) -> str:
        """Short text for a run's title: ``MC dropout ×20``, ``TTA flip-lr+shift:2``, ``ensemble of 3``."""
        if self.method == "mc-dropout":
            return f"MC dropout ×{self.passes}"
        if self.method == "tta":
            return "TTA " + "+".join(self.augmentations)
        return f"ensemble of {len(self.paths)}"

    def record(self) -> dict:
        """What the sidecar records (the members' hashes when they are loaded)."""
        entry: dict[str, Any] = {"method": self.method, "n": self.count, "sd": "population standard deviation over the passes"}
        if self.method == "mc-dropout":
            entry["seed"] = self.seed
        if self.method == "tta":
            entry["augmentations"] = ["identity", *self.augmentations]
        if self.method == "ensemble":
            entry["members"] = [{"source": m.source, "sha256": m.sha256} for m in self.members] or [{"source": p} for p in self.paths]
        return entry


def parse(text: str | None) -> Uncertainty | None:
    """``none`` / ``mc-dropout:N[@SEED]`` / ``tta:A,B,…`` / ``ensemble:A.keras,B.keras,…`` (None or empty: none)."""
    if not text or text.strip().lower() == "none":
        return None
    method, _, detail = text.strip().partition(":")
    if method == "mc-dropout":
        count, _, seed = detail.partition("@")
        return Uncertainty("mc-dropout", passes=_int(count or str(DEFAULT_PASSES), "--mc-dropout"), seed=_int(seed or "0", "the seed"))
    items = tuple(part.strip() for part in detail.split(",") if part.strip())
    if method == "tta":
        return Uncertainty("tta", augmentations=items)
    if method == "ensemble":
        return Uncertainty("ensemble", paths=items)
    raise SlicewiseError(f"unknown uncertainty method {text!r}: none, mc-dropout:N, tta:flip-lr,… or ensemble:A.keras,B.keras")


def from_options(
    mc_dropout: int | None = None, tta: str | None = None, ensemble: str | None = None, seed: int = 0, model: str | None = None
) -> Uncertainty | None:
    """The method the CLI's ``--mc-dropout N``, ``--tta LIST`` or ``--ensemble LIST`` ask for (at
    most one; an ensemble names all its models, so not with ``--model``)."""
    given = [name for name, value in (("--mc-dropout", mc_dropout), ("--tta", tta), ("--ensemble", ensemble)) if value is not None]
    if len(given) > 1:
        raise SlicewiseError(f"choose one uncertainty method: {' and '.join(given)} were given")
    if ensemble is not None and model:
        raise SlicewiseError("--ensemble names all its models: leave --model out")
    if mc_dropout is not None:
        return Uncertainty("mc-dropout", passes=mc_dropout, seed=seed)
    if tta is not None:
        return parse(f"tta:{tta}")
    if ensemble is not None:
        paths = tuple(p.strip() for p in ensemble.split(",") if p.strip())
        for path in paths:
            if not Path(path).exists():
                raise SlicewiseError(f"{path}: no such model file (an --ensemble member)")
        return Uncertainty("ensemble", paths=paths)
    return None


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SlicewiseError(f"{what}: {text!r} is not a whole number") from None
