"""The project's own exceptions: each carries a message written for the user."""

from __future__ import annotations


class SlicewiseError(Exception):
    """Base of every error Slicewise reports to a user (CLI exit code 2, GUI dialog)."""


class LoadError(SlicewiseError):
    """A volume file could not be read, or is not a usable volume."""


class UnsafeFileError(LoadError):
    """A file would need to run code to load and was refused."""


class ModelError(SlicewiseError):
    """A Keras model could not be loaded, or does not fit the volume."""


class Cancelled(SlicewiseError):
    """A job was cancelled by the user between two batches."""
