"""Menus, toolbar and keyboard shortcuts of the main window.

Every action calls one public method of ``MainWindow``; nothing here holds state.

Keys (window-wide, whichever child has focus — except while typing in a spin box):
←/→ one slice, PgUp/PgDn ten, Home/End first/last, N / Shift+→ next slice above the
threshold, P / Shift+← previous one, Ctrl+R or F5 run, Esc cancel.  Mouse wheel over the
image: slices; Ctrl+wheel: zoom.  Click or drag on the score plot: go to that slice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QComboBox, QLabel, QProgressBar, QPushButton, QStyle, QToolBar, QWidget

if TYPE_CHECKING:
    from app.ui.window import MainWindow

SHORTCUT_HELP = """<table cellspacing=4>
<tr><td><b>← / →</b></td><td>previous / next slice</td></tr>
<tr><td><b>PgUp / PgDn</b></td><td>ten slices back / forward</td></tr>
<tr><td><b>Home / End</b></td><td>first / last slice</td></tr>
<tr><td><b>Mouse wheel</b> on the image</td><td>scroll slices (<b>Ctrl</b>+wheel: zoom; drag: pan; right-click: menu)</td></tr>
<tr><td><b>N</b> or <b>Shift+→</b></td><td>next slice whose score is above the threshold</td></tr>
<tr><td><b>P</b> or <b>Shift+←</b></td><td>previous slice whose score is above the threshold</td></tr>
<tr><td>Click / drag on the plot</td><td>go to that slice (the yellow cursor); drag the red line to set the threshold</td></tr>
<tr><td><b>Ctrl+R</b> / <b>F5</b></td><td>run the selected strategy</td></tr>
<tr><td><b>Esc</b></td><td>cancel the run</td></tr>
<tr><td><b>Ctrl+O</b></td><td>open a file (or drop a file or folder on the window)</td></tr>
</table>"""

#: (name, title, summary) of each strategy in ``app.strategies.STRATEGIES``, kept literal so that
#: the window opens without importing torch (tests/test_bench.py checks that the two agree)
STRATEGY_CHOICES = (
    ("slice", "Slice by slice (2D CNN)", "each slice scored on its own by a 2D CNN"),
    ("temporal", "Sequence along depth (temporal)", "each slice scored in the context of its neighbours by a sequence model along depth"),
    ("embedding", "Depth-pooled embedding (dense)", "slices pooled over depth into one feature vector, scored by dense layers"),
)
STRATEGY_TITLES = {name: title for name, title, _ in STRATEGY_CHOICES}

NORMALIZE_CHOICES = ("model default", "none", "minmax", "zscore", "window:40,400", "window:50,350", "window:400,1800")


class Toolbar:
    """The widgets in the toolbar that the window reads and updates."""

    def __init__(self, window: MainWindow):
        bar = QToolBar("Main")
        bar.setObjectName("main-toolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        window.addToolBar(bar)
        self.bar = bar
        style = window.style()

        open_action = QAction(style.standardIcon(QStyle.StandardPixmap.SP_DialogOpenButton), "Open…", window)
        open_action.setToolTip("Open a volume (Ctrl+O); or drop a file or folder on the window")
        open_action.triggered.connect(window.open_file_dialog)
        bar.addAction(open_action)
        bar.addSeparator()

        self.strategy = QComboBox()
        for name, title, summary in STRATEGY_CHOICES:
            self.strategy.addItem(title, name)
            self.strategy.setItemData(self.strategy.count() - 1, summary, Qt.ItemDataRole.ToolTipRole)
        self.strategy.setToolTip("How the model sees the volume")
        self.strategy.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.strategy.setMinimumContentsLength(24)
        bar.addWidget(_label("Strategy"))
        bar.addWidget(self.strategy)
        self.normalize = QComboBox()
        self.normalize.setEditable(True)
        self.normalize.addItems(NORMALIZE_CHOICES)
        self.normalize.setToolTip("Intensity normalisation: none | minmax | zscore | window:CENTER,WIDTH\n'model default': what the model expects")
        self.normalize.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.normalize.setMinimumContentsLength(12)
        bar.addWidget(_label("Normalize"))
        bar.addWidget(self.normalize)
        self.model = QLabel("built-in model")
        self.model.setToolTip("Model › Load Keras model… to use your own")
        self.model.setContentsMargins(8, 0, 8, 0)
        bar.addWidget(self.model)

        self.run = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay), "Run")
        self.run.setToolTip("Score every slice (Ctrl+R)")
        self.run.clicked.connect(window.run_prediction)
        self.cancel = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaStop), "Cancel")
        self.cancel.setToolTip("Stop scoring after the current batch (Esc)")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(window.cancel_prediction)
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


def _label(text: str) -> QLabel:
    label = QLabel(text)
    label.setContentsMargins(8, 0, 4, 0)
    return label


def build_menus(window: MainWindow) -> dict[str, QAction]:
    """The menu bar; returns the actions the window enables/disables or checks."""
    actions: dict[str, QAction] = {}
    bar = window.menuBar()

    def add(menu, key: str, text: str, slot, shortcut=None, checkable: bool = False) -> QAction:
        action = QAction(text, window)
        if shortcut is not None:
            action.setShortcuts(shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)])
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        menu.addAction(action)
        actions[key] = action
        return action

    file = bar.addMenu("&File")
    add(file, "open", "&Open…", window.open_file_dialog, QKeySequence.StandardKey.Open)
    add(file, "open_dicom", "Open &DICOM folder…", window.open_dicom_dialog, "Ctrl+Shift+O")
    window.recent_menu = file.addMenu("Open &Recent")
    window.recent_menu.aboutToShow.connect(window.fill_recent_menu)
    file.addSeparator()
    add(file, "export_predictions", "&Export predictions…", window.export_predictions_dialog, "Ctrl+E")
    add(file, "export_plot", "Export &plot…", window.export_plot_dialog, "Ctrl+Shift+E")
    file.addSeparator()
    add(file, "quit", "&Quit", window.close, QKeySequence.StandardKey.Quit)

    view = bar.addMenu("&View")
    add(view, "x_mm", "Plot against position (&mm)", window.set_plot_x_mm, checkable=True)
    add(view, "clear_plot", "&Clear plot", window.clear_plot, "Ctrl+L")
    add(view, "reset_zoom", "&Reset image zoom", window.reset_zoom, "Ctrl+0")

    model = bar.addMenu("&Model")
    add(model, "run", "&Run", window.run_prediction, [QKeySequence("Ctrl+R"), QKeySequence("F5")])
    add(model, "cancel", "&Cancel", window.cancel_prediction, "Esc")
    model.addSeparator()
    add(model, "builtin", "Use &built-in model", window.use_builtin_model, checkable=True).setChecked(True)
    add(model, "load_model", "&Load Keras model…", window.load_model_dialog)
    add(model, "load_unsafe", "Load &trusted Keras model (safe mode off)…", window.load_unsafe_model_dialog)
    add(model, "batch_size", "&Batch size…", window.batch_size_dialog)

    help_menu = bar.addMenu("&Help")
    add(help_menu, "shortcuts", "&Keyboard and mouse", window.show_shortcuts, QKeySequence.StandardKey.HelpContents)
    add(help_menu, "about", "&About Slicewise", window.show_about)
    return actions


def install_shortcuts(window: MainWindow) -> list[QShortcut]:
    """Window-wide keys for scrubbing and threshold jumps (they work whichever child has focus)."""
    keys = [
        (Qt.Key.Key_Left, lambda: window.step_slice(-1)),
        (Qt.Key.Key_Right, lambda: window.step_slice(+1)),
        (Qt.Key.Key_PageUp, lambda: window.step_slice(-10)),
        (Qt.Key.Key_PageDown, lambda: window.step_slice(+10)),
        (Qt.Key.Key_Home, lambda: window.set_slice(0)),
        (Qt.Key.Key_End, lambda: window.set_slice(10**9)),
        (Qt.Key.Key_N, lambda: window.jump_above_threshold(+1)),
        (Qt.Key.Key_P, lambda: window.jump_above_threshold(-1)),
        (QKeySequence("Shift+Right"), lambda: window.jump_above_threshold(+1)),
        (QKeySequence("Shift+Left"), lambda: window.jump_above_threshold(-1)),
    ]
    shortcuts = []
    for key, slot in keys:
        shortcut = QShortcut(QKeySequence(key), window)
        shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        shortcut.activated.connect(slot)
        shortcuts.append(shortcut)
    return shortcuts
