"""Compressed DICOM (JPEG, JPEG-LS, JPEG 2000, RLE) through `load_volume` and `slicewise predict`,
on every compressed file that pydicom ships.

The oracle is pydicom's own decode: each file's ``pixel_array`` (YBR colour converted to RGB, as
pydicom does) is stored back uncompressed (``Dataset.set_pixel_data``); loading that copy must
give the same voxels and geometry.  Lossless files are also checked against the
uncompressed original they were made from, which no decoder is involved in.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_modality_lut

from app.cli import main
from app.errors import LoadError
from app.io import load_volume

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"  # what pydicom ships (no downloads)


def _compressed_files() -> dict[str, tuple[uid.UID, bool]]:
    """{file name: (transfer syntax, does pydicom decode it with the installed plugins)}."""
    found = {}
    for path in sorted(p for p in TEST_FILES.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, force=True)
            syntax = ds.file_meta.TransferSyntaxUID
        except Exception:  # noqa: BLE001 - not a DICOM file (pydicom ships other test data too)
            continue
        if not (syntax.is_compressed and "PixelData" in ds):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds.pixel_array  # noqa: B018 - decoded or not: that is the question
            decodes = True
        except Exception:  # noqa: BLE001 - the plugins' reasons are checked through the loader below
            decodes = False
        found[path.name] = (syntax, decodes)
    return found


COMPRESSED = _compressed_files()
DECODED = sorted(name for name, (_, ok) in COMPRESSED.items() if ok)
NOT_DECODED = sorted(name for name, (_, ok) in COMPRESSED.items() if not ok)
#: lossless files and the uncompressed file each was made from
LOSSLESS_TWINS = {
    "MR_small_RLE.dcm": "MR_small.dcm",
    "MR_small_jp2klossless.dcm": "MR_small.dcm",
    "MR_small_jpeg_ls_lossless.dcm": "MR_small.dcm",
    "rtdose_rle.dcm": "rtdose.dcm",
    "rtdose_rle_1frame.dcm": "rtdose_1frame.dcm",
}
#: every compressed transfer syntax that the default decoders (python-gdcm, pylibjpeg-openjpeg,
#: pylibjpeg-rle, pydicom's own RLE) read, among pydicom's files
EXPECTED_SYNTAXES = {
    uid.JPEGBaseline8Bit,
    uid.JPEGLosslessSV1,
    uid.JPEGLSLossless,
    uid.JPEGLSNearLossless,
    uid.JPEG2000Lossless,
    uid.JPEG2000,
    uid.RLELossless,
}


def path_of(name: str) -> Path:
    return Path(get_testdata_file(name, download=False))


def decompressed_copy(name: str, folder: Path) -> Path:
    """The file with its pixel data replaced by pydicom's decode of it, stored uncompressed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path_of(name))
        pixels = ds.pixel_array
        photometric = "RGB" if int(ds.SamplesPerPixel) == 3 else str(ds.PhotometricInterpretation)
        if pixels.itemsize <= 2:
            ds.set_pixel_data(pixels, photometric, int(ds.BitsStored), generate_instance_uid=False)
        else:  # set_pixel_data takes up to 16 bits: 32-bit RLE data is stored as decoded, by hand
            ds.PixelData = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()
            ds.PhotometricInterpretation, ds.PlanarConfiguration = photometric, 0
        ds.file_meta.TransferSyntaxUID = uid.ImplicitVRLittleEndian  # some files' elements lack a VR
        out = folder / f"plain_{name}"
        ds.save_as(out, enforce_file_format=False)
    return out


def test_every_supported_syntax_is_among_the_decoded_files():
    decoded_syntaxes = {COMPRESSED[name][0] for name in DECODED}
    assert EXPECTED_SYNTAXES <= decoded_syntaxes, sorted(s.name for s in EXPECTED_SYNTAXES - decoded_syntaxes)


@pytest.mark.parametrize("name", DECODED)
def test_compressed_file_equals_pydicoms_decode(tmp_path, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        volume = load_volume(path_of(name))
        reference = load_volume(decompressed_copy(name, tmp_path))
    np.testing.assert_array_equal(volume.data.numpy(), reference.data.numpy())
    np.testing.assert_allclose(volume.affine, reference.affine, atol=1e-9)
    assert volume.shape == reference.shape


@pytest.mark.parametrize("name", [n for n in DECODED if n.startswith("SC_")])
def test_colour_without_geometry_is_pydicoms_rgb_as_stored(name):
    """Secondary-capture files have no patient geometry: shown as stored, so the voxels are
    pydicom's ``pixel_array`` itself (YBR_FULL / YBR_FULL_422 from JPEG converted to RGB)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path_of(name))
        expected = ds.pixel_array.astype(np.float32)
        volume = load_volume(path_of(name))
    expected = expected.reshape(volume.shape)
    np.testing.assert_array_equal(volume.data.numpy(), expected)


@pytest.mark.parametrize(("name", "original"), sorted(LOSSLESS_TWINS.items()))
def test_lossless_file_equals_its_uncompressed_original(name, original):
    if name not in DECODED:
        pytest.fail(f"{name} is not decoded by the installed decoders")
    compressed, plain = load_volume(path_of(name)), load_volume(path_of(original))
    np.testing.assert_array_equal(compressed.data.numpy(), plain.data.numpy())
    np.testing.assert_allclose(compressed.affine, plain.affine)
    ds = pydicom.dcmread(path_of(original))
    if int(ds.get("NumberOfFrames", 1) or 1) == 1 and "DoseGridScaling" not in ds:
        assert np.isin(compressed.data.numpy(), apply_modality_lut(ds.pixel_array, ds).astype(np.float32)).all()


@pytest.mark.parametrize("name", NOT_DECODED)
def test_undecodable_compressed_file_is_one_clear_line(name):
    with pytest.raises(LoadError, match=rf"^{name.replace('.', '[.]')}: cannot decode .* pixel data") as info:
        load_volume(path_of(name))
    assert "\n" not in str(info.value)
    if COMPRESSED[name][0] == uid.JPEGExtended12Bit:
        assert "pip install 'slicewise[gpl-jpeg]'" in str(info.value)


def test_syntax_without_any_decoder_is_named(tmp_path):
    ds = pydicom.dcmread(path_of("MR_small.dcm"))
    ds.PixelData = encapsulate([ds.PixelData])
    ds.file_meta.TransferSyntaxUID = uid.MPEG2MPML
    path = tmp_path / "video.dcm"
    ds.save_as(path)
    with pytest.raises(LoadError, match=r"^video\.dcm: pixel data is compressed as MPEG2 .*which no installed DICOM decoder reads"):
        load_volume(path)


def test_predict_scores_a_compressed_file_as_its_original(tmp_path, capsys):
    compressed, original = path_of("MR_small_jpeg_ls_lossless.dcm"), path_of("MR_small.dcm")
    out = tmp_path / "scores.csv"
    assert main(["predict", str(compressed), str(original), "--strategy", "slice", "--out", str(out)]) == 0, capsys.readouterr().err
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [Path(r["volume"]).name for r in rows] == [compressed.name, original.name]
    assert rows[0]["score"] == rows[1]["score"] != ""
