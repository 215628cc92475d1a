"""Writing a simulated cohort folder: NIfTI doses and masks, tables, effects.json, README.md.

The layout is described in :mod:`lymphonet.twin.cohort`; everything loads with
:func:`lymphonet.io.cohort.load_cohort`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lymphonet.kinetics.cores import specs
from lymphonet.twin.cohort_readme import cohort_readme
from lymphonet.twin.cohort_types import CohortSpec, CohortSummary
from lymphonet.twin.patient import SimulatedPlan
from lymphonet.twin.truth import effects_record

__all__ = ["write_cohort_files", "write_patient_files"]


def write_patient_files(recs: list[SimulatedPlan], root: Path) -> dict[str, dict[str, str]]:
    """Write dose volumes and structure masks of one patient; returns plan_id -> relative paths.

    Structures go to a folder of binary masks (:mod:`lymphonet.io.masks`), one per structure,
    so overlaps (body and organs, targets and organs, composites) are kept exactly.
    """
    from lymphonet.io.masks import write_mask_folder
    from lymphonet.io.nifti import write_volume

    folder = Path("plans") / recs[0].patient_id
    write_mask_folder(recs[0].structures, root / folder / "structures")
    paths = {}
    for rec in recs:
        dose_rel = folder / f"dose_{rec.modality}.nii.gz"
        write_volume(rec.plan.dose, root / dose_rel)
        paths[rec.plan_id] = {"dose_path": dose_rel.as_posix(),
                              "structures_path": (folder / "structures").as_posix()}
    return paths


def write_cohort_files(summary: CohortSummary, spec: CohortSpec, root: Path, *,
                       trajectories: bool, write_volumes: bool) -> None:
    """Write manifest, labs, truth (and trajectories), effects.json and README.md into ``root``.

    ``write_volumes`` is only recorded in effects.json (the volumes are written per patient by
    :func:`write_patient_files`).
    """
    summary.manifest.to_csv(root / "manifest.csv", index=False)
    summary.labs.to_csv(root / "labs.csv", index=False)
    _fmt_float(summary.truth).to_csv(root / "truth.csv", index=False)
    if trajectories:
        _write_trajectories(summary, root / "trajectories.parquet")
    info = {"settings": _settings_record(spec, write_volumes),
            "effects": effects_record(spec.truth, spec.patient.covariates, spec.patient.dose),
            "kinetic_priors": {s.name: {"prior": s.prior, "lower": s.lower, "upper": s.upper}
                               for s in specs(spec.truth)},
            "n_days": len(summary.days)}
    (root / "effects.json").write_text(json.dumps(info, indent=1, default=str), encoding="utf-8")
    (root / "README.md").write_text(cohort_readme(summary, spec, trajectories), encoding="utf-8")


def _settings_record(spec: CohortSpec, write_volumes: bool) -> dict:
    """The settings block of effects.json."""
    return {"n": spec.n, "sites": list(spec.sites), "modalities": list(spec.modalities),
            "seed": spec.seed, "paired": spec.paired, "spacing_mm": spec.spacing_mm,
            "particles": spec.particles, "n_quantiles": spec.n_quantiles, "truth": spec.truth,
            "write_volumes": write_volumes}


def _write_trajectories(summary: CohortSummary, path: Path) -> None:
    """True daily ALC in long form ``plan_id, day, alc_true`` (parquet)."""
    p, t = summary.alc_true.shape
    pd.DataFrame({"plan_id": np.repeat(summary.manifest["plan_id"].to_numpy(), t),
                  "day": np.tile(summary.days, p).astype(np.int32),
                  "alc_true": summary.alc_true.ravel().astype(np.float32)}
                 ).to_parquet(path, index=False)


def _fmt_float(df: pd.DataFrame, digits: int = 6) -> pd.DataFrame:
    """Round floats so CSVs are stable and compact."""
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].round(digits)
    return out
