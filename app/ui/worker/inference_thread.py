"""The inference worker: ONE long-lived QThread that owns TensorFlow and every Keras call.

Protocol (job ids and cancellation):

1. The GUI asks for work through ``InferenceService.submit`` → a queued signal carrying an
   immutable ``Job`` whose ``id`` increases monotonically.  Submitting first cancels every
   earlier job, so a new run (or a newly opened file) supersedes the running one.
2. The worker runs jobs one after another on its thread: it creates the ``Engine`` on the first
   job (importing TensorFlow there, lazily), loads the model, warms it up and calls
   ``Engine.run``, whose ``on_batch`` callback emits ``sigProgress`` with the job id (and a
   segmentation model's ``on_map`` blocks, stored into the job's map here, ``sigMap``).
3. Cancel is a thread-safe "cancelled up to job id N" counter (``CancelToken``) set directly from
   the GUI thread; ``Engine.run`` polls it between batches (a queued signal would wait behind
   the running job and never be seen in time).
4. Every signal the worker emits carries its job id; the window drops any whose id is not
   ``InferenceService.current`` (superseded, cancelled or from a closed volume).
5. Shutdown: cancel everything, ``thread.quit()``, ``thread.wait()``; ``thread.finished``
   deletes the worker and the thread.

The worker never touches a widget: it only emits signals with numpy arrays and core objects.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.errors import Cancelled, SlicewiseError
from app.review.agreement import prepare as prepare_review
from app.uncertainty import parse as parse_uncertainty

if TYPE_CHECKING:
    from app.segmentation.dense_map import DenseMap
    from app.volume import Volume

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One scoring request; everything in it is immutable (``Volume`` is frozen)."""

    id: int
    volume: Volume
    strategy: str
    model_path: str | None = None  # None: the strategy's built-in model
    normalize: str | None = None  # None: what the model expects
    unsafe_model: bool = False
    batch_size: int = 32
    options: tuple = ()  # (name, value) pairs: channels and output for Engine.run, slab and pool for the embedding
    uncertainty: str | None = None  # app.uncertainty's spec (ScoringSettings.uncertainty); None: one pass


@dataclass(frozen=True)
class ModelRequest:
    """Load (and check) a user's model file ahead of a run, so errors show up at once."""

    id: int
    path: str
    normalize: str | None
    unsafe: bool


@dataclass(frozen=True)
class SaliencyJob:
    """A saliency map for one slice; only the newest request is computed (scrubbing drops the rest)."""

    id: int
    key: object  # the session's RunKey of the model, handed back with the map
    volume: Volume
    index: int
    strategy: str
    model_path: str | None = None
    normalize: str | None = None
    unsafe_model: bool = False
    output: str | None = None  # the model output (None: its first)
    channels: str | None = None  # the channel recipe (None: the model's own)
    options: tuple = ()  # (name, value) pairs: slab and pool for the embedding
    method: str | None = None  # "gradcam" or "occlusion" (None: Grad-CAM, occlusion for an ONNX model)


class CancelToken:
    """Jobs with ``id <= cancelled_upto`` are cancelled.  Written by the GUI, read by the worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._upto = 0

    def cancel_upto(self, job_id: int) -> None:
        with self._lock:
            self._upto = max(self._upto, job_id)

    def is_cancelled(self, job_id: int) -> bool:
        with self._lock:
            return job_id <= self._upto


def worker_threads() -> int:
    """Every core: the worker runs at low priority, so the GUI thread still wins a core when it
    needs one.  Measured (``gui_vs_cli_throughput``, 2 cores): a user-sized CNN scored 0.82 x as
    fast as ``slicewise predict`` on cores - 1 threads and 0.99 x on all, while scrubbing (p95
    11-15 ms) and the first run's longest stall (34-52 ms) stayed about the same."""
    return max(1, os.cpu_count() or 1)


PROGRESS_INTERVAL_S = 0.1  # scores handed to the GUI at most this often while a run streams
WORKER_NICENESS = 10  # added to the worker thread's nice value (Linux; elsewhere: QThread.LowPriority)


def lower_worker_priority() -> None:
    """Make the calling thread (the worker) give way to the GUI thread when both want a core.

    Called before TensorFlow starts its thread pools on this thread, so they inherit it.  With
    one core left to the GUI this changes little; when something else also wants the CPU it
    keeps scrubbing smooth (scoring takes longer instead).
    """
    if sys.platform.startswith("linux"):
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_NICENESS))  # this thread only
        except OSError:
            pass
    else:
        QThread.currentThread().setPriority(QThread.Priority.LowPriority)


class _ProgressRelay:
    """Hands batches' scores on at most every `PROGRESS_INTERVAL_S` (the last batch at once).

    A fast model finishes a batch every 20–30 ms; each hand-over costs the GUI thread a turn of
    redraws, taken from a user who is scrubbing meanwhile.  Slower batches pass one by one.
    """

    def __init__(self, emit: Callable[[int, int, np.ndarray, np.ndarray, np.ndarray | None], None]):
        self._emit = emit
        self._indices: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []
        self._spreads: list[np.ndarray] = []  # an uncertainty method's per-slice sd, batch by batch
        self._last = 0.0

    def __call__(self, done: int, total: int, indices: np.ndarray, scores: np.ndarray, spread: np.ndarray | None = None) -> None:
        if len(indices):  # a step can end with no slice scored (a sequence model's first windows)
            self._indices.append(np.array(indices, copy=True))
            self._scores.append(np.array(scores, copy=True))
            if spread is not None:
                self._spreads.append(np.asarray(spread, dtype=np.float32).reshape(len(indices), -1))
        now = time.perf_counter()
        if done == total or now - self._last >= PROGRESS_INTERVAL_S:
            self._last = now
            spread = None
            if self._indices:
                indices, scores = np.concatenate(self._indices), np.concatenate(self._scores)
                spread = np.concatenate(self._spreads) if len(self._spreads) == len(self._indices) else None
            self._indices, self._scores, self._spreads = [], [], []
            self._emit(done, total, np.asarray(indices), np.asarray(scores), spread)


class _MapRelay:
    """Hands the engine's map of a segmentation run (filled on the worker, quantised there) on to
    the GUI with the slices it gained, at most every `PROGRESS_INTERVAL_S`; `flush` hands on the rest.

    The GUI's run adopts this one map (`Run.put_map`): the worker writes slices the GUI has not
    been told of yet, and nothing is copied between the threads.
    """

    def __init__(self, emit: Callable[[np.ndarray, DenseMap], None]):
        self._emit = emit
        self.dense: DenseMap | None = None
        self._indices: list[np.ndarray] = []
        self._last = 0.0

    def __call__(self, indices: np.ndarray, dense: DenseMap) -> None:
        if len(indices) == 0:
            return
        self.dense = dense
        self._indices.append(np.array(indices, copy=True))
        now = time.perf_counter()
        if now - self._last >= PROGRESS_INTERVAL_S:
            self._last = now
            self.flush()

    def flush(self) -> None:
        if self._indices and self.dense is not None:
            indices, self._indices = np.concatenate(self._indices), []
            self._emit(indices, self.dense)


class InferenceWorker(QObject):
    """Lives on the inference thread; its slots run there, one job at a time."""

    sigStatus = Signal(int, str)  # job id, phase ("Starting TensorFlow…", "Warming up…")
    sigProgress = Signal(int, int, int, object, object, object)  # job id, done, total, slice indices, scores (n, K), their sd (n, K) or None
    sigMap = Signal(int, object, object)  # job id, slice indices, the job's DenseMap (filled here, those slices included)
    sigFinished = Signal(int, object)  # job id, Prediction
    sigFailed = Signal(int, str)  # job id, message for the user
    sigCancelled = Signal(int)  # job id
    sigModelLoaded = Signal(int, str, object)  # request id, description of the model, its output names
    sigModelFailed = Signal(int, str)  # request id, message
    sigSaliency = Signal(int, object, int, object, str)  # request id, key, slice index, map (H, W), method
    sigSaliencyFailed = Signal(int, str)  # request id, message

    def __init__(self, cancel: CancelToken, threads: int | None = None):
        super().__init__()
        self._cancel = cancel
        self.threads = threads or worker_threads()  # TensorFlow's, fixed when it starts
        self._engine = None
        self._models: dict[tuple, object] = {}  # (path, mtime, normalize, unsafe) → LoadedModel
        self._warm: set[tuple[str, int]] = set()
        self._saliency: dict[tuple, object] = {}  # (strategy, id(model), output) → SaliencyComputer
        self.latest_saliency = 0  # written by the GUI thread: requests older than this are dropped

    # -- runs on the worker thread ------------------------------------------------------------

    def _get_engine(self):
        if self._engine is None:
            from app.inference.engine import Engine

            engine = Engine(threads=self.threads)
            engine.start()  # TensorFlow is imported here, on this thread
            prepare_review()  # and scikit-learn (0.75 s): the agreement figures of a finished run need it
            self._engine = engine
        return self._engine

    def _model(self, path: str, normalize: str | None, unsafe: bool):
        key = (str(Path(path).resolve()), _mtime(path), normalize, unsafe)
        if key not in self._models:
            self._models[key] = self._get_engine().load(path, normalize, unsafe)
        return self._models[key]

    @Slot(object)
    def run_job(self, job: Job) -> None:
        if self._cancel.is_cancelled(job.id):  # superseded while it waited in the queue
            self.sigCancelled.emit(job.id)
            return
        try:
            options = dict(job.options)
            strategy = _strategy(job.strategy, options)
            if self._engine is None:
                self.sigStatus.emit(job.id, "Starting TensorFlow…")
            engine = self._get_engine()
            self._check(job)
            uncertainty = parse_uncertainty(job.uncertainty)
            if uncertainty is not None and uncertainty.method == "ensemble":
                self.sigStatus.emit(job.id, f"Loading {len(uncertainty.paths)} ensemble models…")
                uncertainty = uncertainty.with_members([self._model(path, job.normalize, job.unsafe_model) for path in uncertainty.paths])
                model = uncertainty.members[0]
            elif job.model_path:
                self.sigStatus.emit(job.id, f"Loading {Path(job.model_path).name}…")
                model = self._model(job.model_path, job.normalize, job.unsafe_model)
            else:
                self.sigStatus.emit(job.id, "Loading built-in model…")
                model = engine.builtin(strategy)
            self._check(job)
            if (strategy.name, id(model)) not in self._warm:
                self.sigStatus.emit(job.id, "Warming up the model…")
                engine.warm_up(strategy, model)
                self._warm.add((strategy.name, id(model)))
            self._check(job)
            self.sigStatus.emit(job.id, "Scoring…")

            on_batch = _ProgressRelay(lambda *args: self.sigProgress.emit(job.id, *args))
            on_map = _MapRelay(lambda indices, dense: self.sigMap.emit(job.id, indices, dense))
            prediction = engine.run(
                job.volume,
                strategy,
                model,
                normalize=job.normalize,
                batch_size=job.batch_size,
                **options,
                on_batch=on_batch,
                cancelled=lambda: self._cancel.is_cancelled(job.id),
                uncertainty=uncertainty,
                on_map=on_map,
            )
        except Cancelled:
            self.sigCancelled.emit(job.id)
        except Exception as exc:  # noqa: BLE001 - the worker stays alive; _failed reports it
            self._failed(self.sigFailed, job.id, exc, f"scoring job {job.id}")
        else:
            on_map.flush()
            self.sigFinished.emit(job.id, prediction)

    @Slot(object)
    def load_model(self, request: ModelRequest) -> None:
        try:
            model = self._model(request.path, request.normalize, request.unsafe)
        except Exception as exc:  # noqa: BLE001 - the worker stays alive; _failed reports it
            self._failed(self.sigModelFailed, request.id, exc, f"loading {request.path}")
        else:
            outputs = list(model.outputs)
            self.sigModelLoaded.emit(request.id, f"{model.name}: {model.spec.describe()}", outputs)

    @Slot(object)
    def saliency(self, job: SaliencyJob) -> None:
        if job.id != self.latest_saliency:
            return  # the user has moved on: a newer request is queued behind this one
        try:
            from app.inference.occlusion import saliency_computer

            strategy = _strategy(job.strategy, dict(job.options))
            engine = self._get_engine()
            model = self._model(job.model_path, job.normalize, job.unsafe_model) if job.model_path else engine.builtin(strategy)
            key = (strategy.name, id(model), job.output, job.options, job.method)
            if key not in self._saliency:
                self._saliency[key] = saliency_computer(engine, strategy, model, job.method, output=job.output)
            computer = self._saliency[key]
            maps = computer.maps(job.volume, [job.index], job.normalize, channels=job.channels, cancelled=lambda: job.id != self.latest_saliency)
        except Cancelled:
            return
        except Exception as exc:  # noqa: BLE001 - the worker stays alive; _failed reports it
            self._failed(self.sigSaliencyFailed, job.id, exc, f"saliency of slice {job.index}")
        else:
            self.sigSaliency.emit(job.id, job.key, job.index, maps[job.index], computer.method)

    @staticmethod
    def _failed(signal, request_id: int, exc: Exception, what: str) -> None:
        """Report a failure on ``signal``: a SlicewiseError says what went wrong for the user;
        anything else is a bug, logged with its traceback (call from the ``except`` block)."""
        if isinstance(exc, SlicewiseError):
            signal.emit(request_id, str(exc))
            return
        log.exception("%s failed", what)
        signal.emit(request_id, f"unexpected {type(exc).__name__}: {exc}")

    def _check(self, job: Job) -> None:
        if self._cancel.is_cancelled(job.id):
            raise Cancelled("cancelled")


def _strategy(name: str, options: dict):
    """The strategy called ``name``, configured by the embedding's ``slab`` and ``pool`` (popped from ``options``)."""
    from app.strategies import get_strategy
    from app.strategies.embedding import configured

    return configured(get_strategy(name), options.pop("slab", None), options.pop("pool", None))


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


class _PythonThread(QThread):
    """A QThread whose event loop runs inside a Python ``run``, so the thread keeps ONE Python
    thread state for its whole life.

    With the default ``run`` every queued slot call enters Python afresh and gets a new thread
    state, which drops Python thread-locals between jobs; TensorFlow keeps its graph-building
    context in thread-locals and crashes (segfault) on the second job that traces a model.
    """

    def run(self) -> None:
        lower_worker_priority()
        self.exec()


class InferenceService(QObject):
    """The GUI thread's handle on the worker: the thread, job ids and the cancel token."""

    sigJob = Signal(object)  # Job → InferenceWorker.run_job (queued: the worker lives on its thread)
    sigModel = Signal(object)  # ModelRequest → InferenceWorker.load_model
    sigSaliency = Signal(object)  # SaliencyJob → InferenceWorker.saliency

    def __init__(self, parent: QObject | None = None, threads: int | None = None):
        super().__init__(parent)
        self.cancel_token = CancelToken()
        self.thread = _PythonThread()
        self.thread.setObjectName("slicewise-inference")
        self.worker = InferenceWorker(self.cancel_token, threads)
        self.worker.moveToThread(self.thread)
        self.thread.finished.connect(self.worker.deleteLater)
        self.thread.finished.connect(self.thread.deleteLater)
        self.sigJob.connect(self.worker.run_job)
        self.sigModel.connect(self.worker.load_model)
        self.sigSaliency.connect(self.worker.saliency)
        self._last_id = 0
        self.current = 0  # the job whose signals the window accepts; 0 = none
        self._stopped = False
        self.thread.start()

    def submit(self, job: Job) -> int:
        """Queue ``job`` under a new id, superseding (cancelling) every earlier one; return the id."""
        self.cancel_token.cancel_upto(self._last_id)
        self._last_id += 1
        self.current = self._last_id
        self.sigJob.emit(replace(job, id=self._last_id))
        return self._last_id

    def request_saliency(self, job: SaliencyJob) -> int:
        """Queue a saliency request under a new id; every older one is dropped when its turn comes."""
        self._last_id += 1
        self.worker.latest_saliency = self._last_id  # a plain int: read by the worker between batches
        self.sigSaliency.emit(replace(job, id=self._last_id))
        return self._last_id

    def load_model(self, path: str, normalize: str | None, unsafe: bool) -> int:
        self._last_id += 1
        self.sigModel.emit(ModelRequest(self._last_id, path, normalize, unsafe))
        return self._last_id

    def cancel(self) -> int:
        """Cancel the current (and every earlier) job; its signals are dropped from now on."""
        cancelled = self.current
        self.cancel_token.cancel_upto(self._last_id)
        self.current = 0
        return cancelled

    def is_current(self, job_id: int) -> bool:
        return job_id != 0 and job_id == self.current

    def shutdown(self) -> None:
        """Cancel, stop the thread and wait for it (at most one batch)."""
        if self._stopped:
            return
        self._stopped = True
        self.cancel()
        self.worker.latest_saliency = -1  # queued saliency requests are dropped
        self.thread.quit()
        self.thread.wait()
