"""The end of a cohort run: the table and sidecar assembled from the parts in input order, and
one line per failed volume on stderr."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from app.cohort.outcome import CohortRun, Outcome
from app.cohort.request import CohortRequest
from app.cohort.store import Parts, Settings, assemble
from app.export import RUN_KEYS, sidecar_document, sidecar_path
from app.io.formats import VOLUME_SUFFIXES
from app.outputs import OutputSet
from app.prediction import nonfinite_warning


def _masks(request: CohortRequest, out: Path, parts: Parts, done: list, outs: OutputSet) -> dict[str, str]:
    """Each scored volume's mask (kept in the parts folder) by part key, as the sidecar names it:
    relative to the table's folder where it can be.  With ``--mask-dir`` the masks are staged
    there as ``<name>-<hash8>.nii.gz``."""
    found: dict[str, str] = {}
    for item, meta, key in done:
        kept = parts.folder / meta["mask"] if meta.get("mask") else None
        if kept is None or not kept.is_file():
            continue
        target = kept
        if request.mask_dir:
            target = Path(request.mask_dir) / mask_name(item.display, meta.get("volume_sha256") or key)
            outs.add(target, kept.read_bytes())
        found[key] = _relative(target, out.parent)
    return found


def mask_name(display: str, sha256: str) -> str:
    """``a/phantom.nii.gz`` → ``phantom-1a2b3c4d.nii.gz``: the volume's name (a DICOM series: its
    folder's) and the start of its content hash, so equal names from different folders differ."""
    name = Path(display.rstrip("/\\")).name
    for suffix in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    digest = sha256 if all(c in "0123456789abcdef" for c in sha256[:8]) and len(sha256) >= 8 else hashlib.sha256(sha256.encode()).hexdigest()
    return f"{name or 'volume'}-{digest[:8]}.nii.gz"


def _relative(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path, base)
    except ValueError:  # another drive (Windows)
        return str(Path(path).resolve())


def finish(request: CohortRequest, out: Path, parts: Parts, run: CohortRun, settings: Settings | None, cluster_label: str | None) -> int:
    """Write the table and sidecar from the parts, in input order; report failures."""
    ok = [(item, outcome) for item, outcome in zip(run.items, run.outcomes) if outcome is not None and outcome.status == "ok"]
    table = assemble(parts, [(item.display, outcome.key) for item, outcome in ok])
    metas = {outcome.key: parts.read_meta(outcome.key) for _, outcome in ok}
    outs = OutputSet()
    if request.mask_dir:
        outs.folder(request.mask_dir)
    masks = _masks(request, out, parts, [(item, metas[outcome.key], outcome.key) for item, outcome in ok], outs)
    entries = []
    for item, outcome in zip(run.items, run.outcomes):
        if outcome is None:
            outcome = Outcome("failed", reason="internal error: no result")
        if outcome.status == "ok":
            meta = metas[outcome.key]
            entry = meta["sidecar"]["volumes"][0]
            extra = {"device": meta["sidecar"]["device"], "worker": meta.get("worker"), "scored": meta.get("created")}
            mask = {"mask": masks[outcome.key]} if outcome.key in masks else {}
            entries.append({"path": item.display, "status": "ok", "reused": outcome.reused, **{k: v for k, v in entry.items() if k != "path"}, **extra, **mask})
            if entry.get("nonfinite_slices"):
                print(nonfinite_warning(item.display, len(entry["nonfinite_slices"])), file=sys.stderr)
        else:
            entries.append({"path": item.display, "status": "failed", "reason": outcome.reason})
    first = metas[ok[0][1].key]["sidecar"] if ok else None
    failed = [(e["path"], e["reason"]) for e in entries if e["status"] == "failed"]
    if first is not None:
        runs = first.get("runs") or [{key: first.get(key) for key in RUN_KEYS}]
    else:
        model = {"source": request.model or f"built-in:{request.strategy}", "sha256": settings.model_sha256 if settings else None}
        runs = [{"strategy": request.strategy, "model": model, "normalize": settings.normalize if settings else request.normalize, "batch_size": request.batch_size, "device": None}]
    runs = [{**settings_of_run, "batch_size": request.batch_size} for settings_of_run in runs]
    cohort = {
        "inputs": list(request.volumes),
        "total": len(run.items),
        "ok": len(ok),
        "failed": len(failed),
        "reused": sum(1 for _, o in ok if o.reused),
        "scored": run.scored,
        "cluster": cluster_label,
        "scoring_s": round(run.elapsed, 3) if run.scored else 0.0,
        "volumes_per_s": round(run.rate, 3) if run.scored else None,
        "parts": str(parts.folder),
    }
    sidecar = sidecar_document(runs, entries, cohort=cohort)
    sidecar_file = sidecar_path(out)
    with outs:  # all or none
        outs.add(out, table)
        outs.add(sidecar_file, json.dumps(sidecar, indent=2) + "\n")
    for path, reason in failed:
        name = os.path.basename(path.rstrip("/")) + ": "
        print(f"error: {path}: {reason[len(name):] if reason.startswith(name) else reason}", file=sys.stderr)
    if request.mask_dir:
        print(f"wrote {len(masks)} masks in {request.mask_dir}" if masks else f"warning: no masks in {request.mask_dir}: the model gives per-slice scores, not a map per pixel", file=sys.stderr)
    slices = sum(metas[o.key].get("slices", 0) for _, o in ok)
    rate = f", {run.rate:.2f} volumes/s" if run.scored else ""
    print(
        f"wrote {out} and {sidecar_file.name}: {len(ok)} of {len(run.items)} volumes ({slices} slices; {run.scored} scored now, "
        f"{len(ok) - run.scored} reused{rate}), {len(failed)} failed",
        file=sys.stderr,
    )
    return 2 if failed else 0
