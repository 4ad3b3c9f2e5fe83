"""Recent files, persisted with QSettings (at most ``MAX_RECENT``, newest first)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

MAX_RECENT = 10
_KEY = "recent/files"


class RecentFiles:
    """The list behind File › Open Recent."""

    def __init__(self, settings: QSettings | None = None):
        self._settings = settings if settings is not None else QSettings("Slicewise", "Slicewise")

    def paths(self) -> list[str]:
        value = self._settings.value(_KEY, [])
        if value is None:
            return []
        if isinstance(value, str):  # QSettings gives a bare string for a one-item list
            return [value] if value else []
        return [str(v) for v in value][:MAX_RECENT]

    def add(self, path: str | Path) -> list[str]:
        path = str(Path(path).expanduser().resolve())
        paths = [path] + [p for p in self.paths() if p != path]
        self._settings.setValue(_KEY, paths[:MAX_RECENT])
        self._settings.sync()
        return paths[:MAX_RECENT]

    def remove(self, path: str | Path) -> None:
        self._settings.setValue(_KEY, [p for p in self.paths() if p != str(path)])
        self._settings.sync()

    def clear(self) -> None:
        self._settings.setValue(_KEY, [])
        self._settings.sync()
