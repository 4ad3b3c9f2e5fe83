"""`LabelKeeper`: the reader's slice labels kept on disk as they are made (app.review.labels), loaded
when a volume opens (the bundled demo's ground truth the first time)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import SlicewiseError
from app.review.labels import SliceLabels

if TYPE_CHECKING:
    from app.session import Session

DEMO_LABELS = Path(__file__).resolve().parents[2] / "resources" / "demo" / "labels.csv"


class LabelKeeper:
    """Loads a volume's labels when it opens (the bundled demo's ground truth the first time),
    and writes every label the reader sets, atomically, before the next key press is handled."""

    def __init__(self, session: Session, window):
        self.session, self.window = session, window
        self.store = None  # app.review.labels.SliceLabels of the open volume
        self.open_store = SliceLabels.for_volume  # volume → its labels (`slicewise review`: the reader's own file)
        session.events.volume.connect(self._on_volume)
        session.events.labels.connect(self._on_labels)

    def _on_volume(self, volume) -> None:
        self.store = None if volume is None else self.open_store(volume)
        if self.store is not None and not len(self.store) and _is_demo(volume) and DEMO_LABELS.is_file():
            try:
                self.store.import_csv(DEMO_LABELS)
            except SlicewiseError:
                pass  # a demo re-sliced along another axis: its labels are per axial slice
        self.session.set_labels(self.store.labels if self.store is not None else {})

    def _on_labels(self, labels: dict[int, str]) -> None:
        store = self.store
        if store is None or labels == store.labels:
            return
        changes = {i: labels.get(i) for i in set(store.labels) | set(labels)}
        try:
            store.update(changes)
        except SlicewiseError as exc:
            self.session.set_labels(store.labels)  # show what is on disk
            self.window._error("Cannot save labels", str(exc))
        else:
            if store.path is not None:
                self.session.say(f"{len(store)} labels saved to {store.path}")

    def import_file(self, path: str | Path) -> None:
        if self.store is None:
            return
        try:
            count = self.store.import_csv(path)
        except SlicewiseError as exc:
            self.window._error("Cannot import labels", str(exc))
            return
        self.session.set_labels(self.store.labels)
        self.session.say(f"Imported {count} labels from {Path(path).name}")

    def use_folder(self, folder: Path) -> None:
        if self.store is not None:
            self.store.use_folder(folder)


def _is_demo(volume) -> bool:
    try:
        return Path(volume.source).resolve() == (DEMO_LABELS.parent / "phantom.nii.gz").resolve() and volume.axis == "axial"
    except OSError:
        return False
