"""Shared test set-up: headless Qt, quiet TensorFlow, and small volumes and models made on the fly."""

from __future__ import annotations

import os
import subprocess

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def engine():
    """One engine (one TensorFlow runtime) for the whole session, as in the app."""
    from app.inference import Engine

    return Engine()


@pytest.fixture
def cli(capsys):
    """``slicewise ARGS`` run in this process (``app.cli.main``): a CompletedProcess with its exit
    code, stdout and stderr, as ``python -m app ARGS`` gives them, without a fresh interpreter
    and its TensorFlow import (seconds each).  For tests of what the command does; tests of the
    program itself (exit paths, native output) keep a subprocess."""

    def run(*args) -> subprocess.CompletedProcess:
        from app.cli import main

        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse: usage errors, --version
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["slicewise", *map(str, args)], code, out, err)

    return run


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    """A shown main window (GUI tests only: Qt is imported when a test asks for it)."""
    from tests.ui_helpers import shown_window

    yield from shown_window(qtbot, tmp_path, monkeypatch)
