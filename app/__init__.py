"""Slicewise: a desktop volume viewer with per-slice Keras predictions.

Architecture (the core never imports Qt; ``app.ui`` only wires widgets to it):

- ``app.volume``      ``Volume``: a ``(depth, height, width, channels)`` float32 torch tensor
                      in a known orientation, with its affine, spacing and slice positions.
- ``app.io``          one loader per file family (nibabel formats, DICOM, arrays) → ``Volume``.
- ``app.preprocessing`` explicit, recorded intensity normalisation.
- ``app.strategies``  the three ways to score a volume with a Keras model: ``slice`` (2D CNN
                      per slice), ``temporal`` (a sequence model along depth) and ``embedding``
                      (depth-pooled features into dense layers).  Each adapts the volume to the
                      model's input and maps its output to per-slice scores.
- ``app.inference``   the TensorFlow runtime (lazy import, threads, device) and the engine that
                      feeds batches, reports progress and honours cancellation.
- ``app.export``      CSV + JSON sidecar, written atomically.
- ``app.cli``         ``slicewise`` / ``python -m app``: GUI, ``predict``, ``render``, ``demo``.
- ``app.ui``          PySide6 + pyqtgraph: main window, slice view, score plot, worker thread.
"""

__version__ = "0.1.0"
