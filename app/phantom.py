"""A synthetic CT-like body phantom with small lesions and exact per-slice lesion labels.

``make_phantom(seed)`` builds an int16 volume in Hounsfield-like units with a real RAS affine;
``write_demo(out_dir)`` writes it as ``phantom.nii.gz`` plus ``labels.csv`` (``slice_index,label``).
Everything is drawn from ``numpy.random.SeedSequence(seed)``, so a seed always gives the same
bytes, and the volume is built slice by slice in float32 (a 64 × 128 × 128 phantom takes a few
tens of milliseconds).

Geometry: the data array is nibabel's ``(i, j, k) = (x, y, z)`` order, shape
``(size, size, depth)``, and the affine is ``diag(spacing)`` plus a translation that puts the
volume centre at the world origin, so ``i`` runs right-wards, ``j`` anterior-wards and ``k``
(the axial slice index) from inferior to superior.

Anatomy (every size below is a fraction of the field of view, so the body fills the image at any
``size``; only lesions are sized in millimetres):

========================  ======  =====================================================
structure                 HU      where
========================  ======  =====================================================
air                       -1000   outside the body
subcutaneous fat          -100    a rim under the body outline (a super-ellipse)
soft tissue               40      the rest of the body
liver                     60      patient's right, anterior, lower half up to the lung bases
lungs                     -820    left and right, upper part of the z range, growing upwards
vertebral body            700     cortical ring around 250 HU cancellous bone, posterior
spinal canal              15      just posterior to the vertebral body
========================  ======  =====================================================

plus low-frequency tissue texture (a few HU; stronger in the lungs) and Gaussian noise
(σ 12-18 HU, per seed).  Body axes, fat thickness, organ sizes and positions vary with the seed
and smoothly along z.

Lesions: roughly spherical (slightly ellipsoidal), radius 3-8 mm, +60 to +120 HU above the
tissue around them, with a 1.2 mm soft edge; only in soft tissue or liver (a 1.5 mm margin from
anything else), never overlapping, and never reaching the first or last slice.  Lesions are added
until a per-seed target fraction of the slices they reach (16-32 %) is reached, never exceeding
40 % (usually 3-5 lesions for 64 slices); ``lesions=N`` asks for N lesions instead (as many as
fit), ``lesions=0`` for a lesion-free phantom with the same anatomy and noise.

Labels say where a lesion can be seen: slice ``k`` is labelled 1 iff a lesion raises some
``LABEL_PATCH`` × ``LABEL_PATCH`` voxel patch of it (4.5 mm square) by at least
``LABEL_THRESHOLD_HU`` on average, computed from the rendered lesion field itself (before noise).
The outermost caps of a lesion, a cross-section of a few mm² raised by 20-60 HU under 12-18 HU
of noise, show no lesion one could point at and are labelled 0.
"""

from __future__ import annotations

import gzip
import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from app.errors import SlicewiseError
from app.outputs import OutputSet

__all__ = ["HU", "LABEL_PATCH", "LABEL_THRESHOLD_HU", "Phantom", "lesion_mask", "make_phantom", "write_demo"]

#: Intensities of the structures, in HU.
HU = {
    "air": -1000.0,
    "fat": -100.0,
    "tissue": 40.0,
    "liver": 60.0,
    "lung": -820.0,
    "cortical": 700.0,
    "cancellous": 250.0,
    "canal": 15.0,
}

#: A slice is positive iff a lesion raises a LABEL_PATCH² voxel patch by this much on average.
LABEL_THRESHOLD_HU = 30.0
LABEL_PATCH = 5
#: A lesion reaches a slice where it adds at least this much to a voxel (used to place lesions).
REACH_THRESHOLD_HU = 20.0

LESION_RADIUS_MM = (3.0, 8.0)
LESION_CONTRAST_HU = (60.0, 120.0)
LESION_EDGE_MM = 1.2  # width of the linear ramp at the lesion surface
LESION_MARGIN_MM = 1.5  # soft tissue required around a lesion
TARGET_POSITIVE_FRACTION = (0.16, 0.32)
MAX_POSITIVE_FRACTION = 0.40
NOISE_SIGMA_HU = (12.0, 18.0)

MIN_DEPTH = 12
MIN_SIZE = 32

# tissue classes of the label map used to place lesions
AIR, FAT, TISSUE, LIVER, LUNG, BONE, CANAL = range(7)
_TEXTURE_GAIN = np.array([0.0, 0.6, 1.0, 1.0, 4.0, 3.0, 0.5], np.float32)  # per class


@dataclass(frozen=True)
class Phantom:
    """A synthetic volume and its per-axial-slice lesion labels."""

    image: nib.Nifti1Image  # int16, (size, size, depth) = (x, y, z), RAS affine in mm
    labels: np.ndarray  # (depth,) uint8: 1 where the axial slice shows a lesion


@dataclass(frozen=True)
class _Lesion:
    center: tuple[float, float, float]  # (x, y, z) in world mm
    radius: float  # mm
    stretch: tuple[float, float, float]  # per-axis scale of the radius
    contrast: float  # HU


def make_phantom(
    seed: int = 0,
    depth: int = 64,
    size: int = 128,
    spacing: Sequence[float] = (0.9, 0.9, 2.5),
    lesions: int | None = None,
) -> Phantom:
    """Build the phantom for ``seed``: same arguments, same bytes.

    ``lesions``: None for the seed's own number of lesions, else how many to place (0: none).
    """
    data, labels, affine = _render(seed, depth, size, spacing, lesions)
    return Phantom(image=_nifti(data, affine), labels=labels)


def lesion_mask(
    seed: int = 0,
    depth: int = 64,
    size: int = 128,
    spacing: Sequence[float] = (0.9, 0.9, 2.5),
    lesions: int | None = None,
) -> nib.Nifti1Image:
    """Where ``make_phantom``'s lesions show, voxel by voxel: 1 where a lesion raises a voxel by
    LABEL_THRESHOLD_HU in a slice where it shows (uint8, the phantom's affine).  A slice's label
    is 1 iff its mask holds a 1."""
    _, _, affine, mask = _render(seed, depth, size, spacing, lesions, mask=True)
    img = nib.Nifti1Image(mask, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img


def write_demo(
    out_dir: str | os.PathLike, seed: int = 0, depth: int = 64, size: int = 128, lesions: int | None = None
) -> tuple[Path, Path]:
    """Write ``out_dir/phantom.nii.gz`` and ``out_dir/labels.csv``, both or neither; return both paths."""
    out = Path(out_dir)
    phantom = make_phantom(seed=seed, depth=depth, size=size, lesions=lesions)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SlicewiseError(f"cannot create {out}: {exc.strerror or exc}") from None
    image_path, labels_path = out / "phantom.nii.gz", out / "labels.csv"
    rows = "".join(f"{k},{int(v)}\n" for k, v in enumerate(phantom.labels))
    with OutputSet() as outs:  # both or neither
        outs.add(image_path, gzip.compress(phantom.image.to_bytes(), compresslevel=6, mtime=0))
        outs.add(labels_path, "slice_index,label\n" + rows)
    return image_path, labels_path


# --------------------------------------------------------------------------------------------
# rendering


def _check(seed, depth, size, spacing, lesions=None) -> tuple[int, int, int, tuple[float, float, float]]:
    try:
        seed_i, depth_i, size_i = (int(v) for v in (seed, depth, size))
        sp = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise SlicewiseError("phantom: seed, depth and size must be integers and spacing three numbers") from None
    if seed_i != seed or depth_i != depth or size_i != size:
        raise SlicewiseError("phantom: seed, depth and size must be integers")
    if seed_i < 0:
        raise SlicewiseError(f"phantom: seed must be >= 0, got {seed}")
    if depth_i < MIN_DEPTH:
        raise SlicewiseError(f"phantom: depth must be at least {MIN_DEPTH} slices, got {depth}")
    if size_i < MIN_SIZE:
        raise SlicewiseError(f"phantom: size must be at least {MIN_SIZE} pixels, got {size}")
    if len(sp) != 3 or not all(math.isfinite(s) and s > 0 for s in sp):
        raise SlicewiseError(f"phantom: spacing must be three positive numbers (mm), got {tuple(spacing)}")
    if lesions is not None and (isinstance(lesions, bool) or not isinstance(lesions, numbers.Integral) or lesions < 0):
        raise SlicewiseError(f"phantom: lesions must be a whole number >= 0 (or None for the seed's own), got {lesions!r}")
    return seed_i, depth_i, size_i, sp  # type: ignore[return-value]


def _affine(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-s * (n - 1) / 2.0 for s, n in zip(spacing, shape)]
    return affine


def _render(seed, depth, size, spacing, lesions: int | None = None, mask: bool = False):
    """The phantom as ``(data (x, y, z) int16, labels uint8, affine)``, plus the lesion mask
    ``(x, y, z)`` uint8 if ``mask``.

    ``lesions=0`` renders the same phantom without its lesions (same anatomy, texture and
    noise): the tests use it to see exactly which voxels the lesions changed.
    """
    seed, depth, size, spacing = _check(seed, depth, size, spacing, lesions)
    sx, sy, sz = spacing
    streams = np.random.SeedSequence(seed).spawn(4)
    anatomy_rng, texture_rng, lesion_rng, noise_rng = (np.random.default_rng(s) for s in streams)

    affine = _affine((size, size, depth), spacing)
    xs = (np.arange(size) - (size - 1) / 2.0) * sx  # world mm of columns (i)
    ys = (np.arange(size) - (size - 1) / 2.0) * sy  # world mm of rows (j)
    zs = (np.arange(depth) - (depth - 1) / 2.0) * sz
    px = float(min(sx, sy))

    body = _Anatomy(anatomy_rng, half_x=size * sx / 2.0, half_y=size * sy / 2.0)
    texture = _Texture(texture_rng, xs, ys, zs)

    vol = np.empty((depth, size, size), np.float32)  # [z, y, x]
    cls = np.empty((depth, size, size), np.uint8)
    for k in range(depth):
        t = (k + 0.5) / depth  # 0 = inferior end, 1 = superior end
        v, c = vol[k], cls[k]
        body.paint(v, c, xs, ys, t, px)
        v += texture.at(k) * np.take(_TEXTURE_GAIN, c)

    labels = np.zeros(depth, np.uint8)
    shown = np.zeros((depth, size, size), np.uint8) if mask else None
    if lesions != 0:
        labels = _add_lesions(vol, cls, lesion_rng, body, xs, ys, zs, spacing, lesions, shown)

    sigma = np.float32(noise_rng.uniform(*NOISE_SIGMA_HU))
    out = np.empty((depth, size, size), np.int16)
    for k in range(depth):
        noisy = vol[k] + sigma * noise_rng.standard_normal((size, size), dtype=np.float32)
        np.rint(noisy, out=noisy)
        np.clip(noisy, -1024, 3071, out=noisy)
        out[k] = noisy
    if shown is not None:
        return out.T, labels, affine, shown.T
    return out.T, labels, affine  # (x, y, z), Fortran-ordered: NIfTI's on-disk layout


class _Anatomy:
    """Seeded body shape whose parameters vary smoothly with the z fraction ``t``."""

    def __init__(self, rng: np.random.Generator, half_x: float, half_y: float):
        u = rng.uniform
        self.a0 = u(0.80, 0.90) * half_x  # body semi-axes (mm)
        self.b0 = u(0.56, 0.68) * half_y
        self.yc0 = u(-0.04, 0.04) * half_y
        self.power = u(2.0, 2.6)  # super-ellipse exponent of the outline
        self.waves = [(u(0.02, 0.06), u(0.4, 1.2), u(0, 2 * np.pi)) for _ in range(3)]  # a, b, yc
        self.fat = u(0.06, 0.12)  # fat rim, fraction of b
        self.lung_start = u(0.45, 0.60)
        self.lung_x = u(0.50, 0.56)
        self.lung_ax = u(0.22, 0.27)
        self.lung_ay = u(0.42, 0.52)
        self.lung_y = u(-0.10, 0.00)
        self.liver_lo, self.liver_hi = u(0.08, 0.20), self.lung_start + u(0.02, 0.10)
        self.liver_x, self.liver_y = u(0.30, 0.40), u(0.00, 0.15)
        self.liver_ax, self.liver_ay = u(0.38, 0.48), u(0.45, 0.60)
        self.spine_y = u(0.38, 0.46)  # centre of the vertebral body, fraction of b posterior
        self.spine_r = u(0.16, 0.21)  # radius, fraction of b
        self.spine_drift = (u(0.02, 0.05), u(0.3, 0.8), u(0, 2 * np.pi))

    @staticmethod
    def _wave(w, t: float) -> float:
        amp, freq, phase = w
        return amp * math.sin(2 * math.pi * freq * t + phase)

    def shape(self, t: float) -> tuple[float, float, float]:
        """Body semi-axes ``a`` (x), ``b`` (y) and centre ``yc`` in mm at z fraction ``t``."""
        a = self.a0 * (1 + self._wave(self.waves[0], t))
        b = self.b0 * (1 + self._wave(self.waves[1], t))
        yc = self.yc0 + self.b0 * self._wave(self.waves[2], t) * 0.5
        return a, b, yc

    def paint(self, v: np.ndarray, c: np.ndarray, xs, ys, t: float, px: float) -> None:
        a, b, yc = self.shape(t)
        v.fill(HU["air"])
        c.fill(AIR)
        fat = self.fat * b
        _paint(v, c, xs, ys, 0.0, yc, a, b, self.power, HU["fat"], FAT, px)
        _paint(v, c, xs, ys, 0.0, yc, a - fat, b - fat, self.power, HU["tissue"], TISSUE, px)

        liver = _envelope(t, self.liver_lo, self.liver_hi, 0.12)
        if liver > 0.05:
            s = 0.4 + 0.6 * liver
            _paint(v, c, xs, ys, self.liver_x * a, yc + self.liver_y * b, self.liver_ax * a * s, self.liver_ay * b * s, 2.0, HU["liver"], LIVER, px)

        lung = _smoothstep((t - self.lung_start) / 0.18)
        if lung > 0.05:
            s = 0.35 + 0.65 * lung
            for side in (-1.0, 1.0):
                _paint(v, c, xs, ys, side * self.lung_x * a, yc + self.lung_y * b, self.lung_ax * a * s, self.lung_ay * b * s, 2.0, HU["lung"], LUNG, px)

        r = self.spine_r * b
        sx_ = self.b0 * self._wave(self.spine_drift, t) * 0.3
        cy = yc - self.spine_y * b
        _paint(v, c, xs, ys, sx_, cy, r, r * 0.9, 2.0, HU["cortical"], BONE, px)
        _paint(v, c, xs, ys, sx_, cy, r * 0.72, r * 0.62, 2.0, HU["cancellous"], BONE, px)
        _paint(v, c, xs, ys, sx_, cy - r * 1.45, r * 0.42, r * 0.42, 2.0, HU["canal"], CANAL, px)


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def _envelope(t: float, lo: float, hi: float, ramp: float) -> float:
    return _smoothstep((t - lo) / ramp) * _smoothstep((hi - t) / ramp)


def _paint(v, c, xs, ys, cx, cy, ax, ay, power, value, cid, px) -> None:
    """Blend an anti-aliased super-ellipse ``|dx/ax|^p + |dy/ay|^p <= 1`` into ``v``; mark ``c``."""
    if ax <= px or ay <= px:
        return
    pad = 2 * px
    i0, i1 = np.searchsorted(xs, [cx - ax - pad, cx + ax + pad])
    j0, j1 = np.searchsorted(ys, [cy - ay - pad, cy + ay + pad])
    if i0 >= i1 or j0 >= j1:
        return
    qx = (np.abs(xs[i0:i1] - cx) / ax) ** power
    qy = (np.abs(ys[j0:j1] - cy) / ay) ** power
    q = (qy[:, None] + qx[None, :]).astype(np.float32)
    # distance to the outline ≈ (q - 1) / |grad q|, taken along the shorter axis
    alpha = np.clip(0.5 - (q - 1) * np.float32(min(ax, ay) / (power * px)), 0, 1)
    sub = v[j0:j1, i0:i1]
    sub += alpha * (np.float32(value) - sub)
    c[j0:j1, i0:i1][alpha >= 0.5] = cid


class _Texture:
    """Smooth random field: two octaves of value noise, smoothstep-interpolated."""

    OCTAVES = ((24.0, 30.0, 5.0), (10.0, 12.0, 3.0))  # in-plane cell mm, z cell mm, HU

    def __init__(self, rng: np.random.Generator, xs, ys, zs):
        gain = rng.uniform(0.8, 1.2)
        self.octaves = []
        for cell, zcell, amp in self.OCTAVES:
            ix = _lerp_index(xs, cell, rng)
            iy = _lerp_index(ys, cell, rng)
            iz = _lerp_index(zs, zcell, rng)
            grid = rng.standard_normal((iz[0].max() + 2, iy[0].max() + 2, ix[0].max() + 2)).astype(np.float32)
            self.octaves.append((grid * np.float32(amp * gain * 1.6), ix, iy, iz))

    def at(self, k: int) -> np.ndarray:
        total = None
        for grid, (x0, tx), (y0, ty), (z0, tz) in self.octaves:
            plane = grid[z0[k]] * (1 - tz[k]) + grid[z0[k] + 1] * tz[k]
            rows = np.take(plane, y0, axis=0) * (1 - ty)[:, None] + np.take(plane, y0 + 1, axis=0) * ty[:, None]
            field = np.take(rows, x0, axis=1) * (1 - tx) + np.take(rows, x0 + 1, axis=1) * tx
            total = field if total is None else total + field
        return total


def _lerp_index(coords: np.ndarray, cell: float, rng: np.random.Generator):
    u = (coords - coords[0]) / cell + rng.uniform(0, 1)
    i0 = np.floor(u).astype(np.intp)
    f = u - i0
    return i0, (f * f * (3 - 2 * f)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# lesions


def _add_lesions(vol, cls, rng, body: _Anatomy, xs, ys, zs, spacing, count: int | None = None, mask=None) -> np.ndarray:
    """Add lesions into ``vol`` (``count`` of them, or until the seed's target fraction of reached
    slices); return the labels of the slices where a lesion is visible (and mark its voxels in
    ``mask``, if given)."""
    depth = vol.shape[0]
    reached = np.zeros(depth, np.uint8)
    visible = np.zeros(depth, np.uint8)
    target = rng.uniform(*TARGET_POSITIVE_FRACTION)
    placed: list[_Lesion] = []
    for _ in range(400):  # candidates: a size, a contrast and a depth ...
        if count is None and reached.mean() >= target and len(placed) >= 2:
            break
        if count is not None and len(placed) >= count:
            break
        shape = _sample_lesion_shape(rng, zs, spacing)
        if shape is None:
            continue
        for _ in range(40):  # ... then spots in the plane until one is all soft tissue
            lesion = _sample_lesion_xy(rng, body, zs, spacing, *shape)
            accepted = _try_lesion(vol, cls, reached, lesion, placed, xs, ys, zs, spacing, mask)
            if accepted is not None:
                reached, shown = accepted
                visible |= shown
                placed.append(lesion)
                break
    return visible


def _try_lesion(vol, cls, labels, lesion: _Lesion, placed, xs, ys, zs, spacing, mask=None) -> tuple[np.ndarray, np.ndarray] | None:
    """Render ``lesion`` into ``vol`` and return the slices it reaches (``labels`` plus its own)
    and the slices where it is visible, or ``None`` (``vol`` untouched)."""
    x, y, z = lesion.center  # quick rejection: the centre voxel must be soft tissue
    centre = cls[_nearest(zs, z), _nearest(ys, y), _nearest(xs, x)]
    if (centre != TISSUE and centre != LIVER) or any(_overlap(lesion, other) for other in placed):
        return None
    reach = lesion.radius + LESION_MARGIN_MM
    box, dist = _lesion_box(lesion, xs, ys, zs, spacing, reach)
    if box is None:
        return None
    tissue = cls[box][dist <= reach]
    if not np.all((tissue == TISSUE) | (tissue == LIVER)):
        return None
    profile = np.clip((lesion.radius - dist) / LESION_EDGE_MM + 0.5, 0.0, 1.0)
    added = (lesion.contrast * profile).astype(np.float32)
    hit = (added >= REACH_THRESHOLD_HU).any(axis=(1, 2))
    new = labels.copy()
    new[box[0]] |= hit.astype(np.uint8)
    fresh = int(new.sum()) - int(labels.sum())
    # each lesion makes at least half of its slices newly positive, so a few lesions reach the target
    if fresh < (int(hit.sum()) + 1) // 2 or new.mean() > MAX_POSITIVE_FRACTION or new[0] or new[-1]:
        return None
    vol[box] += added
    patch = _patch_mean(added) >= LABEL_THRESHOLD_HU
    shown = np.zeros_like(labels)
    shown[box[0]] = patch.any(axis=(1, 2))
    if mask is not None:  # the voxels it raises by the threshold, in the slices where it shows
        mask[box] |= (added >= LABEL_THRESHOLD_HU) & shown[box[0]].astype(bool)[:, None, None]
    return new, shown


def _patch_mean(a: np.ndarray) -> np.ndarray:
    """In-plane mean of ``a`` ``(z, y, x)`` over LABEL_PATCH² windows that lie inside ``a``."""
    n = LABEL_PATCH
    if a.shape[1] < n or a.shape[2] < n:
        return np.zeros((a.shape[0], 1, 1), a.dtype)
    c = np.pad(a, ((0, 0), (1, 0), (1, 0))).cumsum(1).cumsum(2)
    return (c[:, n:, n:] - c[:, :-n, n:] - c[:, n:, :-n] + c[:, :-n, :-n]) / np.float32(n * n)


def _sample_lesion_shape(rng, zs, spacing):
    """Radius, stretch, contrast and z of a candidate lesion (``None`` if it cannot fit)."""
    radius = float(rng.uniform(*LESION_RADIUS_MM))
    stretch = tuple(float(s) for s in rng.uniform(0.85, 1.15, size=3))
    contrast = float(rng.uniform(*LESION_CONTRAST_HU))
    reach = stretch[2] * (radius + LESION_MARGIN_MM) + 1.01 * spacing[2]  # keep off the end slices
    lo, hi = zs[0] + reach, zs[-1] - reach
    if lo >= hi:
        return None
    return radius, stretch, contrast, float(rng.uniform(lo, hi))


def _sample_lesion_xy(rng, body: _Anatomy, zs, spacing, radius, stretch, contrast, z) -> _Lesion:
    t = (z - zs[0] + spacing[2] / 2) / (len(zs) * spacing[2])
    a, b, yc = body.shape(t)
    x = float(rng.uniform(-a, a))
    y = float(rng.uniform(yc - b, yc + b))
    return _Lesion((x, y, z), radius, stretch, contrast)


def _nearest(coords: np.ndarray, value: float) -> int:
    return int(np.clip(np.rint((value - coords[0]) / (coords[1] - coords[0])), 0, len(coords) - 1))


def _overlap(p: _Lesion, q: _Lesion) -> bool:
    gap = math.dist(p.center, q.center)
    return gap < max(p.stretch) * (p.radius + LESION_EDGE_MM) + max(q.stretch) * (q.radius + LESION_EDGE_MM) + 2.0


def _lesion_box(lesion: _Lesion, xs, ys, zs, spacing, reach: float):
    """Index box ``(z, y, x)`` around the lesion out to ``reach`` mm, and the scaled distance there."""
    sl, d2 = [], []
    for coords, centre, stretch in zip((zs, ys, xs), lesion.center[::-1], lesion.stretch[::-1]):
        half = stretch * reach
        i0, i1 = np.searchsorted(coords, [centre - half, centre + half])
        if i0 >= i1:
            return None, None
        sl.append(slice(int(i0), int(i1)))
        d2.append(((coords[i0:i1] - centre) / stretch) ** 2)
    dist = np.sqrt(d2[0][:, None, None] + d2[1][None, :, None] + d2[2][None, None, :])
    return tuple(sl), dist


# --------------------------------------------------------------------------------------------
# NIfTI and files


def _nifti(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    img = nib.Nifti1Image(data, affine)
    header = img.header
    header.set_data_dtype(np.int16)
    img.set_qform(affine, code=1)  # scanner
    img.set_sform(affine, code=1)
    header.set_xyzt_units("mm", "sec")
    header.set_slope_inter(1.0, 0.0)
    header["descrip"] = b"Slicewise synthetic phantom"
    return img
