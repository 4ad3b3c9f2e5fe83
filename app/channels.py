"""Channel recipes: how a model's input channels are filled from a grey volume.

Specs (parsed by `parse_recipe`, recorded in every output):

- ``replicate``: the slice as it is; a one-channel slice is copied into each of the model's channels.
- ``neighbors`` / ``neighbors:K`` (2.5D): the slices ``d-K … d+K`` become the ``2K+1`` channels of
  slice ``d``, channel 0 being ``d-K``; slices beyond the ends repeat the edge slice.  Without
  ``K`` it follows from the model's channel count ``C = 2K+1``.
- ``windows:C,W;C,W;…`` (multi-window): one intensity window per channel, e.g. CT brain 40/80,
  subdural 80/200, bone 600/2800; each is clipped to ``[C-W/2, C+W/2]`` and mapped to ``[0, 1]``.
  The windows are the intensity mapping, so the normalisation is ``none``.

A recipe turns the volume's data into a `ChannelSource`: sliced like the data (``source[a:b]``)
it builds the channels of those slices only, so no channel-expanded copy of the volume is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from app.buffers import aligned_empty
from app.errors import ModelError, SlicewiseError
from app.preprocessing import window_problem
from app.text_input import short

if TYPE_CHECKING:
    import torch

RECIPES = ("replicate", "neighbors", "neighbors:K", "windows:C,W;C,W;…")
DEFAULT = "replicate"
MAX_WINDOWS = 16  # channels of a multi-window recipe
MAX_NEIGHBORS = 32  # K of neighbors:K (2K+1 channels)


@dataclass(frozen=True)
class ChannelRecipe:
    """A parsed recipe; ``spec`` is its canonical text."""

    kind: str  # "replicate", "neighbors" or "windows"
    half_width: int | None = None  # neighbors: K (None: from the model's channels)
    windows: tuple[tuple[float, float], ...] = ()  # windows: (centre, width) per channel

    @property
    def spec(self) -> str:
        if self.kind == "neighbors" and self.half_width is not None:
            return f"neighbors:{self.half_width}"
        if self.kind == "windows":
            return "windows:" + ";".join(f"{c:g},{w:g}" for c, w in self.windows)
        return self.kind

    @property
    def maps_intensity(self) -> bool:
        """True when the recipe is itself the intensity mapping (no normalisation after it)."""
        return self.kind == "windows"

    def channels(self, volume_channels: int, model_channels: int | None) -> int:
        """The channel count of each slice the recipe makes, checked against the volume and model.

        ``model_channels`` is what the model declares per slice (None: any, or not declared).
        Raises ModelError when the recipe cannot fill the model's channels.
        """
        if self.kind == "replicate":
            return volume_channels
        if volume_channels != 1:
            raise ModelError(f"the {self.spec} channel recipe builds channels from a grey volume; this volume has {volume_channels} channels")
        made = self._made(model_channels)
        if model_channels is not None and made != model_channels:
            raise ModelError(f"the {self.spec} channel recipe makes {made} channels per slice; the model takes {model_channels}")
        return made

    def _made(self, model_channels: int | None) -> int:
        if self.kind == "windows":
            return len(self.windows)
        return 2 * self.neighbors(model_channels) + 1

    def resolved(self, model_channels: int | None) -> ChannelRecipe:
        """The recipe with what it takes from the model filled in (``neighbors`` → ``neighbors:K``)."""
        if self.kind == "neighbors" and self.half_width is None:
            return ChannelRecipe("neighbors", half_width=self.neighbors(model_channels))
        return self

    def neighbors(self, model_channels: int | None) -> int:
        """K of a neighbors recipe: given, or from the model's ``C = 2K+1`` channels."""
        if self.half_width is not None:
            return self.half_width
        if model_channels is None:
            raise ModelError("the neighbors channel recipe takes K from the model's channels (C = 2K+1), and this model does not declare them: use neighbors:K")
        if model_channels < 3 or model_channels % 2 == 0:
            raise ModelError(
                f"the neighbors channel recipe needs a model with an odd number of channels C = 2K+1 ≥ 3 (slices d-K … d+K); "
                f"this model takes {model_channels}"
            )
        return (model_channels - 1) // 2

    def source(self, data: torch.Tensor, model_channels: int | None) -> ChannelSource | torch.Tensor:
        """What the strategies' plans slice: ``data`` itself for ``replicate``, else a `ChannelSource`."""
        if self.kind == "replicate":
            return data
        self.channels(int(data.shape[3]), model_channels)
        if self.kind == "neighbors":
            return NeighborSource(data, self.neighbors(model_channels))
        return WindowSource(data, self.windows)

    def notes(self, volume) -> list[str]:
        """What a reader of the scores should know about this recipe on ``volume``."""
        if self.kind == "neighbors" and not getattr(volume, "uniform_spacing", True):
            return [f"{self.spec}: the slices are not evenly spaced, so the neighbouring slices in each input's channels are not either"]
        return []


def parse_recipe(spec: str | ChannelRecipe | None) -> ChannelRecipe:
    """A recipe from its spec (None: ``replicate``); a clear error if the spec is bad."""
    if isinstance(spec, ChannelRecipe):
        return spec
    if spec is not None and not isinstance(spec, str):
        raise SlicewiseError(f"bad channel recipe: expected text such as {', '.join(RECIPES)}, not {type(spec).__name__}")
    shown = short(spec or "", 40)
    text = (spec or DEFAULT).strip().lower().replace(" ", "")
    if text in ("replicate", "neighbors", "neighbours"):
        return ChannelRecipe(text.replace("neighbours", "neighbors"))
    kind, _, rest = text.partition(":")
    if kind in ("neighbors", "neighbours"):
        if not rest.isdigit() or not 1 <= int(rest) <= MAX_NEIGHBORS:
            raise SlicewiseError(f"bad channel recipe {shown}: expected neighbors:K with 1 ≤ K ≤ {MAX_NEIGHBORS} slices on each side, e.g. neighbors:1")
        return ChannelRecipe("neighbors", half_width=int(rest))
    if kind == "windows":
        if rest.count(";") >= MAX_WINDOWS + 1 or len(rest) > 64 * MAX_WINDOWS:
            raise SlicewiseError(f"bad channel recipe {shown}: at most {MAX_WINDOWS} windows, one per channel (this recipe has more)")
        windows = []
        for part in filter(None, rest.split(";")):
            try:
                centre, width = (float(v) for v in part.split(","))
            except ValueError:
                raise SlicewiseError(f"bad channel recipe {shown}: expected windows:C,W;C,W;… e.g. windows:40,80;80,200;600,2800") from None
            wrong = window_problem(centre, width)
            if wrong:
                raise SlicewiseError(f"bad channel recipe {shown}: window {short(part)} {wrong}")
            windows.append((centre, width))
        if not windows:
            raise SlicewiseError(f"bad channel recipe {shown}: give at least one window, e.g. windows:40,80;80,200;600,2800")
        if len(windows) > MAX_WINDOWS:
            raise SlicewiseError(f"bad channel recipe {shown}: at most {MAX_WINDOWS} windows, one per channel (this recipe has {len(windows)})")
        return ChannelRecipe("windows", windows=tuple(windows))
    raise SlicewiseError(f"unknown channel recipe {shown}: choose one of {', '.join(RECIPES)}")


def model_channels(input_shape: tuple, slice_hint: tuple | None = None) -> int | None:
    """The channels per slice a model declares: the last axis of an image input, or the hint
    recorded for a flattened one; None when it does not say."""
    if len(input_shape) >= 3:
        return input_shape[-1]
    return int(slice_hint[2]) if slice_hint else None


class ChannelSource:
    """Slices of a ``(D, H, W, 1)`` volume with their channels built on demand: ``source[a:b]``
    is a ``(b-a, H, W, C)`` float32 tensor (64-byte aligned, so TensorFlow may borrow it)."""

    def __init__(self, data: torch.Tensor, channels: int):
        self._volume = data.detach().numpy()[..., 0]  # a view: (D, H, W)
        d, h, w, _ = data.shape
        self.shape = (int(d), int(h), int(w), channels)
        self.dtype, self.device = data.dtype, data.device

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: slice) -> torch.Tensor:
        import torch

        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("a channel source is sliced along depth only, as source[a:b]")
        start, stop, _ = index.indices(self.shape[0])
        out = aligned_empty((max(stop - start, 0), *self.shape[1:]))
        if len(out):
            self._fill(out, start, stop)
        return torch.from_numpy(out)

    def _fill(self, out: np.ndarray, start: int, stop: int) -> None:
        raise NotImplementedError


class NeighborSource(ChannelSource):
    """Channel ``j`` of slice ``d`` is slice ``clamp(d - K + j)``."""

    def __init__(self, data: torch.Tensor, half_width: int):
        super().__init__(data, 2 * half_width + 1)
        self.half_width = half_width

    def _fill(self, out: np.ndarray, start: int, stop: int) -> None:
        depth = self.shape[0]
        for j in range(self.shape[3]):
            lo, hi = start + j - self.half_width, stop + j - self.half_width  # slices wanted in channel j
            a, b = max(lo, 0), min(hi, depth)  # those that exist: copied as one block (no gather)
            if a < b:
                out[a - lo : b - lo, ..., j] = self._volume[a:b]
            if lo < a:  # before the first slice: the first slice repeated
                out[: min(a, hi) - lo, ..., j] = self._volume[0]
            if hi > b:  # after the last slice: the last slice repeated
                out[max(b, lo) - lo :, ..., j] = self._volume[depth - 1]


class WindowSource(ChannelSource):
    """Channel ``j`` is the volume through window ``j``: clipped to it and mapped to [0, 1]."""

    def __init__(self, data: torch.Tensor, windows: tuple[tuple[float, float], ...]):
        super().__init__(data, len(windows))
        self.windows = windows

    def _fill(self, out: np.ndarray, start: int, stop: int) -> None:
        part = self._volume[start:stop]
        scratch = np.empty(part.shape, dtype=np.float32)
        for j, (centre, width) in enumerate(self.windows):
            np.subtract(part, np.float32(centre - width / 2), out=scratch)
            np.multiply(scratch, np.float32(1.0 / width), out=scratch)
            np.clip(scratch, np.float32(0.0), np.float32(1.0), out=scratch)  # NaN stays NaN (zeroed later, slice flagged)
            out[..., j] = scratch
