"""Which file names Slicewise opens: the one list of suffixes, and the file-dialog filters built from it.

Plain data and string tests only (no imports beyond the standard library), so the viewer, the
cohort expansion and the loaders can all use it without waiting for torch or nibabel.
"""

from __future__ import annotations

import os

#: Formats nibabel opens, each also gzip/bzip2/zstd compressed (``.nii.gz``, ``.img.bz2``, ...).
NIBABEL_BASES = (".nii", ".hdr", ".img", ".mgh", ".mgz", ".mnc", ".par", ".rec", ".head", ".brik", ".v")
COMPRESSIONS = ("", ".gz", ".bz2", ".zst")
NIBABEL_SUFFIXES = tuple(base + packed for base in NIBABEL_BASES for packed in COMPRESSIONS)
#: gzip streams (MGZ is gzip-compressed MGH): read by the fast inflating path
GZIP_SUFFIXES = (".gz", ".mgz")

DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
NUMPY_SUFFIXES = (".npy", ".npz")
TORCH_SUFFIXES = (".pt", ".pth")

#: Files taken as volumes when a folder or a glob pattern is expanded.  An Analyze / NIfTI pair is
#: named by its header (``.hdr``), so its image file (`COMPANION_SUFFIXES`) is not a volume of its own.
VOLUME_SUFFIXES = (
    ".nii", ".nii.gz", ".hdr", ".hdr.gz", ".mgh", ".mgz", ".mnc", *NUMPY_SUFFIXES, *TORCH_SUFFIXES, *DICOM_SUFFIXES,
)  # fmt: skip
COMPANION_SUFFIXES = (".img", ".img.gz")
#: Volume files that are certainly not DICOM (a DICOM file may have any name, or none).
NOT_DICOM_SUFFIXES = tuple(s for s in VOLUME_SUFFIXES if s not in DICOM_SUFFIXES) + COMPANION_SUFFIXES

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")  # Keras
ONNX_SUFFIX = ".onnx"  # served by ONNX Runtime (app.inference.onnx_model)

#: Qt file-dialog filter for volumes (``QFileDialog.getOpenFileName(..., VOLUME_DIALOG_FILTER)``).
VOLUME_DIALOG_FILTER = ";;".join(
    [
        "Volumes (" + " ".join("*" + s for s in (*VOLUME_SUFFIXES, *COMPANION_SUFFIXES)) + ")",
        "NIfTI (*.nii *.nii.gz)",
        "DICOM file (" + " ".join("*" + s for s in DICOM_SUFFIXES) + ")",
        "NumPy / torch (" + " ".join("*" + s for s in (*NUMPY_SUFFIXES, *TORCH_SUFFIXES)) + ")",
        "All files (*)",
    ]
)
#: Qt file-dialog filter for model files (Keras and ONNX).
MODEL_DIALOG_FILTER = ";;".join(
    [
        "Models (" + " ".join("*" + s for s in (*MODEL_SUFFIXES, ONNX_SUFFIX)) + ")",
        "Keras models (" + " ".join("*" + s for s in MODEL_SUFFIXES) + ")",
        f"ONNX models (*{ONNX_SUFFIX})",
        "All files (*)",
    ]
)


def _lower_name(name: str | os.PathLike) -> str:
    return os.path.basename(os.fspath(name)).lower()


def is_volume_name(name: str | os.PathLike) -> bool:
    """True for a file name that a folder expansion takes as a volume (hidden files never)."""
    base = _lower_name(name)
    return not base.startswith(".") and base.endswith(VOLUME_SUFFIXES)


def is_dicom_name(name: str | os.PathLike) -> bool:
    """True for a name with a DICOM suffix (``.dcm``, ``.dicom``, ``.ima``)."""
    return _lower_name(name).endswith(DICOM_SUFFIXES)


def is_nibabel_name(name: str | os.PathLike) -> bool:
    """True for a name nibabel's image classes claim (``.nii``, ``.mgz``, ``.hdr.gz``, ...)."""
    return _lower_name(name).endswith(NIBABEL_SUFFIXES)


def is_gzip_name(name: str | os.PathLike) -> bool:
    """True for a name of a gzip-compressed image (``.nii.gz``, ``.mgz``, ``.img.gz``, ...)."""
    return _lower_name(name).endswith(GZIP_SUFFIXES)
