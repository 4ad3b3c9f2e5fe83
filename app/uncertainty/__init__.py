"""Uncertainty of a run's scores: MC dropout, test-time augmentation (TTA) and ensembles.

Each method makes several *passes* over every batch (dropout masks, augmented inputs, member
models); the engine reads each pass's output as it reads a plain one (`Plan.read`) and keeps the
mean as the score and the standard deviation as the run's *spread* (`Prediction.spread`).
Qt-free; TensorFlow is reached only through the engine's traced calls and the Keras model.
"""

from app.uncertainty.combine import mean_sd
from app.uncertainty.method import METHODS, Uncertainty, from_options, parse

__all__ = ["METHODS", "Uncertainty", "from_options", "mean_sd", "parse"]  # `Passes` (app.uncertainty.passes) imports torch
