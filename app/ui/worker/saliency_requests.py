"""`SaliencyRequests`: asks the inference worker for the saliency map of the slice shown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.session import SaliencyMap
from app.ui.worker.inference_thread import SaliencyJob

if TYPE_CHECKING:
    from app.session import Session
    from app.ui.worker.prediction import PredictionController


class SaliencyRequests:
    """While saliency is on, asks the worker for the map of the slice shown, once per slice and
    model; while the user scrubs only the newest request is computed."""

    def __init__(self, session: Session, predictions: PredictionController):
        self.session, self.predictions = session, predictions
        self.failed: str | None = None
        worker = predictions.inference.worker
        worker.sigSaliency.connect(self._on_map)
        worker.sigSaliencyFailed.connect(self._on_failed)
        for event in (session.events.slice, session.events.saliency, session.events.follow, session.events.volume):
            event.connect(self.request)
        self._asked: tuple | None = None

    def request(self, *_args) -> None:
        session = self.session
        if not session.saliency_on or session.volume is None or session.saliency_map(session.index) is not None:
            return
        key = session.saliency_key()
        wanted = (key, session.index, id(session.volume), session.saliency_method)
        if wanted == self._asked:
            return
        self._asked = wanted
        self.predictions.inference.request_saliency(
            SaliencyJob(0, key, session.volume, session.index, key.strategy, key.model, key.normalize, session.settings.unsafe_model,
                        dict(key.options).get("output"), key.channels, tuple((k, v) for k, v in key.options if k in ("slab", "pool")),
                        session.saliency_method)
        )

    def _on_map(self, request: int, key, index: int, values, method: str) -> None:
        if self.session.volume is not None and values.shape == tuple(self.session.volume.shape[1:3]):
            self._asked = None
            self.session.store_saliency(key, index, SaliencyMap(values, method))

    def _on_failed(self, request: int, message: str) -> None:
        self._asked = None
        self.failed = message
        self.session.say(f"Saliency unavailable: {message}")
