"""Developer tools, outside the product's import graph: nothing in ``app`` imports them.

- ``bench``       ``python -m app.tools.bench``: the speed figures, side by side in one run (the
  viewer's in fresh processes of ``app.ui.bench_ui``; nothing here imports Qt)
- ``train_demo``  ``python -m app.tools.train_demo``: trains and evaluates the built-in demo models
- ``seed_models`` the seed article's reference models, shared by the benchmark and the tests
- ``backend_compare``  ``python -m app.tools.backend_compare``: Keras on TensorFlow against Keras on torch
- ``gpu_check``   ``python -m app.tools.gpu_check``: each GPU path on this machine, scored against the CPU
- ``torch_models``, ``user_script``, ``user_seg_script``, ``seg_memory``, ``train_lesion``: the
  benchmark's ONNX export, the scripts a user would write instead, the segmentation memory
  figure, the demo U-Net's training
"""
