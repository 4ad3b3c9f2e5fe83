"""The viewer serves an ONNX model as it serves a Keras one: picked, loaded and scored on the
worker (the same scores as the CLI's engine), its saliency by occlusion; the worker's thread
setting is ONNX Runtime's."""

from __future__ import annotations

import numpy as np
import pytest

from app.io.formats import MODEL_DIALOG_FILTER
from tests.onnx_models import export_torch
from tests.ui_helpers import SIGNAL_TIMEOUT_MS, open_volume, run, write_nifti

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_onnx_model_scored_in_the_viewer_with_occlusion_saliency(qtbot, window, tmp_path):
    assert "*.onnx" in MODEL_DIALOG_FILTER.split(";;")[0]  # the model picker's first filter
    export_torch(tmp_path / "tiny.onnx", size=16)
    volume = open_volume(qtbot, window, write_nifti(tmp_path / "v.nii.gz", depth=6, height=20, width=18))
    window.set_model(tmp_path / "tiny.onnx")
    qtbot.waitUntil(lambda: window.session.settings.model_state != "loading", timeout=SIGNAL_TIMEOUT_MS)
    assert window.errors == [] and window.session.settings.model_outputs == ("probs",)
    prediction = run(qtbot, window, "slice")
    assert prediction.model_about["layout"] == "NCHW" and prediction.device.startswith("CPU (ONNX Runtime")
    threads = window.inference.worker.threads
    assert prediction.device.endswith(f"{threads} thread{'s' if threads > 1 else ''})")  # the worker's setting

    from app.inference import Engine
    from app.strategies import get_strategy

    engine = Engine()
    expected = engine.run(volume, get_strategy("slice"), engine.load(tmp_path / "tiny.onnx")).scores
    np.testing.assert_allclose(prediction.scores, expected, atol=1e-6)

    window.set_saliency_visible(True)
    overlay = window.views.saliency
    qtbot.waitUntil(lambda: overlay.image.isVisible() or window.saliency.failed is not None, timeout=SIGNAL_TIMEOUT_MS)
    assert window.saliency.failed is None
    found = window.session.saliency_map(window.current_slice())
    assert found.method.startswith("occlusion (patch ") and found.values.shape == volume.shape[1:3]
    qtbot.wait(200)
    window.grab().save(str(tmp_path.parent / "onnx_window.png"))
