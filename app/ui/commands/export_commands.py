"""The window's file commands for results: export every run as CSV, the plot as PNG, a
segmentation run's mask as NIfTI, import labels.  A mixin of `MainWindow`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import SlicewiseError
from app.outputs import OutputSet, command_inputs
from app.ui.commands.dialogs import CSV_FILTER, NIFTI_FILTER, PNG_FILTER
from app.ui.commands.exports import export_mask, export_plot, export_runs

if TYPE_CHECKING:
    from app.runs import Run

DICOM_FILTER = "DICOM (*.dcm);;All files (*)"


class ExportCommands:
    """Needs the window's ``session``, ``score_plot``, ``labels``, ``dialogs`` and ``_error``."""

    def import_labels_dialog(self) -> None:
        if path := self.dialogs.open_file("labels", "Import labels", CSV_FILTER):
            self.labels.import_file(path)

    def export_predictions(self, path: str | Path) -> tuple[Path, Path]:
        """Write every finished run as ``slicewise predict --out`` does (one column per run)."""
        written = export_runs(self.session, path, self.labels.store)
        self.labels.use_folder(Path(written[0]).parent)  # the labels go there too if the volume's folder is read-only
        return written

    def export_predictions_dialog(self) -> None:
        runs = self.session.finished_runs()
        if self.session.volume is None or not runs:
            self._error("Nothing to export", "Run a prediction first: Export writes every finished run.")
            return
        self._export_as("Export predictions", "_scores.csv", CSV_FILTER, self.export_predictions, lambda written: f"Wrote {written[0]} and {written[1].name} ({len(runs)} runs)")

    def _export_as(self, title: str, ending: str, file_filter: str, write: Callable[[str], Any], said: Callable[[Any], str], fallback: str = "volume") -> None:
        """Ask where (``<volume's name><ending>`` offered), ``write`` there and say ``said(written)``
        in the status bar; a refusal in a dialog titled "Cannot <title>"."""
        volume = self.session.volume
        stem = (volume.source.name.split(".")[0] if volume else "") or fallback
        if path := self.dialogs.save_file("export", title, f"{stem}{ending}", file_filter):
            try:
                written = write(path)
            except SlicewiseError as exc:
                self._error(f"Cannot {title[0].lower()}{title[1:]}", str(exc))
            else:
                self.statusBar().showMessage(said(written))

    def export_plot(self, path: str | Path) -> Path:
        return export_plot(self.session, self.score_plot, path)

    def export_plot_dialog(self) -> None:
        self._export_as("Export plot", "_scores.png", PNG_FILTER, self.export_plot, lambda written: f"Wrote {written}", fallback="scores")

    def seg_run(self):
        """The newest finished run with a per-pixel map (`Prediction.dense`) when the open volume
        was read from DICOM: what File › Export DICOM SEG writes; else None."""
        volume = self.session.volume
        runs = [run for run in self.session.finished_runs() if getattr(run.prediction, "dense", None) is not None]
        if volume is None or not runs:
            return None
        from app.dicom_export.sources import is_dicom_source

        return runs[-1] if is_dicom_source(volume.source) else None

    def export_seg(self, path: str | Path) -> Path:
        """The newest segmentation run as a DICOM SEG (binary, at the map's threshold), as ``--seg-out`` writes it."""
        from app.dicom_export.seg import write_seg

        run = self.seg_run()
        if run is None:
            raise SlicewiseError("a DICOM SEG needs a finished segmentation run on a volume read from DICOM")
        prediction, volume = run.prediction, self.session.volume
        with OutputSet(command_inputs([volume.source])) as outs:  # never over the series it references; all or nothing
            return outs.write_with(path, lambda tmp: write_seg(tmp, volume, prediction.dense, prediction.model_name, prediction.model_sha256))

    def export_seg_dialog(self) -> None:
        self._export_as("Export DICOM SEG", "_seg.dcm", DICOM_FILTER, self.export_seg, lambda written: f"Wrote {written} (DICOM SEG)")

    def dense_run(self) -> Run | None:
        """The finished segmentation run File › Export mask writes: the one the overlay shows,
        else the newest finished run with a map."""
        return self.session.finished_dense_run()

    def export_mask(self, path: str | Path, probabilities: bool = False) -> Path:
        run = self.dense_run()
        if run is None:
            raise SlicewiseError("nothing to export yet: run a segmentation model first")
        return export_mask(self.session, run, path, probabilities)

    def export_mask_dialog(self) -> None:
        run = self.dense_run()
        if self.session.volume is None or run is None:
            self._error("Nothing to export", "Run a segmentation model first: Export mask writes its map.")
            return
        self._export_as("Export mask", "_mask.nii.gz", NIFTI_FILTER, self.export_mask, lambda written: f"Wrote {written} ({run.title})")
