"""Fuzzing the loaders with real files: NIfTI headers and DICOM tags of files that nibabel and
pydicom ship, mutated by hypothesis (derandomized, so every run tries the same cases).

Whatever the mutation, `load_volume` either returns a valid `Volume` or raises the project's
own `LoadError` with a one-line message naming the file: no library exception, no crash, no
NaN geometry.  Each campaign counts the cases that really reached the loader, checks the count
itself (so it holds whatever else runs, in any order) and prints it to the terminal.
"""

from __future__ import annotations

import gzip
import math
import shutil
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.io.memory import available_memory
from tests.bad_inputs import load_or_refusal
from tests.dicom_writer import IOPS, write_series

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"
PYDICOM_DATA = Path(pydicom.__file__).parent / "data" / "test_files"
NIFTI_CASES = 150
DICOM_CASES = 150
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
SMALL_VOXELS = 20_000_000  # a mutated header may claim at most this many voxels ...
# ... unless it claims so many that the memory guard must refuse it before any allocation


def check_outcome(path: Path) -> str:
    """Load ``path``: a valid `Volume` or a one-line `LoadError` naming it; nothing else.
    Returns which of the two it was ("volume" or "LoadError")."""
    volume = load_or_refusal(path, (f"{path.name}: ", f"{path.name}/"))  # the file, or folder/file
    if volume is None:
        return "LoadError"
    data = volume.data
    assert data.ndim == 4 and str(data.dtype) == "torch.float32" and data.is_contiguous()
    assert all(s >= 1 for s in data.shape) and data.shape[3] <= 4
    assert volume.affine.shape == (4, 4) and np.isfinite(volume.affine).all(), volume.affine
    assert np.linalg.det(volume.affine[:3, :3]) != 0
    assert np.isfinite(volume.positions_mm).all()
    assert len(volume.sha256) == 64 and 0 <= volume.volume_index < volume.n_volumes
    return "volume"


def report_count(family: str, outcomes: Counter[str], wanted: int, capsys, record_property) -> None:
    """Check that ``wanted`` cases reached the loader; show and record the count."""
    ran = sum(outcomes.values())
    line = f"fuzz cases run: {ran} mutated {family} ({outcomes['volume']} loaded, {outcomes['LoadError']} LoadError)"
    record_property(f"fuzz_{family.split()[0].lower()}_cases", ran)
    with capsys.disabled():  # shown without -s
        print(f"\n{line}")
    assert ran >= wanted, line


# -- NIfTI headers -------------------------------------------------------------------------------

NIFTI_BASES = {
    "anatomical.nii": NIBABEL_DATA / "anatomical.nii",  # NIfTI-1, big-endian, 3D
    "functional.nii": NIBABEL_DATA / "functional.nii",  # NIfTI-1, 4D
    "example_nifti2.nii.gz": NIBABEL_DATA / "example_nifti2.nii.gz",  # NIfTI-2, gzip, 4D
    "standard.nii.gz": NIBABEL_DATA / "standard.nii.gz",  # NIfTI-1, gzip, tiny
}
INTS = [0, 1, -1, 2, 3, 4, 5, 7, 8, 16, 64, 255, 256, 1000, 2**15 - 1, -(2**15), 2**31 - 1]
FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-30, 1e30, 3.4e38, math.nan, math.inf, -math.inf, 352.0, 348.0, 1e9]
IMPACTFUL = [  # fields that decide how (and whether) the voxels are read and placed
    "sizeof_hdr", "dim", "dim", "dim", "datatype", "bitpix", "pixdim", "pixdim", "vox_offset", "vox_offset", "scl_slope",
    "scl_inter", "qform_code", "sform_code", "quatern_b", "quatern_c", "quatern_d", "qoffset_x", "srow_x", "srow_y",
    "srow_z", "magic", "dim_info", "intent_code", "xyzt_units",
]
STRINGS = [b"", b"n+1\0", b"ni1\0", b"n+2\0", b"xxxx", b"\xff" * 80]


def _raw(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


NIFTI_RAW = {name: _raw(path) for name, path in NIFTI_BASES.items()}


def _header_dtype(name: str) -> np.dtype:
    header = nib.load(NIFTI_BASES[name]).header
    return header.template_dtype.newbyteorder(header.endianness)


NIFTI_DTYPES = {name: _header_dtype(name) for name in NIFTI_BASES}


@st.composite
def nifti_mutation(draw):
    """(base file name, [(field, element, value), ...]) for one to three header fields."""
    name = draw(st.sampled_from(sorted(NIFTI_BASES)))
    dtype = NIFTI_DTYPES[name]
    changes = []
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from([f for f in IMPACTFUL if f in dtype.names]) | st.sampled_from(dtype.names))
        kind, shape = dtype.fields[field][0].base, dtype.fields[field][0].shape
        element = draw(st.integers(0, shape[0] - 1)) if shape else None
        if kind.kind in "iu":
            info = np.iinfo(kind)
            value = draw(st.sampled_from([v for v in INTS if info.min <= v <= info.max]) | st.integers(info.min, info.max))
        elif kind.kind == "f":
            value = draw(st.sampled_from(FLOATS) | st.floats(width=32))
        else:
            value = draw(st.sampled_from(STRINGS) | st.binary(max_size=kind.itemsize))
        changes.append((field, element, value))
    return name, changes


def mutated_nifti(name: str, changes: list) -> tuple[bytes, np.ndarray]:
    raw = NIFTI_RAW[name]
    dtype = NIFTI_DTYPES[name]
    header = np.frombuffer(raw[: dtype.itemsize], dtype=dtype).copy()
    for field, element, value in changes:
        if element is None:
            header[field] = value
        else:
            header[field][0, element] = value
    return header.tobytes() + raw[dtype.itemsize :], header


def claimed_voxels(header: np.ndarray) -> int:
    dims = [int(d) for d in header["dim"][0]]
    ndim = dims[0] if 1 <= dims[0] <= 7 else 3
    return int(np.prod([max(abs(d), 1) for d in dims[1 : ndim + 1]], dtype=np.float64))


def test_mutated_nifti_headers_load_or_fail_cleanly(capsys, record_property):
    outcomes: Counter[str] = Counter()

    @settings(FUZZ, max_examples=NIFTI_CASES)
    @given(mutation=nifti_mutation())
    def case(mutation):
        name, changes = mutation
        blob, header = mutated_nifti(name, changes)
        voxels = claimed_voxels(header)
        assume(voxels <= SMALL_VOXELS or voxels * 4 > available_memory())  # never a real multi-GB read
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_bytes(gzip.compress(blob, compresslevel=1) if name.endswith(".gz") else blob)
            outcomes[check_outcome(path)] += 1

    case()
    report_count("NIfTI headers", outcomes, NIFTI_CASES, capsys, record_property)


# -- DICOM tags ----------------------------------------------------------------------------------

DICOM_BASES = ["CT_small.dcm", "MR_small.dcm", "rtdose.dcm", "series"]
US_VALUES = [0, 1, 2, 3, 7, 8, 12, 15, 16, 17, 24, 32, 64, 65535]
DS_VALUES = ["0", "-1", "1", "0.5", "1e308", "-1e308", "nan", "inf", "-inf", "", "1e-300"]
IS_VALUES = ["0", "1", "2", "-1", "3", "1000000", "", "2147483647"]
TAGS = {
    # keyword: candidate values (lists of values for multi-valued tags)
    "Rows": US_VALUES,
    "Columns": US_VALUES,
    "BitsAllocated": US_VALUES,
    "BitsStored": US_VALUES,
    "HighBit": US_VALUES,
    "PixelRepresentation": [0, 1, 2, 65535],
    "SamplesPerPixel": [0, 1, 2, 3, 4, 65535],
    "PlanarConfiguration": [0, 1, 2],
    "PhotometricInterpretation": ["MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL", "YBR_FULL_422", "", "XYZ"],
    "NumberOfFrames": IS_VALUES,
    "RescaleSlope": DS_VALUES,
    "RescaleIntercept": DS_VALUES,
    "SliceThickness": DS_VALUES,
    "SpacingBetweenSlices": DS_VALUES,
    "DoseGridScaling": DS_VALUES,
    "PixelSpacing": "ds2",
    "ImagePositionPatient": "ds3",
    "ImageOrientationPatient": "ds6",
    "GridFrameOffsetVector": "dsn",
    "SeriesInstanceUID": ["1.2.3", "", "1.2.3.4.5.6.7.8.9"],
    "SOPClassUID": ["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.3.10", "1.2.3"],
    "Modality": ["CT", "MR", "RTDOSE", "SR", ""],
    "TransferSyntaxUID": [
        "1.2.840.10008.1.2",  # implicit little endian
        "1.2.840.10008.1.2.1",  # explicit little endian
        "1.2.840.10008.1.2.2",  # explicit big endian
        "1.2.840.10008.1.2.4.50",  # JPEG baseline
        "1.2.840.10008.1.2.5",  # RLE
        "1.2.840.10008.1.2.1.99",  # deflated
        "1.2.3.4",
    ],
}
ACTIONS = ["set", "set", "set", "delete", "cut_pixels", "grow_pixels"]


@st.composite
def dicom_mutation(draw):
    """(base, file index within a series, [(action, keyword, value), ...])."""
    base = draw(st.sampled_from(DICOM_BASES))
    changes = []
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(ACTIONS))
        keyword = draw(st.sampled_from(sorted(TAGS)))
        candidates = TAGS[keyword]
        if isinstance(candidates, str):
            length = {"ds2": 2, "ds3": 3, "ds6": 6}.get(candidates) or draw(st.integers(0, 20))
            length = draw(st.sampled_from([length, length, 0, 1, length + 1]))
            value = draw(st.lists(st.sampled_from(DS_VALUES + ["0", "1", "0", "1", "2.5", "-100"]), min_size=length, max_size=length))
        else:
            value = draw(st.sampled_from(candidates))
        changes.append((action, keyword, value, draw(st.integers(1, 4096))))
    return base, draw(st.integers(0, 3)), changes


def mutate_dicom(path: Path, changes: list) -> None:
    """Apply ``changes`` to the file at ``path``; values are written unchecked."""
    ds = pydicom.dcmread(path, force=True)
    for action, keyword, value, amount in changes:
        target = ds.file_meta if keyword == "TransferSyntaxUID" else ds
        if action == "delete":
            if keyword in target:
                delattr(target, keyword)
        elif action in ("cut_pixels", "grow_pixels"):
            if "PixelData" in ds:
                pixels = ds.PixelData
                ds.PixelData = pixels[: max(0, len(pixels) - amount)] if action == "cut_pixels" else pixels + b"\x01" * amount
        else:
            setattr(target, keyword, value)
    ds.save_as(path, enforce_file_format=False)


@pytest.fixture(scope="module")
def dicom_sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("dicom_bases")
    sources = {name: PYDICOM_DATA / name for name in DICOM_BASES if name != "series"}
    stack = np.stack([np.arange(42, dtype=np.int16).reshape(6, 7) + 100 * k for k in range(4)])  # 4 axial CT slices
    write_series(folder / "series", stack, IOPS["axial"], [0.0, 0.0, 0.0], spacing=(0.5, 0.75), step=2.5, intercept=-1024.0)
    sources["series"] = folder / "series"
    return sources


def test_mutated_dicom_tags_load_or_fail_cleanly(dicom_sources, capsys, record_property):
    outcomes: Counter[str] = Counter()

    @settings(FUZZ, max_examples=DICOM_CASES)
    @given(mutation=dicom_mutation())
    def case(mutation):
        base, index, changes = mutation
        with tempfile.TemporaryDirectory() as tmp, _ignore_validation():
            source = dicom_sources[base]
            if source.is_dir():
                target = Path(tmp) / "series"
                shutil.copytree(source, target)
                victim = sorted(target.iterdir())[index]
            else:
                target = victim = Path(tmp) / base
                shutil.copyfile(source, target)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    mutate_dicom(victim, changes)
            except Exception:  # noqa: BLE001 - pydicom cannot even write this mutation: not a case
                assume(False)
            outcomes[check_outcome(target)] += 1

    case()
    report_count("DICOM files", outcomes, DICOM_CASES, capsys, record_property)


class _ignore_validation:
    """Write values as given (an invalid DS, an empty US): the point is to feed bad files."""

    def __enter__(self):
        self.saved = pydicom.config.settings.writing_validation_mode
        pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE

    def __exit__(self, *exc):
        pydicom.config.settings.writing_validation_mode = self.saved
