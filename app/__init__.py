"""Slicewise: a desktop volume viewer with per-slice Keras predictions.

Where state lives: one `app.session.Session` holds everything the user looks at and has asked
for — the open volume, slice, crosshair point, levels, colormap, left/right convention, layout,
the scoring settings, the threshold, the runs and their scores (and a segmentation run's map),
the labels, the saliency maps, how the mask overlay is drawn.
It announces each change on ``session.events`` (plain callbacks, `app.events`).  The widgets in
``app.ui`` draw the session and write it through its methods; none keeps state of its own.
``slicewise render`` fills a session headless and draws it with the same widgets.

Which way dependencies point (checked by import-linter, ``lint-imports``; see pyproject.toml):

    app.tools        benchmark, demo-model training, the seed article's models (dev only)
      app.ui         PySide6 + pyqtgraph: window, plane views, scrubber, plot, worker thread
        app.cli      ``slicewise predict`` / ``demo`` (``gui`` and ``render`` come from app.ui.launch)
          app.cohort   volumes of a folder or glob scored on Dask
            app.session | app.export | app.dicom_export
                             viewer state | CSV + JSON sidecar, atomic writes | DICOM SEG and SR
              app.inference   TensorFlow runtime (lazy, threads, GPU), safe model loading, batch
                              engine, saliency
                app.segmentation  dense models: tiles, maps on the volume's grid, areas, mask export
                  app.strategies | app.io   slice, temporal, embedding | loaders → Volume
                    app.volume     ``Volume``: a (depth, height, width, channels) float32 torch
                                   tensor in a known orientation, with affine, spacing, positions

Beside them, small modules with one job each: `app.display` (initial levels, CT presets),
`app.planes` (the three planes through a voxel, oriented for reading), `app.runs` (a run's
scores and map, regions above a threshold), `app.status` (what the status bar and CLI say),
`app.channels` (channel recipes), `app.preprocessing` (intensity normalisation),
`app.review` (a reader's labels, how runs and readers agree, the CLI's saliency and label
outputs), `app.phantom` (the demo phantom).
Nothing outside ``app.ui`` imports Qt.
"""

__version__ = "0.2.0"
