"""The GPU paths, checked on this machine: ``python -m app.tools.gpu_check [--json FILE]``.

Each check runs in a child process of its own (Keras' backend is fixed per process, and a runtime
that crashes takes only its child down) and prints one line.  A runtime that is not installed is
reported as absent, not failed:

- ``torch``: CUDA seen, the device, its memory.
- ``tensorflow``: Slicewise's runtime as the worker starts it (`app.inference.runtime.bootstrap`:
  memory growth on, the device it scores on); a CUDA tensor handed over by DLPack (the same
  memory: a write through torch shows in TensorFlow); the built-in slice model scored by the
  engine on that device, against the same run on the CPU.
- ``onnxruntime``: its providers; a torch CNN exported to ONNX (`app.tools.torch_models`) scored
  by the engine with the CUDA provider against the CPU provider, and each one's warm run.
- ``keras-torch``: Keras on the torch backend (evaluated by `app.tools.backend_compare`, not
  Slicewise's default): every built-in model scored on CUDA (with torch's TF32 default, and in
  full float32) against the CPU, the slice model's Grad-CAM through torch's autograd on each, and
  each one's warm run over 300 slices.
- ``dlpack``: a CUDA tensor handed by DLPack to JAX, an XLA consumer as TensorFlow is: the same
  buffer, no copy (where TensorFlow itself is absent).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHECKS = ("torch", "tensorflow", "onnxruntime", "keras-torch", "dlpack")
DEPTH = 60  # slices per scoring run


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _random_volume(height: int, width: int):
    import torch

    from app.volume import Volume

    return Volume.from_tensor(torch.randn(DEPTH, height, width, 1, generator=torch.Generator().manual_seed(1)) * 300)


def _warm_seconds(run, repeats: int = 3) -> float:
    run()  # traced, warm
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


# -- the checks, one per child process -------------------------------------------------------------


def check_torch(_args) -> dict:
    import torch

    out = {"torch": torch.__version__, "cuda": torch.cuda.is_available(), "cuda_version": torch.version.cuda}
    if out["cuda"]:
        props = torch.cuda.get_device_properties(0)
        out.update(device=props.name, memory_gib=round(props.total_memory / 2**30, 1), capability=f"{props.major}.{props.minor}")
    return out


def check_tensorflow(args) -> dict:
    if not _installed("tensorflow"):
        return {"absent": "tensorflow is not installed"}
    import torch

    from app.inference.engine import Engine
    from app.inference.runtime import bootstrap, to_tensorflow
    from app.strategies import get_strategy

    use_gpu = not args.cpu
    runtime = bootstrap(use_gpu=use_gpu)
    tf = runtime.tf
    gpus = tf.config.list_physical_devices("GPU")
    out = {"device": runtime.device, "label": runtime.label, "gpus": len(gpus), "memory_growth": [tf.config.experimental.get_memory_growth(g) for g in gpus]}
    if runtime.on_gpu and torch.cuda.is_available():
        x = torch.arange(8, dtype=torch.float32, device="cuda")
        handed = to_tensorflow(runtime, x)
        x[0] = 42.0
        torch.cuda.synchronize()
        out.update(dlpack_device=handed.device, dlpack_shared=float(handed.numpy()[0]) == 42.0)
    engine = Engine(use_gpu=use_gpu)
    strategy = get_strategy("slice")
    model = engine.builtin(strategy)
    height, width, _ = model.spec.input_shape
    volume = _random_volume(height, width)
    scores = engine.run(volume, strategy, model).scores
    out.update(scores=np.asarray(scores, float).ravel().tolist(), warm_run_s=_warm_seconds(lambda: engine.run(volume, strategy, model)))
    return out


def check_onnxruntime(_args) -> dict:
    if not _installed("onnxruntime"):
        return {"absent": "onnxruntime is not installed"}
    import tempfile

    import onnxruntime as ort

    from app.inference.engine import Engine
    from app.strategies import get_strategy
    from app.tools.torch_models import export_user_cnn

    out: dict = {"onnxruntime": ort.__version__, "providers": ort.get_available_providers()}
    strategy = get_strategy("slice")
    with tempfile.TemporaryDirectory(prefix="slicewise-gpu-check-") as tmp:
        path = export_user_cnn(Path(tmp) / "user_cnn.onnx")
        volume = _random_volume(256, 256)
        for name, use_gpu in (("gpu", True), ("cpu", False)):
            engine = Engine(use_gpu=use_gpu)
            model = engine.load(path)
            scores = np.asarray(engine.run(volume, strategy, model).scores, float)
            out[name] = {"provider": model.whole.session.get_providers()[0], "warm_run_s": _warm_seconds(lambda e=engine, m=model: e.run(volume, strategy, m))}
            out[f"{name}_scores"] = scores
    out["max_abs_diff"] = float(np.max(np.abs(out.pop("gpu_scores") - out.pop("cpu_scores"))))
    return out


def check_keras_torch(_args) -> dict:
    if not _installed("keras"):
        return {"absent": "keras is not installed"}
    import torch

    from app.tools import backend_compare as bc

    keras = bc._import_keras("torch")
    # torch's defaults on the GPU (TF32 convolutions), then full float32 as Slicewise's runtimes run
    runs = {"cpu": ("cpu", True), **({"cuda": ("cuda", True), "cuda_fp32": ("cuda", False)} if torch.cuda.is_available() else {})}
    scores: dict[str, dict[str, np.ndarray]] = {}
    out: dict = {"keras": keras.__version__, "runs": list(runs)}
    for run, (device, tf32) in runs.items():
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            with keras.device(device):
                scores[run] = _keras_scores(keras, out, run)
        except Exception as exc:  # noqa: BLE001 - one device's failure is the finding; the other's figures stay
            out[f"{run}_failed"] = f"{type(exc).__name__}: {exc}"[:800]
    for run in set(scores) - {"cpu"}:
        out[f"{run}_max_abs_diff"] = {name: float(np.max(np.abs(scores[run][name] - scores["cpu"][name]))) for name in scores["cpu"]}
    return out


def _keras_scores(keras, out: dict, run: str) -> dict[str, np.ndarray]:
    """On the device in scope: every built-in model's scores and the slice model's Grad-CAM; the
    warm seconds per 300 slices of the slice model and the user-sized CNN go into ``out``."""
    import torch

    from app.tools import backend_compare as bc
    from app.tools.seed_models import user_cnn

    slices = bc._phantom_slices()
    scores = {}
    for path in sorted(bc.MODELS.glob("*.keras")):
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
        x = np.stack([slices[i : i + 5] for i in range(0, 16, 4)]) if len(model.input_shape) == 5 else slices
        with torch.inference_mode():
            scores[path.stem] = keras.ops.convert_to_numpy(model(keras.ops.convert_to_tensor(x), training=False))
    slice_model = keras.saving.load_model(bc.MODELS / "slice.keras", compile=False, safe_mode=True)
    scores["gradcam"] = bc._gradcam(keras, "torch", slice_model, slices)
    out[f"{run}_weights_on"] = str(slice_model.weights[0].value.device)
    for name, model, shape in (("slice_model", slice_model, (64, 64, 1)), ("user_cnn", user_cnn(), (256, 256, 1))):
        out[f"{run}_{name}_300_s"] = bc._best_run(_on_device(keras, model), bc._batches(shape), 3)
    return scores


def _on_device(keras, model):
    """A batch of torch CPU slices copied to the device in scope and scored there, NumPy out."""
    import torch

    def call(batch):
        with torch.inference_mode():
            return keras.ops.convert_to_numpy(model(keras.ops.convert_to_tensor(batch), training=False))

    return call


def check_dlpack(_args) -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"absent": "no CUDA device"}
    if _installed("tensorflow"):
        return {"absent": "TensorFlow is installed: the tensorflow check hands over to it"}
    if not _installed("jax"):
        return {"absent": "neither TensorFlow nor JAX is installed"}
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax

    x = torch.arange(1 << 20, dtype=torch.float32, device="cuda")
    handed = jax.dlpack.from_dlpack(x)
    return {"jax": jax.__version__, "device": str(handed.devices()), "same_buffer": handed.unsafe_buffer_pointer() == x.data_ptr(),
            "equal": bool(np.array_equal(np.asarray(handed), x.cpu().numpy()))}


CHILDREN = {"torch": check_torch, "tensorflow": check_tensorflow, "onnxruntime": check_onnxruntime, "keras-torch": check_keras_torch, "dlpack": check_dlpack}


# -- the parent ------------------------------------------------------------------------------------


def _run_child(check: str, *extra: str) -> dict:
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p), "TF_CPP_MIN_LOG_LEVEL": "3"}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "app.tools.gpu_check", "--child", check, *extra], capture_output=True, text=True, env=env, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        return {"failed": f"exit {done.returncode}: {done.stderr.strip()[-1500:]}"}
    return {**json.loads(lines[-1][len("RESULT ") :]), "wall_s": round(time.perf_counter() - t0, 2)}


def run_checks(checks: tuple[str, ...] = CHECKS) -> dict[str, dict]:
    report = {}
    for check in checks:
        report[check] = result = _run_child(check)
        if check == "tensorflow" and "scores" in result:
            cpu = _run_child("tensorflow", "--cpu")
            if "scores" in cpu:
                result["cpu_warm_run_s"] = cpu["warm_run_s"]
                result["max_abs_diff_vs_cpu"] = float(np.max(np.abs(np.subtract(result["scores"], cpu["scores"]))))
            else:
                result["cpu"] = cpu
            del result["scores"]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.tools.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--only", metavar="A,B", help=f"some of: {', '.join(CHECKS)}")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--child", choices=CHECKS, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = CHILDREN[args.child](args)
        print("RESULT " + json.dumps(result, default=lambda v: v.tolist() if isinstance(v, np.ndarray) else str(v)), flush=True)
        return 0
    checks = tuple(args.only.split(",")) if args.only else CHECKS
    unknown = set(checks) - set(CHECKS)
    if unknown:
        parser.error(f"unknown check(s): {', '.join(sorted(unknown))}")
    report = run_checks(checks)
    for check, result in report.items():
        print(f"{check:12s} {json.dumps(result)}", flush=True)
    if args.json:
        from app.atomic import write_atomic

        write_atomic(Path(args.json), json.dumps({"date": time.strftime("%Y-%m-%d"), **report}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
