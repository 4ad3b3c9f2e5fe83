"""The viewer's speed figures, each measured in a fresh process: ``python -m app.ui.bench_ui WHAT``.

Run by ``python -m app.tools.bench`` (which prints and records them); each ends with one line
``RESULT {json}`` (``startup`` prints ``shown`` as soon as the window has been painted).

- ``startup [--window-only]``  what ``slicewise`` does up to the first paint of its window
  (``--window-only``: without importing its command-line module first)
- ``scrub VOLUME [--model FILE]``   slider change -> repaint finished, random steps, while the
  worker scores (and with it idle, and with the saliency overlay on)
- ``mask VOLUME``   three views with a segmentation map's overlay on: slider change -> all three
  repainted, while the worker scores and the map streams in (and with it idle, and in heat mode)
- ``crosshair VOLUME``  three views: crosshair moved -> all three repainted, while the worker scores
  (and with it idle)
- ``saliency VOLUME``   slice change -> its saliency overlay shown (built-in slice model)
- ``stall VOLUME``   longest gap between ticks of a 5 ms timer over the session's first scoring
  run (TensorFlow starts on the worker) and three more; each part reported apart, and so is
  the opening of the volume before them
- ``throughput VOLUME [--model FILE]``  seconds per warm scoring run of the slice strategy in
  the viewer (the built-in model, or FILE)
- ``memory VOLUME``  peak extra resident memory while the volume is opened and scored
- ``worklist RESULTS``  ``slicewise review``'s worklist: results parsed -> table painted, then
  random page scrolls -> the table repainted (the rows' files read as they show)

``--threads N`` gives the worker N TensorFlow threads instead of the viewer's default.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

MIB = 2**20


def _window(settings_dir: str, threads: int | None = None):
    """The main window, offscreen; ``threads``: the worker's TensorFlow threads (None: its default)."""
    from PySide6.QtCore import QSettings

    from app.ui.main import ensure_app
    from app.ui.window import MainWindow

    qapp = ensure_app(offscreen=True)
    settings = QSettings(os.path.join(settings_dir, "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, remember_recent=False, interactive=False, threads=threads)
    window.resize(1280, 860)
    window.show()
    return qapp, window


class _PaintWatch:
    """Counts the paint events a widget receives (an event filter: no subclassing)."""

    def __init__(self, widget):
        from PySide6.QtCore import QEvent, QObject

        paint = QEvent.Type.Paint

        class Filter(QObject):
            def eventFilter(inner, obj, event):  # noqa: N805
                if event.type() == paint:
                    self.count += 1
                return False

        self.count = 0
        self._filter = Filter()
        widget.installEventFilter(self._filter)


def _wait(qapp, ms: float) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(ms), loop.quit)
    loop.exec()


def _until(qapp, condition, timeout_s: float = 300) -> None:
    deadline = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("the viewer did not get there in time")
        _wait(qapp, 5)


def _load(window, volume: str):
    """Open ``volume`` at once, through the window's own display path."""
    from app.ui.worker.volume_loader import LoadRequest, load

    loaded = load(LoadRequest(0, Path(volume)))
    window.show_loaded(loaded)
    return loaded.volume


def _score_and_wait(qapp, window) -> object:
    """One scoring run; the event loop runs until it ends (woken by the window's signals, not
    by polling, which would add its own wake-ups to what is timed)."""
    from PySide6.QtCore import QEventLoop

    outcome: list = []
    loop = QEventLoop()

    def record(value) -> None:
        outcome.append(value)
        loop.quit()

    finished = window.predictions.sigFinished.connect(lambda job, prediction: record(prediction))
    failed = window.sigError.connect(lambda title, message: record(RuntimeError(message)))
    window.run_prediction()
    if not outcome:
        loop.exec()
    window.predictions.sigFinished.disconnect(finished)
    window.sigError.disconnect(failed)
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


class _Scoring:
    """Keeps the worker scoring (each finished run starts the next) until `stop`."""

    def __init__(self, qapp, window):
        self.window, self.batches = window, []
        self._restart = window.predictions.sigFinished.connect(lambda job, prediction: window.run_prediction())
        self._count = window.predictions.sigBatch.connect(lambda job, done, total: self.batches.append(done))
        window.run_prediction()
        _until(qapp, lambda: self.batches)  # TensorFlow started, model warm, scores streaming in

    def stop(self, qapp) -> None:
        self.window.predictions.sigFinished.disconnect(self._restart)
        self.window.predictions.sigBatch.disconnect(self._count)
        _until(qapp, lambda: not self.window.inference.current)


def _time_steps(qapp, widgets, move, steps: int):
    """Milliseconds from each ``move()`` until every widget in ``widgets`` has been repainted."""
    import numpy as np

    watches = [_PaintWatch(widget) for widget in widgets]
    times = []
    for _ in range(steps):
        before = [w.count for w in watches]
        t0 = time.perf_counter()
        move()
        while any(w.count == b for w, b in zip(watches, before)):
            qapp.processEvents()
        times.append(time.perf_counter() - t0)
        _wait(qapp, 10)  # a hand on a slider moves it every frame or so, not back to back
    return np.array(times) * 1000


def _figures(ms, prefix: str = "") -> dict:
    import numpy as np

    return {f"{prefix}p95_ms": float(np.percentile(ms, 95)), f"{prefix}median_ms": float(np.median(ms)), f"{prefix}max_ms": float(ms.max())}


def startup(window_only: bool) -> None:
    if not window_only:
        import app.ui.launch  # noqa: F401 - the `slicewise` console script imports it first
    with tempfile.TemporaryDirectory() as tmp:
        qapp, window = _window(tmp)
        watch = _PaintWatch(window)
        while watch.count == 0:
            qapp.processEvents()
        qapp.processEvents()
        print("shown", flush=True)
        print("RESULT " + json.dumps({"torch_imported": "torch" in sys.modules, "tensorflow_imported": "tensorflow" in sys.modules}), flush=True)
        os._exit(0)  # the parent has what it needs; skip the teardown


def _slider_steps(window, depth: int, seed: int):
    """``move()``: the slider to a random other slice, as dragging it does."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def move() -> None:
        index = int(rng.integers(0, depth))
        while index == window.session.index:
            index = int(rng.integers(0, depth))
        window.scrubber.slider.setValue(index)

    return move


def scrub(volume: str, steps: int, threads: int | None = None, model: str | None = None) -> None:
    """Slider steps while the worker scores (the figure), with it idle, and with the saliency
    overlay on (each slice's map computed on the worker as the slice is shown)."""
    with tempfile.TemporaryDirectory() as tmp:
        qapp, window = _window(tmp, threads)
        loaded = _load(window, volume)
        view = [window.views.depth_view.graphics.viewport()]
        idle = _time_steps(qapp, view, _slider_steps(window, loaded.depth, 1), max(steps // 4, 20))
        window.set_strategy("slice")
        if model:
            window.set_model(model, check=False)
        scoring = _Scoring(qapp, window)
        busy = _time_steps(qapp, view, _slider_steps(window, loaded.depth, 0), steps)
        scoring.stop(qapp)
        window.set_saliency_visible(True)
        overlay = window.views.saliency
        _until(qapp, lambda: overlay.shown_index == window.session.index)  # the model's gradient traced once
        salient = _time_steps(qapp, view, _slider_steps(window, loaded.depth, 2), max(steps // 2, 20))
        result = {**_figures(busy), **_figures(idle, "idle_"), **_figures(salient, "saliency_"),
                  "steps": steps, "batches_plotted": len(scoring.batches), "saliency_method": overlay.caption.text()}
        window.close()
    print("RESULT " + json.dumps(result), flush=True)


def _fixed_map(volume):
    """A one-class sigmoid map of ``volume``'s shape from its own values (p = value / 300,
    clipped: bone and contrast above 150 in the mask, a soft edge for the heat map), filled a
    slice at a time; its ``filled`` flags are cleared, to be set as the run streams."""
    import numpy as np

    from app.segmentation.dense_map import DenseMap

    data = volume.data.numpy()[..., 0]
    dense = DenseMap.empty((*data.shape, 1), "sigmoid", ("bright",))
    for d in range(volume.depth):
        dense.put([d], np.clip(data[d] / 300.0, 0.0, 1.0)[None, ..., None])
    dense.filled[:] = False
    return dense


class _MapFeed:
    """Streams ``dense`` into every run as its scores arrive, through `Session.add_map` with the
    map the worker would fill (the path `PredictionController` takes with ``sigMap``): the
    built-in classifier stands in for a segmentation model, whose engine streams real blocks."""

    def __init__(self, session, dense):
        import numpy as np

        self.session, self.dense, self.blocks = session, dense, 0
        self._fed: dict = {}
        self._np = np
        session.events.runs.connect(self._on_run)

    def _on_run(self, run, what: str) -> None:
        if what != "scores" or run.scores is None:
            return
        fed = self._fed.setdefault(run, self._np.zeros(run.depth, bool))
        new = self._np.flatnonzero(self._np.isfinite(run.scores[:, 0]) & ~fed)
        if len(new):
            fed[new] = True
            self.dense.filled[new] = True
            self.session.add_map(run, new, self.dense)
            self.blocks += 1


def mask_scrub(volume: str, steps: int, threads: int | None = None) -> None:
    """Three views with the mask overlay on (filled): slider steps → all three views repainted,
    while the worker scores and the map streams in (the figure), idle, and in heat mode."""
    with tempfile.TemporaryDirectory() as tmp:
        qapp, window = _window(tmp, threads)
        window.session.set_layout("ortho")
        loaded = _load(window, volume)
        session = window.session
        feed = _MapFeed(session, _fixed_map(loaded))
        viewports = [view.graphics.viewport() for view in window.views.views]
        window.set_strategy("slice")
        scoring = _Scoring(qapp, window)
        _until(qapp, lambda: all(overlay.image.isVisible() for overlay in window.views.masks))
        busy = _time_steps(qapp, viewports, _slider_steps(window, loaded.depth, 0), steps)
        scoring.stop(qapp)
        idle = _time_steps(qapp, viewports, _slider_steps(window, loaded.depth, 1), max(steps // 4, 20))
        session.set_mask(mode="heat")
        heat = _time_steps(qapp, viewports, _slider_steps(window, loaded.depth, 2), max(steps // 4, 20))
        result = {**_figures(busy), **_figures(idle, "idle_"), **_figures(heat, "heat_"), "steps": steps,
                  "batches_plotted": len(scoring.batches), "map_blocks": feed.blocks, "legend": window.views.mask_legend.lines()}
        window.close()
    print("RESULT " + json.dumps(result), flush=True)


def crosshair(volume: str, steps: int) -> None:
    """Three views: the crosshair moved to a random voxel → all three views repainted, while the
    worker scores (the figure) and with it idle."""
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        qapp, window = _window(tmp)
        window.session.set_layout("ortho")
        loaded = _load(window, volume)
        viewports = [view.graphics.viewport() for view in window.views.views]
        _wait(qapp, 100)
        rng = np.random.default_rng(1)
        depth, height, width, _ = loaded.shape

        def move() -> None:  # what a click in a view does
            window.session.set_voxel(int(rng.integers(0, depth)), int(rng.integers(0, height)), int(rng.integers(0, width)))

        idle = _time_steps(qapp, viewports, move, max(steps // 4, 20))
        scoring = _Scoring(qapp, window)
        busy = _time_steps(qapp, viewports, move, steps)
        result = {**_figures(busy), **_figures(idle, "idle_"), "steps": steps, "batches_plotted": len(scoring.batches)}
        window.close()
    print("RESULT " + json.dumps(result), flush=True)


def saliency(volume: str, steps: int) -> None:
    """Slice change → its saliency overlay shown (built-in slice model), the map computed on the worker."""
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        qapp, window = _window(tmp)
        loaded = _load(window, volume)
        window.set_strategy("slice")
        _score_and_wait(qapp, window)
        window.set_saliency_visible(True)
        overlay = window.views.saliency
        _until(qapp, lambda: overlay.shown_index == window.session.index)  # the model's gradient traced once
        rng = np.random.default_rng(2)
        times = []
        for _ in range(steps):
            index = int(rng.integers(0, loaded.depth))
            while index == window.session.index:
                index = int(rng.integers(0, loaded.depth))
            t0 = time.perf_counter()
            window.session.set_slice(index)
            _until(qapp, lambda index=index: overlay.shown_index == index)
            qapp.processEvents()
            times.append(time.perf_counter() - t0)
        ms = np.array(times) * 1000
        result = {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max()), "steps": steps,
                  "method": overlay.caption.text()}
        window.close()
    print("RESULT " + json.dumps(result), flush=True)


class _Ticker:
    """A 5 ms QTimer on the GUI thread: the gaps between its ticks are how long the event loop stalled."""

    def __init__(self):
        from PySide6.QtCore import QTimer

        self.ticks: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))

    def start(self) -> None:
        self.ticks.append(time.perf_counter())
        self.timer.start()

    def stop(self) -> list[float]:
        self.timer.stop()
        ticks, self.ticks = self.ticks, []
        return ticks


def _ticks_while_scoring(qapp, window) -> tuple[list[float], float]:
    ticker = _Ticker()
    ticker.start()
    _wait(qapp, 50)
    t0 = time.perf_counter()
    _score_and_wait(qapp, window)
    elapsed = time.perf_counter() - t0
    _wait(qapp, 20)
    return ticker.stop(), elapsed


def stall(volume: str, runs: int = 3, threads: int | None = None) -> None:
    """From the window shown: ``volume`` opened on the loader thread (as File > Open does), its
    first scoring run (TensorFlow starts on the worker, the model loads and warms up), then
    ``runs`` more.  The figure is the longest tick gap from the first run's start to the end;
    the opening is reported apart (it is the loader's and the window's, not the worker's)."""
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        qapp, window = _window(tmp, threads)
        watch = _PaintWatch(window)
        while watch.count == 0:
            qapp.processEvents()
        ticker = _Ticker()
        ticker.start()  # the window is shown
        shown: list = []
        window.sigVolumeShown.connect(lambda v: shown.append(v))
        window.open_path(volume)
        _until(qapp, lambda: shown)
        _wait(qapp, 200)
        opening = np.diff(ticker.stop()) * 1000
        first, first_s = _ticks_while_scoring(qapp, window)  # the session's first run
        later = [_ticks_while_scoring(qapp, window) for _ in range(runs)]
        first_gaps = np.diff(first) * 1000
        later_gaps = np.concatenate([np.diff(ticks) for ticks, _ in later]) * 1000
        gaps = np.concatenate([first_gaps, later_gaps])
        result = {
            "max_gap_ms": float(gaps.max()), "p99_gap_ms": float(np.percentile(gaps, 99)), "ticks": int(gaps.size),
            "first_run_max_gap_ms": float(first_gaps.max()), "first_run_s": first_s,
            "later_max_gap_ms": float(later_gaps.max()), "later_p99_gap_ms": float(np.percentile(later_gaps, 99)),
            "scoring_s": min(elapsed for _, elapsed in later), "runs": len(later), "opening_max_gap_ms": float(opening.max()),
        }
        window.close()
    print("RESULT " + json.dumps(result), flush=True)


def throughput(volume: str, runs: int, threads: int | None = None, model: str | None = None) -> None:
    """Seconds per scoring run of the slice strategy in the viewer, warm: Run pressed → the run
    finished (its scores streamed to the plot on the way), the fastest of ``runs``; ``model``:
    a Keras file instead of the built-in model."""
    with tempfile.TemporaryDirectory() as tmp:
        qapp, window = _window(tmp, threads)
        _load(window, volume)
        window.set_strategy("slice")
        if model:
            window.set_model(model, check=False)
        _score_and_wait(qapp, window)  # TensorFlow started, the model loaded and warm
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            _score_and_wait(qapp, window)
            times.append(time.perf_counter() - t0)
        result = {"run_s": min(times), "threads": window.inference.worker.threads, "runs": runs}
        window.close()
    print("RESULT " + json.dumps(result), flush=True)


def memory(volume: str) -> None:
    import nibabel as nib
    import numpy as np

    from app.io.memory import PeakMemory, process_memory

    with tempfile.TemporaryDirectory() as tmp:
        qapp, window = _window(tmp)
        small = Path(tmp) / "small.nii.gz"
        nib.save(nib.Nifti1Image(np.zeros((64, 64, 8), np.int16), np.eye(4)), small)
        _load(window, str(small))
        _score_and_wait(qapp, window)  # TensorFlow started and the model traced: not the volume's cost
        _wait(qapp, 200)
        gc.collect()
        with PeakMemory() as measured:
            shown: list = []
            window.sigVolumeShown.connect(lambda v: shown.append(v))
            window.open_path(volume)  # on the loader thread, as File > Open does
            _until(qapp, lambda: shown)
            _score_and_wait(qapp, window)
            _wait(qapp, 100)
        after = process_memory()
        depth, height, width, channels = shown[0].shape
        result = {
            "peak_extra_mib": (measured.peak - measured.baseline) / MIB, "float32_mib": depth * height * width * channels * 4 / MIB,
            "baseline_mib": measured.baseline / MIB, "after_mib": (after - measured.baseline) / MIB, "hwm_reset": measured.hwm_reset,
        }
        window.close()
    print("RESULT " + json.dumps(result), flush=True)


def worklist(results: str, steps: int) -> None:
    """Time from reading the results to the worklist painted, in a window already shown (its
    start is the ``startup`` figure); then scroll steps of a page to random rows."""
    import numpy as np

    with tempfile.TemporaryDirectory() as settings_dir:
        qapp, window = _window(settings_dir)
        _wait(qapp, 200)
        from app.review.results import load_results
        from app.review.worklist import CohortReview
        from app.ui.review_mode import ReviewMode

        t0 = time.perf_counter()
        parsed = load_results(results)
        t1 = time.perf_counter()
        mode = ReviewMode(window, CohortReview(parsed, "bench"))
        table = mode.worklist.table
        watch = _PaintWatch(table.viewport())
        while watch.count == 0:
            qapp.processEvents()
        t2 = time.perf_counter()
        bar = table.verticalScrollBar()
        rng = np.random.default_rng(0)
        ms = _time_steps(qapp, [table.viewport()], lambda: bar.setValue(int(rng.integers(0, bar.maximum() + 1))), steps)
        result = {"open_ms": (t2 - t0) * 1000, "parse_ms": (t1 - t0) * 1000, "table_ms": (t2 - t1) * 1000, "cases": len(parsed),
                  "rows": int(parsed.table.shape[0]), **_figures(ms, "scroll_"), "steps": steps}  # fmt: skip
        window.close()
    print("RESULT " + json.dumps(result), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.ui.bench_ui", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("startup", "scrub", "mask", "crosshair", "saliency", "stall", "throughput", "memory", "worklist"))
    parser.add_argument("volume", nargs="?")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--window-only", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", help="scrub, throughput: a Keras or ONNX model file instead of the built-in one")
    parser.add_argument("--threads", type=int, help="the worker's TensorFlow threads (default: the viewer's own choice)")
    args = parser.parse_args(argv)
    if args.what == "startup":
        startup(args.window_only)
    elif args.volume is None:
        parser.error(f"{args.what} needs a volume")
    elif args.what == "scrub":
        scrub(args.volume, args.steps, args.threads, args.model)
    elif args.what == "mask":
        mask_scrub(args.volume, args.steps, args.threads)
    elif args.what == "crosshair":
        crosshair(args.volume, args.steps)
    elif args.what == "saliency":
        saliency(args.volume, min(args.steps, 30))
    elif args.what == "stall":
        stall(args.volume, 2 if args.quick else 3, args.threads)
    elif args.what == "throughput":
        throughput(args.volume, 5, args.threads, args.model)
    elif args.what == "worklist":
        worklist(args.volume, min(args.steps, 100))
    else:
        memory(args.volume)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
