"""`PredictionController`: runs the session's scoring settings on the inference worker and puts
what comes back into the session.  The only place that sets the worker's current job.

A run begins as an empty `Run` in the session; batches fill it; when it finishes it replaces
the earlier run with the same settings.  Cancelled or failed, it is removed and the earlier
finished run, if any, stays.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from app.errors import SlicewiseError
from app.session import Activity
from app.status import run_finished_text
from app.ui.worker.inference_thread import InferenceService, Job

if TYPE_CHECKING:
    from app.session import Session


class PredictionController(QObject):
    sigFinished = Signal(int, object)  # job id, Prediction (after it is in the session)
    sigCancelled = Signal(int)  # job id (the window stopped listening to it)
    sigCancelConfirmed = Signal(int)  # job id: the worker has stopped it (between two batches)
    sigBatch = Signal(int, int, int)  # job id, batches done, batches in all
    sigFailed = Signal(str)  # message
    sigModelReady = Signal(str, object)  # description, output names
    sigModelFailed = Signal(str)  # message

    def __init__(self, session: Session, parent: QObject | None = None, threads: int | None = None):
        super().__init__(parent)
        self.session = session
        self.inference = InferenceService(self, threads)
        self._started: dict[int, float] = {}
        self._model_request = 0
        worker = self.inference.worker
        worker.sigStatus.connect(self._on_status)
        worker.sigProgress.connect(self._on_progress)
        worker.sigMap.connect(self._on_map)
        worker.sigFinished.connect(self._on_finished)
        worker.sigFailed.connect(self._on_failed)
        worker.sigCancelled.connect(self.sigCancelConfirmed)
        worker.sigModelLoaded.connect(self._on_model_loaded)
        worker.sigModelFailed.connect(self._on_model_failed)

    @property
    def running(self) -> bool:
        return bool(self.inference.current)

    def run(self) -> int:
        """Score the open volume with the session's settings; returns the job id."""
        session = self.session
        if session.volume is None:
            raise SlicewiseError("open a volume first")
        settings = session.settings
        from app.preprocessing import parse_spec

        normalize = parse_spec(settings.normalize) if settings.normalize else None
        if normalize != settings.normalize:
            settings = session.update_settings(normalize=normalize)
        self.cancel(announce=False)
        options = {name: value for name, value in (("channels", settings.channels), ("output", settings.output), ("slab", settings.slab),
                                                   ("pool", settings.pool)) if value is not None}
        job = self.inference.submit(
            Job(0, session.volume, settings.strategy, settings.model_path, normalize, settings.unsafe_model, settings.batch_size, tuple(options.items()),
                settings.uncertainty)
        )
        self._started[job] = time.perf_counter()
        session.begin_run(job, settings)
        session.set_activity(Activity("starting…", 0, 0, busy=True))
        session.say(f"Scoring {session.volume.source.name} with {settings.run_title()}…")
        return job

    def cancel(self, announce: bool = True) -> int:
        """Stop the current job (its scores are dropped; a finished run it would replace stays)."""
        job = self.inference.cancel()
        if not job:
            return 0
        run = self.session.run_for_job(job)
        if run is not None:
            self.session.remove_run(run)
        self.session.set_activity(Activity("cancelled"))
        if announce:
            self.session.say("Cancelled")
        self.sigCancelled.emit(job)
        return job

    def check_model(self, path: str, unsafe: bool) -> None:
        """Load a model file on the worker now, so a bad file is reported at once."""
        self._model_request = self.inference.load_model(path, self.session.settings.normalize, unsafe)

    def shutdown(self) -> None:
        self.inference.shutdown()

    # -- from the worker ----------------------------------------------------------------------

    def _on_status(self, job: int, text: str) -> None:
        if self.inference.is_current(job):
            self.session.set_activity(Activity(text, 0, 0, busy=True))

    def _on_progress(self, job: int, done: int, total: int, indices, scores, spread=None) -> None:
        if not self.inference.is_current(job):
            return  # superseded or cancelled: its scores never reach the session
        run = self.session.run_for_job(job)
        if run is not None:
            self.session.add_scores(run, indices, scores, spread)
        self.session.set_activity(Activity(f"{done} / {total} batches", done, total, busy=True))
        self.sigBatch.emit(job, done, total)

    def _on_map(self, job: int, indices, dense) -> None:
        if not self.inference.is_current(job):
            return
        run = self.session.run_for_job(job)
        if run is not None:
            self.session.add_map(run, indices, dense)

    def _on_finished(self, job: int, prediction) -> None:
        if not self.inference.is_current(job):
            return
        self.inference.current = 0
        run = self.session.run_for_job(job)
        waited = time.perf_counter() - self._started.pop(job, time.perf_counter())
        if run is not None:
            run.names = tuple(prediction.score_names)
            self.session.finish_run(run, prediction)
            self.session.say(run_finished_text(run, prediction, waited))
        self.session.set_activity(Activity("done", 1, 1))
        self.sigFinished.emit(job, prediction)

    def _on_failed(self, job: int, message: str) -> None:
        if not self.inference.is_current(job):
            return
        self.inference.current = 0
        run = self.session.run_for_job(job)
        if run is not None:
            self.session.remove_run(run)
        self.session.set_activity(Activity("failed"))
        self.session.say("Prediction failed")
        self.sigFailed.emit(message)

    def _on_model_loaded(self, request: int, description: str, outputs) -> None:
        if request == self._model_request and self.session.settings.model_path:
            self.session.say(f"Model ready — {description}")
            self.sigModelReady.emit(description, list(outputs))

    def _on_model_failed(self, request: int, message: str) -> None:
        if request == self._model_request:
            self.sigModelFailed.emit(f"{Path(self.session.settings.model_path or '').name}: {message}" if self.session.settings.model_path else message)
