"""The review side of the window: slice labels kept on disk as they are made, saliency asked of
the worker for the slice shown, and the exports (every run in one CSV; the plot with a title)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter

from app.errors import SlicewiseError
from app.session import SaliencyMap
from app.ui.worker import SaliencyJob

if TYPE_CHECKING:
    from app.session import Session
    from app.ui.prediction import PredictionController
    from app.ui.score_plot import ScorePlot

DEMO_LABELS = Path(__file__).resolve().parents[2] / "resources" / "demo" / "labels.csv"


class LabelKeeper:
    """Loads a volume's labels when it opens (the bundled demo's ground truth the first time),
    and writes every label the reader sets, atomically, before the next key press is handled."""

    def __init__(self, session: Session, window):
        self.session, self.window = session, window
        self.store = None  # app.labels.SliceLabels of the open volume
        session.events.volume.connect(self._on_volume)
        session.events.labels.connect(self._on_labels)

    def _on_volume(self, volume) -> None:
        from app.labels import SliceLabels

        self.store = None if volume is None else SliceLabels.for_volume(volume)
        if self.store is not None and not len(self.store) and _is_demo(volume) and DEMO_LABELS.is_file():
            try:
                self.store.import_csv(DEMO_LABELS)
            except SlicewiseError:
                pass  # a demo re-sliced along another axis: its labels are per axial slice
        self.session.set_labels(self.store.labels if self.store is not None else {})

    def _on_labels(self, labels: dict[int, str]) -> None:
        store = self.store
        if store is None or labels == store.labels:
            return
        changes = {i: labels.get(i) for i in set(store.labels) | set(labels)}
        try:
            store.update(changes)
        except SlicewiseError as exc:
            self.session.set_labels(store.labels)  # show what is on disk
            self.window._error("Cannot save labels", str(exc))
        else:
            if store.path is not None:
                self.session.say(f"{len(store)} labels saved to {store.path}")

    def import_file(self, path: str | Path) -> None:
        if self.store is None:
            return
        try:
            count = self.store.import_csv(path)
        except SlicewiseError as exc:
            self.window._error("Cannot import labels", str(exc))
            return
        self.session.set_labels(self.store.labels)
        self.session.say(f"Imported {count} labels from {Path(path).name}")

    def use_folder(self, folder: Path) -> None:
        if self.store is not None:
            self.store.use_folder(folder)


def _is_demo(volume) -> bool:
    try:
        return Path(volume.source).resolve() == (DEMO_LABELS.parent / "phantom.nii.gz").resolve() and volume.axis == "axial"
    except OSError:
        return False


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
        wanted = (key, session.index, id(session.volume))
        if wanted == self._asked:
            return
        self._asked = wanted
        output = 0
        self.predictions.inference.request_saliency(
            SaliencyJob(0, key, session.volume, session.index, key.strategy, key.model, key.normalize, session.settings.unsafe_model, output)
        )

    def _on_map(self, request: int, key, index: int, values, method: str) -> None:
        if self.session.volume is not None and values.shape == tuple(self.session.volume.shape[1:3]):
            self._asked = None
            self.session.store_saliency(key, index, SaliencyMap(values, method))

    def _on_failed(self, request: int, message: str) -> None:
        self._asked = None
        self.failed = message
        self.session.say(f"Saliency unavailable: {message}")


def export_runs(session: Session, path: str | Path) -> tuple[Path, Path]:
    """Every finished run of the open volume in one CSV (a column per run), the labels beside them."""
    from app.export import write_predictions

    runs = session.finished_runs()
    if session.volume is None or not runs:
        raise SlicewiseError("nothing to export yet: run a prediction first")
    written = write_predictions(path, [(session.volume, run.prediction) for run in runs], labels=session.labels or None)
    return written


def export_plot(session: Session, plot: ScorePlot, path: str | Path, title_height: int = 28) -> Path:
    """The score plot as a PNG under a title naming the volume and its runs."""
    path = Path(path)
    picture = plot.grab().toImage()
    image = QImage(picture.width(), picture.height() + title_height, QImage.Format.Format_RGB32)
    image.fill(QColor("black"))
    painter = QPainter(image)
    painter.drawImage(0, title_height, picture)
    painter.setPen(QColor("#e0e0e0"))
    name = session.volume.source.name if session.volume is not None else "no volume"
    runs = ", ".join(run.title for run in session.finished_runs()) or "no runs"
    painter.drawText(QRectF(8, 0, image.width() - 16, title_height), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, f"{name}  —  {runs}")
    painter.end()
    if not image.save(str(path)):
        raise SlicewiseError(f"cannot write {path}: not a writable image path (use .png)")
    return path
