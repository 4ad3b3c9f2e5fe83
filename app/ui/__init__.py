"""The desktop viewer: PySide6 + pyqtgraph widgets wired to the Qt-free core.

Nothing here loads files, runs models or writes exports by itself; each module wires widgets
to one part of the core:

- ``launch``, ``main``, ``platform_check``  the ``slicewise`` entry point, the QApplication, and
  the check that Qt's platform plugin can load
- ``window``      ``MainWindow``: lays out the widgets below and connects them to the session;
  ``model_commands``, ``export_commands`` and ``reference_commands`` are its Model, export and
  reference-mask menu commands
- ``actions``     menus, toolbar and keyboard shortcuts; ``dialogs`` the file and number dialogs
- ``views``       the depth view and the two side views (``plane_view``, each a ``slice_image``
  under a ``crosshair``), the display panel (``display_panel``: window/level, presets,
  colormap) and the side views' score tint; ``image_item`` pyqtgraph's image item drawn from RGB
- ``saliency_overlay``, ``saliency_requests``  the heat map on the depth view, asked of the worker
- ``mask_overlay``, ``mask_pixels``, ``mask_legend``  a segmentation run's map over all three
  views (filled, outline, heat; pixels looked up from the uint8 map), and its legend (class
  volumes in mL, the heat colour bar)
- ``scrubber``    depth slider, spin box and the strip of labels and hits
- ``score_plot``  per-slice score curves, a cursor locked to the scrubber, a threshold line;
  ``dice_curve`` the per-slice Dice against a reference mask on a right-hand axis
- ``review_panel``, ``label_keeper``  agreement figures and the labels' sidecar
- ``status_line`` the status bar's readouts (``steady_label``: labels that only grow); ``throttle``
  redraws at most once per interval
- ``volume_loader``  volumes loaded off the GUI thread, newest request wins
- ``inference_thread``, ``prediction``  the one long-lived worker thread (TensorFlow lives only
  there), its job-id / cancel protocol, and the controller that feeds the session
- ``exports``     the runs' CSV, the plot PNG, the mask NIfTI; ``settings`` recent files and window settings in QSettings
- ``render``      ``slicewise render``: the same window, drawn offscreen to a PNG
- ``bench_ui``    the viewer's speed figures, each in a fresh process (run by ``app.tools.bench``)
"""
