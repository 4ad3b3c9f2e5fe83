"""`Session`: what the user is looking at and has asked for, without Qt.

The open volume and how it is shown (slice, crosshair point, levels, colormap, left/right
convention, layout), the scoring settings (strategy, model, normalisation, channels), the
threshold, the runs and their scores (a segmentation run's map too), and how the mask overlay
is drawn.  Views read it and write it through its methods; each
change is announced on one of ``session.events`` (plain callbacks), so the window, the
scrubber, the slice views, the score plot and ``slicewise render`` draw the same state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.display import CT_PRESETS, DisplayRange, window_levels
from app.errors import SlicewiseError
from app.events import Event
from app.runs import Run, RunKey, next_region

if TYPE_CHECKING:
    from app.prediction import Prediction
    from app.segmentation.dense_map import DenseMap
    from app.volume import Volume

LAYOUTS = ("single", "ortho")
DEFAULT_STRATEGY = "slice"
MASK_MODES = ("filled", "outline", "heat", "uncertainty")  # how a segmentation map is overlaid; uncertainty: the passes' sd


@dataclass(frozen=True)
class ScoringSettings:
    """What the next run uses; ``None`` means the model's own default."""

    strategy: str = DEFAULT_STRATEGY
    model_path: str | None = None
    unsafe_model: bool = False
    normalize: str | None = None
    channels: str | None = None
    output: str | None = None
    slab: int | None = None
    pool: str | None = None
    batch_size: int = 32
    uncertainty: str | None = None  # app.uncertainty's spec: "mc-dropout:20", "tta:flip-ap,shift:2", "ensemble:a.keras,b.keras"; None: one pass
    model_outputs: tuple[str, ...] = ()  # the loaded model's outputs, to choose from (empty: one, or not loaded yet)
    model_state: str = "built-in"  # "built-in" | "loading" | "ready"

    def run_key(self) -> RunKey:
        options = tuple(
            (name, value) for name, value in (("output", self.output), ("slab", self.slab), ("pool", self.pool), ("uncertainty", self.uncertainty)) if value is not None
        )
        return RunKey(self.strategy, self.model_path, self.normalize, self.channels, options)

    def run_title(self) -> str:
        parts = [self.strategy]
        if self.model_path:
            parts.append(Path(self.model_path).name)
        parts += [value for value in (self.normalize, self.channels) if value]
        parts += [f"{name} {value}" for name, value in self.run_key().options if name != "uncertainty"]
        if self.uncertainty:
            parts.append(uncertainty_title(self.uncertainty))
        return " · ".join(parts)


@dataclass(frozen=True)
class Activity:
    """What the scoring side is doing, for the progress bar: ``done`` of ``total`` (0: busy, no count)."""

    text: str = "idle"
    done: int = 0
    total: int = 1
    busy: bool = False


@dataclass(frozen=True)
class SaliencyMap:
    """Why a slice scored: ``values`` (H, W) float32 in [0, 1] on the slice's own pixel grid."""

    values: np.ndarray
    method: str  # "Grad-CAM (conv2d_2)", "gradient × input", …


@dataclass(frozen=True)
class MaskOverlay:
    """How a segmentation run's map is drawn over the views: ``on`` (key M), ``mode`` (one of
    `MASK_MODES`: filled at the map's threshold with per-class colours, class outlines, or a
    probability heat map) and the fill's ``opacity`` (0…1)."""

    on: bool = True
    mode: str = MASK_MODES[0]
    opacity: float = 0.45


class SessionEvents:
    """One `Event` per part of the session; handlers get the new value."""

    def __init__(self) -> None:
        self.volume = Event("volume")  # Volume | None
        self.slice = Event("slice")  # index
        self.crosshair = Event("crosshair")  # (d, h, w): the slice or the in-plane point moved (once per move)
        self.pointer = Event("pointer")  # (fixed axis of the view, (d, h, w)) under the mouse, or None
        self.levels = Event("levels")  # (low, high)
        self.colormap = Event("colormap")  # name
        self.radiological = Event("radiological")  # bool
        self.layout = Event("layout")  # "single" | "ortho"
        self.settings = Event("settings")  # ScoringSettings
        self.threshold = Event("threshold")  # value
        self.runs = Event("runs")  # (Run, what): what is "added", "scores", "finished", "removed", "shown"
        self.follow = Event("follow")  # Run | None: the run N / P step through
        self.score_tint = Event("score_tint")  # bool: side views tinted by the followed run's scores
        self.activity = Event("activity")  # Activity
        self.labels = Event("labels")  # {slice index: "1" | "0" | "?"}
        self.saliency = Event("saliency")  # (slice index, SaliencyMap) as it arrives, or None when cleared
        self.mask = Event("mask")  # MaskOverlay: the mask overlay's settings changed
        self.dense = Event("dense")  # (Run, slice indices): a streaming run's map got these slices
        self.reference = Event("reference")  # Volume | None: the reference mask that Dice is measured against
        self.message = Event("message")  # text for the status bar


class Session:
    """The viewer's state; every change goes through a method that emits the matching event."""

    def __init__(self) -> None:
        self.events = SessionEvents()
        self.volume: Volume | None = None
        self.display: DisplayRange | None = None
        self.index = 0
        self.point: tuple[int, int] = (0, 0)
        self.pointer: tuple[int, tuple[int, int, int]] | None = None
        self.levels: tuple[float, float] = (0.0, 1.0)
        self.colormap = "grey"
        self.radiological = True
        self.layout = "single"
        self.settings = ScoringSettings()
        self.threshold = 0.5
        self.runs: list[Run] = []
        self.follow: Run | None = None
        self.activity = Activity()
        self.labels: dict[int, str] = {}
        self.saliency_on = False
        self.saliency_opacity = 0.5
        self.saliency_method: str | None = None  # "gradcam" | "occlusion"; None: Grad-CAM, occlusion for ONNX models
        self.score_tint = False
        self.plot_x_mm = False  # the score plot's x axis: slice index, or position in mm
        self.mask = MaskOverlay()
        self._runs_by_view: dict[tuple, list[Run]] = {}
        self._saliency: dict[tuple[RunKey, int], SaliencyMap] = {}
        self.reference: Volume | None = None  # a label map on the volume's grid (File › Load reference mask)
        self._reference_labels: np.ndarray | None = None  # its labels (D, H, W), as `check_grid` gives them
        self._dice: dict[Run, dict[str, dict]] = {}  # per finished dense run: `dice_scores` against the reference

    # -- volume ---------------------------------------------------------------------------------

    def show_volume(self, volume: Volume, display: DisplayRange, focus_mm: tuple[float, float, float] | None = None) -> None:
        """Install a newly loaded volume: its levels, a slice (near ``focus_mm`` when re-slicing,
        the same slice when reloading the same file, else the middle one) and its runs."""
        previous = self.volume
        if previous is not None:
            self._runs_by_view[_view_key(previous)] = [run for run in self.runs if run.finished]
        if focus_mm is not None:
            index = int(np.argmin(np.abs(volume.positions_mm - focus_mm[volume.depth_world_axis])))
        elif previous is not None and previous.source == volume.source and previous.axis == volume.axis and previous.depth == volume.depth:
            index = self.index
        else:
            index = volume.depth // 2
        self.volume, self.display = volume, display
        self.index = max(0, min(index, volume.depth - 1))
        _, height, width, _ = volume.shape
        self.point, self.pointer = (height // 2, width // 2), None
        self.runs = self._runs_by_view.pop(_view_key(volume), [])
        self.follow = None
        if volume is not previous:
            self._saliency.clear()
        self._keep_reference(volume)
        self.levels = display.levels
        self.events.volume.emit(volume)
        self.events.levels.emit(self.levels)
        self.events.slice.emit(self.index)
        self.events.crosshair.emit(self.crosshair())
        self.events.pointer.emit(None)
        self.events.follow.emit(None)
        for run in self.runs:
            self.events.runs.emit(run, "added")

    def focus_mm(self) -> tuple[float, float, float] | None:
        """World point to keep in view when re-slicing: the crosshair on the current slice."""
        if self.volume is None:
            return None
        row, col = self.point
        return tuple(float(v) for v in self.volume.world(self.index, row, col))  # type: ignore[return-value]

    # -- where the user looks -----------------------------------------------------------------

    def set_slice(self, index: int) -> int:
        """Go to slice ``index`` (clamped); returns the slice shown."""
        if self.volume is None:
            return 0
        self._move(index, self.point)
        return self.index

    def step_slice(self, step: int) -> int:
        return self.set_slice(self.index + step)

    def first_slice(self) -> int:
        return self.set_slice(0)

    def last_slice(self) -> int:
        return self.set_slice(self.volume.depth - 1 if self.volume is not None else 0)

    def set_point(self, row: int, col: int) -> None:
        """Move the crosshair's in-plane point (what the side views show)."""
        if self.volume is not None:
            self._move(self.index, (row, col))

    def set_voxel(self, d: int, h: int, w: int) -> None:
        """Move the crosshair to voxel (d, h, w): the slice and the in-plane point."""
        if self.volume is not None:
            self._move(d, (h, w))

    def _move(self, index: int, point: tuple[int, int]) -> None:
        """The crosshair to (``index``, ``point``), clamped: ``slice`` if the slice changed, then
        ``crosshair`` once (so a click in a side view redraws each view once, not per axis)."""
        depth, height, width, _ = self.volume.shape
        index = max(0, min(int(index), depth - 1))
        point = (max(0, min(int(point[0]), height - 1)), max(0, min(int(point[1]), width - 1)))
        moved_slice, moved_point = index != self.index, point != self.point
        self.index, self.point = index, point
        if moved_slice:
            self.events.slice.emit(index)
        if moved_slice or moved_point:
            self.events.crosshair.emit(self.crosshair())

    def set_pointer(self, pointer: tuple[int, tuple[int, int, int]] | None) -> None:
        """The voxel under the mouse, with the index axis its view holds fixed (None: off the image)."""
        if pointer != self.pointer:
            self.pointer = pointer
            self.events.pointer.emit(pointer)

    def crosshair(self) -> tuple[int, int, int]:
        """The crosshair voxel (d, h, w): the current slice and the in-plane point."""
        return (self.index, *self.point)

    def readout_voxel(self) -> tuple[int, int, int] | None:
        """The voxel the readout reports: the one under the mouse in the plane its view shows
        now (scrubbing moves it with the slice), else the crosshair."""
        if self.volume is None:
            return None
        if self.pointer is None:
            return self.crosshair()
        fixed, voxel = self.pointer
        moved = list(voxel)
        moved[fixed] = self.crosshair()[fixed]
        return tuple(moved)  # type: ignore[return-value]

    # -- display ------------------------------------------------------------------------------

    def set_levels(self, low: float, high: float) -> None:
        if high <= low:
            high = low + 1e-6
        levels = (float(low), float(high))
        if levels != self.levels:
            self.levels = levels
            self.events.levels.emit(levels)

    def set_window(self, center: float, width: float) -> None:
        self.set_levels(*window_levels(center, max(float(width), 1e-6)))

    def apply_preset(self, name: str) -> None:
        """A CT window preset by name (``CT_PRESETS``)."""
        self.set_window(*CT_PRESETS[name])

    def set_colormap(self, name: str) -> None:
        if name != self.colormap:
            self.colormap = name
            self.events.colormap.emit(name)

    def set_radiological(self, on: bool) -> None:
        """Radiological convention (patient's left on screen right) for axial and coronal views."""
        if bool(on) != self.radiological:
            self.radiological = bool(on)
            self.events.radiological.emit(self.radiological)

    def set_layout(self, layout: str) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
        if layout != self.layout:
            self.layout = layout
            self.events.layout.emit(layout)

    # -- scoring settings ---------------------------------------------------------------------

    def update_settings(self, **changes: Any) -> ScoringSettings:
        """Change some scoring settings (``strategy=``, ``model_path=``, ``normalize=`` …)."""
        settings = replace(self.settings, **changes)
        if settings != self.settings:
            self.settings = settings
            self.events.settings.emit(settings)
        return settings

    def set_threshold(self, value: float) -> None:
        value = float(value)
        if value != self.threshold:
            self.threshold = value
            self.events.threshold.emit(value)

    def say(self, text: str) -> None:
        """A message for the status bar."""
        self.events.message.emit(text)

    def set_activity(self, activity: Activity) -> None:
        self.activity = activity
        self.events.activity.emit(activity)

    # -- runs ---------------------------------------------------------------------------------

    def begin_run(self, job: int, settings: ScoringSettings | None = None) -> Run:
        """A new, empty run for ``job``.  A finished run with the same key stays until this
        one finishes (a cancelled or failed re-run loses nothing)."""
        assert self.volume is not None, "begin_run needs an open volume"
        settings = settings or self.settings
        run = Run(settings.run_key(), settings.run_title(), self.volume.depth, job=job)
        self.runs.append(run)
        self.events.runs.emit(run, "added")
        return run

    def run_for_job(self, job: int) -> Run | None:
        return next((run for run in self.runs if run.job == job and not run.finished), None)

    def add_scores(self, run: Run, indices: np.ndarray, scores: np.ndarray, spread: np.ndarray | None = None) -> None:
        """A streaming run's scores of slices ``indices`` (and their sd, with an uncertainty method)."""
        if run in self.runs and len(indices):
            run.add(indices, scores, spread)
            self.events.runs.emit(run, "scores")

    def add_map(self, run: Run, indices: np.ndarray, dense: DenseMap) -> None:
        """Slices ``indices`` of a segmentation run, streaming, now filled in its map ``dense``."""
        if run in self.runs and len(indices):
            run.put_map(indices, dense)
            self.events.dense.emit(run, np.asarray(indices))

    def finish_run(self, run: Run, prediction: Prediction) -> None:
        """The run's final scores; it replaces the earlier finished run with the same key."""
        if run not in self.runs:
            return
        for old in [r for r in self.runs if r is not run and r.key == run.key and r.finished]:
            self.remove_run(old)
        run.finish(prediction)
        self._dice.pop(run, None)  # its final map: Dice recomputed when next asked
        self.events.runs.emit(run, "finished")

    def remove_run(self, run: Run) -> None:
        if run in self.runs:
            self.runs.remove(run)
            self._dice.pop(run, None)
            if self.follow is run:
                self.set_follow(None)
            self.events.runs.emit(run, "removed")

    def clear_runs(self) -> None:
        """Remove the finished runs (one still scoring stays)."""
        for run in [r for r in self.runs if r.finished]:
            self.remove_run(run)

    def set_run_visible(self, run: Run, visible: bool) -> None:
        if run in self.runs and run.visible != bool(visible):
            run.visible = bool(visible)
            self.events.runs.emit(run, "shown")

    def finished_runs(self) -> list[Run]:
        return [run for run in self.runs if run.finished]

    def set_follow(self, run: Run | None) -> None:
        """The run that N / P step through (None: the newest finished one)."""
        if run is not self.follow:
            self.follow = run
            self.events.follow.emit(run)

    def followed_run(self) -> Run | None:
        if self.follow is not None and self.follow in self.runs:
            return self.follow
        scored = [run for run in self.runs if run.scores is not None and run.visible]
        finished = [run for run in scored if run.finished]
        return (finished or scored or [None])[-1]

    def jump_to_region(self, step: int) -> tuple[int, int] | None:
        """Go to the next (``step`` > 0) or previous region of the followed run above the
        threshold; returns the region (first, last) or None, saying so, when there is none."""
        run = self.followed_run()
        if run is None:
            self.say("Run a strategy first: N / P step through the slices that score above the threshold")
            return None
        region = next_region(run.peak(), self.threshold, self.index, step)
        if region is None:
            where = "after" if step > 0 else "before"
            self.say(f"No region {where} slice {self.index} scores above {self.threshold:.2f} in {run.title}")
            return None
        self.set_slice(region[0])
        first, last = region
        self.say(f"{run.title}: slices {first}–{last} above {self.threshold:.2f}" if last > first else f"{run.title}: slice {first} above {self.threshold:.2f}")
        return region


    def jump_to_uncertain(self) -> int | None:
        """Go to the slice whose score spreads most in the followed run (U); returns it, or None,
        saying why, when the run has no spread."""
        run = self.followed_run()
        found = run.most_uncertain() if run is not None else None
        if found is None:
            self.say("Run with an uncertainty method first (Model › Uncertainty): U goes to the slice whose score spreads most")
            return None
        index, sd = found
        self.set_slice(index)
        self.say(f"{run.title}: slice {index} spreads most (sd {sd:.3f})")
        return index

    # -- the mask overlay ----------------------------------------------------------------------

    def set_mask(self, on: bool | None = None, mode: str | None = None, opacity: float | None = None) -> MaskOverlay:
        """Show or hide the mask overlay, choose its mode, or change its opacity (clamped to 0…1)."""
        changes: dict[str, Any] = {}
        if on is not None:
            changes["on"] = bool(on)
        if mode is not None:
            if mode not in MASK_MODES:
                raise ValueError(f"unknown mask mode {mode!r}: choose one of {', '.join(MASK_MODES)}")
            changes["mode"] = mode
        if opacity is not None:
            changes["opacity"] = min(max(float(opacity), 0.0), 1.0)
        mask = replace(self.mask, **changes)
        if mask != self.mask:
            self.mask = mask
            self.events.mask.emit(mask)
        return mask

    def toggle_mask(self) -> bool:
        """Key M: show the overlay if hidden, hide it if shown; returns whether it is shown."""
        return self.set_mask(on=not self.mask.on).on

    def mask_run(self) -> Run | None:
        """The run whose map the overlay shows: the followed run if it has one, else the newest
        visible run with a map (streaming or finished)."""
        if self.follow is not None and self.follow in self.runs and self.follow.dense is not None:
            return self.follow
        return next((run for run in reversed(self.runs) if run.dense is not None and run.visible), None)

    def finished_dense_run(self) -> Run | None:
        """The finished segmentation run to export or to compare with the reference: the one the
        overlay shows, else the newest finished run with a map."""
        shown = self.mask_run()
        if shown is not None and shown.finished:
            return shown
        return next((run for run in reversed(self.finished_runs()) if run.dense is not None), None)

    # -- the reference mask and Dice -------------------------------------------------------------

    def set_reference(self, reference: Volume | None) -> None:
        """Measure Dice against ``reference`` (None: no reference).  A reference off the open
        volume's grid raises `SlicewiseError` (`check_grid`'s message) and changes nothing."""
        from app.segmentation.dice import check_grid

        if reference is not None and self.volume is None:
            raise SlicewiseError(f"{reference.source}: open a volume first: a reference mask lies on its grid")
        labels = check_grid(reference, self.volume) if reference is not None else None
        if reference is None and self.reference is None:
            return
        self.reference, self._reference_labels = reference, labels
        self._dice.clear()
        self.events.reference.emit(reference)

    def _keep_reference(self, volume: Volume) -> None:
        """A newly shown volume keeps the reference only if it lies on the same grid."""
        from app.segmentation.dice import check_grid

        if self.reference is None:
            return
        try:
            self._reference_labels = check_grid(self.reference, volume)
        except SlicewiseError:
            self.reference, self._reference_labels = None, None
            self.events.reference.emit(None)
            self.say("The reference mask was cleared: it is not on this volume's grid")
        self._dice.clear()

    def dice(self, run: Run | None) -> dict[str, dict] | None:
        """``run``'s Dice against the reference per foreground class (`dice_scores`: ``{"dice",
        "per_slice"}``), computed once per finished map; None without a reference or a finished map."""
        if run is None or run.dense is None or not run.finished or self._reference_labels is None:
            return None
        from app.segmentation.dice import dice_scores

        if run not in self._dice:
            self._dice[run] = dice_scores(run.dense, self._reference_labels)
        return self._dice[run]

    # -- saliency -----------------------------------------------------------------------------

    def saliency_key(self) -> RunKey:
        """The model whose saliency is shown: the followed run's, else the next run's settings."""
        run = self.followed_run()
        return run.key if run is not None else self.settings.run_key()

    def saliency_map(self, index: int) -> SaliencyMap | None:
        return self._saliency.get((self.saliency_key(), index))

    def store_saliency(self, key: RunKey, index: int, found: SaliencyMap) -> None:
        """A map computed for slice ``index`` of the model behind ``key``; kept per slice."""
        self._saliency[(key, index)] = found
        self.events.saliency.emit(index, found)

    def set_saliency(self, on: bool | None = None, opacity: float | None = None, method: str | None = "") -> None:
        """Show or hide the saliency overlay, change its opacity (0…1), or its ``method``
        ("gradcam", "occlusion", None for the model's default; the maps made so far are dropped)."""
        if method != "" and method != self.saliency_method:
            self.saliency_method = method
            self._saliency.clear()
        if on is not None:
            self.saliency_on = bool(on)
        if opacity is not None:
            self.saliency_opacity = min(max(float(opacity), 0.0), 1.0)
        self.events.saliency.emit(self.index, self.saliency_map(self.index))

    def set_plot_x_mm(self, on: bool) -> None:
        self.plot_x_mm = bool(on)
        self.events.slice.emit(self.index)

    def set_score_tint(self, on: bool) -> None:
        self.score_tint = bool(on)
        self.events.score_tint.emit(self.score_tint)

    # -- labels -------------------------------------------------------------------------------

    def set_labels(self, labels: dict[int, str]) -> None:
        """All the reader's labels at once (a volume opened, a file imported)."""
        self.labels = {int(i): str(v) for i, v in labels.items()}
        self.events.labels.emit(self.labels)

    def label_slice(self, value: str | None, index: int | None = None) -> None:
        """Label the current slice (or ``index``): "1" positive, "0" negative, "?" unsure, None clears."""
        if self.volume is None:
            return
        index = self.index if index is None else int(index)
        if value is None:
            if self.labels.pop(index, None) is None:
                return
        elif self.labels.get(index) == value:
            return
        else:
            self.labels[index] = value
        self.events.labels.emit(self.labels)


def uncertainty_title(spec: str) -> str:
    """A run title's part for an uncertainty spec (``MC dropout ×20``), the spec itself if it does not parse."""
    from app.errors import SlicewiseError
    from app.uncertainty.method import parse

    try:
        method = parse(spec)
    except SlicewiseError:
        return spec
    return method.title() if method is not None else ""


def _view_key(volume: Volume) -> tuple:
    """Runs belong to one file sliced one way: reopening it that way brings them back."""
    return (str(volume.source), volume.sha256, volume.axis, volume.volume_index)
