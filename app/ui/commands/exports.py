"""What File › Export writes: every finished run in one CSV, the plot under a title, and a
segmentation run's mask in the source file's voxel order."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter

from app.errors import SlicewiseError
from app.outputs import OutputSet, command_inputs

if TYPE_CHECKING:
    from app.runs import Run
    from app.session import Session
    from app.ui.views.score_plot import ScorePlot


def export_runs(session: Session, path: str | Path, labels=None) -> tuple[Path, Path]:
    """Every finished run of the open volume in one CSV (a column per run), as ``slicewise
    predict`` with repeated ``--strategy`` writes it; with labels (an `app.review.labels.SliceLabels`),
    a ``label`` column and, in the sidecar, who labelled when and each column's agreement."""
    from app.export import score_columns, write_predictions

    runs = session.finished_runs()
    if session.volume is None or not runs:
        raise SlicewiseError("nothing to export yet: run a prediction first")
    predictions = [run.prediction for run in runs]
    review = None
    if labels is not None and len(labels):
        from app.review.agreement import agreement
        from app.review.headless import labels_section

        agreements = {
            column: agreement(prediction.scores[:, k], labels.labels, session.threshold)
            for prediction, columns in zip(predictions, score_columns(predictions))
            for k, column in enumerate(columns)
        }
        review = labels_section(labels.entries, labels.path, session.threshold, agreements)
    from app.outputs import OutputSet, command_inputs

    sources = command_inputs([session.volume.source], getattr(labels, "path", None), [p.model_source for p in predictions])
    with OutputSet(sources) as outs:  # both files or neither, never over the volume, its labels or a model
        return write_predictions(path, [(session.volume, predictions)], labels=session.labels or None, review=review, outs=outs)


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
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    png = QByteArray()
    buffer = QBuffer(png)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, path.suffix.lstrip(".").upper() or None):
        raise SlicewiseError(f"cannot write {path}: not a writable image path (use .png)")
    with OutputSet(command_inputs([session.volume.source] if session.volume is not None else [])) as outs:  # all of the PNG or nothing
        outs.add(path, bytes(png.data()))
    return path


def export_mask(session: Session, run: Run, path: str | Path, probabilities: bool = False) -> Path:
    """``run``'s map as ``slicewise predict --mask-out`` writes it (a uint8 label map, or float32
    probabilities, in the source file's voxel order with its affine), through the core's writer."""
    if session.volume is None or run.dense is None or not run.finished:
        raise SlicewiseError("nothing to export yet: run a segmentation model first")
    from app.segmentation.mask_export import write_mask

    with OutputSet(command_inputs([session.volume.source])) as outs:  # never over the open volume
        outs.write_with(path, lambda tmp: write_mask(tmp, session.volume, run.dense, probabilities=probabilities))
    return Path(path)
