"""The window's file dialogs and questions, each starting in the folder last used for its kind."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QWidget

from app.io.formats import MODEL_DIALOG_FILTER, VOLUME_DIALOG_FILTER

VOLUME_FILTER = VOLUME_DIALOG_FILTER
MODEL_FILTER = MODEL_DIALOG_FILTER
CSV_FILTER = "CSV (*.csv);;All files (*)"
PNG_FILTER = "PNG image (*.png);;All files (*)"
NIFTI_FILTER = "NIfTI (*.nii.gz *.nii);;All files (*)"


class Dialogs:
    """File dialogs that remember their folder per kind ("volume", "model", "export", "labels")."""

    def __init__(self, parent: QWidget, settings: QSettings):
        self.parent, self.settings = parent, settings

    def folder(self, kind: str) -> str:
        value = self.settings.value(f"folders/{kind}", "")
        return str(value) if value and Path(str(value)).is_dir() else str(Path.home())

    def remember(self, kind: str, path: str | Path) -> None:
        path = Path(path)
        self.settings.setValue(f"folders/{kind}", str(path if path.is_dir() else path.parent))

    def open_file(self, kind: str, title: str, filter_: str) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self.parent, title, self.folder(kind), filter_)
        if path:
            self.remember(kind, path)
        return path or None

    def open_folder(self, kind: str, title: str) -> str | None:
        path = QFileDialog.getExistingDirectory(self.parent, title, self.folder(kind))
        if path:
            self.remember(kind, path)
        return path or None

    def open_files(self, kind: str, title: str, filter_: str) -> list[str]:
        paths, _ = QFileDialog.getOpenFileNames(self.parent, title, self.folder(kind), filter_)
        if paths:
            self.remember(kind, paths[0])
        return list(paths)

    def save_file(self, kind: str, title: str, name: str, filter_: str) -> str | None:
        path, _ = QFileDialog.getSaveFileName(self.parent, title, str(Path(self.folder(kind)) / name), filter_)
        if path:
            self.remember(kind, path)
        return path or None

    def confirm_unsafe_model(self) -> bool:
        answer = QMessageBox.warning(
            self.parent, "Safe mode off",
            "Loading a model with Keras safe mode off can run code stored in the file.\n\nOnly do this for a file you trust. Continue?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def ask_int(self, title: str, label: str, value: int, low: int, high: int) -> int | None:
        value, ok = QInputDialog.getInt(self.parent, title, label, value, low, high)
        return value if ok else None

    def ask_text(self, title: str, label: str, value: str) -> str | None:
        text, ok = QInputDialog.getText(self.parent, title, label, text=value)
        return text.strip() if ok and text.strip() else None
