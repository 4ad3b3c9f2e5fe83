"""The TensorFlow runtime: imported lazily, configured once (threads, GPU memory growth), and
the device it runs on.  Call ``bootstrap()`` on the thread that will own the model.

The import lets other threads run meanwhile (`app.startup`): the viewer's window does not freeze
while its worker thread starts TensorFlow.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from types import ModuleType

import torch

from app import startup
from app.buffers import ALIGNMENT

_lock = threading.Lock()
_runtime: Runtime | None = None


@dataclass(frozen=True)
class Runtime:
    """TensorFlow, ready: the device name to place calls on and a label for users."""

    tf: ModuleType
    device: str  # "/GPU:0" or "/CPU:0"
    label: str  # e.g. "GPU (NVIDIA H100)" or "CPU (2 threads)"

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("/GPU")


def bootstrap(threads: int | None = None, use_gpu: bool = True) -> Runtime:
    """Import and configure TensorFlow (and torch's CPU threads) once per process.

    Thread limits and GPU memory growth must be set before TensorFlow runs anything, so every
    caller goes through here; later calls return the first runtime unchanged.
    """
    global _runtime
    with _lock:
        if _runtime is not None:
            return _runtime
        threads = threads or max(1, os.cpu_count() or 1)
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        with startup.native_stderr_held(startup.quiet_tensorflow()):
            startup.preload(startup.TENSORFLOW_LIBRARIES)  # mapped with the GIL released: other threads run meanwhile
            with startup.gc_paused(), startup.without_optional():
                import tensorflow as tf
            startup.end_gc_pause()  # the CLI's (`startup.quick_start`)

            torch.set_num_threads(threads)
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
            except RuntimeError:  # TensorFlow already ran something in this process
                pass
            gpus = tf.config.list_physical_devices("GPU")
        # Convolutions and matrix products in full float32 on the GPU, as on the CPU.  TensorFlow's
        # default on Ampere and later is TF32 (10 bits of mantissa): on an H200, through Keras on
        # torch, the lesion U-Net's probabilities then moved up to 4e-3 from the CPU's, enough to
        # flip mask pixels near the threshold; in full float32 they stayed within 3e-6, and a
        # user-sized CNN took 1.12 x as long (``python -m app.tools.gpu_check``).
        tf.config.experimental.enable_tensor_float_32_execution(False)
        try:
            for gpu in gpus:
                tf.config.experimental.set_memory_growth(gpu, True)
            if gpus and not use_gpu:
                tf.config.set_visible_devices([], "GPU")
        except RuntimeError:
            pass
        if gpus and use_gpu:
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
            _runtime = Runtime(tf, "/GPU:0", f"GPU ({name})")
        else:
            _runtime = Runtime(tf, "/CPU:0", f"CPU ({threads} thread{'s' if threads > 1 else ''})")
        return _runtime


def to_tensorflow(runtime: Runtime, x: torch.Tensor):
    """Hand a torch tensor to TensorFlow without a copy where the two share a device.

    DLPack passes a CUDA tensor to TensorFlow on the GPU and a CPU tensor to TensorFlow on the
    CPU; otherwise it goes through NumPy and TensorFlow copies it to its device.  A CPU buffer
    that does not start on a 64-byte boundary is never lent: TensorFlow's oneDNN kernels would
    abort the process on it (``Check failed: IsAligned()`` in a MatMul fed by the input).
    """
    x = x.detach().contiguous()
    if x.is_cuda == runtime.on_gpu and (x.is_cuda or x.data_ptr() % ALIGNMENT == 0):
        try:
            return runtime.tf.experimental.dlpack.from_dlpack(torch.utils.dlpack.to_dlpack(x))
        except Exception:  # noqa: BLE001 - any refusal falls back to the copying path
            pass
    return runtime.tf.convert_to_tensor(x.cpu().numpy())
