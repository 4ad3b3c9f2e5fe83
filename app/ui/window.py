"""``MainWindow``: the slice view, scrubber and score plot, wired to the loader and the
inference worker.  Every slice change goes through ``set_slice``; every volume through
``_show_loaded``; every score through the worker's job-id-tagged signals.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QFileDialog, QInputDialog, QLabel, QMainWindow, QMessageBox, QProgressBar, QSplitter, QVBoxLayout, QWidget,
)

from app import __version__
from app.errors import SlicewiseError
from app.ui.actions import SHORTCUT_HELP, STRATEGY_TITLES, Toolbar, build_menus, install_shortcuts
from app.ui.loader import Loaded, LoadRequest, VolumeLoader
from app.ui.score_plot import Run, ScorePlot
from app.ui.scrubber import Scrubber
from app.ui.settings import RecentFiles
from app.ui.slice_view import SliceView
from app.ui.worker import InferenceService

if TYPE_CHECKING:  # torch (under app.volume) is imported only once a volume is opened: the window shows first
    from app.volume import Volume

VOLUME_FILTER = (
    "Volumes (*.nii *.nii.gz *.mgh *.mgz *.mnc *.img *.hdr *.dcm *.ima *.npy *.npz *.pt *.pth);;"
    "NIfTI (*.nii *.nii.gz);;DICOM file (*.dcm *.ima);;NumPy / torch (*.npy *.npz *.pt *.pth);;All files (*)"
)
MODEL_FILTER = "Keras models (*.keras *.h5 *.hdf5);;All files (*)"


class MainWindow(QMainWindow):
    sigVolumeShown = Signal(object)  # Volume
    sigPredictionFinished = Signal(int, object)  # job id, Prediction (after it is in the plot)
    sigPredictionCancelled = Signal(int)  # job id (the window stopped listening to it)
    sigCancelConfirmed = Signal(int)  # job id: the worker has stopped it (between two batches)
    sigBatchPlotted = Signal(int, int, int)  # job id, batches done, batches in all
    sigError = Signal(str, str)  # title, message (also shown in a dialog when interactive)

    def __init__(self, settings: QSettings | None = None, remember_recent: bool = True, interactive: bool = True,
                 threads: int | None = None):
        super().__init__()
        self.interactive = interactive  # False for `slicewise render`: errors raise instead of dialogs
        self.remember_recent = remember_recent
        self.recent = RecentFiles(settings)
        self.volume: Volume | None = None
        self.latest: tuple[Volume, object] | None = None  # newest finished (volume, Prediction): what Export writes
        self.model_path: str | None = None
        self.unsafe_model = False
        self.batch_size = 32
        self._runs: dict[int, Run] = {}  # job id → its curves in the plot
        self._model_request = 0
        self._focus_hw: tuple[int, int] | None = None  # last voxel under the mouse (row, col)

        self.setWindowTitle("Slicewise")
        self.setAcceptDrops(True)
        self.resize(1280, 860)
        self.setMinimumSize(480, 360)

        self.slice_view = SliceView()
        self.scrubber = Scrubber()
        self.score_plot = ScorePlot()
        top = QWidget()
        column = QVBoxLayout(top)
        column.setContentsMargins(4, 4, 4, 0)
        column.setSpacing(2)
        column.addWidget(self.slice_view, 1)
        column.addWidget(self.scrubber)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(top)
        self.splitter.addWidget(self.score_plot)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([590, 270])
        self.splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)

        self.toolbar = Toolbar(self)
        self.recent_menu = None
        self.actions_by_name: dict[str, QAction] = build_menus(self)
        self.shortcuts = install_shortcuts(self)

        self.hover_label = QLabel("")
        self.hover_label.setMinimumWidth(200)
        self.hover_label.setToolTip("voxel index (d, h, w) · world position (x, y, z) RAS mm · value under the mouse")
        self.slice_label = QLabel("")
        self.slice_label.setToolTip("current slice · its position along the depth axis (RAS mm)")
        for label in (self.hover_label, self.slice_label):
            label.setStyleSheet("QLabel { border-left: 1px solid #999; padding: 0 6px; }")
        self.load_busy = QProgressBar()
        self.load_busy.setRange(0, 0)
        self.load_busy.setMaximumWidth(120)
        self.load_busy.setFormat("loading…")
        self.load_busy.hide()
        status = self.statusBar()
        status.addPermanentWidget(self.load_busy)
        status.addPermanentWidget(self.hover_label)
        status.addPermanentWidget(self.slice_label)

        self.loader = VolumeLoader(self)
        self.loader.sigLoaded.connect(self._show_loaded)
        self.loader.sigFailed.connect(self._on_load_failed)
        self.loader.sigBusy.connect(self._on_load_busy)

        self.inference = InferenceService(self, threads)
        worker = self.inference.worker
        worker.sigStatus.connect(self._on_job_status)
        worker.sigProgress.connect(self._on_job_progress)
        worker.sigFinished.connect(self._on_job_finished)
        worker.sigFailed.connect(self._on_job_failed)
        worker.sigCancelled.connect(self.sigCancelConfirmed)
        worker.sigModelLoaded.connect(self._on_model_loaded)
        worker.sigModelFailed.connect(self._on_model_failed)

        self.scrubber.sigIndexChanged.connect(self.set_slice)
        self.score_plot.sigSliceRequested.connect(self.set_slice)
        self.slice_view.sigWheelSlices.connect(self.step_slice)
        self.slice_view.sigHover.connect(self._on_hover)
        self.scrubber.axis.currentTextChanged.connect(self._on_axis_changed)
        self.scrubber.volume_index.valueChanged.connect(self._on_volume_index_changed)
        self._update_enabled()
        status.showMessage("File › Open… or drop a volume here")

    # -- opening ------------------------------------------------------------------------------

    def open_path(self, path: str | Path, axis: str | None = None, volume_index: int = 0) -> int:
        """Load a file or DICOM folder in the background; returns the request id."""
        axis = axis or self.scrubber.axis.currentText()
        self.statusBar().showMessage(f"Opening {Path(path).name}…")
        return self.loader.request(path, axis, volume_index, remember=self.remember_recent)

    def load_now(self, path: str | Path, axis: str = "axial", volume_index: int = 0) -> Volume:
        """Load synchronously (``slicewise render``); raises SlicewiseError; same display path."""
        loaded = self.loader.load_now(path, axis, volume_index)
        self._show_loaded(loaded)
        return loaded.volume

    def open_file_dialog(self) -> None:
        start = str(self.volume.source.parent) if self.volume else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open volume", start, VOLUME_FILTER)
        if path:
            self.open_path(path)

    def open_dicom_dialog(self) -> None:
        start = str(self.volume.source.parent) if self.volume else ""
        path = QFileDialog.getExistingDirectory(self, "Open DICOM folder", start)
        if path:
            self.open_path(path)

    def fill_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        paths = self.recent.paths()
        for i, path in enumerate(paths):
            action = menu.addAction(f"&{(i + 1) % 10}  {Path(path).name}   —   {Path(path).parent}")
            action.setToolTip(path)
            action.triggered.connect(lambda checked=False, p=path: self.open_path(p))
        if paths:
            menu.addSeparator()
            menu.addAction("Clear list", self.recent.clear)
        else:
            menu.addAction("(no recent files)").setEnabled(False)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if not paths:
            return
        event.acceptProposedAction()
        if len(paths) > 1 and len({p.parent for p in paths}) == 1 and all(p.is_file() for p in paths):
            self.open_path(paths[0].parent)  # several files of one folder: a DICOM series
        else:
            self.open_path(paths[0])

    def _show_loaded(self, loaded: Loaded) -> None:
        """Install a newly loaded volume: cancels scoring of the old one and clears the plot."""
        volume, request = loaded.volume, loaded.request
        self._cancel_current(status=False)
        previous = self.volume
        self.volume, self.latest = volume, None
        if request.focus_mm is not None:
            index = self._slice_near(volume, np.asarray(request.focus_mm))
        elif previous is not None and previous.source == volume.source and previous.axis == volume.axis:
            index = min(self.slice_view.index, volume.depth - 1)
        else:
            index = volume.depth // 2
        self._focus_hw = None
        self.slice_view.set_volume(volume, loaded.levels, loaded.value_range, index, loaded.histogram)
        self.scrubber.set_depth(volume.depth)
        self.score_plot.set_volume(volume.depth, volume.positions_mm)
        self.scrubber.set_volume_choice(volume.axis, volume.volume_index, volume.n_volumes)
        self.setWindowTitle(f"Slicewise — {volume.source.name}")
        if request.remember and self.remember_recent:
            self.recent.add(volume.source)
        self.set_slice(index)
        d, h, w, c = volume.shape
        spacing = " × ".join(f"{s:g}" for s in volume.spacing)
        extra = f", volume {volume.volume_index + 1} of {volume.n_volumes}" if volume.n_volumes > 1 else ""
        extra += f", showing channel 0 of {c}" if c > 1 else ""
        notes = ("  ·  " + "; ".join(volume.notes)) if volume.notes else ""
        self.statusBar().showMessage(
            f"{volume.source.name}: {d} {volume.axis} slices of {h} × {w}, {spacing} mm, "
            f"orientation {''.join(volume.orientation)}{extra}{notes}"
        )
        self._update_enabled()
        self.sigVolumeShown.emit(volume)

    def _on_load_failed(self, request: LoadRequest, message: str) -> None:
        if self.volume is not None:  # keep what is open; put the controls back to it
            self.scrubber.set_volume_choice(self.volume.axis, self.volume.volume_index, self.volume.n_volumes)
        self.statusBar().showMessage(f"Could not open {request.path.name}")
        self._error("Cannot open volume", f"Could not open {request.path}.\n\n{message}")

    def _on_load_busy(self, busy: bool) -> None:
        self.load_busy.setVisible(busy)

    def _on_axis_changed(self, axis: str) -> None:
        if self.volume is not None and axis != self.volume.axis:
            self.loader.request(self.volume.source, axis, self.volume.volume_index, self._focus_mm(), remember=False)

    def _on_volume_index_changed(self, index: int) -> None:
        if self.volume is not None and index != self.volume.volume_index:
            self.loader.request(self.volume.source, self.volume.axis, index, self._focus_mm(), remember=False)

    def _focus_mm(self) -> tuple[float, float, float] | None:
        """World point to keep in view when re-slicing: the last voxel pointed at, else the slice centre."""
        if self.volume is None:
            return None
        _, height, width, _ = self.volume.shape
        row, col = self._focus_hw or ((height - 1) / 2, (width - 1) / 2)
        return tuple(float(v) for v in self.volume.world(self.slice_view.index, row, col))

    @staticmethod
    def _slice_near(volume: Volume, point_mm: np.ndarray) -> int:
        ras_axis = int(np.argmax(np.abs(volume.affine[:3, 0])))
        return int(np.argmin(np.abs(volume.positions_mm - point_mm[ras_axis])))

    # -- scrubbing ----------------------------------------------------------------------------

    def set_slice(self, index: int) -> None:
        """The one place a slice change happens: image, scrubber, plot cursor and status."""
        if self.volume is None:
            return
        index = max(0, min(int(index), self.volume.depth - 1))
        self.slice_view.show_slice(index)
        self.scrubber.set_index(index)
        self.score_plot.set_cursor(index)
        ras = "xyz"[int(np.argmax(np.abs(self.volume.affine[:3, 0])))]
        position = f"{ras} = {self.volume.positions_mm[index]:.1f} mm"
        self.scrubber.set_position_text(position)
        self.slice_label.setText(f"slice {index} / {self.volume.depth - 1}  ·  {position}")

    def current_slice(self) -> int:
        return self.scrubber.index()

    def step_slice(self, step: int) -> None:
        self.set_slice(self.current_slice() + step)

    def jump_above_threshold(self, step: int) -> None:
        found = self.score_plot.find_above(self.current_slice(), step)
        if found is None:
            where = "after" if step > 0 else "before"
            self.statusBar().showMessage(f"No slice {where} {self.current_slice()} scores above {self.score_plot.threshold:.2f}")
        else:
            self.set_slice(found)

    def reset_zoom(self) -> None:
        self.slice_view.view.autoRange(padding=0.02)

    def _on_hover(self, row: int, col: int, value: float) -> None:
        if row < 0 or self.volume is None:
            self.hover_label.setText("")
            return
        self._focus_hw = (row, col)
        d = self.slice_view.index
        x, y, z = self.volume.world(d, row, col)
        self.hover_label.setText(f"voxel ({d}, {row}, {col})  ·  ({x:.1f}, {y:.1f}, {z:.1f}) mm  ·  value {value:.6g}")

    # -- predicting ---------------------------------------------------------------------------

    def strategy(self) -> str:
        return self.toolbar.strategy.currentData()

    def set_strategy(self, name: str) -> None:
        self.toolbar.strategy.setCurrentIndex(self.toolbar.strategy.findData(name))

    def normalize(self) -> str | None:
        """The normalisation spec, checked (None: the model's default)."""
        text = self.toolbar.normalize.currentText().strip()
        if not text or text == "model default":
            return None
        from app.preprocessing import parse_spec

        return parse_spec(text)

    def set_normalize(self, spec: str | None) -> None:
        self.toolbar.normalize.setCurrentText(spec or "model default")

    def run_prediction(self) -> int | None:
        """Score the open volume with the selected strategy and model; returns the job id."""
        if self.volume is None:
            self.statusBar().showMessage("Open a volume first")
            return None
        try:
            normalize = self.normalize()
        except SlicewiseError as exc:
            self._error("Cannot run", str(exc))
            return None
        self._cancel_current(status=False)
        strategy = self.strategy()
        job = self.inference.submit(self.volume, strategy, self.model_path, normalize, self.unsafe_model, self.batch_size)
        title = strategy
        if self.model_path:
            title += f" · {Path(self.model_path).name}"
        if normalize:
            title += f" · {normalize}"
        self._runs[job] = self.score_plot.begin_run((strategy, self.model_path, normalize), title, strategy)
        progress = self.toolbar.progress
        progress.setRange(0, 0)
        progress.setFormat("starting…")
        self.statusBar().showMessage(f"Scoring {self.volume.source.name} with {STRATEGY_TITLES[strategy]}…")
        self._update_enabled()
        return job

    def cancel_prediction(self) -> None:
        self._cancel_current(status=True)

    def _cancel_current(self, status: bool) -> None:
        job = self.inference.cancel()
        if not job:
            return
        run = self._runs.pop(job, None)
        if run is not None:
            self.score_plot.drop_run(run)
        self._reset_progress("cancelled")
        if status:
            self.statusBar().showMessage("Cancelled")
        self._update_enabled()
        self.sigPredictionCancelled.emit(job)

    def _on_job_status(self, job: int, text: str) -> None:
        if self.inference.is_current(job):
            self.toolbar.progress.setFormat(text)

    def _on_job_progress(self, job: int, done: int, total: int, indices, scores) -> None:
        if not self.inference.is_current(job):
            return  # superseded or cancelled: its scores never reach the plot
        progress = self.toolbar.progress
        progress.setRange(0, total)
        progress.setValue(done)
        progress.setFormat("%v / %m batches")
        self.score_plot.add_batch(self._runs[job], indices, scores)
        self.sigBatchPlotted.emit(job, done, total)

    def _on_job_finished(self, job: int, prediction) -> None:
        if not self.inference.is_current(job):
            return
        self.inference.current = 0
        run = self._runs.pop(job)
        self.score_plot.finish_run(run, prediction)
        self.latest = (self.volume, prediction)
        self._reset_progress("done")
        self.toolbar.progress.setRange(0, 1)
        self.toolbar.progress.setValue(1)
        total = prediction.timings.get("total_s", float("nan"))
        message = f"{run.title}: {self.volume.depth} slices in {total:.2f} s on {prediction.device}"
        if prediction.volume_score is not None:
            message += f"  ·  volume score {', '.join(f'{v:.3f}' for v in np.ravel(prediction.volume_score))}"
        if prediction.nonfinite_slices:
            message += f"  ·  {len(prediction.nonfinite_slices)} slices with NaN/Inf voxels left unscored"
        self.statusBar().showMessage(message)
        self._update_enabled()
        self.sigPredictionFinished.emit(job, prediction)

    def _on_job_failed(self, job: int, message: str) -> None:
        if not self.inference.is_current(job):
            return
        self.inference.current = 0
        run = self._runs.pop(job, None)
        if run is not None:
            self.score_plot.drop_run(run)
        self._reset_progress("failed")
        self.statusBar().showMessage("Prediction failed")
        self._update_enabled()
        self._error("Prediction failed", message)

    def _reset_progress(self, text: str) -> None:
        self.toolbar.progress.setRange(0, 1)
        self.toolbar.progress.setValue(0)
        self.toolbar.progress.setFormat(text)

    # -- model --------------------------------------------------------------------------------

    def set_model(self, path: str | Path | None, unsafe: bool = False, check: bool = True) -> None:
        """Use a Keras model file (None: the built-in one); ``check`` loads it on the worker now."""
        self.model_path = str(path) if path else None
        self.unsafe_model = bool(path) and unsafe
        self.actions_by_name["builtin"].setChecked(path is None)
        if path is None:
            self.toolbar.model.setText("built-in model")
            self.toolbar.model.setToolTip("Model › Load Keras model… to use your own")
            return
        name = Path(path).name + ("  (safe mode off)" if unsafe else "")
        self.toolbar.model.setText(name)
        self.toolbar.model.setToolTip(str(path))
        if check:
            try:
                normalize = self.normalize()
            except SlicewiseError:
                normalize = None
            self._model_request = self.inference.load_model(str(path), normalize, self.unsafe_model)
            self.toolbar.model.setText(f"loading {name}…")
            self.statusBar().showMessage(f"Loading {Path(path).name} on the worker thread…")

    def use_builtin_model(self) -> None:
        self.set_model(None)

    def load_model_dialog(self) -> None:
        self._model_dialog(unsafe=False)

    def load_unsafe_model_dialog(self) -> None:
        answer = QMessageBox.warning(
            self, "Safe mode off",
            "Loading a model with Keras safe mode off can run code stored in the file.\n\nOnly do this for a file you trust. Continue?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self._model_dialog(unsafe=True)

    def _model_dialog(self, unsafe: bool) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load Keras model", str(Path(self.model_path).parent) if self.model_path else "", MODEL_FILTER)
        if path:
            self.set_model(path, unsafe)
        else:
            self.actions_by_name["builtin"].setChecked(self.model_path is None)

    def _on_model_loaded(self, request: int, description: str) -> None:
        if request == self._model_request and self.model_path:
            self.toolbar.model.setText(Path(self.model_path).name + ("  (safe mode off)" if self.unsafe_model else ""))
            self.statusBar().showMessage(f"Model ready — {description}")

    def _on_model_failed(self, request: int, message: str) -> None:
        if request != self._model_request:
            return
        self.set_model(None)
        self._error("Cannot load model", f"{message}\n\nUsing the built-in model.")

    def batch_size_dialog(self) -> None:
        value, ok = QInputDialog.getInt(self, "Batch size", "Slices (or windows) per model call:", self.batch_size, 1, 4096)
        if ok:
            self.batch_size = value

    # -- plot and export ----------------------------------------------------------------------

    def set_plot_x_mm(self, on: bool) -> None:
        self.score_plot.set_x_mm(on)

    def clear_plot(self) -> None:
        running = set(self._runs.values())
        for run in list(self.score_plot.runs):
            if run not in running:
                self.score_plot.drop_run(run)
        self.score_plot.hint.setVisible(not self.score_plot.runs)

    def export_predictions(self, path: str | Path) -> tuple[Path, Path]:
        """Write the newest finished run exactly as ``slicewise predict --out`` does."""
        if self.latest is None:
            raise SlicewiseError("nothing to export yet: run a prediction first")
        from app.export import write_predictions

        return write_predictions(path, [self.latest])

    def export_predictions_dialog(self) -> None:
        if self.latest is None:
            self._error("Nothing to export", "Run a prediction first: Export writes the newest finished run.")
            return
        volume, prediction = self.latest
        stem = volume.source.name.split(".")[0] or "volume"
        default = str(volume.source.parent / f"{stem}_{prediction.strategy}.csv")
        path, _ = QFileDialog.getSaveFileName(self, "Export predictions", default, "CSV (*.csv);;All files (*)")
        if not path:
            return
        try:
            table, sidecar = self.export_predictions(path)
        except SlicewiseError as exc:
            self._error("Cannot export predictions", str(exc))
        else:
            self.statusBar().showMessage(f"Wrote {table} and {sidecar.name}")

    def export_plot(self, path: str | Path) -> Path:
        path = Path(path)
        if not self.score_plot.grab().save(str(path)):
            raise SlicewiseError(f"cannot write {path}: not a writable image path (use .png)")
        return path

    def export_plot_dialog(self) -> None:
        default = str(self.volume.source.parent / f"{self.volume.source.name.split('.')[0]}_scores.png") if self.volume else "scores.png"
        path, _ = QFileDialog.getSaveFileName(self, "Export plot", default, "PNG image (*.png);;All files (*)")
        if not path:
            return
        try:
            self.export_plot(path)
        except SlicewiseError as exc:
            self._error("Cannot export plot", str(exc))
        else:
            self.statusBar().showMessage(f"Wrote {path}")

    # -- misc ---------------------------------------------------------------------------------

    def show_shortcuts(self) -> None:
        QMessageBox.information(self, "Keyboard and mouse", SHORTCUT_HELP)

    def show_about(self) -> None:
        QMessageBox.about(self, "About Slicewise", f"<b>Slicewise {__version__}</b><p>A volume viewer with per-slice Keras predictions.</p>")

    def _update_enabled(self) -> None:
        has_volume = self.volume is not None
        running = bool(self.inference.current)
        self.toolbar.run.setEnabled(has_volume)
        self.toolbar.cancel.setEnabled(running)
        self.actions_by_name["run"].setEnabled(has_volume)
        self.actions_by_name["cancel"].setEnabled(running)
        self.actions_by_name["export_predictions"].setEnabled(self.latest is not None)
        self.actions_by_name["export_plot"].setEnabled(has_volume)

    def _error(self, title: str, message: str) -> None:
        self.sigError.emit(title, message)
        if self.interactive:
            QMessageBox.critical(self, title, message)

    def closeEvent(self, event) -> None:
        self.inference.shutdown()
        self.loader.shutdown()
        super().closeEvent(event)
