"""Compressed DICOM frames decoded in child processes, so that a damaged file cannot take the
viewer, the CLI or a cohort worker down with it.

The native decoders behind pydicom (GDCM, OpenJPEG, CharLS, the Rust RLE decoder) crash, abort,
hang or allocate without bound on damaged or hostile codestreams.  Each compressed file is
decoded by a small pool of child processes (`app.io.decode_child`), started once per process at
the first compressed file: fresh interpreters (``python -m app.io.decode_child``, a spawn in
effect; multiprocessing's spawn context would re-import the parent's ``__main__`` - the viewer,
pytest, TensorFlow - and refuses to start from Dask's daemonic workers).  Frames come back
through shared memory.  Each frame has a time limit, each child an address-space limit
(``RLIMIT_AS``).  A crash (signal), hang or excess becomes a `LoadError` naming the file, the
frame and the codec; the dead child is replaced.  Files of a series and frames of a multi-frame
file are decoded in parallel, one job per child.  Uncompressed data never comes here.
"""

from __future__ import annotations

import atexit
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from multiprocessing.connection import Connection, wait
from pathlib import Path

import numpy as np
from pydicom import uid
from pydicom.dataset import Dataset

from app.errors import LoadError
from app.io.messages import compressed_failure, display_name, one_line

TIME_LIMIT_S = float(os.environ.get("SLICEWISE_DECODE_TIMEOUT_S", 0) or 30.0)  # per frame: a 4k² JPEG 2000 frame takes under a second
#: tests only: make every child misbehave ("segv", "abort", "sleep", "alloc", "panic"; "segv@2": on frame index 2)
TEST_HOOK = os.environ.get("SLICEWISE_DECODE_TEST_HOOK") or None
GIB = 1024**3


def codec_of(syntax: uid.UID | None) -> str | None:
    """The decoder family of a compressed transfer syntax ("JPEG", "JPEG-LS", "JPEG 2000", "RLE"), else None."""
    if syntax is None or not syntax.is_compressed:
        return None
    if syntax == uid.RLELossless:
        return "RLE"
    if syntax in (uid.JPEGLSLossless, uid.JPEGLSNearLossless):
        return "JPEG-LS"
    if syntax in (uid.JPEG2000Lossless, uid.JPEG2000, uid.JPEG2000MCLossless, uid.JPEG2000MC, uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K):
        return "JPEG 2000"
    if syntax in (uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless, uid.JPEGLosslessSV1):
        return "JPEG"
    return None


def syntax_of(ds: Dataset) -> uid.UID | None:
    return getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)


def _int(ds: Dataset, keyword: str, default: int) -> int:
    try:
        return int(ds.get(keyword, default) or default)
    except (TypeError, ValueError):
        return default


@dataclass
class _File:
    """One compressed file to decode: what its header promises, where its frames land, how it went."""

    path: Path
    syntax: uid.UID
    codec: str
    expected: tuple[int, int, int, int, int]  # rows, columns, samples, bits allocated, bits stored
    n_frames: int
    slot_bytes: int
    size: int
    shm: shared_memory.SharedMemory | None = None  # while its jobs run: at most one block per child
    decoded: dict[int, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    error: LoadError | None = None
    pending: int = 0  # jobs not finished yet
    frames: np.ndarray | None = None

    @classmethod
    def of(cls, path: Path, ds: Dataset) -> _File:
        syntax = syntax_of(ds)
        rows, cols, samples = _int(ds, "Rows", 0), _int(ds, "Columns", 0), _int(ds, "SamplesPerPixel", 1)
        allocated = _int(ds, "BitsAllocated", 16)
        itemsize = 1 if allocated <= 8 else 2 if allocated <= 16 else 4 if allocated <= 32 else 8
        n_frames = max(_int(ds, "NumberOfFrames", 1), 1)
        return cls(
            path, syntax, codec_of(syntax) or "", (rows, cols, samples, allocated, _int(ds, "BitsStored", allocated)),
            n_frames, rows * cols * samples * itemsize, path.stat().st_size,
        )

    def fail(self, why: str) -> None:
        if self.error is None:
            self.error = LoadError(f"{display_name(self.path)}: {one_line(why)}")

    def block(self) -> shared_memory.SharedMemory:
        """The shared memory its children write to (created with its first job)."""
        if self.shm is None:
            self.shm = shared_memory.SharedMemory(create=True, size=max(self.slot_bytes * self.n_frames, 1))
        return self.shm

    def job_done(self) -> None:
        """One job over; after the last, the frames are copied out and the shared memory freed."""
        self.pending -= 1
        if self.pending == 0:
            try:
                if self.error is None:
                    self.frames = self._copy()
            finally:
                self.release()

    def _copy(self) -> np.ndarray | None:
        kinds = set(self.decoded.values())
        if len(self.decoded) != self.n_frames or len(kinds) != 1 or self.shm is None:
            self.fail("the decoder gave frames of different types or sizes: the file is damaged")
            return None
        dtype, shape = kinds.pop()
        out = np.empty((self.n_frames, *shape), np.dtype(dtype))
        for k in range(self.n_frames):
            out[k] = np.ndarray(shape, np.dtype(dtype), buffer=self.shm.buf, offset=k * self.slot_bytes)
        return out

    def release(self) -> None:
        if self.shm is not None:
            self.shm.close()
            self.shm.unlink()
            self.shm = None

    def result(self) -> np.ndarray | LoadError:
        """The frames ``(F, rows, cols[, samples])`` as decoded, or why not."""
        if self.error is None and self.frames is None:
            self.fail("was not decoded")
        return self.error if self.error is not None else self.frames  # type: ignore[return-value]


@dataclass
class _Job:
    file: _File
    frames: list[int]


class _Worker:
    """One child process and its connection; ``job`` is what it is doing, ``deadline`` its time limit."""

    def __init__(self) -> None:
        mine, theirs = socket.socketpair()
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # the folder that holds this `app` package
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.io.decode_child", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=env, close_fds=True,
        )
        theirs.close()
        self.conn = Connection(mine.detach())
        self.job: _Job | None = None
        self.deadline = math.inf
        self.current = 0  # the frame it works on

    def send(self, job: _Job, message: dict, limit: float) -> None:
        self.job, self.current, self.deadline = job, job.frames[0], time.monotonic() + limit
        self.conn.send(message)

    def stop(self) -> int | None:
        """Kill the child (if alive) and reap it; its exit code (negative: the signal that ended it)."""
        try:
            self.conn.close()
        except OSError:
            pass
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=0.5)  # it may be dying already
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


class DecodePool:
    """Children that decode compressed DICOM files; one caller at a time (a lock), started lazily."""

    def __init__(self, size: int | None = None, time_limit: float = TIME_LIMIT_S):
        self.size = size or int(os.environ.get("SLICEWISE_DECODERS", 0) or 0) or max(1, min(4, os.cpu_count() or 1))
        self.time_limit = time_limit
        self.hook: str | None = TEST_HOOK  # tests only: make the child misbehave (decode_child._test_hook)
        self.memory_budget: int | None = None  # bytes per child job; None: sized from the file
        self._workers: list[_Worker | None] = [None] * self.size
        self._lock = threading.Lock()
        self.started = 0  # children started so far (replacements included)

    def decode(self, items: Sequence[tuple[Path, Dataset]]) -> list[np.ndarray | LoadError]:
        """Decode each ``(path, header)``: its frames ``(F, rows, cols[, samples])``, or the `LoadError` why not."""
        files = [_File.of(Path(p), ds) for p, ds in items]
        with self._lock:
            try:
                self._run(deque(self._jobs(files)))
                return [f.result() for f in files]
            finally:
                for f in files:
                    f.release()

    def _jobs(self, files: list[_File]) -> Iterator[_Job]:
        """One job per file; a multi-frame file is split among the children when there are fewer files."""
        for f in files:
            parts = max(1, min(f.n_frames, self.size // len(files)))
            bounds = np.linspace(0, f.n_frames, parts + 1).round().astype(int)
            for a, b in zip(bounds[:-1], bounds[1:]):
                if b > a:
                    f.pending += 1
                    yield _Job(f, list(range(a, b)))

    def _message(self, job: _Job) -> dict:
        f = job.file
        budget = self.memory_budget or GIB + 4 * f.size + 8 * f.slot_bytes
        return {
            "path": str(f.path), "frames": job.frames, "n_frames": f.n_frames, "codec": f.codec, "expected": f.expected,
            "shm": f.block().name, "slot_bytes": f.slot_bytes, "memory_budget": budget, "hook": self.hook,
        }

    def _worker(self, i: int) -> _Worker:
        if self._workers[i] is None:
            self._workers[i] = _Worker()
            self.started += 1
        return self._workers[i]  # type: ignore[return-value]

    def _run(self, queue: deque[_Job]) -> None:
        busy: dict[int, _Worker] = {}
        try:
            while queue or busy:
                for i in range(self.size):
                    while queue and queue[0].file.error is not None:
                        queue.popleft().file.job_done()  # the file failed already
                    if i not in busy and queue:
                        job = queue.popleft()
                        worker = self._worker(i)
                        try:
                            worker.send(job, self._message(job), self.time_limit)
                        except OSError:  # it died while idle: a fresh one takes the job
                            self._replace(i)
                            queue.appendleft(job)
                            continue
                        busy[i] = worker
                if not busy:
                    continue
                timeout = max(0.0, min(w.deadline for w in busy.values()) - time.monotonic())
                ready = set(wait([w.conn for w in busy.values()], timeout))
                for i, worker in list(busy.items()):
                    if worker.conn in ready:
                        job = worker.job
                        if self._receive(i, worker):
                            job.file.job_done()  # type: ignore[union-attr]
                            del busy[i]
                now = time.monotonic()
                for i, worker in list(busy.items()):
                    if now > worker.deadline:
                        job = worker.job
                        self._replace(i)
                        job.file.fail(f"the {job.file.codec} decoder hung on frame {worker.current + 1} (no result after {self.time_limit:g} s): the file is damaged")  # type: ignore[union-attr]
                        job.file.job_done()  # type: ignore[union-attr]
                        del busy[i]
        except BaseException:
            for i in busy:  # interrupted (Ctrl-C): children in the middle of a job are not reused
                self._replace(i)
            raise

    def _receive(self, i: int, worker: _Worker) -> bool:
        """Handle what ``worker`` sent; True when its job is over."""
        job = worker.job
        assert job is not None
        f = job.file
        try:
            while True:
                message = worker.conn.recv()
                kind = message[0]
                if kind == "frame":
                    _, k, dtype, shape = message
                    f.decoded[k] = (dtype, tuple(shape))
                    worker.current, worker.deadline = k + 1, time.monotonic() + self.time_limit
                elif kind == "end":
                    worker.job = None
                    return True
                elif kind == "error":
                    _, k, what, text = message
                    f.fail(self._reason(f, k, what, text))
                    worker.job = None
                    return True
                if not worker.conn.poll():
                    return False
        except (EOFError, OSError):
            code = self._replace(i)
            if code is not None and code < 0:
                f.fail(f"the {f.codec} decoder crashed on frame {worker.current + 1} (signal {-code}): the file is damaged")
            else:  # it exited by itself: it could not start (a broken installation), not the file's fault
                f.fail(f"the {f.codec} decoder process ended (exit code {code}) before frame {worker.current + 1} was decoded")
            return True

    def _reason(self, f: _File, k: int, what: str, text: str) -> str:
        if what == "refused" and "but the header says" in text:
            return f"frame {k + 1}: {text}"
        if what == "refused":
            if "damaged" not in text:
                text = f"the data is damaged ({text})"
            return f"cannot decode {f.codec} pixel data (frame {k + 1}): {text}"
        if what == "memory":
            budget = self.memory_budget or GIB + 4 * f.size + 8 * f.slot_bytes
            return f"the {f.codec} decoder went past its memory limit ({budget / GIB:.1f} GiB) on frame {k + 1}: the file is damaged"
        return compressed_failure(f.syntax, text, frame=k, name=f.codec)

    def _replace(self, i: int) -> int | None:
        worker, self._workers[i] = self._workers[i], None
        return worker.stop() if worker is not None else None

    def close(self) -> None:
        """Stop every child (they also stop by themselves when this process ends)."""
        for i in range(self.size):
            self._replace(i)


_pool: DecodePool | None = None
_pool_lock = threading.Lock()
_in_process = False


def get_pool() -> DecodePool:
    """The process's pool (created at the first compressed file, children started on demand)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = DecodePool()
            atexit.register(_pool.close)
        return _pool


@contextmanager
def in_process() -> Iterator[None]:
    """Decode in this process, serially, without isolation (the bench's reference only)."""
    global _in_process
    _in_process = True
    try:
        yield
    finally:
        _in_process = False


def decode_files(items: Sequence[tuple[Path, Dataset]]) -> list[np.ndarray | LoadError]:
    """Decode compressed files ``(path, header)`` in the pool; see `DecodePool.decode`."""
    if _in_process or os.name != "posix":  # the children need POSIX shared memory and fd passing
        import pydicom

        out: list[np.ndarray | LoadError] = []
        for path, ds in items:
            try:
                array = pydicom.dcmread(path).pixel_array
            except Exception as exc:  # noqa: BLE001 - decoder plugins raise anything
                out.append(LoadError(f"{display_name(path)}: {one_line(compressed_failure(syntax_of(ds), exc))}"))  # type: ignore[arg-type]
                continue
            out.append(array if max(_int(ds, "NumberOfFrames", 1), 1) > 1 else array[None])
        return out
    return get_pool().decode(items)


__all__ = ["DecodePool", "codec_of", "decode_files", "get_pool", "in_process"]
