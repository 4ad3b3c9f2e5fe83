"""``slicewise render``: the main window, drawn offscreen to a PNG after an optional run.

The same ``MainWindow`` and the same code paths as the GUI: the volume goes through
``MainWindow.load_now`` (synchronous load, same display code) and scoring through the
window's worker thread, waited for with a local event loop.
"""

from __future__ import annotations

import re
from pathlib import Path

from app.errors import SlicewiseError


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text or "")
    if not match:
        raise SlicewiseError(f"bad --size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x800")
    width, height = int(match[1]), int(match[2])
    if not (320 <= width <= 8192 and 240 <= height <= 8192):
        raise SlicewiseError(f"bad --size {text!r}: width 320…8192 and height 240…8192 pixels")
    return width, height


def render(args) -> Path:
    """Draw ``args.volume`` (scored if ``args.strategy`` or ``args.model``) to ``args.out``."""
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise SlicewiseError(f"cannot write {out}: the output must be a .png file")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise SlicewiseError(f"cannot write {out}: folder {out.parent} does not exist")
    width, height = parse_size(args.size)

    from app.ui.main import ensure_app

    qapp = ensure_app(offscreen=True)
    from app.ui.window import MainWindow

    window = MainWindow(remember_recent=False, interactive=False)
    errors: list[str] = []
    window.sigError.connect(lambda title, message: errors.append(f"{title.lower()}: {message}"))
    try:
        window.resize(width, height)
        window.show()
        volume = window.load_now(args.volume, getattr(args, "axis", "axial") or "axial", getattr(args, "volume_index", 0) or 0)
        index = volume.depth // 2 if args.slice is None else args.slice
        if not 0 <= index < volume.depth:
            raise SlicewiseError(f"slice {index} out of range: {volume.source.name} has slices 0…{volume.depth - 1} along {volume.axis}")
        window.set_slice(index)
        strategies = getattr(args, "strategy", None) or []
        if isinstance(strategies, str):
            strategies = [strategies]
        if strategies or getattr(args, "model", None):
            window.set_normalize(getattr(args, "normalize", None))
            window.batch_size = getattr(args, "batch_size", 32) or 32
            if args.model:
                window.set_model(args.model, unsafe=getattr(args, "unsafe_model", False), check=False)
            for strategy in strategies or ["slice"]:  # each run adds a curve to the plot
                window.set_strategy(strategy)
                _run_and_wait(window, errors)
        qapp.processEvents()
        if window.size().width() != width or window.size().height() != height:
            window.resize(width, height)
            qapp.processEvents()
        image = window.grab()
        if not image.save(str(out), "PNG"):
            raise SlicewiseError(f"cannot write {out}")
        return out
    finally:
        window.close()
        window.deleteLater()
        qapp.processEvents()


def _run_and_wait(window, errors: list[str]) -> None:
    from PySide6.QtCore import QEventLoop

    loop = QEventLoop()
    ended: list[str] = []

    def finished(job, prediction) -> None:
        ended.append("finished")
        loop.quit()

    def failed(title, message) -> None:
        ended.append("failed")
        loop.quit()

    window.sigPredictionFinished.connect(finished)
    window.sigError.connect(failed)
    job = window.run_prediction()
    if job is None:
        raise SlicewiseError(errors[-1] if errors else "cannot run the prediction")
    if not ended:
        loop.exec()
    if ended[0] != "finished":
        raise SlicewiseError(errors[-1] if errors else "the prediction did not finish")
