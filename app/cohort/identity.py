"""What identifies the model and settings of a run, found on the client without TensorFlow
where possible: the model's hash, the normalisation the engine will apply, and the identity
under which an untrained built-in model's hash is remembered."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from app import __version__
from app.errors import ModelError


def builtin_identity(strategy) -> str:
    """What an untrained built-in model's weights follow from: its code (seeded), Slicewise and
    the versions of the libraries that draw them.  Its hash is remembered per identity in the
    parts folder, so a re-run with nothing left to score needs no cluster to learn it."""
    from importlib import metadata

    from app.strategies import base

    digest = hashlib.sha256(f"{strategy.name}\0{__version__}".encode())
    for dist in ("keras", "tensorflow", "numpy"):
        try:
            digest.update(f"\0{dist}={metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"\0{dist}=?".encode())
    for source in (sys.modules[type(strategy).__module__].__file__, base.__file__):
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()


def effective_normalize(normalize: str | None, model: str | None, strategy) -> str:
    """The normalisation the engine will apply, in canonical form, known before any worker runs:
    ``normalize`` as given, else what the ``model``'s JSON records (none without one), else the
    built-in model's own (as ``app.inference.models.builtin_model`` decides it).  It is part of
    each result's key."""
    from app import preprocessing
    from app.inference.models import builtin_metadata, model_file, preprocessing_of, read_metadata

    if normalize:
        return preprocessing.parse_spec(normalize)
    if model:
        return preprocessing_of(read_metadata(model_file(model)))
    return preprocessing.parse_spec(builtin_metadata(strategy)["normalize"])


def uncertainty_key(spec: str | None, strategy: str) -> str:
    """What of an uncertainty method decides the scores: its spec (passes, seed, augmentations),
    and for an ensemble each member's hash, not its path.  "" without one."""
    if not spec:
        return ""
    from app.uncertainty import parse

    method = parse(spec)
    if method.method != "ensemble":
        return spec
    return "ensemble:" + ",".join(model_sha_on_client(path, strategy) or "" for path in method.paths)


def model_sha_on_client(model_path: str | None, strategy: str) -> str | None:
    """The model's hash without TensorFlow, where a file holds it: the user's model, or a
    shipped trained built-in model.  None for an untrained built-in model."""
    from app.inference.models import builtin_file, file_sha256, model_file

    if model_path is None:
        trained = builtin_file(strategy)
        return file_sha256(trained) if trained is not None else None
    model_path = str(model_file(model_path))
    if not os.path.isfile(model_path):
        raise ModelError(f"{model_path}: no such model file")
    try:
        return file_sha256(Path(model_path))
    except OSError as exc:
        raise ModelError(f"{model_path}: cannot read: {exc.strerror or exc}") from None
