"""`SliceImage` draws a plane of the volume through the window and the colour table: checked
pixel by pixel on what it paints, for a plain, a mirrored and a scattered (gathered) view."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QImage, QPainter

from app.ui.views.slice_image import SliceImage

pytestmark = pytest.mark.gui


def painted(item: SliceImage) -> np.ndarray:
    """What the item paints at one pixel per image pixel, as (rows, cols, 3) uint8 RGB."""
    rows, cols = item.image.shape
    target = QImage(cols, rows, QImage.Format.Format_RGB32)
    target.fill(0xFF00FF)
    painter = QPainter(target)
    item.paint(painter, None)
    painter.end()
    argb = np.frombuffer(target.constBits(), np.uint8).reshape(rows, target.bytesPerLine() // 4, 4)[:, :cols]
    return argb[..., 2::-1].copy()  # B, G, R, A in memory -> R, G, B


def expected(values: np.ndarray, levels: tuple[float, float], lut: np.ndarray) -> np.ndarray:
    """pyqtgraph's mapping: the window spread over the table, values outside clamped."""
    low, high = levels
    finite = np.where(np.isfinite(values), values, 0.0)
    index = np.clip(np.floor((finite - low) * len(lut) / (high - low)), 0, len(lut) - 1).astype(int)
    return lut[index][..., :3]


@pytest.fixture
def lut() -> np.ndarray:
    """A table that tells every entry apart and red from blue."""
    ramp = np.arange(256, dtype=np.uint8)
    return np.stack([ramp, 255 - ramp, ramp // 2], axis=1)


def test_values_map_through_the_window_and_the_table(qapp, lut):
    values = np.linspace(-50, 300, 24 * 20, dtype=np.float32).reshape(24, 20)
    item = SliceImage()
    item.set_lut(lut)
    item.set_image(values, (0.0, 256.0))
    np.testing.assert_array_equal(painted(item), expected(values, (0.0, 256.0), lut))
    item.set_levels((100.0, 164.0))  # a narrower window: the same plane, drawn again
    np.testing.assert_array_equal(painted(item), expected(values, (100.0, 164.0), lut))


def test_non_finite_values_are_drawn_as_zero(qapp, lut):
    values = np.full((8, 10), 50.0, np.float32)
    values[1, 2], values[3, 4], values[5, 6] = np.nan, np.inf, -np.inf
    item = SliceImage()
    item.set_lut(lut)
    item.set_image(values, (-100.0, 100.0))
    drawn = painted(item)
    zero = expected(np.zeros((1, 1), np.float32), (-100.0, 100.0), lut)[0, 0]
    for row, col in ((1, 2), (3, 4), (5, 6)):
        np.testing.assert_array_equal(drawn[row, col], zero)
    np.testing.assert_array_equal(drawn[0, 0], expected(values[:1, :1], (-100.0, 100.0), lut)[0, 0])


def test_a_mirrored_view_is_drawn_as_it_reads(qapp, lut):
    """A radiological slice is a view with a negative column stride: read forwards, drawn mirrored."""
    base = np.random.default_rng(0).uniform(0, 255, (16, 30)).astype(np.float32)
    mirrored = base[::-1, ::-1]
    assert mirrored.strides[1] < 0
    item = SliceImage()
    item.set_lut(lut)
    item.set_image(mirrored, (0.0, 256.0))
    np.testing.assert_array_equal(painted(item), expected(np.ascontiguousarray(mirrored), (0.0, 256.0), lut))


def test_a_scattered_view_is_gathered_and_drawn_the_same(qapp, lut):
    """A sagittal plane of an axial volume (one pixel per cache line) is copied on the helper
    thread; what is drawn is the plane, and a newer plane replaces an older one still in flight."""
    volume = np.random.default_rng(1).uniform(0, 255, (12, 40, 64)).astype(np.float32)
    item = SliceImage()
    item.set_lut(lut)
    for column in (5, 6, 63):
        item.set_image(volume[::-1, :, column], (0.0, 256.0))  # no paint in between
    assert item.image.base is not None, "a view of the volume, not a copy"
    np.testing.assert_array_equal(painted(item), expected(volume[::-1, :, 63], (0.0, 256.0), lut))
    item.clear()
    assert item.image is None and item.boundingRect().isEmpty()


def test_a_table_it_cannot_draw_is_refused(qapp):
    item = SliceImage()
    with pytest.raises(ValueError, match="lookup table"):
        item.set_lut(np.zeros((512, 3), np.uint8))
