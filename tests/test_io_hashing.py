"""File hashes (app/io/hashing.py) against hashlib over the whole bytes: one file, and the files of
a volume concatenated in sorted path order."""

from __future__ import annotations

import hashlib

import numpy as np

from app.io.hashing import file_sha256, sha256_of_files


def test_one_file_equals_sha256sum(tmp_path):
    blob = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)  # crosses the read-chunk size
    path = tmp_path / "model.keras"
    path.write_bytes(blob)
    assert file_sha256(path) == file_sha256(str(path)) == hashlib.sha256(blob).hexdigest()


def test_several_files_in_sorted_order(tmp_path):
    (tmp_path / "b.img").write_bytes(b"image bytes")
    (tmp_path / "a.hdr").write_bytes(b"header bytes")
    expected = hashlib.sha256(b"header bytes" + b"image bytes").hexdigest()
    assert sha256_of_files([tmp_path / "b.img", tmp_path / "a.hdr", tmp_path / "b.img"]) == expected
