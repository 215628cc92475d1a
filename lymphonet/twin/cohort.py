"""Simulated patient cohorts with plans, labs and ground truth (SIMULATED digital twins).

For each patient (:mod:`.patient`): clinical features (:mod:`.covariates`), a site phantom, a
schedule (with occasional treatment breaks) and chemotherapy, one plan per modality (``paired``)
or one plan with the patient's modality, plan features (blood-dose quantiles, lymphoid-organ
doses), a patient-specific theta (random effect + covariates + where the dose falls), then one
batched run of the kinetics layer for the true daily ALC, and clinic-like labs (:mod:`.labs`).
What to simulate is a :class:`~lymphonet.twin.cohort_types.CohortSpec`.

Folder written by :func:`simulate_cohort` (:mod:`.cohort_files`, :mod:`.cohort_readme`; all of it
loads with :func:`lymphonet.io.cohort.load_cohort`)::

    manifest.csv            one row per plan, the data contract of DESIGN.md section 3
    labs.csv                patient_id, plan_id, day, alc (+ visit)
    plans/<patient_id>/     dose_<modality>.nii.gz, structures/<name>.nii.gz (one mask each)
    truth.csv               simulated ground truth per plan (theta, parameters, nadir, grade)
    trajectories.parquet    true daily ALC (plan_id, day, alc_true), optional
    effects.json            every coefficient and the kinetic priors used
    README.md               what all of it is (SIMULATED)

Seeded: every patient draws from its own child of ``numpy.random.SeedSequence(seed)``, so the same
seed gives identical files.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lymphonet.errors import InputError
from lymphonet.kinetics import nadir
from lymphonet.schema import ctcae_grade
from lymphonet.twin.cohort_files import write_cohort_files, write_patient_files
from lymphonet.twin.cohort_types import CohortSpec, CohortSummary
from lymphonet.twin.dose_effects import DRIVER_NAMES
from lymphonet.twin.labs import DAYS_PER_MONTH, sample_labs
from lymphonet.twin.patient import SimulatedPlan, child_seed, simulate_patient
from lymphonet.twin.truth import true_trajectories, truth_names


def simulate_cohort(
    spec: CohortSpec | int,
    sites: list[str] | tuple[str, ...] | str | None = None,
    modalities: list[str] | tuple[str, ...] | str | None = None,
    *,
    out_dir: str | Path | None = None,
    write_volumes: bool = True,
    write_trajectories: bool = True,
    keep_objects: bool | None = None,
    progress: bool = True,
    **settings,
) -> CohortSummary:
    """Simulate a cohort and (optionally) write it in the data contract.

    Either ``simulate_cohort(CohortSpec(n, sites, modalities, seed=..., ...), out_dir=...)`` or
    the keyword form ``simulate_cohort(n, sites, modalities, seed=..., paired=..., out_dir=...)``
    whose ``n``, ``sites``, ``modalities`` (default ``photon``) and ``**settings`` are the fields
    of :class:`~lymphonet.twin.cohort_types.CohortSpec` (``seed``, ``paired``, ``spacing_mm``,
    ``particles``, ``n_quantiles``, ``lab_schedule``, ``cov_effects``, ``dose_effects``). With a
    spec, ``**settings`` replace its fields.

    Args:
        spec: What to simulate, or the number of patients for the keyword form.
        sites, modalities: Site and modality names (keyword form only).
        out_dir: Folder to write (created); None writes nothing (requires
            ``write_volumes=False``).
        write_volumes: Write NIfTI doses and label maps (False: fast in-memory path; the
            manifest's path columns are then empty).
        write_trajectories: Write ``trajectories.parquet`` (true daily ALC).
        keep_objects: Keep plans and phantoms in ``records`` (default: ``not write_volumes``;
            memory grows with n, use for small cohorts).
        progress: Show a tqdm progress bar.
        **settings: Further :class:`~lymphonet.twin.cohort_types.CohortSpec` fields.

    Raises:
        InputError: bad n, unknown site or modality, sex-specific site clash, or out_dir missing.
    """
    t0 = time.perf_counter()
    spec = _as_spec(spec, sites, modalities, settings)
    if write_volumes and out_dir is None:
        raise InputError("out_dir is needed to write volumes (or pass write_volumes=False)",
                         field="out_dir")
    keep = (not write_volumes) if keep_objects is None else keep_objects
    root = Path(out_dir) if out_dir is not None else None
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    records, paths, lab_seeds = _simulate_patients(spec, root if write_volumes else None, keep,
                                                   progress)
    summary = _summarise(spec, records, paths, lab_seeds)
    summary.out_dir = root
    summary.elapsed_s = time.perf_counter() - t0
    if root is not None:
        write_cohort_files(summary, spec, root, trajectories=write_trajectories,
                           write_volumes=write_volumes)
        summary.elapsed_s = time.perf_counter() - t0
    return summary


def _as_spec(spec: CohortSpec | int, sites, modalities, settings: dict) -> CohortSpec:
    """The spec of either call form of :func:`simulate_cohort`."""
    if isinstance(spec, CohortSpec):
        if sites is not None or modalities is not None:
            raise TypeError("with a CohortSpec, give sites and modalities inside it")
        return replace(spec, **settings)
    return CohortSpec(spec, sites, ("photon",) if modalities is None else modalities,
                      **settings)


def _simulate_patients(spec: CohortSpec, volume_root: Path | None, keep: bool, progress: bool
                       ) -> tuple[list[SimulatedPlan], dict[str, dict[str, str]],
                                  list[np.random.SeedSequence]]:
    """Simulate every patient (writing its volumes under ``volume_root`` if given).

    Returns the plans, plan_id -> relative file paths, and each patient's lab seed.
    """
    from tqdm import tqdm

    seqs = np.random.SeedSequence(spec.seed).spawn(spec.n)
    patient_settings = spec.patient
    records: list[SimulatedPlan] = []
    paths: dict[str, dict[str, str]] = {}
    lab_seeds = []
    for i in tqdm(range(spec.n), desc="simulating patients", unit="pt", disable=not progress):
        recs = simulate_patient(i, spec.site_of(i), spec.modalities_of(i), seqs[i],
                                patient_settings)
        if volume_root is not None:
            paths.update(write_patient_files(recs, volume_root))
        if not keep:
            for r in recs:
                r.plan = r.structures = None
        records += recs
        lab_seeds.append(child_seed(seqs[i], 6))
    return records, paths, lab_seeds


def _summarise(spec: CohortSpec, records: list[SimulatedPlan], paths: dict[str, dict[str, str]],
               lab_seeds: list[np.random.SeedSequence]) -> CohortSummary:
    """True trajectories of all plans, then labs, manifest and truth patient by patient."""
    rules = spec.labs
    n_days = max(rules.last_day(float(r.fraction_days[-1])) for r in records) + 1
    alc, phys, final = true_trajectories(records, n_days, spec.truth)
    manifest_rows, truth_rows, lab_tables = [], [], []
    for group, lab_seed in zip(_patient_groups(records), lab_seeds, strict=True):
        first = records[group[0]]
        labs = sample_labs(alc[group], first.clinical.baseline_alc,
                           float(first.fraction_days[-1]), np.random.default_rng(lab_seed), rules,
                           n_plans=len(group))
        for k, j in enumerate(group):
            rec = records[j]
            baseline = float(labs["alc"][k, 0])
            manifest_rows.append(_manifest_row(rec, baseline, paths.get(rec.plan_id, {})))
            truth_rows.append(_truth_row(rec, alc[j], phys[j], final[j], labs["dropout_day"]))
            lab_tables.append(pd.DataFrame({
                "patient_id": rec.patient_id, "plan_id": rec.plan_id, "day": labs["day"],
                "alc": labs["alc"][k], "visit": labs["visit"]}))
    return CohortSummary(pd.DataFrame(manifest_rows), pd.concat(lab_tables, ignore_index=True),
                         pd.DataFrame(truth_rows), alc, np.arange(n_days), records)


def _patient_groups(records: list[SimulatedPlan]) -> list[list[int]]:
    """Indices of each patient's plans, patients in order of appearance."""
    groups: dict[str, list[int]] = {}
    for j, rec in enumerate(records):
        groups.setdefault(rec.patient_id, []).append(j)
    return list(groups.values())


def _manifest_row(rec: SimulatedPlan, baseline_measured: float, paths: dict[str, str]) -> dict:
    c = rec.clinical
    return {
        "patient_id": rec.patient_id, "plan_id": rec.plan_id, "site": c.site,
        "modality": rec.modality, "technique": rec.technique, "schedule": rec.schedule,
        "n_fractions": rec.n_fractions, "dose_per_fraction_gy": rec.dose_per_fraction_gy,
        "fraction_days": ",".join(f"{d:g}" for d in rec.fraction_days),
        "beam_on_time_s": round(rec.beam_on_time_s, 3), "chemo": rec.chemo,
        "chemo_regimen": rec.chemo_regimen or "", "age": c.age, "sex": c.sex,
        "height_cm": c.height_cm, "bmi": c.bmi, "baseline_alc": baseline_measured,
        "dose_path": paths.get("dose_path", ""),
        "structures_path": paths.get("structures_path", ""),
    }


def _truth_row(rec: SimulatedPlan, alc: np.ndarray, phys: np.ndarray, final: float,
               dropout_day: float) -> dict:
    last = float(rec.fraction_days[-1])
    days = torch.arange(len(alc), dtype=torch.float64)
    val, day = nadir(torch.as_tensor(alc[None]), days)
    row = {"patient_id": rec.patient_id, "plan_id": rec.plan_id, "site": rec.clinical.site,
           "modality": rec.modality, "baseline_alc_true": rec.clinical.baseline_alc,
           "nadir_alc": float(val[0]), "nadir_day": float(day[0]),
           "grade": int(ctcae_grade(val)[0]), "final_baseline_alc": float(final)}
    for label, months in (("end_rt", 0.0), ("month3", 3.0), ("month6", 6.0), ("month12", 12.0)):
        row[f"alc_{label}"] = float(alc[min(round(last + 1 + DAYS_PER_MONTH * months), len(alc) - 1)])
    row["dropout_day"] = round(dropout_day, 1)
    names = truth_names(rec.truth)
    row.update({f"theta_{n}": float(v) for n, v in zip(names, rec.theta)})
    row.update({n: float(v) for n, v in zip(names, phys)})
    for part in ("re", "cov", "dose"):
        vec = getattr(rec, f"theta_{part}")
        row.update({f"theta_{part}_{n}": float(v) for n, v in zip(names, vec)})
    row.update({k: float(rec.drivers[k]) for k in DRIVER_NAMES})
    f = rec.features
    row.update({"mean_body_dose_gy": f.mean_body_dose_gy, "edic_gy": f.edic_gy,
                "mean_blood_dose_gy_per_fx": f.mean_blood_dose_gy})
    return row
