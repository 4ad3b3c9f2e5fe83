"""The worklist of ``slicewise review``: a cohort's cases in a sortable, filterable table, and
this reader's decision on the open case.

`WorklistModel` is a lazy `QAbstractTableModel` over an `app.review.worklist.CohortReview`:
a cell is computed when the view paints it (the files of a case are read when its row first
shows), so 10 000 cases open as fast as their table parses.  Sorting goes through a
`QSortFilterProxyModel` on numeric sort keys; the filter box matches the volume's name.
"""

from __future__ import annotations

import math
import time

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.errors import SlicewiseError
from app.review.decisions import ACCEPT, REJECT, SECOND_READ
from app.review.worklist import CohortReview

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
DISPLAY, ALIGN, TIP = Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.TextAlignmentRole, Qt.ItemDataRole.ToolTipRole
READ_BUDGET_S = 0.004  # the background read of the cohort's files takes at most this per event-loop turn
HEADER_TIPS = {
    "vol. score": "the volume's own score (strategies that give one)",
    "max slice": "the highest slice score",
    "spread": "the mean per-slice spread of the scores (score_sd)",
    "labelled by": "the readers who labelled slices of the case (blinded: others hidden until you decide)",
    "model≠reader": "slices where the model (score above the threshold) and a shown reader disagree",
    "decision": "your latest decision, and the other readers' (blinded: once you have decided)",
    "κ": "agreement between the shown readers' slice labels: Cohen's κ (two), Fleiss' κ (more)",
}
DECISION_KEYS = ((ACCEPT, "Ctrl+1"), (REJECT, "Ctrl+2"), (SECOND_READ, "Ctrl+3"))


class WorklistModel(QAbstractTableModel):
    """One row per case; the spread column only when the results hold a ``score_sd``."""

    def __init__(self, review: CohortReview, parent=None):
        super().__init__(parent)
        self.review = review
        self._texts: dict[int, tuple] = {}  # case → its cells' texts, once shown
        self.order = list(range(len(review)))  # model row → case (the sort order)
        self.position = list(self.order)  # case → model row
        self.columns = ["volume", "vol. score", "max slice", *(["spread"] if review.results.has_spread else []),
                        "labelled by", "model≠reader", "κ", "decision"]  # fmt: skip
        left, right = (int(Qt.AlignmentFlag.AlignVCenter | side) for side in (Qt.AlignmentFlag.AlignLeft, Qt.AlignmentFlag.AlignRight))
        self._align = [left if column in ("volume", "labelled by", "decision") else right for column in self.columns]

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.review)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS.get(self.columns[section])
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        """A repaint asks for about seven roles per cell: the text comes from a per-row cache."""
        if role == DISPLAY:
            row = self.order[index.row()]
            texts = self._texts.get(row)
            if texts is None:
                texts = self._texts[row] = tuple(self.cell(row, column) for column in self.columns)
            return texts[index.column()]
        if role == ALIGN:
            return self._align[index.column()]
        if role in (SORT_ROLE, TIP):
            return self.cell(self.order[index.row()], self.columns[index.column()], role)
        return None

    def cell(self, row: int, column: str, role=Qt.ItemDataRole.DisplayRole):
        """What case ``row`` shows in ``column`` for ``role`` (computed when asked)."""
        case = self.review.case(row)
        if column == "volume":
            return str(case.path) if role == Qt.ItemDataRole.ToolTipRole else case.name if role == SORT_ROLE else self.review.short_name(row)
        if column in ("vol. score", "max slice", "spread"):
            value = {"vol. score": case.volume_score, "max slice": case.max_slice, "spread": case.spread}[column]
            if role == SORT_ROLE:
                return -math.inf if value is None or math.isnan(value) else value
            return None if role == Qt.ItemDataRole.ToolTipRole else "–" if value is None or math.isnan(value) else f"{value:.3f}"
        return self._status_cell(row, column, role)

    def _status_cell(self, row: int, column: str, role):
        status = self.review.status(row)
        if column == "labelled by":
            hidden = f" · {status.hidden} hidden" if status.hidden else ""
            text = (", ".join(status.readers) or "–") + hidden
            return len(status.readers) if role == SORT_ROLE else text
        if column == "model≠reader":
            count = len(status.model_disagreements)
            if role == SORT_ROLE:
                return count
            if role == Qt.ItemDataRole.ToolTipRole:
                return "slices where the model (score > threshold) and a reader disagree: " + (", ".join(map(str, status.model_disagreements[:30])) or "none")
            return f"{count} slices" if status.readers else "–"
        if column == "decision":
            parts = [f"{status.decision.decision} (you)"] if status.decision else []
            parts += [f"{d.decision} ({r})" for r, d in sorted(status.other_decisions.items())]
            text = ", ".join(parts) or "–"
            if role == Qt.ItemDataRole.ToolTipRole and status.decision is not None:
                return f"your note: {status.decision.note or '(none)'}, {status.decision.time}"
            return text
        kappa = status.agreement.kappa if status.agreement is not None else None
        if role == SORT_ROLE:
            return -math.inf if kappa is None else kappa
        if role == Qt.ItemDataRole.ToolTipRole:
            return status.agreement.summary() if status.agreement is not None else "κ needs two readers' labels of the case"
        return "–" if kappa is None else f"{round(kappa, 2) + 0.0:.2f}"  # + 0.0: no "-0.00"

    def sort_key(self, row: int, column: str):
        """What case ``row`` sorts by in ``column`` (numbers; the name for the volume)."""
        if column == "volume":
            return self.review.case(row).name.lower()
        return self.cell(row, column, SORT_ROLE)

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        """Reorder the rows by ``column`` (the score columns need nothing read; the others read
        every case's files once)."""
        name = self.columns[column]
        self.layoutAboutToBeChanged.emit()
        keys = [self.sort_key(row, name) for row in range(len(self.review))]
        old = self.order
        self.order = sorted(range(len(keys)), key=keys.__getitem__, reverse=order == Qt.SortOrder.DescendingOrder)
        self.position = [0] * len(self.order)
        for model_row, row in enumerate(self.order):
            self.position[row] = model_row
        self.changePersistentIndexList(self.persistentIndexList(), [self.index(self.position[old[i.row()]], i.column()) for i in self.persistentIndexList()])
        self.layoutChanged.emit()

    def refresh_row(self, row: int) -> None:
        """Case ``row``'s files read again (a label or decision was saved)."""
        self.review.refresh(row)
        self._texts.pop(row, None)
        at = self.position[row]
        self.dataChanged.emit(self.index(at, 0), self.index(at, len(self.columns) - 1))

    def refresh_all(self) -> None:
        self.review.refresh()
        self._texts.clear()
        self.beginResetModel()
        self.endResetModel()


class _FilterProxy(QSortFilterProxyModel):
    """Filters on the volume's name; sorting is the source model's (its keys, not Qt's
    comparisons through Python, which take seconds for 10 000 rows)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.text = ""

    def set_text(self, text: str) -> None:
        self.beginFilterChange()  # Qt ≥ 6.10: invalidateFilter() is deprecated
        self.text = text.strip().lower()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent) -> bool:
        model = self.sourceModel()
        return not self.text or self.text in model.review.case(model.order[source_row]).name.lower()

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        if column >= 0:
            self.sourceModel().sort(column, order)


class WorklistPanel(QWidget):
    """Filter box, table, the cohort's κ, and the open case's decision with a note."""

    sigOpen = Signal(int)  # a case to open
    sigDecided = Signal(int)  # a case whose decision changed

    def __init__(self, review: CohortReview, parent: QWidget | None = None):
        super().__init__(parent)
        self.review = review
        self.model = WorklistModel(review, self)
        self.proxy = _FilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter volumes…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.set_text)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        metrics = header.fontMetrics()
        for column, name in enumerate(self.model.columns):
            wide = {"volume": "case0000.nii.gz", "labelled by": "you, alice, bob", "κ": "-0.00", "decision": "second read (you)"}.get(name, name)
            header.resizeSection(column, metrics.horizontalAdvance(wide) + 24)
        header.setSortIndicator(self.model.columns.index("max slice"), Qt.SortOrder.DescendingOrder)
        self.table.setSortingEnabled(True)  # sorts once: most suspicious first, the highest slice score on top
        self.table.doubleClicked.connect(lambda index: self.sigOpen.emit(self.case_at(index.row())))
        for key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            enter = QShortcut(QKeySequence(key), self.table, context=Qt.ShortcutContext.WidgetShortcut)
            enter.activated.connect(self.open_selected)
        self.cohort = QLabel()
        self.cohort.setWordWrap(True)
        self.case = QLabel("Enter opens the selected case")
        self.note = QLineEdit()
        self.note.setPlaceholderText("Note for the decision (optional)")
        buttons = QHBoxLayout()
        self.buttons = {}
        for decision, key in DECISION_KEYS:
            button = QPushButton(f"{decision.capitalize()}  ({key})")
            button.setToolTip(f"Decide the open case: {decision} ({key}); the note goes with it")
            button.clicked.connect(lambda checked=False, d=decision: self.decide(d))
            buttons.addWidget(button)
            self.buttons[decision] = button
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.filter)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.cohort)
        layout.addWidget(self.case)
        layout.addWidget(self.note)
        layout.addLayout(buttons)
        self.current: int | None = None  # the open case's source row
        self._show_current()

    # -- rows -----------------------------------------------------------------------------------

    def case_at(self, table_row: int) -> int:
        """The case shown in row ``table_row`` of the table."""
        return self.model.order[self.proxy.mapToSource(self.proxy.index(table_row, 0)).row()]

    def table_row(self, row: int) -> int:
        """Where case ``row`` is in the table (-1: filtered out)."""
        return self.proxy.mapFromSource(self.model.index(self.model.position[row], 0)).row()

    def visible_rows(self) -> list[int]:
        """The cases in the table's order (sorted, filtered)."""
        return [self.case_at(r) for r in range(self.proxy.rowCount())]

    def selected_row(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return self.case_at(rows[0].row()) if rows else None

    def select(self, row: int) -> None:
        at = self.table_row(row)
        if at >= 0:
            self.table.selectRow(at)
            self.table.scrollTo(self.proxy.index(at, 0))

    def open_selected(self) -> None:
        row = self.selected_row()
        if row is not None:
            self.sigOpen.emit(row)

    def neighbour(self, step: int) -> int | None:
        """The case ``step`` rows from the open one in the table's order; with none open, the
        selected one (else the first)."""
        if self.current is None:
            selected = self.selected_row()
            target = self.table_row(selected) if selected is not None else 0
        else:
            target = self.table_row(self.current) + step
        if 0 <= target < self.proxy.rowCount():
            return self.case_at(target)
        return None

    def set_current(self, row: int | None) -> None:
        self.current = row
        if row is not None:
            self.select(row)
        self._show_current()

    def _show_current(self) -> None:
        on = self.current is not None
        for button in self.buttons.values():
            button.setEnabled(on)
        self.note.setEnabled(on)
        if not on:
            return
        status = self.review.status(self.current)
        position = self.table_row(self.current) + 1 or "–"
        decided = f"; you: {status.decision.decision} ({status.decision.time})" if status.decision else "; not decided yet"
        self.case.setText(f"<b>{self.review.short_name(self.current)}</b> — case {position} of {self.proxy.rowCount()}{decided}")

    # -- decisions ------------------------------------------------------------------------------

    def decide(self, decision: str) -> None:
        if self.current is None:
            return
        try:
            record = self.review.decide(self.current, decision, self.note.text())
        except SlicewiseError as exc:
            self.case.setText(f"<span style='color:#e66'>cannot save the decision: {exc}</span>")
            return
        self.note.clear()
        self.model.refresh_row(self.current)
        self._show_current()
        self.case.setToolTip(f"saved {record.decision} at {record.time}")
        self.sigDecided.emit(self.current)

    def read_cohort(self) -> None:
        """Read every case's labels and decisions a few milliseconds per event-loop turn (the
        window stays responsive), then show the cohort's κ."""
        rows = iter(range(len(self.review)))
        timer = QTimer(self)
        shown = [0.0]

        def step() -> None:
            start = time.perf_counter()
            end = start + READ_BUDGET_S
            while time.perf_counter() < end:
                row = next(rows, None)
                if row is None:
                    timer.stop()
                    timer.deleteLater()
                    self.show_cohort()
                    return
                self.review.status(row)
            if start - shown[0] > 0.25:  # a label's new text lays out the panel: not every turn
                shown[0] = start
                self.cohort.setText(f"{len(self.review)} cases · reading the readers' labels… {row + 1} of {len(self.review)}")  # fmt: skip

        timer.timeout.connect(step)
        timer.start(0)

    def show_cohort(self) -> None:
        """The readers' κ over the cohort (every case's status is read the first time)."""
        found = self.review.cohort_agreement()
        if found is None:
            self.cohort.setText(f"{len(self.review)} cases · cohort κ needs two readers' labels")
            return
        name = "Cohen's" if found.method == "cohen" else "Fleiss'"
        kappa = "n/a" if found.kappa is None else f"{found.kappa:.2f}"
        share = "n/a" if found.percent_agreement is None else f"{found.percent_agreement:.0f} %"
        blind = " (blinded: decided cases only)" if self.review.blinded else ""
        self.cohort.setText(f"{len(self.review)} cases · cohort {name} κ {kappa}, agreement {share} over {found.compared} slices{blind}")
        self.cohort.setToolTip(found.summary())
