"""Developer tools, outside the product's import graph: nothing in ``app`` imports them.

- ``bench``       ``python -m app.tools.bench``: the speed figures, side by side in one run (the
  viewer's in fresh processes of ``app.ui.bench_ui``; nothing here imports Qt)
- ``train_demo``  ``python -m app.tools.train_demo``: trains and evaluates the built-in demo models
- ``seed_models`` the seed article's reference models, shared by the benchmark and the tests
"""
