"""Menus, the toolbar and the window-wide keys.

Every action calls one method of the window's `Commands`, or of the session; nothing here holds
state.  The toolbar's controls show the session's scoring settings and write them.

Keys (window-wide, whichever child has focus — except while typing in a spin box):
←/→ one slice, PgUp/PgDn ten, Home/End first/last, N / Shift+→ next region above the threshold,
P / Shift+← previous one, 1 / 0 / ? label the slice, Backspace clears it, S saliency, M mask,
Alt+1…5 CT window presets, Ctrl+R or F5 run, Esc cancel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QShortcut
from PySide6.QtWidgets import QComboBox, QLabel, QMainWindow, QProgressBar, QPushButton, QSpinBox, QStyle, QToolBar, QWidget

from app.session import MASK_MODES
from app.strategy_catalog import CATALOG
from app.ui.views.throttle import Throttle

if TYPE_CHECKING:
    from app.session import Activity, ScoringSettings, Session

SHORTCUT_HELP = """<table cellspacing=4>
<tr><td><b>← / →</b></td><td>previous / next slice</td></tr>
<tr><td><b>PgUp / PgDn</b></td><td>ten slices back / forward</td></tr>
<tr><td><b>Home / End</b></td><td>first / last slice</td></tr>
<tr><td><b>Mouse wheel</b> on a view</td><td>scroll that view's slices (<b>Ctrl</b>+wheel: zoom)</td></tr>
<tr><td><b>Left click / drag</b> on a view</td><td>move the crosshair (in a side view: the depth slice too)</td></tr>
<tr><td><b>Right drag</b> on a view</td><td>window (left/right) and level (up/down)</td></tr>
<tr><td><b>Middle drag</b>, <b>double-click</b></td><td>pan, reset the zoom</td></tr>
<tr><td><b>N</b> or <b>Shift+→</b></td><td>next region scoring above the threshold</td></tr>
<tr><td><b>P</b> or <b>Shift+←</b></td><td>previous region scoring above the threshold</td></tr>
<tr><td><b>U</b></td><td>the slice whose score spreads most (a run with Model › Uncertainty)</td></tr>
<tr><td><b>1</b> / <b>0</b> / <b>?</b> / <b>Backspace</b></td><td>label the slice positive / negative / unsure / clear</td></tr>
<tr><td><b>S</b></td><td>show or hide the saliency map</td></tr>
<tr><td><b>M</b></td><td>show or hide a segmentation model's mask (View › Mask mode: filled, outline, heat)</td></tr>
<tr><td><b>Alt+1 … Alt+5</b></td><td>CT windows: brain, subdural, lung, bone, soft tissue</td></tr>
<tr><td>Click / drag on the plot</td><td>go to that slice (the yellow cursor); drag the red line to set the threshold</td></tr>
<tr><td><b>Ctrl+R</b> / <b>F5</b></td><td>run the selected strategy</td></tr>
<tr><td><b>Esc</b></td><td>cancel the run (a finished curve it would replace stays)</td></tr>
<tr><td><b>Ctrl+O</b></td><td>open a file (or drop a file or folder on the window)</td></tr>
<tr><td><b>Ctrl+→ / Ctrl+←</b></td><td><code>slicewise review</code>: next / previous case of the worklist</td></tr>
<tr><td><b>Ctrl+1 / 2 / 3</b></td><td><code>slicewise review</code>: accept / reject / second read the open case</td></tr>
</table>"""

STRATEGY_CHOICES = tuple((name, title, summary) for name, (title, summary) in CATALOG.items())
STRATEGY_TITLES = {name: title for name, title, _ in STRATEGY_CHOICES}
MODEL_DEFAULT = "model default"
PROGRESS_MS = 100  # batches: the progress bar updated at most this often
NORMALIZE_CHOICES = (MODEL_DEFAULT, "none", "minmax", "zscore", "window:40,400", "window:50,350", "window:400,1800")
POOL_CHOICES = ("mean (default)", "max", "attention")
MASK_MODE_TITLES = {"filled": "&Filled at the threshold", "outline": "&Outline", "heat": "&Heat map (probability)",
                    "uncertainty": "&Uncertainty (sd of the passes; Model › Uncertainty)"}
CHANNEL_CHOICES = (MODEL_DEFAULT, "replicate", "neighbors", "windows:40,80;80,200;600,2800")


class Commands(Protocol):
    """What the menus ask of the window."""

    def open_file_dialog(self) -> None: ...
    def open_dicom_dialog(self) -> None: ...
    def fill_recent_menu(self) -> None: ...
    def export_predictions_dialog(self) -> None: ...
    def export_plot_dialog(self) -> None: ...
    def import_labels_dialog(self) -> None: ...
    def close(self) -> bool: ...
    def set_plot_x_mm(self, on: bool) -> None: ...
    def clear_plot(self) -> None: ...
    def reset_zoom(self) -> None: ...
    def set_saliency_visible(self, on: bool) -> None: ...
    def set_mask_visible(self, on: bool) -> None: ...
    def export_mask_dialog(self) -> None: ...
    def load_reference_dialog(self) -> None: ...
    def clear_reference(self) -> None: ...
    def set_score_tint(self, on: bool) -> None: ...
    def run_prediction(self) -> int | None: ...
    def cancel_prediction(self) -> None: ...
    def use_builtin_model(self) -> None: ...
    def load_model_dialog(self) -> None: ...
    def load_unsafe_model_dialog(self) -> None: ...
    def batch_size_dialog(self) -> None: ...
    def choose_uncertainty(self, kind: str) -> None: ...
    def worker_threads_dialog(self) -> None: ...
    def show_shortcuts(self) -> None: ...
    def show_about(self) -> None: ...
    def label_slice(self, value: str | None) -> None: ...


class Toolbar:
    """The scoring controls: they show the session's settings and write them."""

    def __init__(self, window: QMainWindow, session: Session, commands: Commands):
        self.session = session
        bar = QToolBar("Main")
        bar.setObjectName("main-toolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        window.addToolBar(bar)
        self.bar = bar
        style = window.style()

        open_action = QAction(style.standardIcon(QStyle.StandardPixmap.SP_DialogOpenButton), "Open…", window)
        open_action.setToolTip("Open a volume (Ctrl+O); or drop a file or folder on the window")
        open_action.triggered.connect(commands.open_file_dialog)
        bar.addAction(open_action)
        bar.addSeparator()

        self.strategy = QComboBox()
        for name, title, summary in STRATEGY_CHOICES:
            self.strategy.addItem(title, name)
            self.strategy.setItemData(self.strategy.count() - 1, summary, Qt.ItemDataRole.ToolTipRole)
        self.strategy.setToolTip("How the model sees the volume")
        self.strategy.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.strategy.setMinimumContentsLength(20)
        self.strategy.activated.connect(lambda i: session.update_settings(strategy=self.strategy.itemData(i)))
        bar.addWidget(_label("Strategy"))
        bar.addWidget(self.strategy)
        self.slab = QSpinBox()
        self.slab.setRange(0, 999)
        self.slab.setSingleStep(2)
        self.slab.setSpecialValueText("default")
        self.slab.setToolTip("Embedding: the slices pooled around each slice for its score (the slab; default 3)")
        self.slab.setKeyboardTracking(False)
        self.slab.valueChanged.connect(lambda k: session.update_settings(slab=k or None))
        self.pool = QComboBox()
        self.pool.addItems(POOL_CHOICES)
        self.pool.setToolTip("Embedding: how a slab is pooled")
        self.pool.activated.connect(lambda i: session.update_settings(pool=None if i == 0 else self.pool.itemText(i)))
        self.slab_actions = [bar.addWidget(_label("Slab")), bar.addWidget(self.slab), bar.addWidget(self.pool)]
        self.model = QLabel("built-in model")
        self.model.setToolTip("Model › Load model… (Keras or ONNX) to use your own")
        self.model.setContentsMargins(8, 0, 8, 0)
        bar.addWidget(self.model)
        self.output = QComboBox()
        self.output.setToolTip("Which of the model's outputs to score")
        self.output.activated.connect(lambda i: session.update_settings(output=self.output.itemData(i)))
        self.output_actions = [bar.addWidget(_label("Output")), bar.addWidget(self.output)]
        self.normalize = _editable_combo(NORMALIZE_CHOICES, "Intensity normalisation: none | minmax | zscore | window:CENTER,WIDTH\n'model default': what the model expects")
        bar.addWidget(_label("Normalize"))
        bar.addWidget(self.normalize)
        self.channels = _editable_combo(
            CHANNEL_CHOICES,
            "How the model's channels are filled: replicate (the grey slice copied), neighbors (2.5D: slices d−k…d+k), "
            "windows:C,W;C,W;… (one CT window per channel)\n'model default': what the model expects",
        )
        bar.addWidget(_label("Channels"))
        bar.addWidget(self.channels)
        self.normalize.currentTextChanged.connect(lambda _: session.update_settings(normalize=self.text_setting(self.normalize)))
        self.channels.currentTextChanged.connect(lambda _: session.update_settings(channels=self.text_setting(self.channels)))

        self.run = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay), "Run")
        self.run.setToolTip("Score every slice (Ctrl+R)")
        self.run.clicked.connect(commands.run_prediction)
        self.cancel = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaStop), "Cancel")
        self.cancel.setToolTip("Stop scoring after the current batch (Esc); a finished curve it would replace stays")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(commands.cancel_prediction)
        bar.addWidget(self.run)
        bar.addWidget(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        self.progress.setMinimumWidth(120)
        self.progress.setMaximumWidth(260)
        spacer = QWidget()
        spacer.setFixedWidth(6)
        bar.addWidget(spacer)
        bar.addWidget(self.progress)
        self._on_settings(session.settings)
        session.events.settings.connect(self._on_settings)
        self._activity = session.activity
        self._progress_shown = Throttle(self.progress, PROGRESS_MS, self._show_activity)
        session.events.activity.connect(self._on_activity)

    def text_setting(self, combo: QComboBox) -> str | None:
        """The spec typed or chosen in a combo (None: the model's default)."""
        text = combo.currentText().strip()
        return None if not text or text == MODEL_DEFAULT else text

    def _show_outputs(self, names: tuple[str, ...]) -> None:
        """The loaded model's outputs; the picker shows only when there is a choice."""
        if tuple(self.output.itemData(i) for i in range(self.output.count())) != names:
            with QSignalBlocker(self.output):
                self.output.clear()
                for name in names:
                    self.output.addItem(name, name)
        for action in self.output_actions:
            action.setVisible(len(names) > 1)

    def _show_model(self, settings: ScoringSettings) -> None:
        if settings.model_path is None:
            self.model.setText("built-in model")
            self.model.setToolTip("Model › Load model… (Keras or ONNX) to use your own")
            return
        from pathlib import Path

        name = Path(settings.model_path).name + ("  (safe mode off)" if settings.unsafe_model else "")
        self.model.setText(f"loading {name}…" if settings.model_state == "loading" else name)
        self.model.setToolTip(settings.model_path)

    def _on_settings(self, settings: ScoringSettings) -> None:
        self._show_outputs(settings.model_outputs)  # before choosing the output among them
        with QSignalBlocker(self.strategy), QSignalBlocker(self.slab), QSignalBlocker(self.output), QSignalBlocker(self.pool):
            self.strategy.setCurrentIndex(self.strategy.findData(settings.strategy))
            self.slab.setValue(settings.slab or 0)
            self.pool.setCurrentIndex(max(self.pool.findText(settings.pool), 0) if settings.pool else 0)
            if settings.output is not None:
                self.output.setCurrentIndex(max(self.output.findData(settings.output), 0))
        for combo, value in ((self.normalize, settings.normalize), (self.channels, settings.channels)):
            if self.text_setting(combo) != value:
                with QSignalBlocker(combo):
                    combo.setCurrentText(value or MODEL_DEFAULT)
        for action in self.slab_actions:
            action.setVisible(settings.strategy == "embedding")
        self._show_model(settings)

    def _on_activity(self, activity: Activity) -> None:
        """While busy (phases, batches) the bar shows the latest at most every `PROGRESS_MS`
        (QProgressBar repaints at once on every change); the end of a job shows at once."""
        self._activity = activity
        if activity.busy:
            self._progress_shown.request()
        else:
            self._progress_shown.now()

    def _show_activity(self) -> None:
        activity = self._activity
        if activity.busy and activity.total == 0:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, max(activity.total, 1))
            self.progress.setValue(activity.done)
        self.progress.setFormat(activity.text)
        self.cancel.setEnabled(activity.busy)


def _label(text: str) -> QLabel:
    label = QLabel(text)
    label.setContentsMargins(8, 0, 4, 0)
    return label


def _editable_combo(choices: tuple[str, ...], tip: str) -> QComboBox:
    combo = QComboBox()
    combo.setEditable(True)
    combo.addItems(choices)
    combo.setToolTip(tip)
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(10)
    return combo


def build_menus(window: QMainWindow, commands: Commands, session: Session) -> dict[str, QAction]:
    """The menu bar; returns the actions the window enables, disables or checks."""
    from app.display import CT_PRESETS

    actions: dict[str, QAction] = {}
    bar = window.menuBar()

    def add(menu, key: str, text: str, slot: Callable, shortcut=None, checkable: bool = False) -> QAction:
        action = QAction(text, window)
        if shortcut is not None:
            action.setShortcuts(shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)])
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        menu.addAction(action)
        actions[key] = action
        return action

    file = bar.addMenu("&File")
    add(file, "open", "&Open…", commands.open_file_dialog, QKeySequence.StandardKey.Open)
    add(file, "open_dicom", "Open &DICOM folder…", commands.open_dicom_dialog, "Ctrl+Shift+O")
    recent = file.addMenu("Open &Recent")
    recent.aboutToShow.connect(commands.fill_recent_menu)
    actions["recent"] = recent.menuAction()
    file.addSeparator()
    add(file, "import_labels", "&Import labels…", commands.import_labels_dialog)
    add(file, "export_predictions", "&Export predictions…", commands.export_predictions_dialog, "Ctrl+E")
    add(file, "export_plot", "Export &plot…", commands.export_plot_dialog, "Ctrl+Shift+E")
    add(file, "export_seg", "Export DICOM &SEG…", commands.export_seg_dialog)
    add(file, "export_mask", "Export &mask…", commands.export_mask_dialog)
    add(file, "load_reference", "Load re&ference mask…", commands.load_reference_dialog)
    add(file, "clear_reference", "Clear reference mas&k", commands.clear_reference)
    file.addSeparator()
    add(file, "quit", "&Quit", commands.close, QKeySequence.StandardKey.Quit)

    view = bar.addMenu("&View")
    layout_menu = view.addMenu("&Layout")
    layouts = QActionGroup(window)
    for key, text, name in (("layout_single", "&Single view", "single"), ("layout_ortho", "&Three views", "ortho")):
        action = add(layout_menu, key, text, lambda checked=False, n=name: session.set_layout(n), checkable=True)
        layouts.addAction(action)
    convention = QActionGroup(window)
    for key, text, radiological in (("radiological", "&Radiological (patient's right on the left)", True),
                                    ("neurological", "&Neurological (patient's left on the left)", False)):
        action = add(view, key, text, lambda checked=False, r=radiological: session.set_radiological(r), checkable=True)
        convention.addAction(action)
    presets = view.addMenu("&Window presets")
    for i, name in enumerate(CT_PRESETS, start=1):
        center, width = CT_PRESETS[name]
        add(presets, f"preset_{i}", f"{name.capitalize()}  ({center:g} / {width:g})", lambda checked=False, n=name: session.apply_preset(n), f"Alt+{i}")
    view.addSeparator()
    add(view, "saliency", "Show &saliency", commands.set_saliency_visible, "S", checkable=True)
    methods, method_menu = QActionGroup(window), view.addMenu("Saliency &method")
    for key, text, method in (("saliency_auto", "&Automatic (Grad-CAM; occlusion for ONNX models)", None),
                              ("saliency_gradcam", "&Grad-CAM (Keras models)", "gradcam"), ("saliency_occlusion", "&Occlusion (any model)", "occlusion")):
        methods.addAction(add(method_menu, key, text, lambda checked=False, m=method: session.set_saliency(method=m), checkable=True))
    actions["saliency_auto"].setChecked(True)
    add(view, "mask", "Show &mask", commands.set_mask_visible, "M", checkable=True).setChecked(session.mask.on)
    mask_modes = view.addMenu("Mask m&ode")
    modes = QActionGroup(window)
    for name in MASK_MODES:
        action = add(mask_modes, f"mask_{name}", MASK_MODE_TITLES.get(name, name), lambda checked=False, n=name: session.set_mask(mode=n), checkable=True)
        action.setChecked(name == session.mask.mode)
        modes.addAction(action)
    add(view, "score_tint", "&Tint side views by score", commands.set_score_tint, checkable=True)
    add(view, "x_mm", "Plot against position (&mm)", commands.set_plot_x_mm, checkable=True)
    add(view, "clear_plot", "&Clear plot", commands.clear_plot, "Ctrl+L")
    add(view, "reset_zoom", "&Reset zoom", commands.reset_zoom, "Ctrl+0")

    model = bar.addMenu("&Model")
    add(model, "run", "&Run", commands.run_prediction, [QKeySequence("Ctrl+R"), QKeySequence("F5")])
    add(model, "cancel", "&Cancel", commands.cancel_prediction, "Esc")
    model.addSeparator()
    add(model, "builtin", "Use &built-in model", commands.use_builtin_model, checkable=True).setChecked(True)
    add(model, "load_model", "&Load model (Keras or ONNX)…", commands.load_model_dialog)
    add(model, "load_unsafe", "Load &trusted model (safe mode off)…", commands.load_unsafe_model_dialog)
    spread = model.addMenu("&Uncertainty (a band around each curve)")
    methods = QActionGroup(window)
    for kind, text in (("none", "&None (one pass)"), ("mc-dropout", "&MC dropout…"), ("tta", "&Test-time augmentation…"), ("ensemble", "&Ensemble of models…")):
        methods.addAction(add(spread, f"uncertainty_{kind}", text, lambda checked=False, k=kind: commands.choose_uncertainty(k), checkable=True))
    actions["uncertainty_none"].setChecked(True)
    add(model, "batch_size", "&Batch size…", commands.batch_size_dialog)
    add(model, "worker_threads", "&Threads for scoring…", commands.worker_threads_dialog)

    help_menu = bar.addMenu("&Help")
    add(help_menu, "shortcuts", "&Keyboard and mouse", commands.show_shortcuts, QKeySequence.StandardKey.HelpContents)
    add(help_menu, "about", "&About Slicewise", commands.show_about)
    return actions


def install_shortcuts(window: QMainWindow, commands: Commands, session: Session) -> list[QShortcut]:
    """Window-wide keys for scrubbing, region jumps and labels (whichever child has focus)."""
    keys = [
        (Qt.Key.Key_Left, lambda: session.step_slice(-1)),
        (Qt.Key.Key_Right, lambda: session.step_slice(+1)),
        (Qt.Key.Key_PageUp, lambda: session.step_slice(-10)),
        (Qt.Key.Key_PageDown, lambda: session.step_slice(+10)),
        (Qt.Key.Key_Home, session.first_slice),
        (Qt.Key.Key_End, session.last_slice),
        (Qt.Key.Key_N, lambda: session.jump_to_region(+1)),
        (Qt.Key.Key_P, lambda: session.jump_to_region(-1)),
        (Qt.Key.Key_U, session.jump_to_uncertain),
        (QKeySequence("Shift+Right"), lambda: session.jump_to_region(+1)),
        (QKeySequence("Shift+Left"), lambda: session.jump_to_region(-1)),
        (Qt.Key.Key_1, lambda: commands.label_slice("1")),
        (Qt.Key.Key_0, lambda: commands.label_slice("0")),
        (QKeySequence("?"), lambda: commands.label_slice("?")),
        (QKeySequence("Shift+?"), lambda: commands.label_slice("?")),
        (Qt.Key.Key_Backspace, lambda: commands.label_slice(None)),
    ]
    shortcuts = []
    for key, slot in keys:
        shortcut = QShortcut(QKeySequence(key), window)
        shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        shortcut.activated.connect(slot)
        shortcuts.append(shortcut)
    return shortcuts
