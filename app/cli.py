"""``slicewise``: the command line — ``predict`` and ``demo`` here; ``gui`` and ``render`` through ``app.ui.launch``.

The only place that prints for users.  Bad input of any kind ends with exit code 2 and one line
``error: …`` on stderr, and no partial output file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from app import __version__, startup
from app.errors import SlicewiseError
from app.strategy_catalog import NAMES as STRATEGY_NAMES
from app.volume import ACQUIRED, AXIS_CHOICES

COMMANDS = ("predict", "render", "demo", "gui")


def _volume_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--axis", choices=AXIS_CHOICES, default=ACQUIRED, help="depth axis of the slices (default: acquired, the scan's own slices shown as the closest anatomical axis)"
    )
    parser.add_argument("--volume-index", type=int, default=0, metavar="N", help="which 3D volume of a 4D file (default: 0)")
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
    parser.add_argument("--model", metavar="FILE", help="a Keras model (.keras, legacy .h5, or a TensorFlow SavedModel folder) instead of the built-in one")
    parser.add_argument("--unsafe-model", action="store_true", help="turn Keras safe mode off: the model file may run code; only for files you trust")
    parser.add_argument(
        "--normalize", metavar="MODE", help="none | minmax | zscore | window:CENTER,WIDTH (default: none for --model, else the built-in model's)"
    )
    parser.add_argument(
        "--channels",
        metavar="RECIPE",
        help="how the model's channels are filled: replicate | neighbors[:K] (slices d-K…d+K) | windows:C,W;C,W;… (one window each) "
        "(default: the model's own, else replicate)",
    )
    parser.add_argument("--output", metavar="NAME", help="which output of a model with several to score (default: the first)")
    parser.add_argument("--classes", metavar="A,B,…", help="names of the output's scores, for columns score_A, score_B … (default: the model's JSON)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="N", help="slices (or windows) per model call (default: 32)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slicewise", description="A volume viewer with per-slice Keras predictions.")
    parser.add_argument("--version", action="version", version=f"slicewise {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{gui,predict,render,demo}")

    gui = sub.add_parser("gui", help="open the viewer (the default: `slicewise [VOLUME]`)")
    gui.add_argument("volume", nargs="?", help="a volume to open (default: the bundled demo)")
    _volume_options(gui)

    predict = sub.add_parser("predict", help="score volumes headless and write a CSV")
    predict.add_argument("volumes", nargs="+", metavar="VOLUME", help="NIfTI/MGH/MINC/Analyze file, DICOM folder or file, .npy/.npz/.pt")
    _volume_options(predict)
    _model_options(predict, "slice", several=True)
    slab = predict.add_argument_group("embedding strategy")
    slab.add_argument("--slab", type=int, metavar="K", help="slices pooled for each slice's score: the K centred on it (default: 3)")
    slab.add_argument("--pool", choices=("mean", "max", "attention"), help="how a slab is pooled (default: mean)")
    predict.add_argument("--out", metavar="FILE.csv", help="write the table here (+ FILE.csv.json sidecar); default: stdout")
    predict.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar on stderr (default: on a terminal)")
    review = predict.add_argument_group("review: saliency maps, agreement with a reader's labels (one volume)")
    review.add_argument("--saliency-dir", metavar="DIR", help="write a saliency map per slice, DIR/slice_0042.npy (float32, the slice's H×W, 0…1), and DIR/saliency.json")
    review.add_argument("--saliency-slices", default="all", metavar="all|top:N|i,j,k", help="the slices that get a map (default: all; top:N: the N highest-scoring)")
    review.add_argument("--labels", metavar="FILE", help="slice labels, a slice_index,label CSV (1, 0, ?): a label column, the agreement printed and put in the sidecar")
    review.add_argument("--threshold", type=float, default=0.5, help="a slice scoring above it counts as positive, for sensitivity and specificity (default: 0.5)")
    cohort = predict.add_argument_group("cohorts (folders, glob patterns) on Dask")
    cohort.add_argument("--workers", type=int, metavar="N", help="score on a local Dask cluster of N worker processes")
    cohort.add_argument("--scheduler", metavar="ADDRESS", help="score on an existing Dask cluster, e.g. tcp://10.0.0.5:8786")

    render = sub.add_parser("render", help="draw the viewer offscreen to a PNG (after scoring, if asked)")
    render.add_argument("volume", help="the volume to show")
    render.add_argument("--out", required=True, metavar="FILE.png")
    render.add_argument("--slice", type=int, metavar="N", help="slice to show (default: the middle one)")
    render.add_argument("--size", default="1280x800", metavar="WxH", help="window size (default: 1280x800)")
    render.add_argument("--layout", choices=("single", "ortho"), default="single", help="one view, or the three planes with a crosshair")
    render.add_argument("--neurological", action="store_true", help="patient's left on the screen's left (default: radiological)")
    render.add_argument("--saliency", action="store_true", help="overlay the saliency map of the shown slice (scores with the slice strategy unless --strategy says)")
    _volume_options(render)
    _model_options(render, None, several=True)

    demo = sub.add_parser("demo", help="write a synthetic phantom with lesion labels")
    demo.add_argument("--out", required=True, metavar="DIR")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--depth", type=int, default=64)
    demo.add_argument("--lesions", type=int, metavar="N", help="number of lesions (0: a lesion-free phantom; default: the seed's own)")
    return parser


VIEWER_COMMANDS = ("gui", "render")  # run by app.ui.launch, which hands them in as ``viewer``

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
        return {"predict": _predict, "demo": _demo}[args.command](args)
    except SlicewiseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


@startup.quick_start  # no garbage collection passes while torch and TensorFlow import
def _predict(args: argparse.Namespace) -> int:
    from app import export
    from app.atomic import check_writable
    from app.io import load_volume
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
        print(f"warning: --unsafe-model: Keras safe mode is off; {args.model} may run any code it holds", file=sys.stderr)
    from app import cohort, review

    selection = review.parse_slice_selection(args.saliency_slices)  # a bad selection fails before anything loads
    if args.workers or args.scheduler or cohort.is_cohort(args.volumes):
        return cohort.predict_cohort(cohort.CohortRequest.from_args(args))  # from_args refuses what a cohort cannot honour
    volumes = [load_volume(path, axis=args.axis, volume_index=args.volume_index, skip_damaged=args.skip_damaged) for path in args.volumes]
    for volume in volumes:
        for text in volume.warnings:
            print(f"warning: {volume.source}: {text}", file=sys.stderr)
    if args.out:
        check_writable(args.out)
    entries = None
    if args.labels:
        if len(volumes) > 1:
            raise SlicewiseError(f"--labels holds the labels of one volume; {len(volumes)} volumes were given")
        entries, warnings = review.labels_for(args.labels, volumes[0])
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
    from app.inference import Engine

    engine = Engine()
    user_model = engine.load(args.model, args.normalize or "none", args.unsafe_model, output=args.output, classes=args.classes) if args.model else None
    models = [user_model or _builtin(engine, strategy, args) for strategy in strategies]
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
            )
            runs.append(prediction)
            for note in prediction.notes:
                print(f"note: {volume.source}: {note}", file=sys.stderr)
        results.append((volume, runs))
        if runs[0].nonfinite_slices:
            print(nonfinite_warning(volume.source, len(runs[0].nonfinite_slices)), file=sys.stderr)
    if args.saliency_dir:
        _write_saliency(Path(args.saliency_dir), engine, results, strategies, models, selection, args)
    labels = section = None
    if entries is not None:
        labels = {index: entry.value for index, entry in entries.items()}
        section = _agreement(results[0][1], labels, entries, args)
    if args.out:
        table, meta = export.write_predictions(args.out, results, labels, section)
        axes = ", ".join(dict.fromkeys(v.axis_label for v, _ in results))
        print(f"wrote {table} and {meta.name} ({sum(v.depth for v, _ in results)} slices, axis: {axes}, {results[0][1][0].device})", file=sys.stderr)
    else:
        sys.stdout.write(export.csv_text(results, labels))
    return 0


def _write_saliency(folder: Path, engine, results, strategies, models, selection, args: argparse.Namespace) -> None:
    """Saliency maps of the chosen slices: ``folder[/<volume>][/<run>]/slice_0042.npy``."""
    import numpy as np

    from app import export, review
    from app.inference.saliency import SaliencyComputer

    computers = [SaliencyComputer(engine, strategy, model, batch_size=args.batch_size) for strategy, model in zip(strategies, models)]
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
                "score": (prediction.score_names or [""])[0] or "score",
                "shape": list(volume.shape[1:3]),
            }
            written = review.write_maps(where, maps, about)
            print(f"wrote {len(written)} saliency maps ({computer.method}) to {where}", file=sys.stderr)


def _agreement(runs, labels: dict[int, str], entries, args: argparse.Namespace) -> dict:
    """Print how each score column agrees with the labels; the sidecar's labels section."""
    import numpy as np

    from app import export, review
    from app.agreement import agreement

    results = {}
    for run, columns in zip(runs, export.score_columns(runs)):
        for k, column in enumerate(columns):
            results[column] = agreement(np.asarray(run.scores)[:, k], labels, args.threshold)
            print(f"agreement of {column} with {args.labels}:", file=sys.stderr)
            for line in results[column].summary().splitlines():
                print(f"  {line}", file=sys.stderr)
    return review.labels_section(entries, args.labels, args.threshold, results)


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
