"""Keras on TensorFlow against Keras on torch, for ``.keras`` / ``.h5`` models:
``python -m app.tools.backend_compare [--quick] [--json FILE]``.

An evaluation, not a feature: Slicewise runs Keras on TensorFlow.  Keras 3 also runs these
models on torch (``KERAS_BACKEND=torch``, set before Keras imports; TensorFlow is then never
imported, and tensors stay torch, on the CPU or a CUDA device, with no DLPack hand-over).  The
backend is fixed per process, so every figure is taken in fresh processes
(``python -m app.tools.backend_compare --child WHAT --backend B``), the two backends in turns
(A B A B), the fastest of the repeats kept:

- ``startup_s``: process start -> Keras imported (torch first, as Slicewise does; TensorFlow's
  libraries preloaded, the collector paused and scikit-learn/pandas hidden, as `app.startup`
  does), the built-in slice model loaded, its first batch of 32 scored;
- ``slice_model_s`` / ``user_cnn_s``: a warm run over 300 slices in batches of 32, of the
  built-in slice model (64 x 64) and of the user-sized CNN (`app.tools.seed_models.user_cnn`,
  256 x 256): TensorFlow through a traced call with a fixed signature (the engine's), torch
  through ``model(x, training=False)`` under ``torch.inference_mode``;
- ``job_s``: the whole job on the uint8 brain template (`app.tools.bench.brain_template`): load
  it, score every axial slice with the built-in slice model (the engine's plan, normalisation
  and batches), write the CSV; for TensorFlow also the real ``slicewise predict``;
- ``peak_rss_mib``: the job's peak resident memory;
- correctness: every built-in model (``resources/models/*.keras``) and the user CNN saved as
  ``.keras`` and as legacy ``.h5`` scored on the same seeded input in both, and a Grad-CAM of the
  built-in slice model (the gradient of the score with respect to the last convolution's
  activations, through each backend's own autograd: ``tf.GradientTape``, ``torch.autograd``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BACKENDS = ("tensorflow", "torch")
MODELS = Path(__file__).resolve().parents[2] / "resources" / "models"
SLICES = 300
BATCH = 32


# -- children: one backend per process ------------------------------------------------------------


def _import_keras(backend: str):
    """torch, then Keras on ``backend``, the way Slicewise starts TensorFlow (`app.startup`)."""
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from app import startup

    with startup.heavy_import():
        import torch  # noqa: F401
    if backend == "tensorflow":
        startup.preload(startup.TENSORFLOW_LIBRARIES)
    with startup.gc_paused(), startup.without_optional():
        import keras
    return keras


def _caller(keras, backend: str, model, shape: tuple):
    """A torch batch in, NumPy scores out: the engine's traced call on TensorFlow, a plain call
    without autograd on torch."""
    import torch

    if backend == "tensorflow":
        import tensorflow as tf

        traced = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec((None, *shape), tf.float32)], autograph=False)
        concrete = traced.get_concrete_function()
        return lambda x: concrete(tf.convert_to_tensor(x.numpy())).numpy()

    def call(x):
        with torch.inference_mode():
            return keras.ops.convert_to_numpy(model(x, training=False))

    return call


def _batches(shape: tuple, seed: int = 0):
    import torch

    data = torch.rand((SLICES, *shape), generator=torch.Generator().manual_seed(seed))
    return [data[i : i + BATCH] for i in range(0, SLICES, BATCH)]


def _best_run(call, batches, repeats: int) -> float:
    for b in batches[:2]:
        call(b)  # traced, warm
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for b in batches:
            call(b)
        times.append(time.perf_counter() - t0)
    return min(times)


def child_startup(backend: str, _args) -> dict:
    t0 = time.perf_counter()
    keras = _import_keras(backend)
    t1 = time.perf_counter()
    model = keras.saving.load_model(MODELS / "slice.keras", compile=False, safe_mode=True)
    t2 = time.perf_counter()
    _caller(keras, backend, model, (64, 64, 1))(_batches((64, 64, 1))[0])
    t3 = time.perf_counter()
    return {"import_s": t1 - t0, "load_s": t2 - t1, "first_batch_s": t3 - t2, "tensorflow_imported": "tensorflow" in sys.modules}


def child_throughput(backend: str, args) -> dict:
    keras = _import_keras(backend)
    from app.tools.seed_models import user_cnn

    out = {}
    for name, model, shape in (("slice_model_s", keras.saving.load_model(MODELS / "slice.keras", compile=False, safe_mode=True), (64, 64, 1)), ("user_cnn_s", user_cnn(), (256, 256, 1))):
        out[name] = _best_run(_caller(keras, backend, model, shape), _batches(shape), args.repeats)
    return out


def child_job(backend: str, args) -> dict:
    """The job of ``slicewise predict BRAIN --strategy slice --out CSV`` through the engine's own
    pieces (channel recipe, normalisation, plan, batches), the model called per backend."""
    keras = _import_keras(backend)
    from app import channels as recipes
    from app import preprocessing
    from app.inference.models import builtin_model
    from app.io import load_volume
    from app.strategies import get_strategy

    volume = load_volume(args.volume)
    strategy = get_strategy("slice")
    model = builtin_model(strategy)
    call = _caller(keras, backend, model.keras_model, tuple(model.spec.input_shape))
    recipe = recipes.parse_recipe(model.channels)
    wanted = recipes.model_channels(model.spec.input_shape, model.spec.slice_hint)
    plan = strategy.plan((*volume.shape[:3], recipe.channels(volume.channels, wanted)), model.spec, BATCH)
    norm = preprocessing.fit(model.normalize, volume.data)
    scores = np.full(volume.depth, np.nan, np.float32)
    for step in plan.steps(recipe.source(volume.data, wanted), norm, BATCH):
        scores[step.indices] = np.asarray(plan.read(call(step.x), step), np.float32).reshape(len(step.indices), -1)[:, 0]
    np.savetxt(args.out, scores, fmt="%.6g")
    return {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "tensorflow_imported": "tensorflow" in sys.modules}


def child_scores(backend: str, args) -> dict:
    """Every built-in model and the user CNN (``.keras`` and legacy ``.h5``, written by the
    TensorFlow child first) on one seeded input each; the slice model's Grad-CAM."""
    keras = _import_keras(backend)
    work = Path(args.workdir)
    if backend == "tensorflow":
        from app.tools.seed_models import user_cnn

        cnn = user_cnn(64, 64)
        cnn.save(work / "user_cnn.keras")
        cnn.save(work / "user_cnn.h5")
    files = [*sorted(MODELS.glob("*.keras")), work / "user_cnn.keras", work / "user_cnn.h5"]
    slices = _phantom_slices()
    results = {}
    for path in files:
        model = keras.saving.load_model(path, compile=False, safe_mode=path.suffix == ".keras")
        if len(model.input_shape) == 5:  # a sequence: 4 runs of 5 neighbouring slices
            x = np.stack([slices[i : i + 5] for i in range(0, 16, 4)])
        else:
            x = slices
        results[path.name] = keras.ops.convert_to_numpy(model(keras.ops.convert_to_tensor(x), training=False))
    results["gradcam"] = _gradcam(keras, backend, keras.saving.load_model(MODELS / "slice.keras", compile=False, safe_mode=True), slices)
    np.savez(work / f"scores_{backend}.npz", **{name.replace(".", "_"): value for name, value in results.items()})
    return {"models": [p.name for p in files]}


def _phantom_slices() -> np.ndarray:
    """20 neighbouring 64 x 64 slices of the CT demo phantom (what the built-in models were
    trained on: their scores spread between 0 and 1), windowed 60/200 into [0, 1]."""
    from app.phantom import make_phantom

    hu = np.asarray(make_phantom(seed=0, depth=20, size=64).image.dataobj, np.float32)
    return np.clip((np.moveaxis(hu, 2, 0)[..., None] - (60 - 100)) / 200, 0, 1).astype(np.float32)


def _gradcam(keras, backend: str, model, images: np.ndarray) -> np.ndarray:
    """Grad-CAM maps (n, h, w) of the last convolution of a Sequential model, the keras-io recipe:
    channel weights = mean gradient of the score before its sigmoid, ReLU of the weighted sum,
    scaled to max 1."""
    inp = keras.Input(model.input_shape[1:])
    x, conv = inp, None
    last = max(i for i, layer in enumerate(model.layers) if "Conv" in type(layer).__name__)
    for i, layer in enumerate(model.layers[:-1]):
        x = layer(x)
        if i == last:
            conv = x
    head = model.layers[-1]  # a Dense with a sigmoid: its logit
    twin = keras.Model(inp, [conv, keras.ops.matmul(x, head.kernel) + head.bias])
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            activations, scores = twin(tf.constant(images), training=False)
            total = tf.reduce_sum(scores[:, 0])
        grads = tape.gradient(total, activations).numpy()
        activations = activations.numpy()
    else:
        import torch

        activations, scores = twin(keras.ops.convert_to_tensor(images), training=False)  # on the device in scope
        grads = torch.autograd.grad(scores[:, 0].sum(), activations)[0].detach().cpu().numpy()
        activations = activations.detach().cpu().numpy()
    weights = grads.mean(axis=(1, 2), keepdims=True)
    cams = np.maximum((weights * activations).sum(axis=-1), 0)
    return cams / np.maximum(cams.max(axis=(1, 2), keepdims=True), 1e-12)


CHILDREN = {"startup": child_startup, "throughput": child_throughput, "job": child_job, "scores": child_scores}


# -- the parent: fresh processes in turns ---------------------------------------------------------


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}


def _child(what: str, backend: str, *extra: str) -> tuple[dict, float]:
    """Run a child; its RESULT and the process's wall time (start to exit)."""
    cmd = [sys.executable, "-m", "app.tools.backend_compare", "--child", what, "--backend", backend, *extra]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=900)
    wall = time.perf_counter() - t0
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{what} on {backend} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :]), wall


def compare(quick: bool) -> dict:
    repeats = 2 if quick else 4
    table: dict[str, dict[str, float]] = {b: {} for b in (*BACKENDS, "slicewise predict")}
    notes: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="slicewise-backends-") as tmp:
        work = Path(tmp)
        import nibabel as nib

        from app.tools.bench import brain_template

        brain = work / "brain_uint8.nii.gz"
        nib.save(brain_template(), brain)
        for _ in range(repeats):
            for backend in BACKENDS:
                r, wall = _child("startup", backend)
                _keep_min(table[backend], {"startup_s": wall, **{k: v for k, v in r.items() if k.endswith("_s")}})
                notes[f"{backend}_imports_tensorflow"] = r["tensorflow_imported"]
                r, wall = _child("job", backend, "--volume", str(brain), "--out", str(work / f"job_{backend}.txt"))
                _keep_min(table[backend], {"job_s": wall, "peak_rss_mib": r["peak_rss_mib"]})
            t0 = time.perf_counter()
            cli = subprocess.run([sys.executable, "-m", "app", "predict", str(brain), "--strategy", "slice", "--out", str(work / "cli.csv")], capture_output=True, text=True, env=_env())
            if cli.returncode != 0:
                raise RuntimeError(cli.stderr[-2000:])
            _keep_min(table["slicewise predict"], {"job_s": time.perf_counter() - t0})
        for backend in BACKENDS:
            r, _ = _child("throughput", backend, "--repeats", str(repeats + 1))
            _keep_min(table[backend], r)
        for backend in BACKENDS:  # TensorFlow first: it writes the user CNN's files
            _child("scores", backend, "--workdir", str(work))
        tf_scores, torch_scores = (np.load(work / f"scores_{b}.npz") for b in BACKENDS)
        notes["max_abs_diff"] = {name: float(np.max(np.abs(tf_scores[name] - torch_scores[name]))) for name in tf_scores.files}
        jobs = [np.loadtxt(work / f"job_{b}.txt") for b in BACKENDS]
        cli_scores = np.loadtxt(work / "cli.csv", delimiter=",", skiprows=1, usecols=3)
        notes["job_max_abs_diff"] = {"torch_vs_tensorflow": float(np.max(np.abs(jobs[0] - jobs[1]))), "tensorflow_vs_slicewise_predict": float(np.max(np.abs(jobs[0] - cli_scores)))}
    return {"table": table, "notes": notes}


def _keep_min(row: dict[str, float], values: dict[str, float]) -> None:
    for key, value in values.items():
        row[key] = min(row.get(key, float("inf")), float(value))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.tools.backend_compare", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--backend", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--volume", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(CHILDREN[args.child](args.backend, args)), flush=True)
        return 0
    report = compare(args.quick)
    keys = sorted({k for row in report["table"].values() for k in row})
    print(f"{'':20s}" + "".join(f"{k:>16s}" for k in keys))
    for backend, row in report["table"].items():
        print(f"{backend:20s}" + "".join(f"{row[k]:16.3f}" if k in row else f"{'':>16s}" for k in keys))
    print(json.dumps(report["notes"], indent=1))
    if args.json:
        from app.atomic import write_atomic

        write_atomic(Path(args.json), json.dumps({"date": time.strftime("%Y-%m-%d"), "load_average": os.getloadavg(), **report}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
