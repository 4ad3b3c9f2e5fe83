"""``slicewise``: the command line — ``predict`` and ``demo`` here; ``gui`` and ``render`` through ``app.ui.launch``.

The only place that prints for users.  Bad input of any kind ends with exit code 2 and one line
``error: …`` on stderr, and no partial output file.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from app import __version__, startup
from app.errors import SlicewiseError
from app.session import MASK_MODES
from app.strategy_catalog import NAMES as STRATEGY_NAMES
from app.text_input import short
from app.volume import ACQUIRED, AXIS_CHOICES

COMMANDS = ("predict", "render", "demo", "gui", "agreement", "review")


# -- numbers and specs checked as they are parsed: finite, in range (argparse exits 2 naming the option)


def whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{short(text)} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: use {low}…{high}")
        return value

    return parse


def finite(text: str) -> float:
    """An argparse type: a finite number (no nan, no inf, nothing that overflows)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{short(text)} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{short(text)} is not a finite number")
    return value


def normalization(text: str) -> str:
    """An argparse type: a normalisation spec `app.preprocessing.parse_spec` accepts (kept as given)."""
    from app.preprocessing import parse_spec

    try:
        parse_spec(text)
    except SlicewiseError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _volume_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--axis", choices=AXIS_CHOICES, default=ACQUIRED, help="depth axis of the slices (default: acquired, the scan's own slices shown as the closest anatomical axis)"
    )
    parser.add_argument("--volume-index", type=whole(0, 1 << 20), default=0, metavar="N", help="which 3D volume of a 4D file (default: 0)")
    parser.add_argument(
        "--skip-damaged", action="store_true", help="load a DICOM series without its damaged files (the others at their true positions, with a warning); default: refuse it"
    )


class _Strategies(argparse.Action):
    """A repeatable ``--strategy``: ``strategy`` is the first given (or the default), ``strategies``
    all of them in order (None when the option is not given)."""

    def __call__(self, parser, namespace, values, option_string=None):
        chosen = [*(getattr(namespace, "strategies", None) or []), values]
        namespace.strategies = chosen
        setattr(namespace, self.dest, chosen[0])


def _model_options(parser: argparse.ArgumentParser, default_strategy: str | None, several: bool = False) -> None:
    if several and default_strategy:
        parser.set_defaults(strategies=None)
        parser.add_argument(
            "--strategy", choices=STRATEGY_NAMES, default=default_strategy, action=_Strategies, help="how the model sees the volume (repeat for several runs: a column each)"
        )
    elif several:
        parser.add_argument(
            "--strategy", choices=STRATEGY_NAMES, action="append", help="how the model sees the volume (repeat for several runs: a curve each)"
        )
    else:
        parser.add_argument("--strategy", choices=STRATEGY_NAMES, default=default_strategy, help="how the model sees the volume")
    parser.add_argument("--model", metavar="FILE", help="a Keras model (.keras, legacy .h5, or a TensorFlow SavedModel folder) or an ONNX model (.onnx) instead of the built-in one")
    parser.add_argument("--unsafe-model", action="store_true", help="turn Keras safe mode off (the model file may run code), or allow non-standard ONNX operators; only for files you trust")
    parser.add_argument(
        "--normalize", type=normalization, metavar="MODE", help="none | minmax | zscore | window:CENTER,WIDTH (default: the model's own, as its JSON records it; none without one)"
    )
    parser.add_argument(
        "--channels",
        metavar="RECIPE",
        help="how the model's channels are filled: replicate | neighbors[:K] (slices d-K…d+K) | windows:C,W;C,W;… (one window each) "
        "(default: the model's own, else replicate)",
    )
    parser.add_argument("--output", metavar="NAME", help="which output of a model with several to score (default: the first)")
    parser.add_argument("--classes", metavar="A,B,…", help="names of the output's scores, for columns score_A, score_B … (default: the model's JSON)")
    parser.add_argument("--batch-size", type=whole(1, 1 << 16), default=32, metavar="N", help="slices (or windows) per model call (default: 32)")


def _segmentation_options(parser: argparse.ArgumentParser) -> None:
    seg = parser.add_argument_group("segmentation models (a map per slice; --model builtin:lesion is the demo's)")
    seg.add_argument(
        "--reduce", choices=("area", "max", "mean"), default="area", help="a slice's scores from its map: area in mm² (default), max or mean probability"
    )
    seg.add_argument("--mask-threshold", type=finite, default=0.5, metavar="P", help="a sigmoid map's pixels at or above it are in the mask (default: 0.5)")
    seg.add_argument("--overlap", type=finite, default=0.25, metavar="F", help="overlap of the tiles of a model smaller than the slice (default: 0.25)")
    seg.add_argument(
        "--fit", choices=("tile", "resize"), default="tile", help="a model smaller than the slice: tiles at native resolution (default), or the slice resized"
    )
    seg.add_argument("--mask-out", metavar="FILE.nii.gz", help="write the mask in the source file's voxel order and affine (uint8 labels)")
    seg.add_argument("--mask-probabilities", action="store_true", help="--mask-out writes float32 probabilities instead of labels")
    seg.add_argument("--reference-mask", metavar="FILE", help="a label map on the same grid: Dice per class and per slice, printed and in the sidecar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slicewise", description="A volume viewer with per-slice Keras predictions.")
    parser.add_argument("--version", action="version", version=f"slicewise {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{gui,predict,render,demo,agreement,review}")

    gui = sub.add_parser("gui", help="open the viewer (the default: `slicewise [VOLUME]`)")
    gui.add_argument("volume", nargs="?", help="a volume to open (default: the bundled demo)")
    _volume_options(gui)

    predict = sub.add_parser("predict", help="score volumes headless and write a CSV")
    predict.add_argument("volumes", nargs="+", metavar="VOLUME", help="NIfTI/MGH/MINC/Analyze file, DICOM folder or file, .npy/.npz/.pt")
    _volume_options(predict)
    _model_options(predict, "slice", several=True)
    slab = predict.add_argument_group("embedding strategy")
    slab.add_argument("--slab", type=whole(1, 1 << 12), metavar="K", help="slices pooled for each slice's score: the K centred on it (default: 3)")
    slab.add_argument("--pool", choices=("mean", "max", "attention"), help="how a slab is pooled (default: mean)")
    spread = predict.add_argument_group("uncertainty: the mean of several passes as the score, their sd in score_sd columns (one method)")
    spread.add_argument("--mc-dropout", type=whole(1, 1 << 12), metavar="N", help="N passes with the model's dropout layers on (everything else, BatchNormalization too, in inference mode)")
    spread.add_argument("--mc-seed", type=whole(0, 2**63 - 1), default=0, metavar="SEED", help="seed of the dropout masks (default: 0; recorded in the sidecar)")
    spread.add_argument("--tta", metavar="A,B,…", help="test-time augmentations besides the original: flip-lr, flip-ap, shift:K (flip-lr is wrong for lateralised findings)")
    spread.add_argument("--ensemble", metavar="A.keras,B.keras,…", help="several models, fitted alike, scored as one run (instead of --model)")
    predict.add_argument("--out", metavar="FILE.csv", help="write the table here (+ FILE.csv.json sidecar); default: stdout")
    predict.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar on stderr (default: on a terminal)")
    review = predict.add_argument_group("review: saliency maps, agreement with a reader's labels (one volume)")
    review.add_argument("--saliency-dir", metavar="DIR", help="write a saliency map per slice, DIR/slice_0042.npy (float32, the slice's H×W, 0…1), and DIR/saliency.json")
    review.add_argument("--saliency-method", choices=("gradcam", "occlusion"), help="gradcam (Keras models) or occlusion (any model; the default for ONNX models, which have no gradients here); default: gradcam for Keras")
    review.add_argument("--saliency-slices", default="all", metavar="all|top:N|i,j,k", help="the slices that get a map (default: all; top:N: the N highest-scoring)")
    review.add_argument("--labels", metavar="FILE", help="slice labels, a slice_index,label CSV (1, 0, ?): a label column, the agreement printed and put in the sidecar")
    review.add_argument("--threshold", type=finite, default=0.5, help="a slice scoring above it counts as positive, for sensitivity and specificity (default: 0.5)")
    _segmentation_options(predict)
    dicom = predict.add_argument_group("DICOM results for PACS (one volume read from DICOM, one run)")
    dicom.add_argument("--seg-out", metavar="FILE.dcm", help="write the segmentation run's map as a DICOM SEG referencing the source images (--mask-probabilities: FRACTIONAL)")
    dicom.add_argument("--sr-out", metavar="FILE.dcm", help="write the per-slice scores (or areas), the volume's value and --labels as a TID 1500 DICOM SR")
    cohort = predict.add_argument_group("cohorts (folders, glob patterns) on Dask")
    cohort.add_argument("--workers", type=whole(1, 1 << 12), metavar="N", help="score on a local Dask cluster of N worker processes")
    cohort.add_argument("--scheduler", metavar="ADDRESS", help="score on an existing Dask cluster, e.g. tcp://10.0.0.5:8786")
    cohort.add_argument("--mask-dir", metavar="DIR", help="a segmentation cohort: each volume's mask as DIR/<name>-<hash>.nii.gz (uint8 labels, the source's voxel order and affine)")

    render = sub.add_parser("render", help="draw the viewer offscreen to a PNG (after scoring, if asked)")
    render.add_argument("volume", help="the volume to show")
    render.add_argument("--out", required=True, metavar="FILE.png")
    render.add_argument("--slice", type=whole(0, 1 << 20), metavar="N", help="slice to show (default: the middle one)")
    render.add_argument("--size", default="1280x800", metavar="WxH", help="window size (default: 1280x800)")
    render.add_argument("--layout", choices=("single", "ortho"), default="single", help="one view, or the three planes with a crosshair")
    render.add_argument("--neurological", action="store_true", help="patient's left on the screen's left (default: radiological)")
    render.add_argument("--saliency", action="store_true", help="overlay the saliency map of the shown slice (scores with the slice strategy unless --strategy says)")
    render.add_argument("--saliency-method", choices=("gradcam", "occlusion"), help="gradcam (Keras models) or occlusion (any model; the default for ONNX models, which have no gradients here); default: gradcam for Keras")
    render.add_argument("--mask", choices=(*MASK_MODES, "off"), default=MASK_MODES[0],
                        help="how a segmentation model's map is drawn over the views (default: filled; off: not drawn)")
    _volume_options(render)
    _model_options(render, None, several=True)

    agree = sub.add_parser("agreement", help="how far readers' slice labels agree: Cohen's κ (two), Fleiss' κ (three or more)")
    agree.add_argument("labels", nargs="+", metavar="LABELS", help="a reader's labels: the viewer's labels file or a slice_index,label CSV (1, 0, ?)")
    agree.add_argument("--out", metavar="FILE.json", help="also write the figures and disagreeing slices here")

    worklist = sub.add_parser("review", help="go through a cohort's results in the viewer: a worklist, decisions, several readers")
    worklist.add_argument("results", metavar="RESULTS", help="a cohort's results: FILE.csv (with FILE.csv.json) or its FILE.csv.parts folder")
    worklist.add_argument("--reader", metavar="NAME", help="who is reading (default: the OS user)")
    worklist.add_argument("--blinded", action="store_true", help="hide the other readers' labels and decisions of a case until you have decided it")
    worklist.add_argument("--threshold", type=finite, default=0.5, help="a slice scoring above it counts as positive (default: 0.5)")

    demo = sub.add_parser("demo", help="write a synthetic phantom with lesion labels")
    demo.add_argument("--out", required=True, metavar="DIR")
    demo.add_argument("--seed", type=whole(0, 2**63 - 1), default=0)
    demo.add_argument("--depth", type=whole(1, 4096), default=64)
    demo.add_argument("--lesions", type=whole(0, 1000), metavar="N", help="number of lesions (0: a lesion-free phantom; default: the seed's own)")
    return parser


VIEWER_COMMANDS = ("gui", "render", "review")  # run by app.ui.launch, which hands them in as ``viewer``

Viewer = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None, viewer: Viewer | None = None) -> int:
    """Parse ``argv`` and run its command; ``viewer`` runs ``gui`` and ``render`` (the core has no Qt)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "gui")
    args = build_parser().parse_args(argv)
    try:
        if args.command in VIEWER_COMMANDS:
            if viewer is None:
                raise SlicewiseError(f"`{args.command}` needs the viewer: run it as `slicewise {args.command}` or `python -m app {args.command}`")
            return viewer(args)
        return {"predict": _predict, "demo": _demo, "agreement": _readers_agree}[args.command](args)
    except SlicewiseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


@startup.quick_start  # no garbage collection passes while torch and TensorFlow import
def _predict(args: argparse.Namespace) -> int:
    from app import export
    from app.io import load_volume
    from app.outputs import OutputSet, inputs_of
    from app.prediction import nonfinite_warning
    from app.progress import ProgressBar
    from app.strategies import get_strategy

    strategies = [get_strategy(name) for name in dict.fromkeys(args.strategies or [args.strategy])]
    if args.slab is not None or args.pool is not None:
        from app.strategies.embedding import configured

        if all(s.name != "embedding" for s in strategies):
            raise SlicewiseError("--slab and --pool apply to the embedding strategy: add --strategy embedding")
        strategies = [configured(s, args.slab, args.pool) if s.name == "embedding" else s for s in strategies]
    if args.channels:
        from app.channels import parse_recipe

        parse_recipe(args.channels)  # a bad recipe fails before anything loads
    if args.unsafe_model and args.model:
        print(f"warning: --unsafe-model: {_unsafe_warning(args.model)}", file=sys.stderr)
    from app import cohort
    from app.review import headless as review

    selection = review.parse_slice_selection(args.saliency_slices)  # a bad selection fails before anything loads
    dicom_out = [name for name, value in (("--seg-out", args.seg_out), ("--sr-out", args.sr_out)) if value]
    if dicom_out and (args.workers or args.scheduler or cohort.is_cohort(args.volumes) or len(args.volumes) > 1 or len(strategies) > 1):
        raise SlicewiseError(f"{' and '.join(dicom_out)} write the results of one volume and one run: give one volume and one --strategy")
    uncertainty = _uncertainty(args)
    outs = OutputSet(inputs_of(args))  # every output staged, written together at the end, never over an input
    if args.mask_out:
        from app.segmentation.mask_export import check_mask_path

        check_mask_path(args.mask_out)
    for path in (args.out, args.out and export.sidecar_path(args.out), args.seg_out, args.sr_out, args.mask_out):
        if path:
            outs.claim(path)
    if args.saliency_dir:
        outs.folder(args.saliency_dir)
    if args.workers or args.scheduler or cohort.is_cohort(args.volumes):
        if args.mask_out or args.reference_mask:
            raise SlicewiseError("--mask-out and --reference-mask belong to one volume; a cohort writes its masks with --mask-dir DIR")
        return cohort.predict_cohort(cohort.CohortRequest.from_args(args))  # from_args refuses what a cohort cannot honour
    if args.mask_dir:
        raise SlicewiseError("--mask-dir writes a cohort's masks (folders, patterns, --workers); for one volume use --mask-out FILE.nii.gz")
    volumes = [load_volume(path, axis=args.axis, volume_index=args.volume_index, skip_damaged=args.skip_damaged) for path in args.volumes]
    for volume in volumes:
        for text in volume.warnings:
            print(f"warning: {volume.source}: {text}", file=sys.stderr)
    sources = _dicom_sources(volumes[0], args) if dicom_out else None  # a source that is not DICOM fails here, before scoring
    if (args.mask_out or args.reference_mask) and len(volumes) > 1:
        raise SlicewiseError(f"--mask-out and --reference-mask belong to one volume; {len(volumes)} volumes were given")
    reference = load_volume(args.reference_mask, axis=volumes[0].axis) if args.reference_mask else None
    entries = None
    if args.labels:
        if len(volumes) > 1:
            raise SlicewiseError(f"--labels holds the labels of one volume; {len(volumes)} volumes were given")
        entries, warnings = review.labels_for(args.labels, volumes[0])
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
    from app.inference import Engine

    engine = Engine()
    user_model = engine.load(args.model, args.normalize, args.unsafe_model, output=args.output, classes=args.classes) if args.model else None
    if uncertainty is not None and uncertainty.method == "ensemble":
        members = [engine.load(path, args.normalize, args.unsafe_model, output=args.output, classes=args.classes) for path in uncertainty.paths]
        uncertainty, user_model = uncertainty.with_members(members), members[0]
    models = [user_model or _builtin(engine, strategy, args) for strategy in strategies]
    if args.mask_out or args.reference_mask:
        from app.segmentation.detect import dense_spec

        if not any(dense_spec(model) for model in models):
            raise SlicewiseError("--mask-out and --reference-mask need a segmentation model (an output map per slice), e.g. --model builtin:lesion")
    results = []
    for volume in volumes:
        runs = []
        for strategy, model in zip(strategies, models):
            bar = ProgressBar(volume.source.name if len(strategies) == 1 else f"{volume.source.name} {strategy.name}", enabled=args.progress)
            prediction = engine.run(
                volume,
                strategy,
                model,
                normalize=args.normalize,
                channels=args.channels,
                batch_size=args.batch_size,
                on_batch=lambda done, total, *_, bar=bar: bar.update(done, total),
                uncertainty=uncertainty,
                reduce=args.reduce,
                mask_threshold=args.mask_threshold,
                overlap=args.overlap,
                fit=args.fit,
            )
            runs.append(prediction)
            for note in prediction.notes:
                print(f"note: {volume.source}: {note}", file=sys.stderr)
        results.append((volume, runs))
        if runs[0].nonfinite_slices:
            print(nonfinite_warning(volume.source, len(runs[0].nonfinite_slices)), file=sys.stderr)
    if args.seg_out and getattr(results[0][1][0], "dense", None) is None:
        raise SlicewiseError(
            f"--seg-out needs a segmentation run (a model that gives a map per pixel); {results[0][1][0].model_name} gives per-slice scores: use --sr-out or --out"
        )
    done = []  # what was written, said once all of it is
    with outs:
        if args.mask_out or reference is not None:
            done += _masks(results[0], reference, args, outs)
        if args.saliency_dir:
            done += _write_saliency(Path(args.saliency_dir), engine, results, strategies, models, selection, args, outs)
        labels = section = None
        if entries is not None:
            labels = {index: entry.value for index, entry in entries.items()}
            section = _agreement(results[0][1], labels, entries, args)
        if args.out:
            table, meta = export.write_predictions(args.out, results, labels, section, outs=outs)
            axes = ", ".join(dict.fromkeys(v.axis_label for v, _ in results))
            done.append(f"wrote {table} and {meta.name} ({sum(v.depth for v, _ in results)} slices, axis: {axes}, {results[0][1][0].device})")
        if dicom_out:
            done += _write_dicom(results[0][0], results[0][1][0], sources, entries, args, outs)
    for line in done:
        print(line, file=sys.stderr)
    if not args.out:
        sys.stdout.write(export.csv_text(results, labels))
    return 0


def _dicom_sources(volume, args: argparse.Namespace):
    """The DICOM images behind ``volume``, found before anything is scored (the output paths are
    the output set's claims)."""
    from app.dicom_export.sources import find_sources

    sources = find_sources(volume, "--seg-out" if args.seg_out else "--sr-out")
    if args.sr_out and not sources.acquired:
        raise SlicewiseError(f"{volume.source}: --sr-out references a source image per slice: use --axis acquired (this volume is sliced {volume.axis})")
    return sources


def _write_dicom(volume, prediction, sources, entries, args: argparse.Namespace, outs=None) -> list[str]:
    """--seg-out from the run's dense map (`Prediction.dense`), --sr-out from its scores, staged
    in ``outs`` (None: written here, both or neither); what to say once they are written."""
    from app.outputs import staged_in

    said = []
    with staged_in(outs) as staged:
        if args.seg_out:
            from app.dicom_export.seg import write_seg

            path = staged.write_with(args.seg_out, lambda tmp: write_seg(tmp, volume, prediction.dense, prediction.model_name, prediction.model_sha256, args.mask_probabilities, sources))
            kind = "probabilities" if args.mask_probabilities else "binary"
            said.append(f"wrote {path} (DICOM SEG, {kind}, {len(prediction.dense.foreground)} segments)")
        if args.sr_out:
            from app.dicom_export.sr import write_sr

            path = staged.write_with(args.sr_out, lambda tmp: write_sr(tmp, volume, prediction, entries, sources=sources))
            said.append(f"wrote {path} (DICOM SR, TID 1500, {volume.depth} slices)")
    return said


def _masks(result, reference, args: argparse.Namespace, outs) -> list[str]:
    """Dice against ``--reference-mask`` (printed, and in the run's sidecar entry); ``--mask-out``
    staged in ``outs``; what to say once it is written."""
    from app.segmentation import dice, mask_export

    volume, runs = result
    prediction = next((p for p in runs if p.dense is not None), None)
    if prediction is None:
        raise SlicewiseError(f"--mask-out and --reference-mask need a segmentation run (a model that gives a map per pixel); {runs[0].model_name} gives per-slice scores")
    if reference is not None:
        scores = dice.dice_scores(prediction.dense, dice.check_grid(reference, volume))
        prediction.segmentation["dice"] = {"reference": str(args.reference_mask), "classes": scores}
        for name, entry in scores.items():
            scored = [v for v in entry["per_slice"] if v is not None]
            worst = f", worst slice {min(scored):.3f}" if scored else ""
            overall = "n/a (both empty)" if entry["dice"] is None else f"{entry['dice']:.3f}"
            print(f"dice of {name} against {args.reference_mask}: {overall} ({len(scored)} slices with either mask{worst})", file=sys.stderr)
            per_slice = " ".join(f"{d}:{v:.3f}" for d, v in enumerate(entry["per_slice"]) if v is not None)
            print(f"  per slice (slice:dice, where either mask has voxels): {per_slice or 'none'}", file=sys.stderr)
    if not args.mask_out:
        return []
    written = outs.write_with(args.mask_out, lambda tmp: mask_export.write_mask(tmp, volume, prediction.dense, args.mask_probabilities))
    return [f"wrote {written} ({'float32 probabilities' if args.mask_probabilities else 'uint8 labels'}, the source's voxel order and affine)"]


def _uncertainty(args: argparse.Namespace):
    """The uncertainty method asked for (`app.uncertainty`), or None; checked before anything loads."""
    from app.uncertainty import from_options

    return from_options(args.mc_dropout, args.tta, args.ensemble, args.mc_seed, model=args.model)


def _write_saliency(folder: Path, engine, results, strategies, models, selection, args: argparse.Namespace, outs) -> list[str]:
    """Saliency maps of the chosen slices, ``folder[/<volume>][/<run>]/slice_0042.npy``, staged
    in ``outs``; what to say once they are written."""
    import numpy as np

    from app import export
    from app.inference.occlusion import saliency_computer
    from app.review import headless as review

    said = []
    computers = [saliency_computer(engine, strategy, model, args.saliency_method, batch_size=args.batch_size) for strategy, model in zip(strategies, models)]
    for volume, runs in results:
        names = export.run_names(runs) if len(runs) > 1 else [runs[0].strategy]
        for computer, prediction, name in zip(computers, runs, names):
            chosen = selection.choose(np.asarray(prediction.scores)[:, 0])
            maps = computer.maps(volume, chosen, args.normalize, channels=args.channels)
            where = folder / volume.source.name if len(results) > 1 else folder
            where = where / name if len(runs) > 1 else where
            about = {
                "volume": str(volume.source),
                "volume_sha256": volume.sha256,
                "axis": volume.axis,
                "run": name,
                "strategy": prediction.strategy,
                "model": {"source": prediction.model_source, "sha256": prediction.model_sha256},
                "method": computer.method,
                **getattr(computer, "settings", {}),  # occlusion: patch and stride, in pixels of the model's input
                "score": (prediction.score_names or [""])[0] or "score",
                "shape": list(volume.shape[1:3]),
            }
            written = review.write_maps(where, maps, about, outs)
            said.append(f"wrote {len(written)} saliency maps ({computer.method}) to {where}")
    return said


def _agreement(runs, labels: dict[int, str], entries, args: argparse.Namespace) -> dict:
    """Print how each score column agrees with the labels; the sidecar's labels section."""
    import numpy as np

    from app import export
    from app.review import headless as review
    from app.review.agreement import agreement

    results = {}
    for run, columns in zip(runs, export.score_columns(runs)):
        for k, column in enumerate(columns):
            results[column] = agreement(np.asarray(run.scores)[:, k], labels, args.threshold)
            print(f"agreement of {column} with {args.labels}:", file=sys.stderr)
            for line in results[column].summary().splitlines():
                print(f"  {line}", file=sys.stderr)
    return review.labels_section(entries, args.labels, args.threshold, results)


def _unsafe_warning(model: str) -> str:
    if model.lower().endswith(".onnx"):
        return f"operators outside the standard ONNX domains are allowed in {model}"
    return f"Keras safe mode is off; {model} may run any code it holds"


def _builtin(engine, strategy, args: argparse.Namespace):
    """The strategy's built-in model, with ``--output`` and ``--classes`` applied."""
    model = engine.builtin(strategy)
    if args.output:
        model = model.with_output(args.output)
    return model.with_classes(args.classes) if args.classes else model


def _demo(args: argparse.Namespace) -> int:
    from app.phantom import write_demo

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    image, labels = write_demo(out, seed=args.seed, depth=args.depth, lesions=args.lesions)
    print(f"wrote {image} and {labels}", file=sys.stderr)
    return 0


def _readers_agree(args: argparse.Namespace) -> int:
    import json

    from app.atomic import check_writable, write_atomic
    from app.review.readers import agreement_of_files

    if len(args.labels) < 2:
        raise SlicewiseError("agreement needs the labels of at least two readers (two or more LABELS files)")
    out = check_writable(args.out, ".json") if args.out else None
    found, files = agreement_of_files(args.labels)
    print(found.summary())
    if out is not None:
        document = {"files": {f.reader: str(f.path) for f in files}, **found.as_dict()}
        write_atomic(out, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
