"""ONNX models: what ``torch.onnx.export`` writes scores as torch does, an NHWC graph as its Keras
twin, through the same strategies and fitting; several outputs, class names, layout, no TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from app.cli import main
from app.errors import ModelError
from app.inference.onnx_model import load_onnx
from app.volume import Volume
from tests.onnx_models import export_torch, flat_dense_graph, nhwc_dense_graph, segmentation_graph

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's legacy (TorchScript) exporter, as asked: dynamo=False


def scores_of(csv: Path) -> np.ndarray:
    return np.loadtxt(csv, delimiter=",", skiprows=1, usecols=None, dtype=str)[:, 3:].astype(np.float64)


def test_torch_export_scores_as_torch_forward(tmp_path, capsys):
    net = export_torch(tmp_path / "tiny.onnx", size=16)
    volume = np.random.default_rng(0).normal(size=(7, 16, 16)).astype(np.float32)
    np.save(tmp_path / "v.npy", volume)
    out = tmp_path / "o.csv"
    assert main(["predict", str(tmp_path / "v.npy"), "--model", str(tmp_path / "tiny.onnx"), "--batch-size", "3", "--out", str(out)]) == 0
    with torch.no_grad():
        expected = net(torch.from_numpy(volume)[:, None]).numpy()
    np.testing.assert_allclose(scores_of(out), expected, atol=1e-5, rtol=0)
    run = json.loads(Path(f"{out}.json").read_text())["runs"][0]
    assert run["model"]["format"] == "onnx" and run["model"]["layout"] == "NCHW"
    assert run["model"]["layout_from"] == "input shape (None, 1, 16, 16)"
    assert run["output_activation"] == "softmax" and run["device"].startswith("CPU (ONNX Runtime")


def test_onnx_predict_imports_no_tensorflow(tmp_path):
    export_torch(tmp_path / "tiny.onnx", size=8)
    np.save(tmp_path / "v.npy", np.zeros((2, 8, 8), np.float32))
    code = (
        "import sys; from app.cli import main; "
        f"rc = main(['predict', {str(tmp_path / 'v.npy')!r}, '--model', {str(tmp_path / 'tiny.onnx')!r}, '--tta', 'flip-ap', '--out', {str(tmp_path / 'o.csv')!r}]); "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')); "
        "print(rc, loaded)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "0 []", done.stdout + done.stderr


def test_tta_and_ensembles_of_onnx_models(tmp_path, capsys):
    """An ONNX model's passes run through its runner: TTA is the mean of the model on the original
    and on the augmented slices; an ensemble of one file twice has sd 0; MC dropout is refused
    (an export has no dropout to turn on), and so is an ensemble mixing ONNX and Keras."""
    net = export_torch(tmp_path / "tiny.onnx", size=16)
    (tmp_path / "twin.onnx").write_bytes((tmp_path / "tiny.onnx").read_bytes())
    volume = np.random.default_rng(1).normal(size=(5, 16, 16)).astype(np.float32)
    np.save(tmp_path / "v.npy", volume)
    model = str(tmp_path / "tiny.onnx")
    assert main(["predict", str(tmp_path / "v.npy"), "--model", model, "--tta", "flip-lr", "--out", str(tmp_path / "t.csv")]) == 0
    x = torch.from_numpy(volume)[:, None]
    with torch.no_grad():
        passes = np.stack([net(x).numpy(), net(torch.flip(x, (3,))).numpy()])
    got, k = scores_of(tmp_path / "t.csv"), passes.shape[-1]  # k scores, then their k sd
    np.testing.assert_allclose(got[:, :k], passes.mean(axis=0), atol=1e-5, rtol=0)
    np.testing.assert_allclose(got[:, k:], passes.std(axis=0), atol=1e-5, rtol=0)
    ensemble = ",".join(str(tmp_path / n) for n in ("tiny.onnx", "twin.onnx"))
    assert main(["predict", str(tmp_path / "v.npy"), "--ensemble", ensemble, "--out", str(tmp_path / "e.csv")]) == 0
    np.testing.assert_array_equal(scores_of(tmp_path / "e.csv")[:, k:], 0)
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "v.npy"), "--model", model, "--mc-dropout", "4", "--out", str(tmp_path / "m.csv")]) == 2
    assert "an ONNX export runs in inference mode" in capsys.readouterr().err
    keras_file = str(Path(__file__).resolve().parents[1] / "resources" / "models" / "slice.keras")
    assert main(["predict", str(tmp_path / "v.npy"), "--ensemble", f"{model},{keras_file}", "--out", str(tmp_path / "k.csv")]) == 2
    assert "kind keras against onnx" in capsys.readouterr().err


@pytest.mark.parametrize("strategy", ["slice", "temporal", "embedding"])
def test_nhwc_graph_scores_as_its_keras_twin(engine, tmp_path, strategy):
    """The same weights in an ONNX graph and a Keras model, through the same fitting (resize 12 → 8,
    channels 1 → 3, min-max normalisation): the same scores."""
    import keras
    from keras import layers

    from app.strategies import get_strategy

    size, channels = 8, 3
    rng = np.random.default_rng(1)
    kernel, bias = rng.normal(size=(size * size * channels, 2)).astype(np.float32) * 0.1, np.array([0.1, -0.2], np.float32)
    if strategy == "slice":
        twin = keras.Sequential([keras.Input((size, size, channels)), layers.Flatten(), layers.Dense(2, activation="sigmoid")])
        graph = nhwc_dense_graph(kernel, bias, size)
    elif strategy == "temporal":  # a window of 3 slices
        kernel = np.concatenate([kernel, kernel[::-1], kernel * 0.5])
        twin = keras.Sequential([keras.Input((3, size, size, channels)), layers.Flatten(), layers.Dense(2, activation="sigmoid")])
        graph = nhwc_dense_graph(kernel, bias, size, steps=3)
    else:  # the embedding strategy's flat model: pooled pixels in
        twin = keras.Sequential([keras.Input((size * size * channels,)), layers.Dense(2, activation="sigmoid")])
        graph = flat_dense_graph(kernel, bias)
    twin.layers[-1].set_weights([kernel, bias])
    folder = tmp_path
    onnx.save(graph, folder / "twin.onnx")
    twin.save(folder / "twin.keras")
    layout = {"layout": "NHWC"} if strategy == "temporal" else {}  # (None, 3, 8, 8, 3): 3 steps of 3 channels, the shape cannot tell
    (folder / "twin.json").write_text(json.dumps({"slice_shape": [size, size, channels], **layout}))
    volume = Volume.from_tensor(torch.from_numpy(rng.random((5, 12, 12, 1), np.float32)))
    chosen = get_strategy(strategy)
    a = engine.run(volume, chosen, engine.load(folder / "twin.onnx", "minmax"))
    b = engine.run(volume, chosen, engine.load(folder / "twin.keras", "minmax"))
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5, rtol=0)
    assert a.model_about["layout"] == ("NHWC" if strategy != "embedding" else None) and a.activation == "sigmoid"


def test_several_outputs_by_name_with_classes_from_the_json(tmp_path, capsys):
    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(1)
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.a, self.b = torch.nn.Linear(4, 2), torch.nn.Linear(4, 1)

        def forward(self, x):
            h = torch.relu(self.conv(x)).amax(dim=(2, 3))
            return torch.softmax(self.a(h), 1), torch.sigmoid(self.b(h))

    net = TwoHeads().eval()
    torch.onnx.export(
        net, (torch.zeros(1, 3, 10, 10),), str(tmp_path / "two.onnx"), input_names=["x"], output_names=["kind", "bleed"],
        dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}}, opset_version=17, dynamo=False,
    )  # fmt: skip
    (tmp_path / "two.json").write_text(json.dumps({"classes": {"kind": ["a", "b"], "bleed": ["bleed"]}}))
    volume = np.random.default_rng(2).random((4, 10, 10), np.float32)
    np.save(tmp_path / "v.npy", volume)
    out = tmp_path / "o.csv"
    assert main(["predict", str(tmp_path / "v.npy"), "--model", str(tmp_path / "two.onnx"), "--output", "bleed", "--out", str(out)]) == 0
    header = out.read_text().splitlines()[0]
    assert header.endswith("score_bleed")
    with torch.no_grad():
        expected = net(torch.from_numpy(volume)[:, None].expand(-1, 3, -1, -1))[1].numpy()
    np.testing.assert_allclose(scores_of(out), expected, atol=1e-5, rtol=0)
    assert main(["predict", str(tmp_path / "v.npy"), "--model", str(tmp_path / "two.onnx"), "--output", "nope", "--out", str(out)]) == 2
    assert "two.onnx has no output 'nope'; its outputs: kind, bleed" in capsys.readouterr().err


def test_layout_from_the_json_when_the_shape_cannot_tell(tmp_path):
    weight, bias = np.array([[2.0], [-1.0]], np.float32), np.array([0.5, 0.0], np.float32)
    graph = segmentation_graph(weight, bias, "NCHW")
    graph.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "C"  # (N, C, H, W): all free
    onnx.save(graph, tmp_path / "m.onnx")
    with pytest.raises(ModelError, match=r'm\.onnx: cannot tell the layout of its input \(None, None, None, None\).*m\.json: \{"layout": "NCHW"\}'):
        load_onnx(tmp_path / "m.onnx")
    (tmp_path / "m.json").write_text(json.dumps({"layout": "NCHW"}))
    model = load_onnx(tmp_path / "m.onnx")
    assert model.about["layout_from"] == "the model's JSON" and model.spec.input_shape == (None, None, None)


def test_dense_channels_first_output_comes_back_channels_last(tmp_path):
    """A 1×1-conv sigmoid segmenter: NCHW in the graph, NHWC to Slicewise (spec and output), so
    the dense path downstream sees what a Keras segmenter gives."""
    weight, bias = np.array([[2.0], [-1.0]], np.float32), np.array([0.5, 0.0], np.float32)
    for layout in ("NCHW", "NHWC"):
        onnx.save(segmentation_graph(weight, bias, layout), tmp_path / f"{layout}.onnx")
        model = load_onnx(tmp_path / f"{layout}.onnx")
        assert model.spec.input_shape == (None, None, 1) and model.spec.output_shape == (None, None, 2)
        x = torch.rand(3, 5, 6, 1)
        expected = 1 / (1 + np.exp(-(x.numpy() @ weight.T + bias)))
        np.testing.assert_allclose(model.keras_model(x), expected, atol=1e-6)
        assert model.about["layout"] == layout and model.activation == "sigmoid"  # an NHWC export: read through its closing Transpose


def test_fixed_batch_graph_is_called_in_chunks(tmp_path):
    """``torch.onnx.export`` without dynamic axes fixes the batch (here 2): odd batches are padded."""
    net = export_torch(tmp_path / "free.onnx", size=8)
    torch.onnx.export(net, (torch.zeros(2, 1, 8, 8),), str(tmp_path / "fixed.onnx"), opset_version=17, dynamo=False)
    model = load_onnx(tmp_path / "fixed.onnx")
    x = torch.rand(5, 8, 8, 1)
    with torch.no_grad():
        expected = net(x.permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(model.keras_model(x), expected, atol=1e-6)


def test_onnx_runtime_threads_follow_the_engine(tmp_path):
    from app.inference import Engine

    export_torch(tmp_path / "tiny.onnx", size=8)
    model = Engine(threads=1).load(tmp_path / "tiny.onnx")
    options = model.whole.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    assert model.keras_model.device_label == "CPU (ONNX Runtime, 1 thread)"


def test_an_output_of_class_indices_is_refused(tmp_path):
    class ArgMax(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3)).argmax(dim=1)

    torch.onnx.export(ArgMax(), (torch.zeros(2, 3, 8, 8),), str(tmp_path / "argmax.onnx"), dynamic_axes={"x": {0: "n"}}, input_names=["x"], dynamo=False)
    with pytest.raises(ModelError, match=r"argmax\.onnx: model output is int64, not floating point \(input \(8, 8, 3\) → output \(\)\)"):
        load_onnx(tmp_path / "argmax.onnx")
