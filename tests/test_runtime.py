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
print(bootstrap(threads=7) is runtime)
"""
    done = python(code)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.split("\n")
    assert lines[0].split() == ["2", "2", "2", "CPU_(2_threads)", "/CPU:0"] or lines[0].split()[3].startswith("GPU")
    assert lines[1] == "True", "a second bootstrap returns the first runtime"
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
