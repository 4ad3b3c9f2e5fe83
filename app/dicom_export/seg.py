"""A segmentation run as a DICOM Segmentation (SEG) instance, written with highdicom.

One segment per foreground class of the `DenseMap`; BINARY at the map's threshold (a softmax:
the argmax), or FRACTIONAL (probability, 0…255) when asked.  The class names carry no codes,
so every segment is coded generically: category SCT 49755003 "Morphologically Abnormal
Structure", type SCT 52988006 "Lesion"; the class name is the segment label.  The model is the
algorithm (name, version = the first 12 hex digits of its SHA-256, family DCM 123110
"Artificial Intelligence").  Patient, study and frame of reference come from the source images
(highdicom copies them); every frame references its source image, and the series is listed in
ReferencedSeriesSequence.  Frames with no foreground are left out (highdicom's default).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from pydicom.sr.codedict import codes

from app import __version__
from app.atomic import write_atomic
from app.dicom_export.sources import Sources, find_sources
from app.errors import SlicewiseError
from app.segmentation.dense_map import LEVELS, DenseMap
from app.volume import Volume

MANUFACTURER = "Slicewise"
SERIES_NUMBER = 901  # a series number of its own, beside the source's
CATEGORY = codes.SCT.MorphologicallyAbnormalStructure
TYPE = codes.SCT.Lesion


def algorithm(model_name: str, model_sha256: str, parameters: dict[str, str] | None = None):
    """The model as highdicom's AlgorithmIdentificationSequence (a SEG's algorithm)."""
    import highdicom as hd

    return hd.AlgorithmIdentificationSequence(
        name=model_name or "unnamed model",
        family=codes.cid7162.ArtificialIntelligence,
        version=version_of(model_sha256),
        source=MANUFACTURER,
        parameters=parameters or None,
    )


def version_of(model_sha256: str) -> str:
    """A model's version as the SEG and SR give it: its content hash, shortened."""
    return model_sha256[:12] if model_sha256 else "unknown"


def write_seg(
    path: str | os.PathLike,
    volume: Volume,
    dense: DenseMap,
    model_name: str,
    model_sha256: str,
    probabilities: bool = False,
    sources: Sources | None = None,
) -> Path:
    """Write ``dense`` (laid out like ``volume``) as a DICOM SEG at ``path``, atomically.

    ``probabilities``: FRACTIONAL (probability) instead of BINARY.  ``sources`` may be given when
    already found (`find_sources`); a `SlicewiseError` when the volume is not DICOM, the map
    does not fit it, or highdicom refuses the result."""
    import highdicom as hd

    path = Path(path)
    sources = sources or find_sources(volume, "--seg-out")
    if tuple(dense.probabilities.shape[:3]) != tuple(volume.shape[:3]):
        raise SlicewiseError(f"{volume.source}: the segmentation map {dense.probabilities.shape[:3]} does not fit the volume {volume.shape[:3]}")
    if sources.multiframe and "SharedFunctionalGroupsSequence" not in sources.datasets[0]:
        raise SlicewiseError(
            f"{volume.source}: a multi-frame image without functional groups ({sources.datasets[0].SOPClassUID.name}) cannot be a DICOM SEG's source; "
            "write the mask with --mask-out"
        )
    foreground = list(dense.foreground)
    if not foreground:
        raise SlicewiseError(f"{volume.source}: the segmentation map has no foreground class to write")
    if probabilities:
        pixels = sources.to_source(dense.probabilities[..., foreground]).astype(np.float32) / LEVELS
        kind = hd.seg.SegmentationTypeValues.FRACTIONAL
    else:
        pixels = sources.to_source(dense.masks(slice(None))[..., foreground])
        kind = hd.seg.SegmentationTypeValues.BINARY
    settings = {"map": dense.kind, "threshold": f"{dense.threshold:g}", "stored": "probability" if probabilities else "mask at the threshold"}
    algo = algorithm(model_name, model_sha256, settings)
    segments = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=_label(dense.classes[k], k),
            segmented_property_category=CATEGORY,
            segmented_property_type=TYPE,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algo,
            tracking_uid=hd.UID(),
            tracking_id=_label(dense.classes[k], k),
        )
        for number, k in enumerate(foreground, start=1)
    ]
    try:
        seg = hd.seg.Segmentation(
            source_images=list(sources.datasets),
            pixel_array=pixels,
            segmentation_type=kind,
            segment_descriptions=segments,
            series_instance_uid=hd.UID(),
            series_number=SERIES_NUMBER,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=MANUFACTURER,
            software_versions=__version__,
            device_serial_number=__version__,
            max_fractional_value=LEVELS,
            content_label="SLICEWISE",
            content_description=f"{model_name} segmentation"[:64],
            omit_empty_frames=bool(pixels.any()),  # an empty result keeps its frames: a SEG needs one
        )
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise SlicewiseError(f"{volume.source}: cannot make a DICOM SEG of this series ({exc})") from None
    write_atomic(path, to_bytes(seg))
    return path


def to_bytes(dataset) -> bytes:
    """A highdicom instance as the bytes of a DICOM file (preamble, meta, body)."""
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _label(name: str, k: int) -> str:
    """A segment's label: the class name, else its index (LO: 64 characters)."""
    return (str(name).strip() or f"class {k}")[:64]
