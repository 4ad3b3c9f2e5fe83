"""A run's per-slice results as a DICOM structured report: TID 1500 (highdicom's
`MeasurementReport`) in a Comprehensive 3D SR, the source images as evidence.

Content (one measurement group, TID 1501, per slice, and per class when there are several):

- each slice's value as a numeric measurement that references the slice's source image: an
  area (SCT 42798000 "Area", UCUM ``mm2``) for a segmentation run that reduces by area, else a
  score (SCT 246262008 "Score", UCUM ``{score}``, dimensionless);
- the volume's value in a group of its own: the volume (SCT 118565006, UCUM ``ml``, the areas
  times the slice step, the median step when slices are unevenly spaced) for area runs, else the
  run's volume score when it has one;
- the reader's labels as qualitative evaluations (DCM 121052 "Presence of property": SCT
  "Present", SCT "Absent" or DCM "Presence Undetermined" for ``1``, ``0``, ``?``) in the slice's
  first group, and the reader as the person observer when one user labelled (their login name,
  as the labels file records it);
- the model (name, version = hash prefix) and the run's settings as the algorithm used.

Slices whose score is not finite (NaN/Inf voxels) have no measurement.  Class names are in the
tracking identifiers (``slice 12 liver``) and, for several classes, as each group's finding type
in a private scheme (``99SLICEWISE``).  A per-slice report needs each display slice to be one
source image: with another ``--axis`` than the acquired one it is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from pydicom.sr.codedict import codes

from app.atomic import write_atomic
from app.dicom_export.seg import MANUFACTURER, to_bytes, version_of
from app.dicom_export.sources import Sources, find_sources
from app.errors import SlicewiseError
from app.prediction import Prediction
from app.volume import Volume

SERIES_NUMBER = 902
PRIVATE_SCHEME = "99SLICEWISE"
LABEL_CONCEPT = codes.DCM.PresenceOfProperty
LABEL_VALUES = {"1": codes.SCT.Present, "0": codes.SCT.Absent, "?": codes.DCM.PresenceUndetermined}
PROCEDURES = {"CT": codes.LN.CTUnspecifiedBodyRegion, "MR": codes.LN.MRIUnspecifiedBodyRegion}


def is_area(prediction: Prediction) -> bool:
    """Whether the run's per-slice values are areas in mm² (a segmentation run reducing by area)."""
    return getattr(prediction, "reduce", None) == "area" or getattr(prediction, "unit", "") == "mm²"


def slice_values(prediction: Prediction) -> np.ndarray:
    """The per-slice values ``(D, K)`` the report holds: the run's scores, as the CSV has them."""
    return np.asarray(prediction.scores, dtype=np.float32).reshape(len(prediction.scores), -1)


def volume_values(volume: Volume, prediction: Prediction) -> tuple[np.ndarray, bool] | None:
    """The volume's value per class and whether it is a volume in mL (area runs: the finite
    areas times the slice step); else the run's volume score; None when there is neither."""
    if is_area(prediction):
        areas = slice_values(prediction)
        return np.nansum(np.where(np.isfinite(areas), areas, np.nan), axis=0) * volume.spacing[0] / 1000.0, True
    if prediction.volume_score is None:
        return None
    return np.asarray(prediction.volume_score, dtype=np.float64).ravel(), False


def write_sr(
    path: str | os.PathLike,
    volume: Volume,
    prediction: Prediction,
    labels: Mapping[int, object] | None = None,
    settings: Mapping[str, object] | None = None,
    sources: Sources | None = None,
) -> Path:
    """Write ``prediction`` (a run on ``volume``) as a TID 1500 report at ``path``, atomically.

    ``labels``: slice index → ``"1"``/``"0"``/``"?"`` or an `app.review.labels.Label`.  ``settings``:
    the run's settings, listed as the algorithm's parameters (``strategy`` and the rest)."""
    import highdicom as hd

    path = Path(path)
    sources = sources or find_sources(volume, "--sr-out")
    if not sources.acquired:
        raise SlicewiseError(f"{volume.source}: --sr-out needs the acquired axis (each slice one source image); this volume is sliced {volume.axis}")
    values = slice_values(prediction)
    if len(values) != volume.depth:
        raise SlicewiseError(f"{volume.source}: the run holds {len(values)} slices; the volume has {volume.depth}")
    area = is_area(prediction)
    names = list(prediction.score_names)
    algo = hd.sr.AlgorithmIdentification(
        name=prediction.model_name or "unnamed model",
        version=version_of(prediction.model_sha256),
        parameters=[f"{key}={value}" for key, value in (settings or _settings(prediction)).items()],
        family=codes.cid7162.ArtificialIntelligence,
        manufacturer=MANUFACTURER,
    )
    concept, unit = (codes.SCT.Area, codes.UCUM.SquareMillimeter) if area else (codes.SCT.Score, hd.sr.CodedConcept("{score}", "UCUM", "score"))
    groups = []
    for d in range(volume.depth):
        frame = sources.slice_frame(d)
        image = hd.sr.SourceImageForMeasurement(frame.sop_class_uid, frame.sop_instance_uid, frame.frame_numbers)
        label = _label_value(labels.get(d)) if labels else None
        for k, name in enumerate(names):
            measurements = []
            if np.isfinite(values[d, k]):
                measurements.append(hd.sr.Measurement(name=concept, value=float(values[d, k]), unit=unit, referenced_images=[image]))
            evaluations = [hd.sr.QualitativeEvaluation(LABEL_CONCEPT, LABEL_VALUES[label])] if label and k == 0 else []
            if not measurements and not evaluations:
                continue
            groups.append(
                hd.sr.MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"slice {d}" + (f" {name}" if name else "")),
                    finding_type=_finding(name, len(names)),
                    algorithm_id=algo,  # once per group (TID 1501), not repeated on its measurement: the report stays small
                    measurements=measurements or None,
                    qualitative_evaluations=evaluations or None,
                    # a label alone still names its image; a measurement references it itself
                    source_images=None if measurements else [hd.sr.SourceImageForMeasurementGroup(frame.sop_class_uid, frame.sop_instance_uid, frame.frame_numbers)],
                )
            )
    whole = volume_values(volume, prediction)
    if whole is not None:
        totals, in_ml = whole
        for k, name in enumerate(names[: len(totals)]):
            if not np.isfinite(totals[k]):
                continue
            total_concept, total_unit = (codes.SCT.Volume, hd.sr.CodedConcept("ml", "UCUM", "milliliter")) if in_ml else (concept, unit)
            groups.append(
                hd.sr.MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="volume" + (f" {name}" if name else "")),
                    finding_type=_finding(name, len(names)),
                    algorithm_id=algo,
                    measurements=[hd.sr.Measurement(name=total_concept, value=float(totals[k]), unit=total_unit)],
                )
            )
    first = sources.datasets[0]
    report = hd.sr.MeasurementReport(
        observation_context=_observers(labels, prediction),
        procedure_reported=PROCEDURES.get(str(first.get("Modality", "")), codes.SCT.ImagingProcedure),
        imaging_measurements=groups,
    )
    try:
        sr = hd.sr.Comprehensive3DSR(
            evidence=list(sources.datasets),
            content=report,
            series_instance_uid=hd.UID(),
            series_number=SERIES_NUMBER,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer=MANUFACTURER,
        )
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise SlicewiseError(f"{volume.source}: cannot make a DICOM SR of this series ({exc})") from None
    write_atomic(path, to_bytes(sr))
    return path


def _settings(prediction: Prediction) -> dict[str, object]:
    """The run's settings that shaped its scores (the SR's algorithm parameters)."""
    found = {
        "strategy": prediction.strategy,
        "normalize": prediction.normalize,
        "channels": prediction.channels,
        "output": prediction.output,
        "reduce": getattr(prediction, "reduce", None),
        "model": prediction.model_source,
    }
    return {key: value for key, value in found.items() if value not in (None, "")}


def _label_value(label: object) -> str | None:
    value = getattr(label, "value", label)
    return value if value in LABEL_VALUES else None


def _finding(name: str, count: int):
    """The group's finding type: the class, in the private scheme, when there are several."""
    import highdicom as hd

    if count < 2 or not name:
        return None
    return hd.sr.CodedConcept(value=name[:16], scheme_designator=PRIVATE_SCHEME, meaning=name[:64])


def _person_name(user: str) -> str:
    """A login name as a DICOM person name: one component is the family name (``alice^``)."""
    return user if "^" in user else f"{user}^"


def _observers(labels: Mapping[int, object] | None, prediction: Prediction):
    """Slicewise as the device observer; the reader as the person observer when one user labelled."""
    import highdicom as hd

    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(uid=hd.UID(), name=MANUFACTURER, model_name=prediction.model_name[:64] or None),
    )
    users = {getattr(label, "user", "") for label in (labels or {}).values()} - {""}
    person = None
    if len(users) == 1:
        person = hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=_person_name(users.pop())),
        )
    return hd.sr.ObservationContext(observer_person_context=person, observer_device_context=device)
