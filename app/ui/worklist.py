"""The worklist of ``slicewise review``: a cohort's cases in a sortable, filterable table, and
this reader's decision on the open case.

`WorklistModel` is a lazy `QAbstractTableModel` over an `app.review.worklist.CohortReview`:
a cell is computed when the view paints it (the files of a case are read when its row first
shows), so 10 000 cases open as fast as their table parses.  Sorting goes through a
`QSortFilterProxyModel` on numeric sort keys; the filter box matches the volume's name.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, Signal
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
        self.columns = ["volume", "vol. score", "max slice", *(["spread"] if review.results.has_spread else []),
                        "labelled by", "model≠reader", "decision", "κ"]  # fmt: skip

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
        if not index.isValid() or role not in (Qt.ItemDataRole.DisplayRole, SORT_ROLE, Qt.ItemDataRole.TextAlignmentRole, Qt.ItemDataRole.ToolTipRole):
            return None
        column = self.columns[index.column()]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignVCenter | (Qt.AlignmentFlag.AlignLeft if column in ("volume", "labelled by", "decision") else Qt.AlignmentFlag.AlignRight))
        row = index.row()
        case = self.review.case(row)
        if column == "volume":
            return str(case.path) if role == Qt.ItemDataRole.ToolTipRole else case.name if role == SORT_ROLE else case.path.name
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
        return "–" if kappa is None else f"{kappa:.2f}"

    def refresh_row(self, row: int) -> None:
        self.review.refresh(row)
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.columns) - 1))

    def refresh_all(self) -> None:
        self.review.refresh()
        self.beginResetModel()
        self.endResetModel()


class WorklistPanel(QWidget):
    """Filter box, table, the cohort's κ, and the open case's decision with a note."""

    sigOpen = Signal(int)  # a source row to open
    sigDecided = Signal(int)  # a source row whose decision changed

    def __init__(self, review: CohortReview, parent: QWidget | None = None):
        super().__init__(parent)
        self.review = review
        self.model = WorklistModel(review, self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterKeyColumn(0)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter volumes…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
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
            wide = {"volume": "case0000.nii.gz__", "labelled by": "you, alice, bob", "decision": "second read (you)"}.get(name, name)
            header.resizeSection(column, metrics.horizontalAdvance(wide) + 24)
        self.table.setSortingEnabled(True)  # most suspicious first: the highest slice score on top
        self.table.sortByColumn(self.model.columns.index("max slice"), Qt.SortOrder.DescendingOrder)
        self.table.doubleClicked.connect(lambda index: self.sigOpen.emit(self.proxy.mapToSource(index).row()))
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

    def visible_rows(self) -> list[int]:
        """Source rows in the table's order (sorted, filtered)."""
        return [self.proxy.mapToSource(self.proxy.index(r, 0)).row() for r in range(self.proxy.rowCount())]

    def selected_row(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return self.proxy.mapToSource(rows[0]).row() if rows else None

    def select(self, row: int) -> None:
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if index.isValid():
            self.table.selectRow(index.row())
            self.table.scrollTo(index)

    def open_selected(self) -> None:
        row = self.selected_row()
        if row is not None:
            self.sigOpen.emit(row)

    def neighbour(self, step: int) -> int | None:
        """The case ``step`` rows from the open one in the table's order; with none open, the
        selected one (else the first)."""
        if self.current is None:
            target = self.proxy.mapFromSource(self.model.index(self.selected_row(), 0)).row() if self.selected_row() is not None else 0
        else:
            target = self.proxy.mapFromSource(self.model.index(self.current, 0)).row() + step
        if 0 <= target < self.proxy.rowCount():
            return self.proxy.mapToSource(self.proxy.index(target, 0)).row()
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
        case = self.review.case(self.current)
        status = self.review.status(self.current)
        position = self.visible_rows().index(self.current) + 1 if self.current in self.visible_rows() else "–"
        decided = f"; you: {status.decision.decision} ({status.decision.time})" if status.decision else "; not decided yet"
        self.case.setText(f"<b>{case.path.name}</b> — case {position} of {self.proxy.rowCount()}{decided}")

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
