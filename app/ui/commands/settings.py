"""What the viewer keeps in QSettings: recent files (at most ``MAX_RECENT``, newest first) and view/scoring preferences."""

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

    def fill_menu(self, menu, open_path) -> None:
        """Fill File › Open Recent: one entry per file, newest first, then "Clear list"."""
        menu.clear()
        paths = self.paths()
        for i, path in enumerate(paths):
            action = menu.addAction(f"&{(i + 1) % 10}  {Path(path).name}   —   {Path(path).parent}")
            action.setToolTip(path)
            action.triggered.connect(lambda checked=False, p=path: open_path(p))
        if paths:
            menu.addSeparator()
            menu.addAction("Clear list", self.clear)
        else:
            menu.addAction("(no recent files)").setEnabled(False)


class WindowSettings:
    """What the viewer remembers between sessions: layout, left/right convention, scoring threads."""

    def __init__(self, settings: QSettings):
        self._settings = settings

    def restore_view(self, session, actions: dict) -> None:
        """Put the remembered layout and convention into ``session`` and check their menu items."""
        layout = str(self._settings.value("view/layout", session.layout))
        radiological = str(self._settings.value("view/radiological", "true")).lower() in ("true", "1")
        session.set_layout(layout if layout in ("single", "ortho") else "single")
        session.set_radiological(radiological)
        actions["layout_ortho" if session.layout == "ortho" else "layout_single"].setChecked(True)
        actions["radiological" if session.radiological else "neurological"].setChecked(True)

    def save_view(self, session) -> None:
        self._settings.setValue("view/layout", session.layout)
        self._settings.setValue("view/radiological", "true" if session.radiological else "false")
        self._settings.sync()

    def worker_threads(self) -> int | None:
        """TensorFlow threads chosen by the user (None: the default)."""
        value = self._settings.value("scoring/threads", None)
        try:
            return int(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            return None

    def set_worker_threads(self, threads: int) -> None:
        self._settings.setValue("scoring/threads", int(threads))
        self._settings.sync()
