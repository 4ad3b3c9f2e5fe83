"""The window's model commands: a Keras or ONNX file (checked on the worker at once) or the built-in
model, safe mode, batch size and scoring threads.  A mixin of `MainWindow`."""

from __future__ import annotations

from pathlib import Path

from app.errors import SlicewiseError
from app.ui.commands.dialogs import MODEL_FILTER
from app.uncertainty import parse as parse_uncertainty
from app.uncertainty.method import DEFAULT_PASSES, MAX_PASSES

UNCERTAINTY_KINDS = ("none", "mc-dropout", "tta", "ensemble")  # Model › Uncertainty
DEFAULT_TTA = "flip-ap,shift:2"


class ModelCommands:
    """Needs the window's ``session``, ``predictions``, ``toolbar``, ``actions_by_name``,
    ``dialogs``, ``prefs`` and ``_error``."""

    def set_model(self, path: str | Path | None, unsafe: bool = False, check: bool = True) -> None:
        """Use a Keras or ONNX model file (None: the built-in one); ``check`` loads it on the worker at once."""
        state = "built-in" if path is None else ("loading" if check else "ready")
        self.session.update_settings(model_path=str(path) if path else None, unsafe_model=bool(path) and unsafe, output=None,
                                     model_outputs=(), model_state=state)
        self.actions_by_name["builtin"].setChecked(path is None)
        if path is not None and check:
            self.predictions.check_model(str(path), unsafe)
            self.statusBar().showMessage(f"Loading {Path(path).name} on the worker thread…")

    def use_builtin_model(self) -> None:
        self.set_model(None)

    def load_model_dialog(self) -> None:
        self._model_dialog(unsafe=False)

    def load_unsafe_model_dialog(self) -> None:
        if self.dialogs.confirm_unsafe_model():
            self._model_dialog(unsafe=True)

    def _model_dialog(self, unsafe: bool) -> None:
        if path := self.dialogs.open_file("model", "Load model (Keras or ONNX)", MODEL_FILTER):
            self.set_model(path, unsafe)
        else:
            self.actions_by_name["builtin"].setChecked(self.session.settings.model_path is None)

    def _on_model_ready(self, description: str, outputs: list[str]) -> None:
        self.session.update_settings(model_outputs=tuple(outputs), model_state="ready")

    def _on_model_failed(self, message: str) -> None:
        self.set_model(None)
        self._error("Cannot load model", f"{message}\n\nUsing the built-in model.")

    def choose_uncertainty(self, kind: str) -> None:
        """Model › Uncertainty: none, MC dropout (asks N), TTA (asks the augmentations) or an
        ensemble (asks for the model files); stored in the session's settings for the next run."""
        current = self.session.settings.uncertainty
        spec: str | None = None
        if kind == "mc-dropout":
            passes = self.dialogs.ask_int("MC dropout", "Passes per slice (dropout layers on, BatchNormalization in inference mode):", DEFAULT_PASSES, 2, MAX_PASSES)
            spec = f"mc-dropout:{passes}" if passes is not None else current
        elif kind == "tta":
            names = self.dialogs.ask_text("Test-time augmentation", "Augmentations besides the original (flip-lr, flip-ap, shift:K);\n"
                                          "flip-lr swaps left and right: not for lateralised findings", DEFAULT_TTA)
            spec = f"tta:{names}" if names else current
        elif kind == "ensemble":
            paths = self.dialogs.open_files("model", "Ensemble: choose two or more Keras models fitted alike", MODEL_FILTER)
            spec = "ensemble:" + ",".join(paths) if paths else current
        try:
            parse_uncertainty(spec)
        except SlicewiseError as exc:
            self._error("Uncertainty", str(exc))
            spec = current
        self.session.update_settings(uncertainty=spec)
        chosen = (spec or "none").partition(":")[0]
        for name in UNCERTAINTY_KINDS:
            self.actions_by_name[f"uncertainty_{name}"].setChecked(name == chosen)

    def batch_size_dialog(self) -> None:
        if (value := self.dialogs.ask_int("Batch size", "Slices (or windows) per model call:", self.session.settings.batch_size, 1, 4096)) is not None:
            self.session.update_settings(batch_size=value)

    def worker_threads_dialog(self) -> None:
        current = self.prefs.worker_threads() or self.predictions.inference.worker.threads
        value = self.dialogs.ask_int("Threads for scoring", "TensorFlow threads (default: every core; the worker runs at\nlow priority, so the window stays smooth; takes effect at the next start):", current, 1, 256)
        if value is not None:
            self.prefs.set_worker_threads(value)
