"""File › Load reference mask… and Clear reference mask: a label map on the open volume's grid
that the followed segmentation run is compared with (Dice per slice on the score plot, per class
in the review panel).  Loaded off the GUI thread by a `VolumeLoader` of its own.  A mixin of
`MainWindow`."""

from __future__ import annotations

from pathlib import Path

from app.errors import SlicewiseError
from app.ui.commands.dialogs import VOLUME_FILTER
from app.ui.worker.volume_loader import Loaded, LoadRequest, VolumeLoader


class ReferenceCommands:
    """Needs the window's ``session``, ``dialogs``, ``statusBar`` and ``_error``."""

    _reference_loader: VolumeLoader | None = None

    def load_reference_dialog(self) -> None:
        if self.session.volume is None:
            self._error("No volume open", "Open a volume first: a reference mask is a label map on its grid.")
            return
        if path := self.dialogs.open_file("reference", "Load reference mask", VOLUME_FILTER):
            self.load_reference(path)

    def load_reference(self, path: str | Path) -> int:
        """Load a label map in the background, sliced like the open volume; returns the request id
        (``reference_loader.sigLoaded`` / ``sigFailed`` follow)."""
        if self._reference_loader is None:
            self._reference_loader = VolumeLoader(self)
            self._reference_loader.sigLoaded.connect(self._on_reference_loaded)
            self._reference_loader.sigFailed.connect(self._on_reference_failed)
        self.statusBar().showMessage(f"Loading reference mask {Path(path).name}…")
        volume = self.session.volume  # none open: `set_reference` says so once it is loaded
        return self._reference_loader.request(path, volume.axis if volume is not None else "acquired", remember=False)

    @property
    def reference_loader(self) -> VolumeLoader | None:
        return self._reference_loader

    def clear_reference(self) -> None:
        self.session.set_reference(None)
        self.statusBar().showMessage("Reference mask cleared")

    def shutdown_reference_loader(self) -> None:
        if self._reference_loader is not None:
            self._reference_loader.shutdown()

    def _on_reference_loaded(self, loaded: Loaded) -> None:
        try:
            self.session.set_reference(loaded.volume)
        except SlicewiseError as exc:
            self._error("Cannot use reference mask", str(exc))
        else:
            self.statusBar().showMessage(f"Dice against {loaded.volume.source.name}")

    def _on_reference_failed(self, request: LoadRequest, message: str) -> None:
        self._error("Cannot load reference mask", f"Could not open {request.path}.\n\n{message}")
