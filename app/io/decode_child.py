"""The decoder child process: ``python -m app.io.decode_child FD`` decodes compressed frames.

It imports pydicom, numpy and the decoder plugins, nothing else (no torch, no TensorFlow).  Jobs
come over the connection on file descriptor FD from `app.io.decode_pool`; each frame's codestream
is checked (`app.io.codestream`) before a decoder sees it, decoded by pydicom's plugins and written
into the job's shared-memory block.  Every exception of a decoder, BaseException-derived panics
of Rust decoders (``pyo3_runtime.PanicException``) included, is caught here and reported as a
damaged frame; a crash or a hang is seen by the parent.  Each job runs under an address-space
limit (``RLIMIT_AS``), so a decoder that tries to allocate a memory bomb fails here.
"""

from __future__ import annotations

import mmap
import os
import signal
import sys
import time
import warnings
from multiprocessing.connection import Connection

import numpy as np

from app.io.codestream import CodestreamError, Expected, check_frame

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]


def _vm_size() -> int:
    """Bytes of address space this process uses now (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _limit_memory(base: int, budget: int) -> None:
    """Let this process use ``budget`` bytes of address space beyond ``base`` (set per job)."""
    if resource is None or budget <= 0 or base <= 0:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = base + budget
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _attach(name: str, size: int) -> mmap.mmap:
    """Map the parent's shared-memory block (not registered with a resource tracker: the parent owns it)."""
    import _posixshmem

    fd = _posixshmem.shm_open("/" + name, os.O_RDWR, mode=0o600)
    try:
        return mmap.mmap(fd, size)
    finally:
        os.close(fd)


def _test_hook(hook: str) -> None:
    """Misbehave on purpose, as a damaged file can make a decoder do (tests of the pool only)."""
    if hook == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif hook == "abort":
        os.abort()
    elif hook == "sleep":
        time.sleep(3600)
    elif hook == "alloc":
        np.ones(1 << 40, np.uint8)  # 1 TiB: refused by RLIMIT_AS
    elif hook == "panic":
        raise type("PanicException", (BaseException,), {})("index out of bounds")


def run_job(job: dict, send) -> None:
    """Decode ``job["frames"]`` of one file into shared memory; ``send`` one message per frame."""
    import pydicom
    from pydicom.encaps import get_frame
    from pydicom.pixels import pixel_array

    frames = job["frames"]
    expected = Expected(*job["expected"])
    slot = job["slot_bytes"]
    block = _attach(job["shm"], slot * job["n_frames"]) if job["shm"] else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(job["path"], force=True)
                pixel_data = ds.PixelData
            except BaseException as exc:  # noqa: BLE001 - a damaged file, whatever the reader raised
                send(("error", frames[0], "damaged", f"cannot read the file ({type(exc).__name__}: {exc})"))
                return
            for k in frames:
                try:
                    data = get_frame(pixel_data, k, number_of_frames=job["n_frames"])
                    check_frame(job["codec"], data, expected)
                except CodestreamError as exc:
                    send(("error", k, "refused", str(exc)))
                    return
                except BaseException as exc:  # noqa: BLE001 - pydicom's fragment parser on damaged data
                    if k > 0 and "frames" in str(exc):
                        send(("error", k, "refused", f"the pixel data ends before this frame, but the header says {job['n_frames']} frames (NumberOfFrames)"))
                    else:
                        send(("error", k, "damaged", f"{type(exc).__name__}: {exc}"))
                    return
                try:
                    hook, _, at = (job.get("hook") or "").partition("@")  # "segv" or "segv@2": on frame index 2 only
                    if hook and (not at or int(at) == k):
                        _test_hook(hook)
                    array = pixel_array(ds, index=k)
                except MemoryError:
                    send(("error", k, "memory", ""))
                    return
                except BaseException as exc:  # noqa: BLE001 - decoders raise anything, Rust panics included
                    send(("error", k, "damaged", f"{type(exc).__name__}: {exc}"))
                    return
                want = (expected.rows, expected.columns) + ((expected.samples,) if expected.samples > 1 else ())
                if array.shape != want or array.nbytes > slot:
                    send(("error", k, "refused", f"the decoder gave {array.shape} {array.dtype} pixels, but the header says {want}"))
                    return
                if block is not None:
                    view = np.ndarray(array.shape, array.dtype, buffer=block, offset=k * slot)
                    view[...] = array
                    del view
                send(("frame", k, array.dtype.str, array.shape))
    finally:
        if block is not None:
            block.close()
    send(("end",))


def serve(conn: Connection) -> None:
    """Run jobs from ``conn`` until the parent closes it."""
    _preload()
    base = _vm_size()  # the interpreter, numpy, pydicom and the decoders, before any job
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        _limit_memory(base, job["memory_budget"])
        run_job(job, conn.send)


def _preload() -> None:
    """Import pydicom and the decoder plugins now, so that a job's memory limit is all for decoding."""
    import importlib

    import pydicom.pixels  # noqa: F401

    for name in ("gdcm", "openjpeg", "rle", "libjpeg", "pylibjpeg"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    serve(Connection(int(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
