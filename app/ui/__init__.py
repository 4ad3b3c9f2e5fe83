"""The desktop viewer: PySide6 + pyqtgraph widgets wired to the Qt-free core.

Nothing here loads files, runs models or writes exports by itself; each module wires widgets
to one part of the core:

- ``main``        the QApplication and ``run_gui`` (``slicewise [VOLUME]``)
- ``window``      ``MainWindow``: owns the widgets below and connects them
- ``actions``     menus, toolbar actions and keyboard shortcuts
- ``slice_view``  the current slice (ImageItem at true aspect), window/level + colormap, hover
- ``scrubber``    depth slider + spin box
- ``score_plot``  per-slice score curves, a cursor locked to the scrubber, a threshold line
- ``loader``      volumes loaded off the GUI thread (``app.io.load_volume``), newest request wins
- ``worker``      the one long-lived inference thread (TensorFlow lives only there) and its
                  job-id / cancel protocol
- ``settings``    recent files in QSettings
- ``render``      ``slicewise render``: the same window, drawn offscreen to a PNG
"""
