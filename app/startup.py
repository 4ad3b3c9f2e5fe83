"""Loading torch and TensorFlow quickly, and without freezing the process's other threads.

Qt-free and light (imports neither library), so the CLI and the viewer's worker can call it
before either is imported.  Measured on the 2-core bench machine, ``import tensorflow`` here is
mostly three things besides its Python modules, each of them done holding the GIL, so that no
other Python thread (the GUI's event loop, the CLI's loading) runs meanwhile:

- mapping its native libraries (about a second): `preload` maps them with the GIL released;
- the cyclic garbage collector's full collections, triggered over and over by the objects the
  imports create, each walking every object already imported (0.1–0.3 s each, about a second in
  all): `gc_paused` holds the collector off while the libraries import, then freezes what they
  made, so later collections skip it;
- scikit-learn and SciPy, imported by Keras' optional scikit-learn wrappers, which Slicewise
  never uses (about a fifth of the import), and pandas: `without_optional`.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import gc
import importlib.util
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

# Native libraries that take long to map (relocations, static initialisers), as
# ``package:path/in/package``, in dependency order.  Op libraries (loaded through
# ``tf.load_op_library``) are left out: TensorFlow registers their ops while it loads them.
TENSORFLOW_LIBRARIES = (
    "tensorflow:libtensorflow_framework.so.2",
    "tensorflow:libtensorflow_cc.so.2",
    "tensorflow:python/lib_pywrap_tensorflow_common.so",
    "tensorflow:lite/python/libpywrap_tflite_common.so",
    "tensorflow:python/profiler/internal/_pywrap_profiler_plugin.so",
)
TORCH_LIBRARIES = ("torch:lib/libc10.so", "torch:lib/libtorch_cpu.so")

_preloaded: dict[str, int] = {}  # path -> dlopen handle, never closed
_dlopen_function: Callable | None = None


def preload(libraries: Iterable[str]) -> list[str]:
    """Map shared libraries (``package:path/in/package``) into the process, the GIL released.

    CPython 3.11 calls ``dlopen`` holding the GIL, both when it imports an extension module and
    in ``ctypes.CDLL``, so every other Python thread stops while a large library loads.  Called
    as a ctypes foreign function, which releases the GIL, ``dlopen`` does the same work while
    other threads run; the import that follows finds the libraries mapped.  The flags are those
    of Python's own imports (``sys.getdlopenflags()``), so the process ends up as it would
    have.  A library that is missing or fails to load is left to the real import, which reports
    it.  Linux and macOS (elsewhere nothing is done).  Returns the paths this call mapped.

    While ``dlopen`` runs it holds the dynamic loader's lock: another thread that imports an
    extension module meanwhile waits for it (holding the GIL), so call this where the other
    threads are not importing (the viewer's worker, once its window is up).
    """
    dlopen = _dlopen()
    mapped = []
    for entry in libraries:
        path = _library_path(entry)
        if dlopen is None or path is None or path in _preloaded:
            continue
        handle = dlopen(path.encode(), sys.getdlopenflags())
        if handle:
            _preloaded[path] = handle
            mapped.append(path)
    return mapped


@contextmanager
def gc_paused(freeze: bool = True) -> Iterator[None]:
    """No cyclic garbage collection inside; on leaving, what was made meanwhile (and before) is
    moved to the collector's permanent generation when ``freeze``, then collection resumes.

    Made for big imports: they create hundreds of thousands of long-lived objects, which set off
    full collections again and again, each one walking all the objects already there.  Frozen
    objects are still freed by reference counting; only cycles among them are never collected.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        gc.enable()


@contextmanager
def heavy_import(libraries: Iterable[str] = TORCH_LIBRARIES) -> Iterator[None]:
    """For the first import of torch (or another large package) off the main thread: its
    native ``libraries`` mapped first with the GIL released (`preload`), and no garbage
    collection while its modules import (`gc_paused`), so that the GUI thread keeps running."""
    preload(libraries)
    with gc_paused():
        yield


_T = TypeVar("_T")


def quick_start(function: Callable[..., _T]) -> Callable[..., _T]:
    """Run ``function`` with the garbage collector held off (`gc_paused`) until its imports are
    done: TensorFlow's start-up (`app.inference.runtime`) ends the pause, and so does
    ``function``'s return.  For a command that imports torch and TensorFlow.

    (The libraries are not mapped on a second thread meanwhile: ``dlopen`` holds the dynamic
    loader's lock, so every extension module the first thread imports waited for it, holding
    the GIL; measured, nothing was gained.)"""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        global _pause
        outer = _pause is None and gc.isenabled()
        if outer:
            gc.disable()
            _pause = threading.get_ident()
        try:
            return function(*args, **kwargs)
        finally:
            if outer and _pause is not None:
                _pause = None
                gc.enable()

    return wrapper


_pause: int | None = None  # the thread whose `quick_start` paused the collector


def end_gc_pause() -> None:
    """End a `quick_start` pause of the garbage collector: freeze what was imported, collect again."""
    global _pause
    if _pause is not None:
        _pause = None
        gc.freeze()
        gc.enable()


# Optional packages that Keras imports when they are installed, for what Slicewise never uses:
# its scikit-learn wrappers (scikit-learn, and with it much of SciPy: about a fifth of ``import
# tensorflow``) and pandas DataFrames as ``fit``/``predict`` data (pandas: about 0.1 s).
KERAS_OPTIONAL = ("sklearn", "pandas")


@contextmanager
def without_optional(packages: Iterable[str] = KERAS_OPTIONAL) -> Iterator[None]:
    """Import with ``packages`` hidden (``import sklearn`` raises ImportError inside), except
    those already imported.

    Keras defines its scikit-learn wrappers without scikit-learn and accepts NumPy arrays
    without pandas.  Afterwards the packages import as usual (`app.review.agreement` uses
    scikit-learn, Dask pandas); only Keras keeps having seen them missing.
    """
    hidden = [name for name in packages if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def exit_now(code: int) -> None:
    """End the process at once with ``code``: the atexit handlers run (the decoder pool's
    children stopped, logging flushed: ~5 ms), stdout and stderr are flushed, and the
    interpreter's teardown is skipped: after torch and TensorFlow it frees every module one by
    one (about 0.15 s here, 5 % of a small ``slicewise predict`` job).  Only for a finished
    command-line run, with no thread left working (the CLI writes its files and closes them
    before it returns)."""
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is not None:
        run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)


def quiet_tensorflow() -> bool:
    """Whether TensorFlow's C++ log level (``TF_CPP_MIN_LOG_LEVEL``, default 3 here) hides its
    informational messages and warnings."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        return int(os.environ["TF_CPP_MIN_LOG_LEVEL"]) >= 2
    except ValueError:
        return False


# TensorFlow's and absl's informational and warning lines (``I0000 00:00:1796175381.9  12 file.cc:31] …``,
# ``2026-01-01 12:00:00.000000: W tensorflow/…] …``), and absl's notice before them
_CHATTER = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] .*"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] \S+:\d+\] .*"
)
_hold = threading.Lock()


@contextmanager
def native_stderr_held(hold: bool) -> Iterator[None]:
    """Hold back what is written to stderr (file descriptor 2) inside; on leaving, pass it on
    without TensorFlow's informational and warning lines (all of it after an exception).

    TensorFlow's native libraries log as they load, before its log level applies, and would
    otherwise precede every message of the CLI.  What other threads write meanwhile comes out
    at the end.  One hold at a time: inside another, nothing more is done.
    """
    if not hold or not _hold.acquire(blocking=False):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            failed = False
            try:
                yield
            except BaseException:
                failed = True
                raise
            finally:
                try:
                    sys.stderr.flush()
                except (OSError, ValueError):
                    pass
                os.dup2(saved, 2)
                held.seek(0)
                lines = held.read().decode(errors="replace").splitlines(keepends=True)
                kept = "".join(line for line in lines if failed or not _CHATTER.fullmatch(line.rstrip("\r\n")))
                if kept:
                    os.write(saved, kept.encode())
                os.close(saved)
    finally:
        _hold.release()


def _library_path(entry: str) -> str | None:
    package, _, relative = entry.partition(":")
    try:
        spec = importlib.util.find_spec(package)  # locates the package without importing it
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return str(path) if path.is_file() else None


def _dlopen() -> Callable | None:
    """libc's ``dlopen`` as a ctypes foreign function (ctypes releases the GIL around it), or None."""
    global _dlopen_function
    if _dlopen_function is None and sys.platform.startswith(("linux", "darwin")):
        try:
            function = ctypes.CDLL(None).dlopen
        except (AttributeError, OSError):
            return None
        function.restype, function.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int]
        _dlopen_function = function
    return _dlopen_function
