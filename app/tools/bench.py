"""Speed figures, measured side by side in one run: ``python -m app.tools.bench [--quick] [--json FILE] [--only A,B]``.

Each figure is a ratio of two times taken in the same process, one after the other and
interleaved (or in fresh processes started one after the other), so it holds on a noisy machine;
both raw times are printed with it.  No test asserts a time.

=====================  ==========================================================  ==========
figure                 what is timed                                                target
=====================  ==========================================================  ==========
seed_loop_speedup      the seed article's Example 1 (one ``predict`` per slice) on   >= 50 x
                       its 4x10x64x64x3 tensor / the ``slice`` strategy, same model
vs_bare_call           the ``slice`` strategy on 300 slices (one batch) / one bare   <= 1.1 x
                       traced ``model(x)`` call on the same batch, prepared
mc_dropout_vs_bare     ``slice`` strategy with ``--mc-dropout 20`` on 300 slices      <= 1.1 x
                       (batches of 32: each tiled 20 times, one call) / 20 bare
                       traced calls of the same always-on-dropout model per
                       prepared batch of 32 (no mean, no sd)
onnx_vs_bare_run       ``slicewise predict``'s run of an ONNX model (`UserCnn`        <= 1.1 x
                       exported by torch, NCHW, 256x256) on 120 slices (60 quick),
                       batches of 32 / a bare ``InferenceSession.run`` loop over
                       the same batches, prepared (normalised, NCHW)
load_vs_nibabel        ``load_volume`` of a 512x512x300 int16 ``.nii.gz`` (when it   <= 0.5 x
                       returns, the viewer can show it) / ``nibabel.load(f)
                       .get_fdata(dtype=float32)``
scrub_p95_ms           slider change -> repaint done, 512x512 slices, 200 random     <= 16 ms
                       steps while the worker scores (95th percentile)
mask_scrub_p95_ms      three views with a segmentation map's overlay on (filled):    <= 16 ms
                       slider change -> all three repainted, 512x512, while the
                       worker scores and the map streams in (95th percentile)
crosshair_p95_ms       three views: crosshair moved -> all three repainted, 512x512   <= 16 ms
                       x300, random voxels while the worker scores (95th pct)
saliency_ms            slice change -> its saliency overlay shown, 512x512, the      <= 250 ms
                       built-in slice model, computed on the worker (median)
startup_vs_import      ``slicewise`` launch -> main window painted / ``import        <= 0.25 x
                       torch, tensorflow``, each in a fresh process
whole_job_vs_script    ``slicewise predict BRAIN --strategy slice --out s.csv`` /    <= 0.8 x
                       the script a user would write instead
                       (``app/tools/user_script.py``: nibabel, the same window,
                       tf.image.resize, the same model through one
                       ``model.predict``, csv), fresh processes in turns; the worse
                       of two 197x233x189 brains: an int16 scan and a uint8 template
ui_stall_ms            longest gap between ticks of a 5 ms QTimer from the window    <= 50 ms
                       shown: a 512x512x300 volume opened, scored a first time
                       (TensorFlow starts on the worker), then scored again
gui_vs_cli_throughput  ``slicewise predict``'s engine (all cores) / the viewer's       >= 0.9 x
                       worker (its default threads, low priority), seconds per warm
                       run of a user-sized CNN (256x256 input) on 512x512x300
onnx_gui_vs_cli        ``gui_vs_cli_throughput`` with that CNN exported from         >= 0.9 x
                       PyTorch to ONNX (served by ONNX Runtime in both)
peak_mem_ratio         peak extra resident memory while that volume is opened and    <= 2 x
                       scored / its float32 size
worklist_open_ms       ``slicewise review``: a 10 000-case results CSV (32 slices    <= 1000 ms
                       each) + sidecar parsed -> the worklist painted; with the p95
                       of a random scroll step's repaint (<= 16 ms)
seg_peak_mem_ratio     the same with the built-in lesion U-Net (a one-class map,    <= 2.5 x
                       uint8) on 512x512x300, its label map made; a fresh process
                       (``app/tools/seg_memory.py``)
seg_whole_job_vs_script ``slicewise predict BRAIN --model UNET --normalize minmax    <= 0.9 x
                       --out a.csv --mask-out m.nii.gz`` with a 4-level U-Net of
                       128x128 input (tiles, 25 % overlap) / the script a user would
                       write (``app/tools/user_seg_script.py``), fresh processes
compressed_load_vs_    ``load_volume`` of a 300-slice JPEG 2000 series (256x256       <= 1.0 x
inprocess              int16 slices), frames decoded in the isolated decoder pool
                       (warm) / the same decoded in this process, serially
=====================  ==========================================================  ==========

The GUI figures run in fresh processes (``python -m app.ui.bench_ui``); this module itself
never imports Qt.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

BIG_SIZE = 512  # slice side of the large volume
BIG_DEPTH = 300


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    target: str  # e.g. ">= 50" or "<= 1.1"
    raw: dict[str, float]
    notes: str = ""
    met: bool = field(init=False)

    def __post_init__(self) -> None:
        op, bound = self.target.split()
        self.met = bool(self.value >= float(bound) if op == ">=" else self.value <= float(bound))

    def line(self) -> str:
        raw = "  ".join(f"{k}={v:.4g}" for k, v in self.raw.items())
        return f"{self.name} {self.value:.3g} {self.unit}  (target {self.target}: {'met' if self.met else 'NOT met'}; {raw})"


@dataclass
class Context:
    """What the figures share: repeats, a work folder, one engine, one large volume file."""

    quick: bool
    workdir: Path
    _engine: object = None

    @property
    def repeats(self) -> int:
        return 3 if self.quick else 7

    @property
    def big_depth(self) -> int:
        return 60 if self.quick else BIG_DEPTH

    def engine(self):
        if self._engine is None:
            from app.inference import Engine

            self._engine = Engine()
        return self._engine

    def big_volume(self, depth: int | None = None) -> Path:
        """A 512 x 512 x depth int16 CT-like phantom (default: ``big_depth``), written once by
        nibabel as ``.nii.gz``."""
        depth = depth or self.big_depth
        path = self.workdir / f"phantom_{BIG_SIZE}x{BIG_SIZE}x{depth}.nii.gz"
        if not path.exists():
            import nibabel as nib

            from app.phantom import make_phantom

            nib.save(make_phantom(seed=0, depth=depth, size=BIG_SIZE).image, path)
        return path

    def brain_volume(self, dtype: str = "int16") -> Path:
        """A 197 x 233 x 189 T1-like brain (the MNI152 1 mm grid), written once by nibabel:
        ``int16`` (about 10 MiB as ``.nii.gz``, a scan) or ``uint8`` (about 2 MiB, a template)."""
        path = self.workdir / f"brain_197x233x189_{dtype}.nii.gz"
        if not path.exists():
            import nibabel as nib

            nib.save(brain_phantom() if dtype == "int16" else brain_template(), path)
        return path


MNI_AFFINE = np.array([[1, 0, 0, -98], [0, 1, 0, -134], [0, 0, 1, -72], [0, 0, 0, 1]], float)  # the MNI152 1 mm grid's


def _head(shape: tuple[int, int, int], seed: int, scale: float, noise: float, quiet_background: bool) -> np.ndarray:
    """A T1-weighted-looking head, float32: scalp, dark skull, CSF, folded grey matter, white
    matter, ventricles and Gaussian noise (``scale`` times the int16 scan's values)."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n, dtype=np.float32) for n in shape), indexing="ij", sparse=True)
    r = np.sqrt((x / 0.78) ** 2 + (y / 0.86) ** 2 + ((z + 0.05) / 0.80) ** 2)
    folds = 0.04 * np.sin(9 * x + 3 * z) * np.cos(7 * y)
    head = np.zeros(shape, np.float32)
    for radius, value in ((1.0, 250), (0.93, 60), (0.88, 350)):  # scalp, skull, CSF
        head[r < radius] = value * scale
    head[r + folds < 0.84] = 620 * scale  # grey matter
    head[r + 1.5 * folds < 0.66] = 880 * scale  # white matter
    head[(x / 0.12) ** 2 + (y / 0.3) ** 2 + ((z - 0.05) / 0.18) ** 2 < 1] = 350 * scale  # ventricles
    speckle = rng.normal(0, noise, shape).astype(np.float32)
    head += np.where(r < 1.0, speckle, 0) if quiet_background else speckle
    return np.abs(head)


def brain_phantom(shape: tuple[int, int, int] = (197, 233, 189), seed: int = 0):
    """An int16 T1-like head as a ``Nifti1Image``, noisy everywhere (about 10 MiB as ``.nii.gz``,
    as a real scan of that size).  Only its size and values matter here: the figure times a
    whole job."""
    import nibabel as nib

    return nib.Nifti1Image(_head(shape, seed, 1.0, 25, False).astype(np.int16), MNI_AFFINE)


def brain_template(shape: tuple[int, int, int] = (197, 233, 189), seed: int = 0):
    """A uint8 T1-like head as a ``Nifti1Image``, as a 1 mm brain template is stored (the
    ICBM 2009 / MNI152 grid, 197 x 233 x 189, values 0-255, a noise-free zero background):
    about 2 MiB as ``.nii.gz`` (such a template gzips to 1.6 MB).  Generated here rather than
    taken from a package: none installed ships one, and nothing is downloaded."""
    import nibabel as nib

    image = nib.Nifti1Image(np.clip(np.rint(_head(shape, seed, 0.2, 5, True)), 0, 255).astype(np.uint8), MNI_AFFINE)
    image.set_data_dtype(np.uint8)
    return image


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` timed calls (the least disturbed by the machine)."""
    return interleaved({"fn": fn}, repeats)["fn"]


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """The fastest of ``repeats`` timed calls of each function, taken in turns (A B A B ...), so
    that a disturbance of the machine hits both sides alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            t0 = time.perf_counter()
            result = fn()
            times[name].append(time.perf_counter() - t0)
            del result
    return {name: min(values) for name, values in times.items()}


# -- inference ------------------------------------------------------------------------------


def seed_loop_speedup(ctx: Context) -> Figure:
    """The seed article's Example 1 (one ``predict`` per slice) against the ``slice`` strategy."""
    from app.inference.models import LoadedModel, spec_of
    from app.strategies import get_strategy
    from app.tools.seed_models import seed_slice_model
    from app.volume import Volume

    engine = ctx.engine()
    engine.start()
    batch, depth, height, width, channels = 4, 10, 64, 64, 3
    tensor = torch.rand(batch, depth, height, width, channels, generator=torch.Generator().manual_seed(0))
    model = seed_slice_model(height, width, channels)

    def seed_loop():
        return np.stack([np.stack([model.predict(tensor[b, d].numpy()[None], verbose=0) for d in range(depth)]) for b in range(batch)])

    loaded = LoadedModel(model, "seed-example-1", "", "none", spec_of(model))
    volumes = [Volume.from_tensor(tensor[b]) for b in range(batch)]
    strategy = get_strategy("slice")

    def slicewise():
        return [engine.run(v, strategy, loaded).scores for v in volumes]

    ours = np.stack(slicewise())
    np.testing.assert_allclose(ours, seed_loop().reshape(ours.shape), rtol=1e-4, atol=1e-5)  # same numbers
    t = interleaved({"seed_loop_s": seed_loop, "slicewise_s": slicewise}, ctx.repeats)
    return Figure("seed_loop_speedup", t["seed_loop_s"] / t["slicewise_s"], "x", ">= 50", t)


def vs_bare_call(ctx: Context, depth: int = 300) -> Figure:
    """The ``slice`` strategy on a 300-slice volume at the model's input size, as one batch,
    against one bare traced ``model(x)`` call on the same batch, already normalised and in
    TensorFlow: what Slicewise adds to the model call (checks, normalisation, hand-over, scores).

    Also timed: the strategy at its default batch size (32, as the viewer and ``slicewise
    predict`` run it) and bare calls on batches of 32 (the limit for that batch size)."""
    from app import preprocessing
    from app.strategies import get_strategy
    from app.volume import Volume

    engine = ctx.engine()
    strategy = get_strategy("slice")
    model = engine.builtin(strategy)
    height, width, channels = model.spec.input_shape
    volume = Volume.from_tensor(torch.randn(depth, height, width, channels, generator=torch.Generator().manual_seed(1)) * 300)
    tf = engine.runtime.tf
    prepared_np = preprocessing.fit(model.normalize, volume.data)(volume.data).numpy()
    prepared = tf.constant(prepared_np)
    chunks = [tf.constant(prepared_np[i : i + 32]) for i in range(0, depth, 32)]
    bare = tf.function(lambda x: model.keras_model(x, training=False), input_signature=[tf.TensorSpec((None, height, width, channels), tf.float32)], autograph=False)

    def bare_call():
        return bare(prepared).numpy()

    def bare_calls_of_32():
        return [bare(c).numpy() for c in chunks]

    def slicewise():
        return engine.run(volume, strategy, model, batch_size=depth).scores

    def slicewise_batches_of_32():
        return engine.run(volume, strategy, model).scores

    np.testing.assert_allclose(slicewise(), bare_call(), rtol=1e-4, atol=1e-5)
    bare_calls_of_32(), slicewise_batches_of_32()
    t = interleaved(
        {"slicewise_s": slicewise, "bare_call_s": bare_call, "slicewise_batches_of_32_s": slicewise_batches_of_32, "bare_calls_of_32_s": bare_calls_of_32},
        ctx.repeats * 3,
    )
    return Figure("vs_bare_call", t["slicewise_s"] / t["bare_call_s"], "x", "<= 1.1", t)


def mc_dropout_vs_bare(ctx: Context, passes: int = 20) -> Figure:
    """MC dropout through Slicewise (fitting, normalisation, the passes tiled into one call per
    batch, mean and sd) against ``passes`` bare traced calls of the same always-on-dropout model
    on each prepared batch of 32: what the method costs beyond the model's own passes."""
    import keras

    from app import preprocessing
    from app.inference.models import LoadedModel, spec_of
    from app.strategies import get_strategy
    from app.uncertainty import Uncertainty
    from app.uncertainty.dropout import mc_dropout_model
    from app.volume import Volume

    engine = ctx.engine()
    engine.start()
    strategy = get_strategy("slice")
    keras.utils.set_random_seed(2)
    layers = keras.layers
    net = keras.Sequential(
        [keras.Input((64, 64, 1)), layers.Conv2D(16, 3, activation="relu", padding="same"), layers.MaxPooling2D(2), layers.Conv2D(32, 3, activation="relu", padding="same"),
         layers.MaxPooling2D(2), layers.Conv2D(32, 3, activation="relu", padding="same"), layers.GlobalMaxPooling2D(), layers.Dropout(0.3), layers.Dense(16, activation="relu"),
         layers.Dropout(0.3), layers.Dense(1, activation="sigmoid")]
    )
    model = LoadedModel(net, "bench-dropout", "", "window:60,200", spec_of(net))
    depth = 60 if ctx.quick else 300
    volume = Volume.from_tensor(torch.randn(depth, 64, 64, 1, generator=torch.Generator().manual_seed(3)) * 300)
    tf = engine.runtime.tf
    prepared = preprocessing.fit(model.normalize, volume.data)(volume.data).numpy()
    chunks = [tf.constant(prepared[i : i + 32]) for i in range(0, depth, 32)]
    twin = mc_dropout_model(net, model.name, 0).keras_model
    bare = tf.function(lambda x: twin(x, training=False), input_signature=[tf.TensorSpec((None, 64, 64, 1), tf.float32)], autograph=False)
    method = Uncertainty("mc-dropout", passes=passes)

    def bare_calls():
        return [[bare(c).numpy() for _ in range(passes)] for c in chunks]

    def slicewise():
        return engine.run(volume, strategy, model, uncertainty=method).scores

    bare_calls(), slicewise()  # traced, warm
    t = interleaved({"slicewise_s": slicewise, "bare_calls_s": bare_calls}, ctx.repeats)
    return Figure("mc_dropout_vs_bare", t["slicewise_s"] / t["bare_calls_s"], "x", "<= 1.1", {**t, "passes": passes, "slices": depth})


def onnx_vs_bare_run(ctx: Context) -> Figure:
    """An ONNX model (a torch export, `app.tools.torch_models`) scored by the engine, batches of
    32, against a bare ``InferenceSession.run`` loop (the same session options: threads, no
    spinning) over the same batches already normalised and channels-first: what Slicewise adds
    to ONNX Runtime (fitting, the NHWC → NCHW hand-over, scores)."""
    import onnxruntime as ort

    from app import preprocessing
    from app.inference.onnx_model import session_options
    from app.strategies import get_strategy
    from app.tools.torch_models import export_user_cnn
    from app.volume import Volume

    path = export_user_cnn(ctx.workdir / "user_cnn.onnx")
    engine = ctx.engine()
    strategy = get_strategy("slice")
    model = engine.load(path)
    height, width, channels = model.spec.input_shape
    depth = 60 if ctx.quick else 120
    volume = Volume.from_tensor(torch.randn(depth, height, width, channels, generator=torch.Generator().manual_seed(1)) * 300)
    prepared = preprocessing.fit(model.normalize, volume.data)(volume.data).numpy().transpose(0, 3, 1, 2)
    chunks = [np.ascontiguousarray(prepared[i : i + 32]) for i in range(0, depth, 32)]
    session = ort.InferenceSession(str(path), session_options(None), providers=model.whole.session.get_providers())

    def bare_run():
        return [session.run(None, {"image": c})[0] for c in chunks]

    def slicewise():
        return engine.run(volume, strategy, model).scores

    np.testing.assert_allclose(slicewise(), np.concatenate(bare_run()), rtol=1e-4, atol=1e-5)
    t = interleaved({"slicewise_s": slicewise, "bare_run_s": bare_run}, ctx.repeats)
    return Figure("onnx_vs_bare_run", t["slicewise_s"] / t["bare_run_s"], "x", "<= 1.1", t, notes=model.keras_model.device_label)


# -- loading --------------------------------------------------------------------------------


def load_vs_nibabel(ctx: Context) -> Figure:
    """``load_volume`` (returns a float32 Volume laid out for display, hashed: what the viewer
    waits for) against ``nibabel.load(f).get_fdata(dtype=float32)`` on a 512x512x300 int16
    ``.nii.gz`` written by nibabel."""
    import nibabel as nib

    from app.io import load_volume

    path = ctx.big_volume()

    def slicewise():
        return load_volume(path)

    def nibabel():
        return nib.load(path).get_fdata(dtype=np.float32)

    slicewise(), nibabel()  # page cache and allocator warm for both
    t = interleaved({"slicewise_s": slicewise, "nibabel_s": nibabel}, max(3, ctx.repeats - 2))
    raw = {**t, "file_mib": path.stat().st_size / 2**20, "depth": ctx.big_depth}
    return Figure("load_vs_nibabel", t["slicewise_s"] / t["nibabel_s"], "x", "<= 0.5", raw)


# -- the viewer (fresh processes) -------------------------------------------------------------


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}


def _ui_child(ctx: Context, what: str, *args: str, timeout: float = 600) -> dict:
    """Run ``python -m app.ui.bench_ui WHAT ...`` and return the JSON it ends with."""
    cmd = [sys.executable, "-m", "app.ui.bench_ui", what, *args, *(["--quick"] if ctx.quick else [])]
    return _run_child(ctx, cmd, " ".join(cmd[2:]), timeout, result=True)


def _run_child(ctx: Context, cmd: list[str], name: str, timeout: float, result: bool = False) -> dict:
    """Run ``cmd`` in a fresh process (the bench's folder and environment); with ``result``, the
    JSON of the ``RESULT {json}`` line it prints last (else {}).  A failure, or no such line,
    raises RuntimeError naming ``name``, with the tail of the child's stderr."""
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout, cwd=ctx.workdir)
    results = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or (result and not results):
        raise RuntimeError(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(results[-1][len("RESULT ") :]) if result else {}


def _step_raw(r: dict, *parts: str) -> dict[str, float]:
    keys = [f"{part}{k}" for part in ("", *parts) for k in ("p95_ms", "median_ms", "max_ms")]
    return {k: r[k] for k in keys} | {"steps": r["steps"]}


def scrub_p95_ms(ctx: Context) -> Figure:
    r = _ui_child(ctx, "scrub", str(ctx.big_volume()), "--steps", "100" if ctx.quick else "200")  # a 95th percentile of 50 steps swung 14-21 ms
    return Figure("scrub_p95_ms", r["p95_ms"], "ms", "<= 16", _step_raw(r, "idle_", "saliency_"),
                  notes=f"while the worker scores; idle_: no job; saliency_: overlay on ({r['saliency_method']})")


def mask_scrub_p95_ms(ctx: Context) -> Figure:
    r = _ui_child(ctx, "mask", str(ctx.big_volume()), "--steps", "100" if ctx.quick else "200")
    return Figure("mask_scrub_p95_ms", r["p95_ms"], "ms", "<= 16", _step_raw(r, "idle_", "heat_") | {"map_blocks": r["map_blocks"]},
                  notes="three views, overlay filled, while the worker scores (the built-in classifier; a fixed map of the "
                        "volume streamed into its run as its scores arrive, through Session.add_map); idle_: no job; heat_: heat mode")


def crosshair_p95_ms(ctx: Context) -> Figure:
    r = _ui_child(ctx, "crosshair", str(ctx.big_volume()), "--steps", "100" if ctx.quick else "200")
    return Figure("crosshair_p95_ms", r["p95_ms"], "ms", "<= 16", _step_raw(r, "idle_"), notes="while the worker scores; idle_: no job")


def saliency_ms(ctx: Context) -> Figure:
    r = _ui_child(ctx, "saliency", str(ctx.big_volume()), "--steps", "10" if ctx.quick else "30")
    raw = {"median_ms": r["median_ms"], "p95_ms": r["p95_ms"], "max_ms": r["max_ms"], "steps": r["steps"]}
    return Figure("saliency_ms", r["median_ms"], "ms", "<= 250", raw, notes=r["method"])


def _time_to_line(cmd: list[str], marker: str, timeout: float = 300) -> float:
    """Seconds from starting ``cmd`` until it prints a line starting with ``marker``; then it is ended."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env())
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith(marker):
                return time.perf_counter() - t0
        raise RuntimeError(f"{' '.join(cmd)} ended without printing {marker!r}")
    finally:
        proc.kill()
        proc.wait(timeout)


def startup_vs_import(ctx: Context) -> Figure:
    """``slicewise`` launch (its CLI module, the QApplication, the main window shown and
    painted) against ``import torch, tensorflow``, each in a fresh process, in turns."""
    launch = [sys.executable, "-m", "app.ui.bench_ui", "startup"]
    window_only = [sys.executable, "-m", "app.ui.bench_ui", "startup", "--window-only"]
    imports = [sys.executable, "-c", "import torch, tensorflow; print('imported', flush=True)"]
    interpreter = [sys.executable, "-c", "print('started', flush=True)"]
    runs = {"launch_s": (launch, "shown"), "import_torch_tensorflow_s": (imports, "imported"), "window_only_s": (window_only, "shown"), "python_s": (interpreter, "started")}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(max(3, ctx.repeats - 2)):
        for name, (cmd, marker) in runs.items():
            times[name].append(_time_to_line(cmd, marker))
    t = {name: min(v) for name, v in times.items()}
    return Figure("startup_vs_import", t["launch_s"] / t["import_torch_tensorflow_s"], "x", "<= 0.25", t)


USER_SCRIPT = Path(__file__).with_name("user_script.py")


def whole_job_vs_script(ctx: Context) -> Figure:
    """``slicewise predict`` against the script a user would write instead
    (`app.tools.user_script`), each a fresh process, in turns (A B A B), on two brains of the
    MNI152 1 mm grid: the int16 scan (10 MiB as ``.nii.gz``) and the uint8 template (2 MiB),
    where start-up is nearly all of the job.  The figure is the worse of the two ratios; every
    table is checked against the script's."""
    brains = {"": ctx.brain_volume("int16"), "uint8_": ctx.brain_volume("uint8")}
    cmds, outs = {}, {}
    for tag, brain in brains.items():
        for side in ("slicewise", "script"):
            name, out = f"{tag}{side}_s", ctx.workdir / f"{tag}{side}.csv"
            outs[name] = out
            cmds[name] = (
                [sys.executable, "-m", "app", "predict", str(brain), "--strategy", "slice", "--out", str(out)]
                if side == "slicewise"
                else [sys.executable, str(USER_SCRIPT), str(brain), str(out)]
            )

    def run(name: str) -> None:
        _run_child(ctx, cmds[name], " ".join(cmds[name][1:4]), 600)

    t = interleaved({name: (lambda name=name: run(name)) for name in cmds}, 3 if ctx.quick else 5)
    raw = dict(t)
    for tag in brains:
        ours, theirs = (np.loadtxt(outs[f"{tag}{side}_s"], delimiter=",", skiprows=1, usecols=col, ndmin=1) for side, col in (("slicewise", 3), ("script", 1)))
        if ours.shape != theirs.shape:
            raise RuntimeError(f"slicewise scored {ours.size} slices, the script {theirs.size}")
        raw[f"{tag}ratio"] = t[f"{tag}slicewise_s"] / t[f"{tag}script_s"]
        raw[f"{tag}score_mean_abs_diff"] = float(np.mean(np.abs(ours - theirs)))  # resizing differs (antialiased here)
    raw["slices"] = float(ours.size)
    return Figure("whole_job_vs_script", max(raw["ratio"], raw["uint8_ratio"]), "x", "<= 0.8", raw,
                  notes="the worse of the int16 scan's ratio and the uint8 template's (uint8_)")


def ui_stall_ms(ctx: Context) -> Figure:
    r = _ui_child(ctx, "stall", str(ctx.big_volume()))
    keys = ("max_gap_ms", "first_run_max_gap_ms", "opening_max_gap_ms", "later_max_gap_ms", "p99_gap_ms", "first_run_s", "scoring_s", "runs", "ticks")
    return Figure("ui_stall_ms", r["max_gap_ms"], "ms", "<= 50", {k: r[k] for k in keys})


def gui_vs_cli_throughput(ctx: Context, onnx: bool = False) -> Figure:
    """A warm scoring run in the viewer (its worker at low priority with its default threads,
    the scores streamed to the plot) against the same run by ``slicewise predict``'s engine:
    the slice strategy with a user-sized CNN (`app.tools.seed_models.user_cnn`, 256 x 256
    input) on the 512 x 512 x 300 volume, in both modes (on fewer slices the viewer's fixed
    cost per run, its start and finish handling, would be most of what is timed).  Beside it,
    the viewer with one core left free (cores - 1 threads); ``scrub_p95_ms`` and
    ``ui_stall_ms`` measure the default while it scores.  ``onnx``: the same CNN exported from
    PyTorch (`app.tools.torch_models`), served by ONNX Runtime in both."""
    from app.io import load_volume
    from app.strategies import get_strategy

    if onnx:
        from app.tools.torch_models import export_user_cnn

        model_path = export_user_cnn(ctx.workdir / "user_cnn.onnx")
    else:
        from app.tools.seed_models import user_cnn

        model_path = ctx.workdir / "user_cnn.keras"
        user_cnn().save(model_path)
    path = str(ctx.big_volume(BIG_DEPTH))
    engine = ctx.engine()
    strategy = get_strategy("slice")
    model = engine.load(model_path)
    volume = load_volume(path)
    engine.run(volume, strategy, model)  # warm
    cli = best_of(lambda: engine.run(volume, strategy, model), 5)  # as many runs as the viewer's (both modes)
    gui = _ui_child(ctx, "throughput", path, "--model", str(model_path))
    raw = {"cli_s": cli, "gui_s": gui["run_s"], "gui_threads": gui["threads"]}
    if (os.cpu_count() or 1) > 1:
        fewer = _ui_child(ctx, "throughput", path, "--model", str(model_path), "--threads", str((os.cpu_count() or 2) - 1))
        raw |= {"gui_cores_minus_one_s": fewer["run_s"]}
    return Figure("onnx_gui_vs_cli" if onnx else "gui_vs_cli_throughput", cli / gui["run_s"], "x", ">= 0.9", raw)


def onnx_gui_vs_cli(ctx: Context) -> Figure:
    return gui_vs_cli_throughput(ctx, onnx=True)


def peak_mem_ratio(ctx: Context) -> Figure:
    r = _ui_child(ctx, "memory", str(ctx.big_volume(BIG_DEPTH)))  # both modes: on 60 slices the fixed part would be the figure
    raw = {"peak_extra_mib": r["peak_extra_mib"], "float32_mib": r["float32_mib"], "baseline_mib": r["baseline_mib"], "after_mib": r["after_mib"]}
    return Figure("peak_mem_ratio", r["peak_extra_mib"] / r["float32_mib"], "x", "<= 2", raw)


WORKLIST_CASES, WORKLIST_DEPTH = 10_000, 32


def cohort_results(folder: Path, cases: int = WORKLIST_CASES, depth: int = WORKLIST_DEPTH) -> Path:
    """A cohort's results as ``slicewise predict`` on a folder writes them (table + sidecar), for
    ``cases`` volumes of ``depth`` slices with random scores; the volumes themselves are absent."""
    import numpy as np

    from app.atomic import write_atomic

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    scores = rng.random((cases, depth)) ** 3
    lines = ["volume,slice_index,position_mm,score"]
    volumes = []
    for case in range(cases):
        name = str(folder / f"case{case:05d}.nii.gz")
        lines.extend(f"{name},{d},{2.5 * d:.3f},{scores[case, d]:.8g}" for d in range(depth))
        volumes.append({"path": name, "status": "ok", "sha256": f"{case:064x}", "shape": [depth, 512, 512, 1], "axis": "axial", "volume_index": 0,
                        "volume_score": None, "runs": [{"name": "slice", "volume_score": None}]})  # fmt: skip
    out = folder / "results.csv"
    run = {"name": "slice", "columns": ["score"], "strategy": "slice", "model": {"source": "built-in:slice", "sha256": "0" * 64}, "normalize": "none"}
    write_atomic(out, "\n".join(lines) + "\n")
    write_atomic(out.with_name(out.name + ".json"), json.dumps({"runs": [run], "volumes": volumes}) + "\n")
    return out


def worklist_open_ms(ctx: Context) -> Figure:
    results = cohort_results(ctx.workdir / "cohort")
    r = _ui_child(ctx, "worklist", str(results), "--steps", "50" if ctx.quick else "100")
    raw = {k: r[k] for k in ("parse_ms", "table_ms", "cases", "rows", "scroll_p95_ms", "scroll_median_ms", "scroll_max_ms", "steps")}
    return Figure("worklist_open_ms", r["open_ms"], "ms", "<= 1000", raw, notes=f"scroll step repaint p95 {r['scroll_p95_ms']:.1f} ms (target <= 16)")


def seg_peak_mem_ratio(ctx: Context) -> Figure:
    cmd = [sys.executable, "-m", "app.tools.seg_memory", str(ctx.big_volume(BIG_DEPTH))]
    r = _run_child(ctx, cmd, "app.tools.seg_memory", 900, result=True)
    raw = {k: r[k] for k in ("peak_extra_mib", "float32_mib", "map_mib", "baseline_mib")}
    return Figure("seg_peak_mem_ratio", r["peak_extra_mib"] / r["float32_mib"], "x", "<= 2.5", raw)


def seg_whole_job_vs_script(ctx: Context) -> Figure:
    """``slicewise predict`` with a 4-level U-Net (`app.tools.seed_models.user_unet`, 128 x 128
    input: tiles) on the brain-sized volume, areas and mask written, against the script a user
    would write (`app.tools.user_seg_script`), fresh processes in turns; both tables checked."""
    from app.tools.seed_models import user_unet

    brain, unet = ctx.brain_volume(), ctx.workdir / "unet.keras"
    user_unet().save(unet)
    outs = {"slicewise_s": ctx.workdir / "seg.csv", "script_s": ctx.workdir / "seg_script.csv"}
    cmds = {
        "slicewise_s": [sys.executable, "-m", "app", "predict", str(brain), "--model", str(unet), "--normalize", "minmax", "--out", str(outs["slicewise_s"]),
                        "--mask-out", str(ctx.workdir / "seg.nii.gz")],
        "script_s": [sys.executable, "-m", "app.tools.user_seg_script", str(brain), str(unet), str(outs["script_s"]), str(ctx.workdir / "seg_script.nii.gz")],
    }

    def run(name: str) -> None:
        _run_child(ctx, cmds[name], " ".join(cmds[name][1:4]), 900)

    t = interleaved({name: (lambda name=name: run(name)) for name in cmds}, 2 if ctx.quick else 3)
    ours, theirs = (np.loadtxt(outs[name], delimiter=",", skiprows=1, usecols=col, ndmin=1) for name, col in (("slicewise_s", 3), ("script_s", 1)))
    if ours.shape != theirs.shape:
        raise RuntimeError(f"slicewise measured {ours.size} slices, the script {theirs.size}")
    raw = {**t, "slices": float(ours.size), "area_mean_abs_diff_mm2": float(np.mean(np.abs(ours - theirs)))}  # Gaussian vs plain blending
    return Figure("seg_whole_job_vs_script", t["slicewise_s"] / t["script_s"], "x", "<= 0.9", raw)


def write_j2k_series(folder: Path, volume: np.ndarray) -> None:
    """Slice k of ``volume`` (int16 ``(K, rows, cols)``) as a lossless JPEG 2000 CT file, 2.5 mm apart."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

    folder.mkdir(parents=True)
    series = generate_uid()
    for k, image in enumerate(volume.astype(np.int16)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"slice{k:03d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID, series, "1.2.3"
        ds.Modality, ds.InstanceNumber = "CT", k + 1
        ds.ImageOrientationPatient, ds.ImagePositionPatient = [1, 0, 0, 0, 1, 0], [0, 0, 2.5 * k]
        ds.PixelSpacing, ds.SliceThickness = [0.9, 0.9], 2.5
        ds.set_pixel_data(np.ascontiguousarray(image), "MONOCHROME2", 16)
        ds.compress(JPEG2000Lossless)
        ds.save_as(folder / f"slice{k:03d}.dcm", enforce_file_format=True)


def compressed_load_vs_inprocess(ctx: Context, depth: int = 300, side: int = 256) -> Figure:
    """``load_volume`` of a JPEG 2000 series through the decoder pool (child processes, frames
    back through shared memory, files decoded in parallel) against the same load with every
    frame decoded in this process, one after the other (no isolation).  The pool is warm (it
    starts once per process, at the first compressed file); its start is reported apart."""
    from app.io import decode_pool, load_volume
    from app.phantom import make_phantom

    folder = ctx.workdir / f"j2k_series_{depth}x{side}"
    if not folder.exists():
        write_j2k_series(folder, np.asarray(make_phantom(seed=0, depth=depth, size=side).image.dataobj).transpose(2, 1, 0))
    started = time.perf_counter()
    pool = decode_pool.get_pool()
    cold = pool.started == 0
    load_volume(folder)  # page cache warm; the pool's children started (if not already)
    first_s = time.perf_counter() - started

    def isolated():
        return load_volume(folder)

    def in_process():
        with decode_pool.in_process():
            return load_volume(folder)

    a, b = isolated(), in_process()
    assert np.array_equal(a.data.numpy(), b.data.numpy()), "the pool and pydicom in-process decode differently"
    del a, b
    t = interleaved({"pool_s": isolated, "in_process_s": in_process}, max(3, ctx.repeats - 2))
    raw = {**t, "first_load_s": first_s, "children": pool.size, "depth": depth, "side": side}
    notes = "first load includes starting the children" if cold else ""
    return Figure("compressed_load_vs_inprocess", t["pool_s"] / t["in_process_s"], "x", "<= 1.0", raw, notes)


FIGURES: dict[str, Callable[[Context], Figure]] = {
    f.__name__: f
    for f in (
        seed_loop_speedup, vs_bare_call, mc_dropout_vs_bare, onnx_vs_bare_run, load_vs_nibabel, compressed_load_vs_inprocess, scrub_p95_ms, mask_scrub_p95_ms,
        crosshair_p95_ms, saliency_ms, startup_vs_import, whole_job_vs_script, ui_stall_ms, gui_vs_cli_throughput, onnx_gui_vs_cli, peak_mem_ratio,
        seg_peak_mem_ratio, seg_whole_job_vs_script, worklist_open_ms,
    )
}


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": str(os.cpu_count()), "torch": torch.__version__}
    if hasattr(os, "getloadavg"):
        info["load_average_1_5_15"] = " ".join(f"{v:.2f}" for v in os.getloadavg())  # other work on the machine
    try:
        with open("/proc/meminfo") as f:
            info["memory_gib"] = f"{int(f.readline().split()[1]) / 2**20:.1f}"
        with open("/proc/cpuinfo") as f:
            model = re.search(r"model name\s*:\s*(.*)", f.read())
            if model:
                info["cpu"] = model.group(1).strip()
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    for package in ("tensorflow", "keras", "ml_dtypes", "numpy", "nibabel", "PySide6-Essentials", "pyqtgraph", "isal"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            pass
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, a smaller large volume (60 slices; the throughput and memory figures keep 300)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--only", metavar="A,B", help=f"comma-separated figures to run (default: all of {', '.join(FIGURES)})")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}: choose from {', '.join(FIGURES)}")
    figures = []
    with tempfile.TemporaryDirectory(prefix="slicewise-bench-") as tmp:
        ctx = Context(quick=args.quick, workdir=Path(tmp))
        for name in names:
            figure = FIGURES[name](ctx)
            print(figure.line(), flush=True)
            figures.append(figure)
    if args.json:
        from app.atomic import write_atomic

        report = {"date": time.strftime("%Y-%m-%d"), "quick": args.quick, "machine": machine(), "figures": [asdict(f) for f in figures]}
        write_atomic(Path(args.json), json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
