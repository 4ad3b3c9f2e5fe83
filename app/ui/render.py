"""``slicewise render``: a `Session` filled headless (load, score, saliency), drawn offscreen by the
same window the viewer uses, to a PNG.  A segmentation model's map is drawn as ``--mask`` says
(filled by default, outline, heat, or off).

The session is filled on the calling thread by the core (``app.io``, ``app.inference``); the
window only draws it, so the picture is what a user who did the same would see.
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


def fill_session(args):
    """A `Session` holding what ``args`` asks for: the volume at a slice, runs, labels, saliency."""
    from app.display import display_range
    from app.io import load_volume
    from app.session import Session

    session = Session()
    volume = load_volume(args.volume, axis=getattr(args, "axis", None) or "acquired", volume_index=getattr(args, "volume_index", 0) or 0, skip_damaged=bool(getattr(args, "skip_damaged", False)))
    session.show_volume(volume, display_range(volume))
    index = volume.depth // 2 if args.slice is None else args.slice
    if not 0 <= index < volume.depth:
        raise SlicewiseError(f"slice {index} out of range: {volume.source.name} has slices 0…{volume.depth - 1} along {volume.axis}")
    session.set_slice(index)
    session.set_layout(getattr(args, "layout", None) or "single")
    session.set_radiological(not getattr(args, "neurological", False))
    strategies = getattr(args, "strategy", None) or []
    if isinstance(strategies, str):
        strategies = [strategies]
    model_path = getattr(args, "model", None)
    saliency = getattr(args, "saliency", False)
    mask = getattr(args, "mask", None) or "filled"
    session.set_mask(on=mask != "off", mode=None if mask == "off" else mask)
    if strategies or model_path or saliency:
        from app.inference import Engine

        engine = Engine()
        _score(session, engine, args, strategies or ["slice"])
        if saliency:
            _saliency(session, engine, args)
    return session


def _score(session, engine, args, strategies: list[str]) -> None:
    from app.strategies import get_strategy

    model_path = getattr(args, "model", None)
    model = engine.load(model_path, args.normalize, getattr(args, "unsafe_model", False)) if model_path else None
    from app.strategies.embedding import configured

    options = {k: v for k, v in (("channels", getattr(args, "channels", None)), ("output", getattr(args, "output", None))) if v is not None}
    slab, pool = getattr(args, "slab", None), getattr(args, "pool", None)
    for job, name in enumerate(strategies, start=1):
        embedding = name == "embedding"
        session.update_settings(strategy=name, model_path=model_path, normalize=args.normalize, slab=slab if embedding else None,
                                pool=pool if embedding else None, **options)
        run = session.begin_run(job)
        strategy = configured(get_strategy(name), slab, pool) if embedding else get_strategy(name)
        prediction = engine.run(session.volume, strategy, model, normalize=args.normalize, batch_size=getattr(args, "batch_size", 32) or 32, **options)
        run.names = tuple(prediction.score_names)
        session.finish_run(run, prediction)


def _saliency(session, engine, args) -> None:
    from app.inference.occlusion import saliency_computer
    from app.session import SaliencyMap
    from app.strategies import get_strategy

    run = session.followed_run()
    key = run.key
    model = engine.load(key.model, args.normalize, getattr(args, "unsafe_model", False)) if key.model else None
    computer = saliency_computer(engine, get_strategy(key.strategy), model, getattr(args, "saliency_method", None))
    found = computer.maps(session.volume, [session.index], key.normalize)
    session.set_saliency(on=True)
    session.store_saliency(key, session.index, SaliencyMap(found[session.index], computer.method))


def render(args) -> Path:
    """Draw ``args.volume`` (scored if ``args.strategy`` or ``args.model``) to ``args.out``."""
    from app.atomic import check_writable
    from app.outputs import OutputSet, inputs_of

    outs = OutputSet(inputs_of(args))  # never over the volume or the model; all of the PNG or nothing
    out = outs.claim(check_writable(args.out, ".png"))
    width, height = parse_size(args.size)
    session = fill_session(args)

    from app.ui.main import ensure_app

    qapp = ensure_app(offscreen=True)
    import tempfile

    from PySide6.QtCore import QSettings

    from app.ui.window import MainWindow

    layout, radiological = session.layout, session.radiological
    with tempfile.TemporaryDirectory() as folder:  # the picture follows the arguments, not the user's remembered view
        settings = QSettings(str(Path(folder) / "render.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings=settings, remember_recent=False, interactive=False, session=session)
    session.set_layout(layout)
    session.set_radiological(radiological)
    window.actions_by_name["saliency"].setChecked(session.saliency_on)
    try:
        window.resize(width, height)
        window.show()
        qapp.processEvents()
        window.views.reset_zoom()
        qapp.processEvents()
        from PySide6.QtCore import QBuffer, QByteArray, QIODevice

        png = QByteArray()
        buffer = QBuffer(png)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        if not window.grab().save(buffer, "PNG"):
            raise SlicewiseError(f"cannot write {out}: Qt could not encode the PNG")
        with outs:  # encoded in memory, so a full disk says so (and leaves no partial PNG)
            outs.add(out, bytes(png.data()))
        return out
    finally:
        window.close()
        window.deleteLater()
        qapp.processEvents()
