"""Keras models: a user's file loaded safely, or a strategy's built-in model, with what
Slicewise needs to know about it (shapes, preprocessing, a content hash).

Model files are code.  Before Keras sees a file, `scan_model_file` reads its configuration
(``config.json`` of a ``.keras`` archive, the ``model_config`` attribute of a legacy ``.h5``) and
its HDF5 storage, and Slicewise refuses, unless the user opts in with ``--unsafe-model``:

- Python code stored in the file (a ``Lambda`` layer holding bytecode, any serialised lambda);
- objects that are not built into Keras (custom layers, functions, modules outside Keras);
- HDF5 links or datasets that read other files on this computer (a legacy ``.h5``).

Keras then loads the file with ``safe_mode=True`` as a second line of defence.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from app import channels as channel_recipes
from app.errors import ModelError
from app.inference.metadata import read_metadata_file
from app.io.formats import MODEL_SUFFIXES
from app.io.hashing import file_sha256 as hashing_file_sha256
from app.io.hashing import sha256_of_files
from app.preprocessing import parse_spec
from app.strategies import ModelSpec, Strategy
from app.strategies.base import shape_text
from app.text_input import short

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "models"
KERAS_PACKAGES = ("keras", "keras_hub", "keras_cv", "keras_nlp")
KERAS_FUNCTION_MODULES = ("activations", "constraints", "initializers", "losses", "metrics", "optimizers", "regularizers")
MODEL_CLASSES = ("Functional", "Sequential", "Model", "InputLayer")
OPT_IN = "use --unsafe-model only for a file you trust"
MAX_LISTED = 3


@dataclass(frozen=True)
class LoadedModel:
    """A Keras model and its provenance.

    ``keras_model`` is what scoring calls: one input and the chosen ``output`` of the model
    (``outputs`` names them all; `with_output` chooses another).  ``classes`` names the chosen
    output's scores; ``channels`` is the channel recipe the model expects by default.
    """

    keras_model: Any
    source: str  # a file path, or "built-in:<strategy>"
    sha256: str
    normalize: str  # the preprocessing it expects by default
    spec: ModelSpec
    channels: str = "replicate"
    output: str | None = None
    outputs: tuple[str, ...] = ()
    classes: tuple[str, ...] | None = None
    activation: str | None = None  # of the chosen output's last layer; None: not known
    meta: dict = field(default_factory=dict, compare=False, repr=False)  # the JSON beside the model file
    whole: Any = field(default=None, compare=False, repr=False)  # the model with all its outputs
    submodels: dict = field(default_factory=dict, compare=False, repr=False)  # output index → one-output model, shared by copies
    backend: str = "keras"  # "onnx": ``keras_model`` is an ONNX Runtime runner (`app.inference.onnx_model`), numpy in and out
    about: dict = field(default_factory=dict, compare=False, repr=False)  # recorded in the sidecar's model entry (format, layout)

    @property
    def name(self) -> str:
        return Path(self.source).name if not self.source.startswith("built-in") else self.source

    def with_output(self, name: str | None) -> LoadedModel:
        """The same model scoring its output ``name`` (None: the first), with that output's class
        names from the model's JSON; a clear error naming the outputs if there is none such."""
        whole = self.whole if self.whole is not None else self.keras_model
        names = self.outputs or output_names(whole)
        if name is None:
            name = names[0]
        if name not in names:
            raise ModelError(f"{self.name} has no output {name!r}; its outputs: {', '.join(names)}")
        index = names.index(name)
        chosen = whole if len(names) == 1 and _plain_output(whole) else self._submodel(whole, index, name)
        try:
            spec = spec_of(chosen, self.spec.slice_hint)
        except ModelError as exc:
            raise ModelError(f"{self.name}: {exc}") from None
        model = replace(self, keras_model=chosen, spec=spec, output=name, outputs=names, activation=output_activation(whole, index), classes=None, whole=whole)
        classes = meta_classes(self.meta, name, names)
        return model.with_classes(classes) if classes else model

    def _submodel(self, whole: Any, index: int, name: str) -> Any:
        """The model with output ``index`` only (the same layers and weights), made once."""
        if index not in self.submodels:
            import keras

            self.submodels[index] = keras.Model(whole.input, whole.outputs[index], name=f"{whole.name}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}")
        return self.submodels[index]

    def with_classes(self, classes: Sequence[str] | str | None) -> LoadedModel:
        """The same model with its scores named ``classes`` (a list, or text ``a,b,c``)."""
        if classes is None:
            return replace(self, classes=None)
        names = parse_classes(classes) if isinstance(classes, str) else tuple(str(c) for c in classes)
        check_classes(names)
        count = self.spec.output_shape[-1] if self.spec.output_shape else None
        if count is not None and len(names) != count:
            which = f"output {self.output!r}" if self.output and len(self.outputs) > 1 else "output"
            raise ModelError(f"{self.name}: {len(names)} class names ({', '.join(names)}) for an {which} of {count} scores per slice")
        return replace(self, classes=names)


def parse_classes(text: str) -> tuple[str, ...]:
    """Class names from ``a,b,c`` (spaces around names ignored)."""
    names = tuple(part.strip() for part in text.split(","))
    check_classes(names)
    return names


def check_classes(names: Sequence[str]) -> None:
    if not names or any(not n for n in names):
        raise ModelError(f"bad class names {short(','.join(names), 60)}: give one non-empty name per score, e.g. --classes none,bleed")
    if len(set(names)) != len(names):
        raise ModelError(f"bad class names {short(','.join(names), 60)}: each name must be different")


def meta_classes(meta: dict, output: str, names: tuple[str, ...]) -> list[str] | None:
    """The JSON's ``classes`` for ``output``: a list names the first output's scores, an object
    maps output names to lists."""
    classes = meta.get("classes")
    if isinstance(classes, dict):
        return classes.get(output)
    if isinstance(classes, list) and output == names[0]:
        return classes
    return None


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a model: a file's bytes, or a SavedModel folder's files in path order."""
    path = Path(path)
    if path.is_dir():
        return sha256_of_files(p for p in path.rglob("*") if p.is_file())
    return hashing_file_sha256(path)


def _plain_output(model: Any) -> bool:
    """True when calling ``model`` gives one tensor, not a dict or list of one."""
    try:
        return not isinstance(model.output, (dict, list, tuple))
    except (AttributeError, ValueError):
        return True


def output_names(model: Any) -> tuple[str, ...]:
    """A unique name for each output of a Keras model, in the order of ``model.outputs``: the
    keys of a dict of outputs, else the names of the layers that make them."""
    outputs = list(model.outputs)
    names: list[str] = []
    try:
        structure = model.output
    except (AttributeError, ValueError):
        structure = None
    if isinstance(structure, dict):
        by_id = {id(tensor): str(key) for key, tensor in structure.items()}
        names = [by_id.get(id(tensor), "") for tensor in outputs]
    if not names or not all(names):
        names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(outputs) or not all(names):
        names = [model.layers[-1].name] if len(outputs) == 1 and getattr(model, "layers", None) else [f"output_{i}" for i in range(len(outputs))]
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if names.count(name) == 1 else f"{name}_{seen[name]}")
    return tuple(unique)


def output_activation(model: Any, index: int = 0) -> str | None:
    """The activation that makes output ``index`` (``softmax``, ``sigmoid``, ``linear``…), as the
    model applies it; None when the last layer does not say (a nested model, a SavedModel)."""
    try:
        layer = model.get_layer(model.output_names[index]) if hasattr(model, "output_names") else model.layers[-1]
    except (ValueError, IndexError, AttributeError):
        return None
    if type(layer).__name__ == "Softmax":
        return "softmax"
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) if callable(activation) else None


def spec_of(model: Any, slice_hint: tuple | None = None, output: int = 0) -> ModelSpec:
    """The declared input and output shapes of a single-input Keras model, for its output ``output``."""
    if len(model.inputs) != 1:
        raise ModelError(f"model has {len(model.inputs)} inputs; Slicewise needs a model with one (a slice, or a sequence of slices)")
    inp = tuple(model.inputs[0].shape)[1:]
    out = tuple(model.outputs[output].shape)[1:]
    check_score_dtype(str(model.outputs[output].dtype), inp, out)
    return ModelSpec(inp, out, tuple(slice_hint) if slice_hint else None)


def check_score_dtype(dtype: str, inp: tuple, out: tuple) -> None:
    """Refuse an output that is not floating point (class indices, flags), naming the shapes."""
    if not dtype.startswith(("float", "bfloat", "double")):
        raise ModelError(
            f"model output is {dtype}, not floating point (input {shape_text(inp)} → output {shape_text(out)}); "
            "scores must be numbers such as probabilities or logits, not class indices (an argmax) or flags"
        )


# -- fit of a model to a volume (used by the engine to word its errors) -----------------------


def misfit(model: LoadedModel, volume_shape: tuple, reason: str) -> ModelError:
    """A `ModelError` saying that ``model`` cannot score a volume of ``volume_shape`` ``(D, H, W, C)``,
    naming the model, its input shape and the volume's shape, then ``reason``."""
    return ModelError(f"{model.name} (input {shape_text(model.spec.input_shape)}) does not fit the volume {_volume_text(volume_shape)}: {reason}")


def model_failed(model: LoadedModel, volume_shape: tuple, batch_shape: tuple, exc: BaseException) -> ModelError:
    """A `ModelError` for a model that raised when called on a batch made from the volume."""
    return ModelError(
        f"{model.name} (input {shape_text(model.spec.input_shape)}) failed on the volume {_volume_text(volume_shape)} "
        f"(a batch of shape {shape_text(tuple(batch_shape))}): {failure_reason(exc)}"
    )


def failure_reason(exc: BaseException, limit: int = 240) -> str:
    """The useful part of what a Keras/TensorFlow call raised, on one line.

    Keras wraps layer errors as "Exception encountered when calling Conv2D.call(). <the reason>
    Arguments received by ...": keep the layer's name and the reason; drop TensorFlow's node dumps.
    """
    text = _plain(exc)
    layer = None
    match = re.match(r"\s*Exception encountered when calling (?:layer )?'?([\w.]+?)'?(?:\.call\(\))?\W*\n", text)
    if match:
        layer, text = match[1], text[match.end() :]
    text = text.split("Arguments received by", 1)[0]
    text = re.sub(r"\s*for '\{\{node [^}]*\}\}.*?'(?= with |$)", "", text, flags=re.DOTALL)
    text = " ".join(text.split())
    if not text:
        text = type(exc).__name__
    if layer:
        text = f"{layer}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(exc: BaseException) -> str:
    """What ``exc`` says, without the terminal colour codes Keras puts in some messages."""
    return re.sub(r"\x1b\[[0-9;]*m", "", str(exc))


def _volume_text(shape: tuple) -> str:
    if len(shape) == 4:
        d, h, w, c = shape
        return f"{d}×{h}×{w}×{c} (slices × height × width × channels)"
    return shape_text(tuple(shape))


# -- safety scan ---------------------------------------------------------------------------------


def scan_model_file(path: Path) -> list[str]:
    """What in ``path`` would run code, need code from outside Keras, or read other files.

    Returns short descriptions ("Lambda layer 'lambda' with Python bytecode"); an empty list when
    nothing was found.  Files that cannot be read are left for Keras to report.
    """
    suffix = path.suffix.lower()
    found: list[str] = []
    if suffix == ".keras":
        try:
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read("config.json"))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, RuntimeError):
            return []
        _scan_config(config, found)
    else:
        try:
            import h5py

            with h5py.File(path, "r") as f:
                _scan_h5_storage(f, found)
                raw = f.attrs.get("model_config")
                if raw is not None:
                    config = json.loads(raw.decode("utf-8") if hasattr(raw, "decode") else str(raw))
                    _scan_config(config, found)
        except (OSError, ValueError, TypeError, KeyError):
            return found
    return list(dict.fromkeys(found))


def _scan_config(node: Any, found: list[str], in_layers: bool = False) -> None:
    """Walk a Keras model config, noting stored code and objects from outside Keras."""
    if isinstance(node, list):
        for item in node:
            _scan_config(item, found, in_layers)
        return
    if not isinstance(node, dict):
        return
    name = node.get("class_name")
    if isinstance(name, str):
        label = _layer_label(node)
        config = node.get("config")
        if name == "__lambda__":
            found.append("a serialised Python lambda (bytecode)")
        elif name == "Lambda" and isinstance(config, dict) and _holds_bytecode(config):
            found.append(f"Lambda layer {label} with Python bytecode".replace("  ", " "))
            config = {k: v for k, v in config.items() if k not in ("function", "output_shape")}
        elif "module" in node:
            outside = _outside_keras(node)
            if outside:
                found.append(f"{outside}{label and ' in layer ' + label}")
        elif in_layers and not name.startswith("__") and not _keras_layer(name):
            found.append(f"custom layer class {name!r}{label and ' ' + label}")  # a legacy (tf.keras 2) config
        for key, value in node.items():
            if key != "class_name":
                _scan_config(config if key == "config" else value, found, in_layers=key == "layers")
        return
    for key, value in node.items():
        _scan_config(value, found, in_layers=key == "layers")


def _layer_label(node: dict) -> str:
    config = node.get("config")
    name = node.get("name") or (config.get("name") if isinstance(config, dict) else None)
    return repr(name) if isinstance(name, str) else ""


def _holds_bytecode(config: dict) -> bool:
    """A Lambda config whose function (or output shape) is serialised Python code."""
    for key in ("function", "output_shape"):
        value = config.get(key)
        if isinstance(value, dict) and value.get("class_name") == "__lambda__":
            return True
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):  # tf.keras 2: [code, defaults, closure]
            return key == "function" or config.get("output_shape_type") == "lambda"
    return config.get("function_type") == "lambda"


def _outside_keras(node: dict) -> str:
    """Why the object ``node`` (a Keras 3 config with a ``module``) is not built into Keras, or ''."""
    module, name, registered = node.get("module"), node["class_name"], node.get("registered_name")
    if name.startswith("__") and name.endswith("__"):
        return ""  # tensors, bytes, slices, ...: data, not code
    if module == "builtins" and name == "function":
        function = node.get("config")
        if isinstance(function, str) and not _keras_function(function):
            return f"custom function {function!r}"
        return ""
    if module is None:
        return f"custom class {registered or name!r}" if registered else ""
    if not isinstance(module, str) or module.split(".", 1)[0] not in KERAS_PACKAGES:
        return f"custom class {registered or name!r} from module {module!r}"
    return ""


def _keras_function(name: str) -> bool:
    import keras

    return any(getattr(getattr(keras, module, None), name, None) is not None for module in KERAS_FUNCTION_MODULES)


def _keras_layer(name: str) -> bool:
    import keras

    return name in MODEL_CLASSES or isinstance(getattr(keras.layers, name, None), type)


def _scan_h5_storage(group: Any, found: list[str], prefix: str = "") -> None:
    """HDF5 links and datasets of ``group`` that would read other files (or elsewhere in this one)."""
    import h5py

    for key in group:
        where = f"{prefix}/{key}"
        link = group.get(key, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            found.append(f"HDF5 link {where} to another file ({link.filename})")
            continue
        if isinstance(link, h5py.SoftLink):
            found.append(f"HDF5 soft link {where} → {link.path}")
            continue
        item = group[key]
        if isinstance(item, h5py.Group):
            _scan_h5_storage(item, found, where)
        elif isinstance(item, h5py.Dataset):
            if item.external:
                files = ", ".join(str(entry[0]) for entry in item.external[:MAX_LISTED])
                found.append(f"HDF5 dataset {where} stored in another file ({files})")
            elif item.is_virtual:
                found.append(f"HDF5 virtual dataset {where} (reads other files)")


def _refusal(path: Path, found: list[str]) -> ModelError:
    listed = "; ".join(found[:MAX_LISTED]) + (f"; and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else "")
    code = any("bytecode" in f for f in found)
    files = any(f.startswith("HDF5") for f in found)
    if code:
        why, then = "it holds Python code that loading would run", OPT_IN
    elif files:
        why, then = "it reads data from other files on this computer", OPT_IN
    else:
        why, then = "it needs code from outside Keras, which could do anything", "re-save the model with built-in Keras layers only"
    return ModelError(f"{path.name}: refused by safe mode: {why} ({listed}); {then}")


# -- loading --------------------------------------------------------------------------------------


def metadata_path(path: Path) -> Path:
    """The JSON beside a model: ``model.keras`` → ``model.json``, folder ``model/`` → ``model.json``."""
    return path.with_name(path.name + ".json") if path.is_dir() else path.with_suffix(".json")


def read_metadata(path: Path) -> dict:
    """The JSON beside a model (``classes``, ``channels``, ``slice_shape``, ``normalize``…), or {};
    read with limits and checked key by key (`app.inference.metadata`)."""
    meta_path = metadata_path(path)
    if not meta_path.exists():
        return {}
    return read_metadata_file(meta_path)


def load_model_file(
    path: str | Path, normalize: str | None = None, unsafe: bool = False, *, output: str | None = None, classes: Sequence[str] | str | None = None
) -> LoadedModel:
    """Load a ``.keras`` (or legacy ``.h5``) model file or a TensorFlow SavedModel folder: scanned
    first, then Keras ``safe_mode`` on.  ``normalize`` defaults to the JSON's (else none),
    ``output`` picks one of several outputs (default: the first; or the JSON's ``output``),
    ``classes`` names its scores (default: the JSON's ``classes``).

    ``unsafe=True`` skips the scan and turns safe mode off, for a file the user trusts; it may
    run code in the file.
    """
    path = Path(path)
    if path.is_dir():
        from app.inference.savedmodel import is_saved_model, load_saved_model

        if not is_saved_model(path):
            raise ModelError(f"{path.name}: a folder, but not a TensorFlow SavedModel (no saved_model.pb); a Keras model is a {', '.join(MODEL_SUFFIXES)} file")
        model, _ = load_saved_model(path, unsafe, OPT_IN)
    else:
        model = _load_keras_file(path, unsafe)
    meta = read_metadata(path)
    recipe = channel_recipes.parse_recipe(meta.get("channels")).spec
    if len(model.inputs) != 1:
        raise ModelError(f"{path.name}: model has {len(model.inputs)} inputs; Slicewise needs a model with one (a slice, or a sequence of slices)")
    hint = meta.get("slice_shape")
    unresolved = ModelSpec(tuple(model.inputs[0].shape)[1:], (), tuple(hint) if hint else None)  # with_output resolves the output
    loaded = LoadedModel(model, str(path), file_sha256(path), preprocessing_of(meta) if normalize is None else normalize, unresolved, channels=recipe, meta=meta, whole=model)
    loaded = loaded.with_output(output or meta.get("output"))
    return loaded.with_classes(classes) if classes is not None else loaded


def _load_keras_file(path: Path, unsafe: bool) -> Any:
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ModelError(f"{path.name}: not a Keras model file (expected {', '.join(MODEL_SUFFIXES)}, or a SavedModel folder; an ONNX model is a .onnx file)")
    if not unsafe:
        found = scan_model_file(path)
        if found:
            raise _refusal(path, found)
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds; all mean "cannot load"
        text = " ".join(_plain(exc).split())
        located = re.search(r"Could not (?:locate|deserialize) (?:class|function) '?([\w.>]+)'?", text)
        if "safe_mode" in text:
            reason = f"refused by Keras safe mode: it holds code (e.g. a Lambda layer) that loading would run; {OPT_IN}"
        elif located:
            reason = f"it needs {located[1]!r}, which is not built into Keras (re-save the model with built-in layers only)"
        else:
            reason = (text[:300] + "…" if len(text) > 300 else text) or type(exc).__name__
        raise ModelError(f"{path.name}: cannot load Keras model: {reason}") from None


# -- built-in models ------------------------------------------------------------------------------


def builtin_file(strategy: str) -> Path | None:
    """The trained built-in model shipped for ``strategy`` (``resources/models/<name>.keras``), if any."""
    trained = RESOURCES / f"{strategy}.keras"
    return trained if trained.is_file() else None


def builtin_metadata(strategy: Strategy) -> dict:
    """What is recorded beside the strategy's built-in model (``resources/models/<name>.json``),
    with the strategy's own defaults for what is not: ``normalize``, ``channels``, ``slice_shape``."""
    trained = builtin_file(strategy.name)
    meta = read_metadata(trained) if trained is not None else {}
    defaults = {"normalize": strategy.default_normalize, "channels": channel_recipes.DEFAULT, "slice_shape": strategy.slice_hint}
    return {**defaults, **{k: v for k, v in meta.items() if v is not None or k not in defaults}}


BUILTIN_PREFIX = "builtin:"  # `--model builtin:lesion`: a model shipped in resources/models, not a strategy's


def model_file(model: str | Path) -> Path:
    """The file a ``--model`` value names: a path as given, or a shipped model's
    (``builtin:lesion``: the demo's segmentation model)."""
    if not str(model).startswith(BUILTIN_PREFIX):
        return Path(model)
    name = str(model).removeprefix(BUILTIN_PREFIX)
    path = RESOURCES / f"{name}.keras"
    if not name.isidentifier() or not path.is_file():
        shipped = ", ".join(f"{BUILTIN_PREFIX}{p.stem}" for p in sorted(RESOURCES.glob("*.keras")))
        raise ModelError(f"no built-in model {name!r}; shipped: {shipped}")
    return path


def preprocessing_of(meta: dict) -> str:
    """The normalisation a model's JSON records (checked there: `app.inference.metadata`), or none."""
    return parse_spec(str(meta.get("normalize") or "none"))


def builtin_model(strategy: Strategy) -> LoadedModel:
    """The strategy's default model: trained weights from ``resources/models`` if shipped, else
    its architecture with weights from a fixed seed."""
    meta = builtin_metadata(strategy)
    trained = builtin_file(strategy.name)
    if trained is not None:
        loaded = load_model_file(trained, meta["normalize"])
        hint = tuple(meta["slice_shape"]) if meta["slice_shape"] else None
        return replace(loaded, source=f"built-in:{strategy.name}", meta=meta, spec=replace(loaded.spec, slice_hint=hint))
    model = strategy.build_model()
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(weights.tobytes())
    loaded = LoadedModel(
        model, f"built-in:{strategy.name} (untrained)", digest.hexdigest(), meta["normalize"], spec_of(model, meta["slice_shape"]), channels=meta["channels"], meta=meta, whole=model
    )
    return loaded.with_output(None)
