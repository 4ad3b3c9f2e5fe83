"""Shared test set-up: headless Qt, quiet TensorFlow, and small volumes and models made on the fly."""

from __future__ import annotations

import os

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
def window(qtbot, tmp_path, monkeypatch):
    """A shown main window (GUI tests only: Qt is imported when a test asks for it)."""
    from tests.ui_helpers import shown_window

    yield from shown_window(qtbot, tmp_path, monkeypatch)
