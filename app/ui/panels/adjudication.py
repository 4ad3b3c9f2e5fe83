"""The adjudication view of ``slicewise review``: the slices and cases where readers disagree
(labels, or decisions), a click or Enter away."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from app.review.worklist import CohortReview


class AdjudicationPanel(QWidget):
    sigJump = Signal(int, object)  # source row, slice index (None: the case itself)

    def __init__(self, review: CohortReview, parent: QWidget | None = None):
        super().__init__(parent)
        self.review = review
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.list = QTreeWidget()
        self.list.setRootIsDecorated(False)
        self.list.setAlternatingRowColors(True)
        self.list.setHeaderLabels(["case", "where", "readers"])
        self.list.setColumnWidth(0, 150)
        self.list.setColumnWidth(1, 90)
        self.list.setToolTip("Where readers disagree: click or Enter to open the case at that slice")
        self.list.itemActivated.connect(self._jump)
        self.list.itemClicked.connect(self._jump)  # (item, column)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.list, 1)

    def refresh(self) -> None:
        """List the disagreements (the cases' statuses are read as the worklist reads them)."""
        found = self.review.disagreements()
        self.list.clear()
        cases = sorted({row for row, _, _ in found})
        for row, index, what in found:
            where = "whole case" if index is None else f"slice {index}"
            item = QTreeWidgetItem([self.review.case(row).path.name, where, what])
            item.setToolTip(0, str(self.review.case(row).path))
            item.setData(0, Qt.ItemDataRole.UserRole, (row, index))
            self.list.addTopLevelItem(item)
        hidden = " Blinded: only the cases you have decided are compared." if self.review.blinded else ""
        if found:
            self.summary.setText(f"{len(found)} disagreements in {len(cases)} case{'s' if len(cases) > 1 else ''}.{hidden}")
        else:
            self.summary.setText(f"No disagreements between readers.{hidden}")

    def _jump(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        row, index = item.data(0, Qt.ItemDataRole.UserRole)
        self.sigJump.emit(row, index)
