"""The strategies by name, with their titles and one-line summaries: plain data, so the command
line and the window can list them without importing torch (the classes in `app.strategies`
take their titles from here)."""

from __future__ import annotations

#: name → (title, summary), in menu order
CATALOG: dict[str, tuple[str, str]] = {
    "slice": ("Slice by slice (2D CNN)", "each slice scored on its own by a 2D CNN"),
    "temporal": ("Sequence along depth (temporal)", "each slice scored in the context of its neighbours by a sequence model along depth"),
    "embedding": ("Depth-pooled embedding (slab)", "each slice scored from the pooled embeddings of the slab of slices centred on it"),
}
NAMES = tuple(CATALOG)
