"""The suffix registry (app/io/formats.py): every name it calls a volume opens through
`load_volume`, and the file-dialog filter offers each of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch

from app.io import load_volume
from app.io.formats import (
    COMPANION_SUFFIXES,
    MODEL_DIALOG_FILTER,
    MODEL_SUFFIXES,
    VOLUME_DIALOG_FILTER,
    VOLUME_SUFFIXES,
    is_dicom_name,
    is_gzip_name,
    is_nibabel_name,
    is_volume_name,
)

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"
PYDICOM_DATA = Path(pydicom.__file__).parent / "data" / "test_files"


def write_volume(folder: Path, suffix: str) -> Path:
    """A small (4, 5, 6) volume saved under a name ending in ``suffix``."""
    data = np.arange(120, dtype=np.int16).reshape(4, 5, 6)
    path = folder / f"volume{suffix}"
    if suffix in (".nii", ".nii.gz"):
        nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    elif suffix in (".hdr", ".hdr.gz"):
        nib.save(nib.Nifti1Pair(data, np.eye(4)), path)
    elif suffix in (".mgh", ".mgz"):
        nib.save(nib.MGHImage(data.astype(np.float32), np.eye(4)), path)
    elif suffix == ".mnc":
        shutil.copyfile(NIBABEL_DATA / "minc1_1_scale.mnc", path)
    elif suffix == ".npy":
        np.save(path, data)
    elif suffix == ".npz":
        np.savez(path, volume=data)
    elif suffix in (".pt", ".pth"):
        torch.save(torch.from_numpy(data), path)
    else:
        shutil.copyfile(PYDICOM_DATA / "CT_small.dcm", path)
    return path


@pytest.mark.parametrize("suffix", VOLUME_SUFFIXES)
def test_every_volume_suffix_opens(tmp_path, suffix):
    path = write_volume(tmp_path, suffix)
    assert is_volume_name(path) and is_volume_name(path.name.upper())
    assert load_volume(path).depth >= 1
    assert f"*{suffix} " in VOLUME_DIALOG_FILTER.split(";;")[0] + " "


def test_names_that_are_not_volumes():
    for name in ("pair.img", "pair.img.gz", ".hidden.nii", "notes.txt", "scores.csv", "model.keras"):
        assert not is_volume_name(name), name
    assert all(f"*{s}" in VOLUME_DIALOG_FILTER for s in COMPANION_SUFFIXES)  # the dialog may open a pair by its image


def test_family_tests():
    assert is_dicom_name("a/B.DCM") and is_dicom_name("x.ima") and not is_dicom_name("x.nii")
    assert is_nibabel_name("t1.nii.gz") and is_nibabel_name("brain.MGZ") and not is_nibabel_name("x.npy")
    assert is_gzip_name("t1.nii.gz") and is_gzip_name("brain.mgz") and not is_gzip_name("t1.nii")
    assert all(f"*{s}" in MODEL_DIALOG_FILTER for s in MODEL_SUFFIXES)
