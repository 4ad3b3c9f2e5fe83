"""``MainWindow``: the layout of the views, scrubber, score plot and review panel, and the wiring
of menus, loader and prediction controller to one `Session`, which holds all the state."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import QFrame, QMainWindow, QMessageBox, QScrollArea, QSplitter, QVBoxLayout, QWidget

from app import __version__
from app.errors import SlicewiseError
from app.io.messages import SKIP_DAMAGED_HINT
from app.session import Session
from app.status import volume_summary
from app.ui.commands.actions import SHORTCUT_HELP, Toolbar, build_menus, install_shortcuts
from app.ui.commands.dialogs import VOLUME_FILTER, Dialogs
from app.ui.commands.export_commands import ExportCommands
from app.ui.commands.label_keeper import LabelKeeper
from app.ui.commands.model_commands import ModelCommands
from app.ui.commands.reference_commands import ReferenceCommands
from app.ui.commands.settings import RecentFiles, WindowSettings
from app.ui.panels.review_panel import ReviewPanel
from app.ui.panels.status_line import StatusLine
from app.ui.views.score_plot import ScorePlot
from app.ui.views.scrubber import Scrubber
from app.ui.views.views_panel import ViewsPanel
from app.ui.worker.prediction import PredictionController
from app.ui.worker.saliency_requests import SaliencyRequests
from app.ui.worker.volume_loader import Loaded, LoadRequest, VolumeLoader

if TYPE_CHECKING:  # torch (under app.volume) is imported only once a volume is opened: the window shows first
    from app.volume import Volume


class MainWindow(ModelCommands, ExportCommands, ReferenceCommands, QMainWindow):
    sigVolumeShown = Signal(object)  # Volume
    sigError = Signal(str, str)  # title, message (also shown in a dialog when interactive)

    def __init__(self, settings: QSettings | None = None, remember_recent: bool = True, interactive: bool = True,
                 threads: int | None = None, session: Session | None = None):
        super().__init__()
        self.session = session or Session()
        self.interactive = interactive  # False for `slicewise render`: errors are signalled, not shown
        self.skippable: LoadRequest | None = None  # a series refused for a damaged file (the dialog's retry)
        self.shown_skip_damaged = False  # the volume shown was loaded without its damaged files
        self.remember_recent = remember_recent
        self.qsettings = settings if settings is not None else QSettings("Slicewise", "Slicewise")
        self.recent = RecentFiles(self.qsettings)
        self.prefs = WindowSettings(self.qsettings)
        self.dialogs = Dialogs(self, self.qsettings)
        self.setWindowTitle("Slicewise")
        self.setAcceptDrops(True)
        self.resize(1280, 860)
        self.setMinimumSize(480, 360)

        session_ = self.session
        self.views = ViewsPanel(session_)
        self.scrubber = Scrubber(session_)
        self.score_plot = ScorePlot(session_)
        self.review = ReviewPanel(session_)
        top = QWidget()
        column = QVBoxLayout(top)
        column.setContentsMargins(4, 4, 4, 0)
        column.setSpacing(2)
        column.addWidget(self.views, 1)
        column.addWidget(self.scrubber)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.score_plot)
        panel = QScrollArea()  # the review figures scroll rather than squeeze when the plot is short
        panel.setWidget(self.review)
        panel.setWidgetResizable(True)
        panel.setFrameShape(QFrame.Shape.NoFrame)
        panel.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # never narrower than the panel's own minimum, or its lines would run under the right edge
        panel.setMinimumWidth(max(self.review.minimumWidth(), self.review.minimumSizeHint().width()) + panel.verticalScrollBar().sizeHint().width())
        bottom.addWidget(panel)
        bottom.setStretchFactor(0, 4)
        bottom.setStretchFactor(1, 1)
        bottom.setSizes([1000, 280])  # the plot's legend asks for its whole width: without this the panel got only its minimum
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(top)
        self.splitter.addWidget(bottom)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([590, 270])
        self.splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)

        self.predictions = PredictionController(session_, self, threads or self.prefs.worker_threads())
        self.toolbar = Toolbar(self, session_, self)
        self.actions_by_name = build_menus(self, self, session_)
        self.recent_menu = self.actions_by_name["recent"].menu()
        self.shortcuts = install_shortcuts(self, self, session_)
        status = self.statusBar()
        self.status_line = StatusLine(session_, status)

        self.loader = VolumeLoader(self)
        self.loader.sigLoaded.connect(self.show_loaded)
        self.loader.sigFailed.connect(self._on_load_failed)
        self.loader.sigBusy.connect(self.status_line.load_busy.setVisible)
        self.predictions.sigFailed.connect(lambda message: self._error("Prediction failed", message))
        self.predictions.sigModelReady.connect(self._on_model_ready)
        self.predictions.sigModelFailed.connect(self._on_model_failed)
        self.scrubber.sigAxisRequested.connect(lambda axis: self._reslice(axis=axis))
        self.scrubber.sigVolumeIndexRequested.connect(lambda index: self._reslice(volume_index=index))
        events = session_.events
        events.message.connect(lambda text: status.showMessage(text))
        for event in (events.activity, events.runs, events.volume, events.reference):
            event.connect(self._update_enabled)
        events.mask.connect(self._on_mask)
        for event in (events.layout, events.radiological):
            event.connect(lambda *_: self.prefs.save_view(session_))
        self.labels = LabelKeeper(session_, self)
        self.saliency = SaliencyRequests(session_, self.predictions)
        self.prefs.restore_view(session_, self.actions_by_name)
        if session_.volume is not None:  # a session filled headless (`slicewise render`)
            self._replay_session()
        else:
            status.showMessage("File › Open… or drop a volume here")
        self._update_enabled()

    # -- what the tests and `render` use ------------------------------------------------------------

    @property
    def volume(self) -> Volume | None:
        return self.session.volume

    @property
    def inference(self):
        return self.predictions.inference

    def current_slice(self) -> int:
        return self.session.index

    def set_slice(self, index: int) -> None:
        self.session.set_slice(index)

    def step_slice(self, step: int) -> None:
        self.session.step_slice(step)

    def set_strategy(self, name: str) -> None:
        self.session.update_settings(strategy=name)

    def set_normalize(self, spec: str | None) -> None:
        self.session.update_settings(normalize=spec or None)

    # -- opening ------------------------------------------------------------------------------

    def open_path(self, path: str | Path, axis: str | None = None, volume_index: int = 0, skip_damaged: bool = False) -> int:
        """Load a file or DICOM folder in the background; returns the request id."""
        name = Path(path).name
        self.views.show_placeholder(f"Loading {name}…")
        self.statusBar().showMessage(f"Opening {name}…")
        axis = axis or self.scrubber.axis.currentText()
        return self.loader.request(path, axis, volume_index, remember=self.remember_recent, skip_damaged=skip_damaged)

    def open_without_damaged(self) -> int | None:
        """Open again the series that failed on a damaged file, without its damaged files."""
        request, self.skippable = self.skippable, None
        return self.open_path(request.path, request.axis, request.volume_index, skip_damaged=True) if request else None

    def open_file_dialog(self) -> None:
        if path := self.dialogs.open_file("volume", "Open volume", VOLUME_FILTER):
            self.open_path(path)

    def open_dicom_dialog(self) -> None:
        if path := self.dialogs.open_folder("volume", "Open DICOM folder"):
            self.open_path(path)

    def fill_recent_menu(self) -> None:
        self.recent.fill_menu(self.recent_menu, self.open_path)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            several = len(paths) > 1 and len({p.parent for p in paths}) == 1 and all(p.is_file() for p in paths)
            self.open_path(paths[0].parent if several else paths[0])  # several files of one folder: a DICOM series

    def _reslice(self, axis: str | None = None, volume_index: int | None = None) -> None:
        volume = self.session.volume
        if volume is not None:
            axis = axis or self.scrubber.axis.currentText()
            index = volume.volume_index if volume_index is None else volume_index
            self.loader.request(volume.source, axis, index, self.session.focus_mm(), remember=False, skip_damaged=self.shown_skip_damaged)

    def show_loaded(self, loaded: Loaded) -> None:
        """Install a newly loaded volume (from the loader thread, or loaded in place by a benchmark):
        cancels scoring of the old one; its runs stay with it."""
        self.predictions.cancel(announce=False)
        self.session.show_volume(loaded.volume, loaded.display, loaded.request.focus_mm)
        self.shown_skip_damaged = loaded.request.skip_damaged  # a re-slice loads it the same way
        volume = loaded.volume
        self.setWindowTitle(f"Slicewise — {volume.source.name}")
        if loaded.request.remember and self.remember_recent:
            self.recent.add(volume.source)
        summary = volume_summary(volume)
        self.statusBar().showMessage(summary)
        self.statusBar().setToolTip(summary)
        self.sigVolumeShown.emit(volume)

    def _replay_session(self) -> None:
        """Draw a session that was filled before the window existed (its runs come back with it)."""
        session = self.session
        session.show_volume(session.volume, session.display)
        self.setWindowTitle(f"Slicewise — {session.volume.source.name}")
        self.statusBar().showMessage(volume_summary(session.volume))

    def _on_load_failed(self, request: LoadRequest, message: str) -> None:
        self.views.show_placeholder()
        self.scrubber._on_volume(self.session.volume)  # put the axis and 4D pickers back to what is open
        self.statusBar().showMessage(f"Could not open {request.path.name}")
        self.skippable = request if SKIP_DAMAGED_HINT in message and not request.skip_damaged else None
        self._error("Cannot open volume", f"Could not open {request.path}.\n\n{message}", retry=self.skippable is not None)

    def reset_zoom(self) -> None:
        self.views.reset_zoom()

    # -- scoring ------------------------------------------------------------------------------

    def run_prediction(self) -> int | None:
        """Score the open volume with the session's settings; returns the job id (None: refused)."""
        try:
            return self.predictions.run()
        except SlicewiseError as exc:
            self._error("Cannot run", str(exc))
            return None

    def cancel_prediction(self) -> None:
        self.predictions.cancel()

    # -- review, plot and export ----------------------------------------------------------------

    def label_slice(self, value: str | None) -> None:
        self.session.label_slice(value)

    def set_saliency_visible(self, on: bool) -> None:
        self.session.set_saliency(on=on)
        self.actions_by_name["saliency"].setChecked(on)

    def set_mask_visible(self, on: bool) -> None:
        self.session.set_mask(on=on)

    def _on_mask(self, mask) -> None:
        """Menu checks follow the session's mask overlay (key M, the mode menu, `render`)."""
        self.actions_by_name["mask"].setChecked(mask.on)
        if f"mask_{mask.mode}" in self.actions_by_name:
            self.actions_by_name[f"mask_{mask.mode}"].setChecked(True)

    def set_score_tint(self, on: bool) -> None:
        self.session.set_score_tint(on)

    def set_plot_x_mm(self, on: bool) -> None:
        self.session.set_plot_x_mm(on)

    def clear_plot(self) -> None:
        self.session.clear_runs()

    # -- misc ---------------------------------------------------------------------------------

    def show_shortcuts(self) -> None:
        QMessageBox.information(self, "Keyboard and mouse", SHORTCUT_HELP)

    def show_about(self) -> None:
        QMessageBox.about(self, "About Slicewise", f"<b>Slicewise {__version__}</b><p>A volume viewer with per-slice Keras predictions.</p>")

    def _update_enabled(self, *_args) -> None:
        has_volume = self.session.volume is not None
        running = self.predictions.running
        self.toolbar.run.setEnabled(has_volume)
        self.toolbar.cancel.setEnabled(running)
        for name, on in (("run", has_volume), ("cancel", running), ("export_predictions", bool(self.session.finished_runs())),
                         ("export_plot", has_volume), ("import_labels", has_volume), ("export_seg", self.seg_run() is not None),
                         ("export_mask", self.dense_run() is not None), ("load_reference", has_volume),
                         ("clear_reference", self.session.reference is not None)):
            self.actions_by_name[name].setEnabled(on)

    def _error(self, title: str, message: str, retry: bool = False) -> None:
        """Say what failed; with ``retry``, a Retry button opens the failed series without its damaged files."""
        self.sigError.emit(title, message)
        if not self.interactive:
            return
        if not retry:
            QMessageBox.critical(self, title, message)
            return
        buttons = QMessageBox.StandardButton.Retry | QMessageBox.StandardButton.Close
        text = f"{message}\n\nRetry: load the series without its damaged files."
        if QMessageBox.critical(self, title, text, buttons, QMessageBox.StandardButton.Close) == QMessageBox.StandardButton.Retry:
            self.open_without_damaged()

    def closeEvent(self, event) -> None:
        self.predictions.shutdown()
        self.loader.shutdown()
        self.shutdown_reference_loader()
        super().closeEvent(event)
