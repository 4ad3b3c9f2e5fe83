"""`app.tools.gpu_check` on a machine without a GPU: every path falls back to the CPU and says so."""

from __future__ import annotations

import json

import pytest

from app.tools import gpu_check


def test_torch_check_reports_the_device_it_found():
    import torch

    result = gpu_check.check_torch(None)
    assert result["torch"] == torch.__version__ and result["cuda"] == torch.cuda.is_available()


def test_onnx_check_scores_the_same_on_the_provider_it_falls_back_to(tmp_path):
    pytest.importorskip("onnxruntime")
    report = gpu_check.run_checks(("onnxruntime", "dlpack"))
    onnx = report["onnxruntime"]
    assert "failed" not in onnx, onnx
    assert "CPUExecutionProvider" in onnx["providers"]
    expected = "CUDAExecutionProvider" if "CUDAExecutionProvider" in onnx["providers"] else "CPUExecutionProvider"
    assert onnx["gpu"]["provider"] == expected and onnx["cpu"]["provider"] == "CPUExecutionProvider"
    assert onnx["max_abs_diff"] < 1e-4
    assert onnx["gpu"]["warm_run_s"] > 0 and onnx["cpu"]["warm_run_s"] > 0
    import torch

    if not torch.cuda.is_available():
        assert report["dlpack"] == {"absent": "no CUDA device", "wall_s": report["dlpack"]["wall_s"]}


def test_main_prints_a_line_per_check_and_writes_json(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--only", "torch", "--json", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("torch ") and json.loads(line.split(None, 1)[1])["torch"]
    assert json.loads(out.read_text())["torch"]["cuda"] in (True, False)
    with pytest.raises(SystemExit):
        gpu_check.main(["--only", "tpu"])
