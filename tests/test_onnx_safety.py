"""ONNX files are checked before ONNX Runtime sees them: external data outside the model's folder
(absolute, ``..``, a symlink out), operators from other domains, sizes beyond memory, files that
are not ONNX or are cut short: exit 2, one ``error:`` line, nothing written, nothing read outside."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from app.cli import main
from tests.onnx_models import custom_domain_graph, export_torch, external_data_graph

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

_opened: list[str] = []
_watching: list[Path] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _watching and isinstance(args[0], (str, bytes, Path)):
        _opened.append(str(args[0]))


sys.addaudithook(_audit)  # Python's own file opens (and os.open); ONNX Runtime never runs for a refused file


@pytest.fixture
def volume(tmp_path) -> Path:
    path = tmp_path / "v.npy"
    np.save(path, np.random.default_rng(0).random((3, 8, 8), np.float32))
    return path


def predict(model: Path, volume: Path, capsys, *extra: str) -> tuple[int, list[str], list[str]]:
    """Run ``slicewise predict``; the exit code, stderr lines and the files opened meanwhile."""
    out = volume.parent / "o.csv"
    _opened.clear()
    _watching.append(model)
    try:
        code = main(["predict", str(volume), "--model", str(model), "--out", str(out), *extra])
    finally:
        _watching.clear()
    lines = capsys.readouterr().err.strip().splitlines()
    assert not out.exists() or code == 0
    return code, lines, list(_opened)


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink"])
def test_external_data_outside_the_folder_refused_and_not_read(tmp_path, volume, capsys, kind):
    secret = tmp_path / "secret.bin"  # outside the model's folder
    secret.write_bytes(np.ones(64, np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    if kind == "symlink":
        (folder / "weights.bin").symlink_to(secret)
    location = {"absolute": str(secret), "dotdot": "../secret.bin", "symlink": "weights.bin"}[kind]
    model = external_data_graph(location, folder)
    code, lines, opened = predict(model, volume, capsys)
    why = {"absolute": "an absolute path", "dotdot": "leads out with '..'", "symlink": "a link that leads out of the folder"}[kind]
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: model.onnx: refused: its external data must lie in the model's folder") and why in lines[0]
    assert str(model) in opened and not any(Path(p).resolve() == secret for p in opened), opened  # the hook sees the model read
    code, lines, _ = predict(model, volume, capsys, "--unsafe-model")  # no opt-in for paths
    assert code == 2 and why in lines[-1]


def test_external_data_inside_the_folder_is_served(tmp_path, volume, capsys):
    folder = tmp_path / "model"
    folder.mkdir()
    model = external_data_graph("weights.bin", folder)
    (folder / "weights.bin").write_bytes((np.ones(64, np.float32) / 64).tobytes())
    code, lines, _ = predict(model, volume, capsys)
    assert code == 0, lines
    expected = 1 / (1 + np.exp(-np.load(volume).reshape(3, -1).mean(axis=1)))
    scores = np.loadtxt(volume.parent / "o.csv", delimiter=",", skiprows=1, dtype=str)[:, 3].astype(float)
    np.testing.assert_allclose(scores, expected, atol=1e-6)


def test_external_data_past_the_end_of_its_file_refused(tmp_path, volume, capsys):
    folder = tmp_path / "model"
    folder.mkdir()
    model = external_data_graph("weights.bin", folder)
    (folder / "weights.bin").write_bytes(b"\0" * 16)
    code, lines, _ = predict(model, volume, capsys)
    assert code == 2 and "past the end of its 16-byte file" in lines[0], lines


@pytest.mark.parametrize("domain", ["evil.ops", "com.microsoft"])
def test_operator_from_another_domain_refused(tmp_path, volume, capsys, domain):
    onnx.save(custom_domain_graph(domain), tmp_path / "custom.onnx")
    code, lines, _ = predict(tmp_path / "custom.onnx", volume, capsys)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0] == (
        f"error: custom.onnx: refused: it uses operators outside the standard ONNX domains (ReduceMeanCustom (domain {domain})); "
        "Slicewise serves standard ONNX operators only (ai.onnx, ai.onnx.ml); use --unsafe-model only for a file you trust"
    )
    code, lines, _ = predict(tmp_path / "custom.onnx", volume, capsys, "--unsafe-model")  # past the check: ONNX Runtime has no such kernel
    assert code == 2 and lines[-1].startswith("error: custom.onnx: ONNX Runtime cannot load it"), lines


def test_tensor_larger_than_memory_refused(tmp_path, volume, capsys):
    model = custom_domain_graph("")  # standard domain: the size check is what refuses
    huge = numpy_helper.from_array(np.zeros(4, np.float32), "huge")
    del huge.dims[:]
    huge.dims.extend([1 << 20, 1 << 20, 64])  # 256 TiB declared, 16 bytes stored
    model.graph.initializer.append(huge)
    onnx.save(model, tmp_path / "big.onnx")
    code, lines, _ = predict(tmp_path / "big.onnx", volume, capsys)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: big.onnx: refused: its tensors declare 262144.0 GiB"), lines


@pytest.mark.parametrize("kind", ["truncated", "text", "empty"])
def test_not_onnx_or_cut_short(tmp_path, volume, capsys, kind):
    export_torch(tmp_path / "whole.onnx", size=8)
    whole = (tmp_path / "whole.onnx").read_bytes()
    content = {"truncated": whole[: len(whole) // 2], "text": b"this is a text file, not a model\n", "empty": b""}[kind]
    (tmp_path / "bad.onnx").write_bytes(content)
    code, lines, _ = predict(tmp_path / "bad.onnx", volume, capsys)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: bad.onnx: not an ONNX model"), lines
