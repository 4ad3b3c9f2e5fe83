"""The desktop viewer: PySide6 + pyqtgraph widgets wired to the Qt-free core.

Nothing here loads files, runs models or writes exports by itself; each module wires widgets to
one part of the core (`app.session.Session` holds every piece of state they draw).  Grouped by
role, as napari's ``_qt`` and FSLeyes' ``views`` / ``controls`` / ``actions``:

- top level   ``launch`` (the ``slicewise`` entry point), ``main`` (the QApplication),
  ``platform_check`` (can Qt's platform plugin load), ``window`` (``MainWindow``: lays out
  the pieces below and connects them to the session), ``render`` (``slicewise render``: the same
  window drawn offscreen), ``review_mode`` (``slicewise review``: the cohort docks beside the
  window), ``bench_ui`` (the viewer's speed figures, each in a fresh process)
- ``views``   what is drawn: ``views_panel`` (the depth view and two side views), ``plane_view``
  (a ``slice_image`` under a ``crosshair`` on a ``plane_canvas``; ``image_item`` pyqtgraph's
  item drawn from RGB), ``saliency_overlay``, ``mask_overlay`` with ``mask_pixels`` and
  ``mask_legend`` (a segmentation map: filled, outline, heat, uncertainty; class volumes in mL),
  ``scrubber`` (slider, spin box, strip of labels and hits), ``score_plot`` (curves, bands, a
  cursor locked to the scrubber, the threshold line; ``dice_curve`` Dice on a right-hand axis,
  ``area_axis`` segmentation areas on one of their own beside classifier scores),
  ``throttle`` (redraws at most once per interval)
- ``panels``  controls and readouts beside the views: ``display_panel`` (window/level, presets,
  colormap), ``review_panel`` (agreement, spread, Dice, opacities), ``status_line`` (with
  ``steady_label``), ``worklist`` and ``adjudication`` (a cohort's cases, readers' disagreements)
- ``commands``  what the user asks for: ``actions`` (menus, toolbar, keys), ``dialogs``,
  ``model_commands``, ``export_commands`` with ``exports`` (CSV, plot PNG, mask, DICOM SEG),
  ``reference_commands`` (a reference mask), ``label_keeper`` (labels kept on disk),
  ``settings`` (QSettings)
- ``worker``  off the GUI thread: ``inference_thread`` (the one long-lived worker: models live
  only there; job ids, cancel, map relay), ``prediction`` (the controller that feeds the
  session), ``saliency_requests``, ``volume_loader`` (newest request wins)
"""
