"""The TensorFlow runtime beside torch: both import orders, thread limits set before any work,
and the hand-off of batches from torch to TensorFlow.  Each check runs in a fresh process, since
thread limits and start-up can only be seen there (and a native abort must not end the session)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("first, second", [("torch", "tensorflow"), ("tensorflow", "torch")])
def test_torch_and_tensorflow_import_in_either_order(first, second):
    """Their import order has crashed in past versions (tensorflow#14812, pytorch#101152)."""
    code = f"""
import {first}, {second}
import numpy as np, tensorflow as tf, torch
a = torch.arange(12, dtype=torch.float32).reshape(3, 4)
b = tf.experimental.dlpack.from_dlpack(torch.utils.dlpack.to_dlpack(a.contiguous()))
print(float(tf.reduce_sum(tf.matmul(b, b, transpose_b=True))), float((a @ a.T).sum()))
"""
    done = python(code)
    assert done.returncode == 0, done.stderr[-2000:]
    got, expected = map(float, done.stdout.split()[-2:])
    assert got == expected


def test_bootstrap_sets_thread_limits_before_any_work_and_stays_quiet():
    code = """
import torch
from app.inference.runtime import bootstrap
runtime = bootstrap(threads=2)
tf = runtime.tf
print(torch.get_num_threads(), tf.config.threading.get_intra_op_parallelism_threads(),
      tf.config.threading.get_inter_op_parallelism_threads(), runtime.label.replace(" ", "_"), runtime.device)
print(bootstrap(threads=7) is runtime, tf.config.experimental.tensor_float_32_execution_enabled())
"""
    done = python(code)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.split("\n")
    assert lines[0].split() == ["2", "2", "2", "CPU_(2_threads)", "/CPU:0"] or lines[0].split()[3].startswith("GPU")
    assert lines[1] == "True False", "a second bootstrap returns the first runtime; full float32 on a GPU, as on the CPU"
    assert "oneDNN" not in done.stderr and "cpu_feature_guard" not in done.stderr


def test_misaligned_cpu_buffers_are_copied_not_lent_to_tensorflow(tmp_path):
    """A tensor whose buffer does not start on 64 bytes (a view of a NumPy array, say) goes to
    TensorFlow by copy: lent by DLPack, a MatMul fed by it aborts the process (oneDNN's
    ``Check failed: IsAligned()``).  Run in a child process, so a regression fails this test
    instead of killing the session; loaded volumes are 64-byte aligned from the start."""
    code = """
import numpy as np, torch, keras
from app.inference.runtime import bootstrap, to_tensorflow
from app.io import load_volume
runtime = bootstrap(threads=2)
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(3)])
raw = np.arange(8 * 64 + 1, dtype=np.float32)
start = 1 if raw.ctypes.data % 64 == 0 else 0
x = torch.from_numpy(raw[start : start + 8 * 64].reshape(8, 64))
x = x if x.data_ptr() % 64 else torch.from_numpy(raw[start + 1 : start + 1 + 8 * 64].reshape(8, 64))
assert x.data_ptr() % 64, "the test needs a misaligned buffer"
for _ in range(20):
    y = model(to_tensorflow(runtime, x), training=False).numpy()
np.testing.assert_allclose(y, model(x.numpy(), training=False).numpy(), rtol=1e-6)
np.save(PATH, np.zeros((3, 5, 7), np.float32))
print(load_volume(PATH).data.data_ptr() % 64)
""".replace("PATH", repr(str(tmp_path / "v.npy")))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "0"


# -- start-up (app.startup): native libraries mapped first, no GC passes, Keras without scikit-learn --


def run_fresh(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter, with the repository importable (TF's own log level)."""
    import os
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)


def test_preload_maps_tensorflow_first_then_bootstrap_imports_it_without_scikit_learn():
    """The libraries are mapped before ``import tensorflow`` (which then works); Keras comes up
    without scikit-learn, SciPy and pandas, which still import afterwards; the collector is back on,
    with the imports frozen."""
    code = """
import gc, sys
from app import startup
mapped = startup.preload(startup.TENSORFLOW_LIBRARIES)
with open("/proc/self/maps") as f:
    maps = f.read()
print(len(mapped), all(path in maps for path in mapped), "libtensorflow_cc.so.2" in maps, "tensorflow" in sys.modules)
print(startup.preload(startup.TENSORFLOW_LIBRARIES), startup.preload(["tensorflow:no/such/library.so", "no_such_package:lib.so"]))
from app.inference.runtime import bootstrap
tf = bootstrap(threads=1).tf
import keras
print("sklearn" in sys.modules, "scipy.stats" in sys.modules, "pandas" in sys.modules, gc.isenabled(), gc.get_freeze_count() > 0)
from sklearn.metrics import roc_auc_score
import pandas
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
print(roc_auc_score([0, 1, 1], [0.1, 0.8, 0.6]), model(tf.ones((1, 4))).shape, float(tf.reduce_sum(tf.ones((3, 4)))))
"""
    done = run_fresh(code)
    assert done.returncode == 0, done.stderr[-2000:]
    mapped, again, imported, after = done.stdout.splitlines()[-4:]
    count, all_in_maps, cc_mapped, tf_imported = mapped.split()
    assert int(count) >= 2 and all_in_maps == cc_mapped == "True" and tf_imported == "False"
    assert again == "[] []", "mapped once; missing libraries and packages are skipped"
    assert imported == "False False False True True"
    assert after == "1.0 (1, 2) 12.0"


def test_exit_now_runs_the_exit_handlers_flushes_and_ends_with_the_code():
    """`startup.exit_now` (the end of a finished ``slicewise predict``) skips only the teardown."""
    code = """
import atexit, sys
from app import startup
atexit.register(lambda: print("handler ran", file=sys.stderr))
print("unflushed output", end="")
startup.exit_now(3)
print("never")
"""
    done = run_fresh(code)
    assert done.returncode == 3 and done.stdout == "unflushed output" and "handler ran" in done.stderr


def test_gc_paused_turns_collection_off_inside_and_leaves_a_disabled_collector_alone():
    code = """
import gc
from app import startup
with startup.gc_paused():
    inside = gc.isenabled()
print(inside, gc.isenabled(), gc.get_freeze_count() > 0)
gc.disable()
with startup.gc_paused():
    pass
print(gc.isenabled())
"""
    done = run_fresh(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True", "True", "False"]


def test_stderr_hold_drops_tensorflow_chatter_and_passes_everything_else_on():
    code = r"""
import os, sys, threading
from app import startup
chatter = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796175381.959704   13960 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.",
    "2026-01-01 12:00:00.123456: I tensorflow/core/util/port.cc:153] oneDNN custom operations are on.",
]
with startup.native_stderr_held(True):
    for line in chatter:
        os.write(2, (line + "\n").encode())
    os.write(2, b"E0000 00:00:1796175381.9   1 file.cc:1] a real error\n")
    writer = threading.Thread(target=lambda: print("error: from another thread", file=sys.stderr))
    writer.start(); writer.join()
    with startup.native_stderr_held(True):  # nested: nothing more
        pass
print("after", file=sys.stderr)
try:
    with startup.native_stderr_held(True):
        os.write(2, (chatter[1] + "\n").encode())
        raise RuntimeError("boom")
except RuntimeError:
    pass
"""
    done = run_fresh(code)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    assert lines[:3] == ["E0000 00:00:1796175381.9   1 file.cc:1] a real error", "error: from another thread", "after"]
    assert lines[3].startswith("I0000 ") and len(lines) == 4, "after a failure, everything"


def test_predict_prints_no_tensorflow_chatter_and_turns_the_collector_back_on(tmp_path):
    code = f"""
import gc
import numpy as np
from app.cli import main
np.save({str(tmp_path / "v.npy")!r}, np.random.default_rng(0).normal(0, 300, (6, 40, 40)).astype(np.float32))
code = main(["predict", {str(tmp_path / "v.npy")!r}, "--strategy", "slice", "--out", {str(tmp_path / "s.csv")!r}])
print(code, gc.isenabled())
code = main(["predict", {str(tmp_path / "missing.npy")!r}])
print(code)
"""
    done = run_fresh(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-3:] == ["0", "True", "2"]
    assert "cudart_stub" not in done.stderr and "absl::InitializeLog" not in done.stderr, done.stderr
    assert "wrote " in done.stderr and "error: missing.npy: " in done.stderr
