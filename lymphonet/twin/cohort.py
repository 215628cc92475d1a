"""Simulated patient cohorts with plans, labs and ground truth (SIMULATED digital twins).

For each patient: clinical features (:mod:`.covariates`), a site phantom, a schedule (with
occasional treatment breaks) and chemotherapy, one plan per modality (``paired``) or one plan
with the patient's modality, plan features (blood-dose quantiles, lymphoid-organ doses), a
patient-specific theta (random effect + covariates + where the dose falls), then one batched run of
the kinetics layer for the true daily ALC, and clinic-like labs (:mod:`.labs`).

Folder written by :func:`simulate_cohort` (all of it loads with
:func:`lymphonet.io.cohort.load_cohort`)::

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

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lymphonet.dosimetry.plan_features import PlanFeatures, plan_features
from lymphonet.errors import InputError
from lymphonet.io.volume import StructureSet
from lymphonet.kinetics import (
    PARAM_NAMES,
    PARAM_SPECS,
    LymphocyteKinetics,
    nadir,
    theta_to_tensor,
)
from lymphonet.kinetics.simulate import kinetics_inputs
from lymphonet.schema import ctcae_grade, weekday_fraction_days
from lymphonet.twin.covariates import (
    DRIVER_NAMES,
    ClinicalFeatures,
    CovariateEffects,
    DoseEffects,
    covariate_shift,
    dose_drivers,
    dose_shift,
    draw_clinical,
    draw_random_effect,
)
from lymphonet.twin.labs import DAYS_PER_MONTH, LabSchedule, sample_labs
from lymphonet.twin.plans import Plan
from lymphonet.twin.sites import draw_schedule, get_site, plan_for_site, site_phantom

__all__ = ["CohortSummary", "SimulatedPlan", "fraction_days_with_breaks", "simulate_cohort",
           "simulate_patient", "true_trajectories"]

#: Names of composite phantom structures left out of the label map (their parts are in it).
#: Treatment breaks: probability that a course has one, and its length (1-3 treatment days).
P_BREAK, MAX_BREAK_DAYS = 0.25, 3


@dataclass
class SimulatedPlan:
    """One simulated plan of one patient, in memory.

    Attributes:
        patient_id, plan_id: Identifiers (``SIM00012``, ``SIM00012_photon``).
        clinical: The patient's clinical features.
        plan: The plan (dose Volume in Gy, schedule, chemo); None if not kept.
        structures: The phantom (full masks incl. composites and targets); None if not kept.
        features: Plan features (blood and lymphoid dose quantiles, dose summaries).
        fraction_days: ``[K]`` day of each fraction.
        chemo: ``"concurrent"`` or ``"none"``.
        theta_re, theta_cov, theta_dose: ``[9]`` parts of theta; ``theta`` is their sum.
        drivers: Dose-location summaries (:func:`~lymphonet.twin.covariates.dose_drivers`).
    """

    patient_id: str
    plan_id: str
    clinical: ClinicalFeatures
    plan: Plan | None
    structures: StructureSet | None
    features: PlanFeatures
    fraction_days: np.ndarray
    chemo: str
    theta_re: np.ndarray
    theta_cov: np.ndarray
    theta_dose: np.ndarray
    drivers: dict[str, float]
    modality: str = ""
    technique: str = ""
    schedule: str = ""
    n_fractions: int = 0
    dose_per_fraction_gy: float = 0.0
    beam_on_time_s: float = 0.0
    chemo_regimen: str | None = None

    @property
    def theta(self) -> np.ndarray:
        """``[9]`` total theta."""
        return self.theta_re + self.theta_cov + self.theta_dose


@dataclass
class CohortSummary:
    """What :func:`simulate_cohort` produced.

    Attributes:
        manifest: One row per plan (the data contract; paths relative to ``out_dir``).
        labs: Long lab table ``patient_id, plan_id, day, alc, visit``.
        truth: Ground truth per plan (theta parts, physical parameters, drivers, nadir, grade).
        alc_true: ``[P, T]`` true daily ALC (10^9/L), rows in manifest order.
        days: ``[T]`` days 0..T-1.
        records: In-memory plans (with plans/phantoms only when ``keep_objects``).
        out_dir: Folder written, or None.
        elapsed_s: Wall time of the simulation.
    """

    manifest: pd.DataFrame
    labs: pd.DataFrame
    truth: pd.DataFrame
    alc_true: np.ndarray
    days: np.ndarray
    records: list[SimulatedPlan] = field(default_factory=list)
    out_dir: Path | None = None
    elapsed_s: float = 0.0

    def grade_table(self) -> pd.DataFrame:
        """Share of plans per true CTCAE grade (columns G0..G4) by site and modality, plus n."""
        t = self.truth
        tab = pd.crosstab([t["site"], t["modality"]], t["grade"], normalize="index")
        tab = tab.reindex(columns=range(5), fill_value=0.0)
        tab.columns = [f"G{g}" for g in tab.columns]
        tab["n"] = t.groupby(["site", "modality"]).size()
        return tab


def fraction_days_with_breaks(n_fractions: int, rng: np.random.Generator) -> np.ndarray:
    """Monday-Friday fraction days from day 0 with, at probability :data:`P_BREAK`, one break of
    1-:data:`MAX_BREAK_DAYS` treatment days (machine service, holiday) after a random fraction."""
    u, k, pos = rng.random(), int(rng.integers(1, MAX_BREAK_DAYS + 1)), rng.random()
    if n_fractions < 2 or u >= P_BREAK:
        return weekday_fraction_days(n_fractions)
    slots = weekday_fraction_days(n_fractions + k)
    start = 1 + int(pos * (n_fractions - 1))  # the first fraction stays on day 0
    return np.delete(slots, np.arange(start, start + k))


def _child(seq: np.random.SeedSequence, k: int) -> np.random.SeedSequence:
    """The k-th child of ``seq``, the same however often it is asked for (unlike ``spawn``)."""
    return np.random.SeedSequence(seq.entropy, spawn_key=tuple(seq.spawn_key) + (k,))


def _modalities_for(i: int, n_sites: int, modalities: list[str], paired: bool) -> list[str]:
    return list(modalities) if paired else [modalities[(i // n_sites) % len(modalities)]]


def simulate_patient(index: int, site: str, modalities: list[str], seq: np.random.SeedSequence,
                     *, spacing_mm: float = 5.0, particles: int = 5000, n_quantiles: int = 32,
                     cov_effects: CovariateEffects | None = None,
                     dose_effects: DoseEffects | None = None,
                     clinical: ClinicalFeatures | None = None,
                     theta_re: np.ndarray | None = None) -> list[SimulatedPlan]:
    """Simulate one patient: anatomy, schedule, chemo, and one plan per modality.

    Args:
        index: Patient number (ids ``SIM<index:05d>``).
        site: Site name.
        modalities: Modalities to plan (several = paired plans on identical anatomy, schedule,
            chemo and random effect).
        seq: The patient's seed sequence.
        spacing_mm: Isotropic grid spacing (mm).
        particles: Blood-dose particles per plan.
        n_quantiles: Quantile levels Q of the plan features.
        cov_effects, dose_effects: Coefficients (defaults from :mod:`.covariates`).
        clinical: Clinical features to use instead of drawing them (e.g. to vary one covariate).
        theta_re: Random effect to use instead of drawing it.

    Returns:
        One :class:`SimulatedPlan` per modality, each with its ``plan`` and the shared
        ``structures`` (phantom).
    """
    s = get_site(site)
    c_clin, c_anat, c_sched, c_plan, c_feat, c_re = (_child(seq, k) for k in range(6))
    r_clin = np.random.default_rng(c_clin)
    clin = clinical or draw_clinical(site, r_clin, sex_of_site=s.sex)
    r_re = np.random.default_rng(c_re)
    re = draw_random_effect(r_re) if theta_re is None else np.asarray(theta_re, float)
    phantom = site_phantom(s, sex=clin.sex, height_cm=clin.height_cm, bmi=clin.bmi,
                           spacing_mm=(spacing_mm,) * 3, rng=np.random.default_rng(c_anat))
    r_sched = np.random.default_rng(c_sched)
    sched = draw_schedule(s, r_sched)
    chemo = bool(r_sched.random() < sched.chemo_probability)
    fx_days = fraction_days_with_breaks(sched.n_fractions, r_sched)
    cov = covariate_shift(clin.age, clin.bmi, chemo, sched.chemo_regimen, cov_effects)
    feat_seed = int(c_feat.generate_state(1)[0])
    pid = f"SIM{index:05d}"
    out = []
    for modality in modalities:
        plan = plan_for_site(phantom, s, modality, schedule=sched,
                             rng=np.random.default_rng(c_plan))  # same beam jitter per modality
        plan = replace(plan, concurrent_chemo=chemo,
                       chemo_regimen=sched.chemo_regimen if chemo else None)
        feats = plan_features(plan.dose, phantom, n_fractions=plan.n_fractions,
                              beam_on_time_s=plan.beam_on_time_s, sex=clin.sex,
                              n_quantiles=n_quantiles, particles=particles, seed=feat_seed,
                              patient=pid)
        drivers = dose_drivers(np.asarray(plan.dose.array), phantom)
        rec = SimulatedPlan(
            pid, f"{pid}_{modality}", clin, plan, phantom, feats, fx_days,
            "concurrent" if chemo else "none", re, cov, dose_shift(drivers, dose_effects),
            drivers, modality=modality, technique=plan.technique, schedule=sched.name,
            n_fractions=plan.n_fractions, dose_per_fraction_gy=plan.dose_per_fraction_gy,
            beam_on_time_s=plan.beam_on_time_s, chemo_regimen=plan.chemo_regimen)
        out.append(rec)
    return out


def _write_patient(recs: list[SimulatedPlan], root: Path) -> dict[str, dict[str, str]]:
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


def true_trajectories(recs: list[SimulatedPlan], n_days: int, chunk: int = 2048
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the kinetics layer (float64, batched) on each record's features, schedule and theta.

    Returns:
        True daily ALC ``[P, T]`` (10^9/L, days 0..n_days-1), physical parameters ``[P, 9]``
        (:data:`~lymphonet.kinetics.PARAM_NAMES` order) and final set points ``[P]`` (10^9/L).
    """
    model = LymphocyteKinetics(n_days=n_days)
    alc, phys, final = [], [], []
    for lo in range(0, len(recs), chunk):
        part = recs[lo: lo + chunk]
        inp = kinetics_inputs([r.features for r in part], [r.clinical.baseline_alc for r in part],
                              fraction_days=[r.fraction_days for r in part],
                              chemo=[r.chemo for r in part], dtype=torch.float64)
        theta = torch.as_tensor(np.stack([r.theta for r in part]), dtype=torch.float64)
        with torch.no_grad():
            out = model(inp, theta)
        alc.append(out.alc.numpy())
        phys.append(theta_to_tensor(theta).numpy())
        final.append(out.final_baseline_alc.numpy())
    return np.concatenate(alc), np.concatenate(phys), np.concatenate(final)


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
    row.update({f"theta_{n}": float(v) for n, v in zip(PARAM_NAMES, rec.theta)})
    row.update({n: float(v) for n, v in zip(PARAM_NAMES, phys)})
    for part in ("re", "cov", "dose"):
        vec = getattr(rec, f"theta_{part}")
        row.update({f"theta_{part}_{n}": float(v) for n, v in zip(PARAM_NAMES, vec)})
    row.update({k: float(rec.drivers[k]) for k in DRIVER_NAMES})
    f = rec.features
    row.update({"mean_body_dose_gy": f.mean_body_dose_gy, "edic_gy": f.edic_gy,
                "mean_blood_dose_gy_per_fx": f.mean_blood_dose_gy})
    return row


def simulate_cohort(
    n: int,
    sites: list[str] | tuple[str, ...] | str,
    modalities: list[str] | tuple[str, ...] | str = ("photon",),
    *,
    seed: int = 0,
    out_dir: str | Path | None = None,
    paired: bool = False,
    spacing_mm: float = 5.0,
    particles: int = 5000,
    n_quantiles: int = 32,
    write_volumes: bool = True,
    write_trajectories: bool = True,
    keep_objects: bool | None = None,
    lab_schedule: LabSchedule | None = None,
    cov_effects: CovariateEffects | None = None,
    dose_effects: DoseEffects | None = None,
    progress: bool = True,
) -> CohortSummary:
    """Simulate a cohort and (optionally) write it in the data contract.

    Patient ``i`` gets site ``sites[i % len(sites)]`` and, unless ``paired``, modality
    ``modalities[(i // len(sites)) % len(modalities)]`` (balanced over site x modality). With
    ``paired`` every patient gets one plan per modality (same anatomy, clinical features,
    schedule, chemo, random effect and lab draws; only the plan, hence ``theta_dose``, differs).

    Args:
        n: Number of patients (>= 1).
        sites: Site names (list or comma-separated string), keys of :data:`SITES`.
        modalities: ``photon``, ``proton``, ``carbon`` (list or comma-separated string).
        seed: Seed; the same seed gives identical output.
        out_dir: Folder to write (created); None writes nothing (requires
            ``write_volumes=False``).
        paired: One plan per modality per patient.
        spacing_mm: Isotropic grid spacing of phantoms and doses (mm).
        particles: Blood-dose particles per plan.
        n_quantiles: Quantile levels of the plan features.
        write_volumes: Write NIfTI doses and label maps (False: fast in-memory path; the
            manifest's path columns are then empty).
        write_trajectories: Write ``trajectories.parquet`` (true daily ALC).
        keep_objects: Keep plans and phantoms in ``records`` (default: ``not write_volumes``;
            memory grows with n, use for small cohorts).
        lab_schedule, cov_effects, dose_effects: Rules and coefficients (module defaults).
        progress: Show a tqdm progress bar.

    Raises:
        InputError: bad n, unknown site or modality, sex-specific site clash, or out_dir missing.
    """
    t0 = time.perf_counter()
    sites = [s.strip() for s in sites.split(",")] if isinstance(sites, str) else list(sites)
    modalities = ([m.strip() for m in modalities.split(",")] if isinstance(modalities, str)
                  else list(modalities))
    if not isinstance(n, int) or n < 1:
        raise InputError(f"n must be a positive integer, got {n!r}", field="n")
    for s in sites:
        get_site(s)
    bad = [m for m in modalities if m not in ("photon", "proton", "carbon")]
    if not modalities or bad:
        raise InputError(f"unknown modalities {bad}; use photon, proton, carbon",
                         field="modalities")
    if write_volumes and out_dir is None:
        raise InputError("out_dir is needed to write volumes (or pass write_volumes=False)",
                         field="out_dir")
    keep = (not write_volumes) if keep_objects is None else keep_objects
    root = Path(out_dir) if out_dir is not None else None
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    labs_rules = lab_schedule or LabSchedule()
    seqs = np.random.SeedSequence(seed).spawn(n)
    records: list[SimulatedPlan] = []
    paths: dict[str, dict[str, str]] = {}
    lab_seeds = []
    from tqdm import tqdm

    for i in tqdm(range(n), desc="simulating patients", unit="pt", disable=not progress):
        site = sites[i % len(sites)]
        recs = simulate_patient(i, site, _modalities_for(i, len(sites), modalities, paired),
                                seqs[i], spacing_mm=spacing_mm, particles=particles,
                                n_quantiles=n_quantiles, cov_effects=cov_effects, dose_effects=dose_effects)
        if write_volumes:
            paths.update(_write_patient(recs, root))
        if not keep:
            for r in recs:
                r.plan = r.structures = None
        records += recs
        lab_seeds.append(_child(seqs[i], 6))
    last_days = [float(r.fraction_days[-1]) for r in records]
    n_days = max(labs_rules.last_day(d) for d in last_days) + 1
    alc, phys, final = true_trajectories(records, n_days)
    manifest_rows, truth_rows, lab_rows = [], [], []
    groups: dict[str, list[int]] = {}
    for j, rec in enumerate(records):
        groups.setdefault(rec.patient_id, []).append(j)
    for i, group in enumerate(groups.values()):
        first = records[group[0]]
        labs = sample_labs(alc[group], first.clinical.baseline_alc, last_days[group[0]],
                           np.random.default_rng(lab_seeds[i]), labs_rules, n_plans=len(group))
        for k, j in enumerate(group):
            rec = records[j]
            baseline = float(labs["alc"][k, 0])
            manifest_rows.append(_manifest_row(rec, baseline, paths.get(rec.plan_id, {})))
            truth_rows.append(_truth_row(rec, alc[j], phys[j], final[j], labs["dropout_day"]))
            lab_rows.append(pd.DataFrame({
                "patient_id": rec.patient_id, "plan_id": rec.plan_id, "day": labs["day"],
                "alc": labs["alc"][k], "visit": labs["visit"]}))
    summary = CohortSummary(pd.DataFrame(manifest_rows), pd.concat(lab_rows, ignore_index=True),
                            pd.DataFrame(truth_rows), alc, np.arange(n_days), records, root)
    summary.elapsed_s = time.perf_counter() - t0
    if root is not None:
        _write_tables(summary, root, write_trajectories, {
            "n": n, "sites": sites, "modalities": modalities, "seed": seed, "paired": paired,
            "spacing_mm": spacing_mm, "particles": particles, "n_quantiles": n_quantiles,
            "write_volumes": write_volumes}, labs_rules, cov_effects, dose_effects)
        summary.elapsed_s = time.perf_counter() - t0
    return summary


def _fmt_float(df: pd.DataFrame, digits: int = 6) -> pd.DataFrame:
    """Round floats so CSVs are stable and compact."""
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].round(digits)
    return out


def _write_tables(summary: CohortSummary, root: Path, trajectories: bool, settings: dict,
                  labs_rules: LabSchedule, cov_effects, dose_effects) -> None:
    from lymphonet.twin.covariates import effects_dict

    summary.manifest.to_csv(root / "manifest.csv", index=False)
    summary.labs.to_csv(root / "labs.csv", index=False)
    _fmt_float(summary.truth).to_csv(root / "truth.csv", index=False)
    if trajectories:
        p, t = summary.alc_true.shape
        pd.DataFrame({"plan_id": np.repeat(summary.manifest["plan_id"].to_numpy(), t),
                      "day": np.tile(summary.days, p).astype(np.int32),
                      "alc_true": summary.alc_true.ravel().astype(np.float32)}
                     ).to_parquet(root / "trajectories.parquet", index=False)
    info = {"settings": settings, "effects": effects_dict(cov_effects, dose_effects),
            "kinetic_priors": {s.name: {"prior": s.prior, "lower": s.lower, "upper": s.upper}
                               for s in PARAM_SPECS},
            "n_days": len(summary.days)}
    (root / "effects.json").write_text(json.dumps(info, indent=1, default=str), encoding="utf-8")
    (root / "README.md").write_text(_readme(summary, settings, labs_rules, cov_effects,
                                            dose_effects, trajectories), encoding="utf-8")


def _readme(summary: CohortSummary, settings: dict, labs_rules: LabSchedule, cov_effects,
            dose_effects, trajectories: bool) -> str:
    """The cohort's README.md: files, columns, every mechanism and parameter, outcome summary."""
    from lymphonet.twin.covariates import describe_clinical, describe_effects
    from lymphonet.twin.labs import describe_schedule

    command = (f"lymphonet simulate-cohort --n {settings['n']} --sites "
               f"{','.join(settings['sites'])} --modalities {','.join(settings['modalities'])} "
               f"--seed {settings['seed']}{' --paired' if settings['paired'] else ''} "
               f"--spacing-mm {settings['spacing_mm']:g} --particles {settings['particles']}")
    priors = "\n".join(f"| `{s.name}` | {s.unit} | {s.prior:g} | [{s.lower:g}, {s.upper:g}] |"
                        for s in PARAM_SPECS)
    grades = summary.grade_table().reset_index()
    nadir_mean = summary.truth.groupby(["site", "modality"])["nadir_alc"].median().to_numpy()
    grade_rows = "\n".join(
        f"| {r.site} | {r.modality} | {int(r.n)} | {m:.2f} | "
        + " | ".join(f"{100 * getattr(r, f'G{g}'):.0f}%" for g in range(5)) + " |"
        for r, m in zip(grades.itertuples(), nadir_mean))
    m, t = summary.manifest, summary.truth
    return f"""# SIMULATED lymphopenia cohort (digital twins)

**Everything here is SIMULATED**: cartoon anatomy, analytic dose, invented patients, lymphocyte
counts from lymphonet's own mechanistic model with made-up patient effects. For method
development and tests only, never for clinical conclusions.

Made by (blood-dose particles {settings['particles']}, Q = {settings['n_quantiles']}):

```
{command}
```

{m['patient_id'].nunique()} patients, {len(m)} plans, {len(summary.labs)} lab values. The same
command with the same seed rewrites identical files.

## Files

| file | content |
|---|---|
| `manifest.csv` | one row per plan, the lymphonet data contract (`lymphonet.io.cohort.load_cohort`) |
| `labs.csv` | `patient_id, plan_id, day, alc` (10^9/L, as reported) + `visit` |
| `plans/<patient_id>/dose_<modality>.nii.gz` | total course dose, Gy (RBE-weighted for particles) |
| `plans/<patient_id>/structures/<name>.nii.gz` | one binary mask per structure (organs, node stations, composites, targets) |
| `truth.csv` | ground truth per plan: NOT an input, keep it away from models |
| `trajectories.parquet` | {'true daily ALC `plan_id, day, alc_true` (days 0..' + str(len(summary.days) - 1) + ')' if trajectories else 'not written'} |
| `effects.json` | every coefficient below and the kinetic priors used, machine-readable |

Manifest extras beyond the contract: `technique`, `schedule`, `height_cm`.
`baseline_alc` is the *measured* baseline lab (with noise); the true one is in `truth.csv`.
`fraction_days` are Monday-Friday from day 0; with probability {P_BREAK:g} a course has one break
of 1-{MAX_BREAK_DAYS} treatment days. Paired plans (`--paired`) of one patient share anatomy,
clinical features, schedule, chemo, random effect and lab draws; only the plan differs.

**Structures keep their overlaps**: each is its own mask file, so `body` is the whole external
contour, targets overlap the organs they touch, and composites (`lungs`, `kidneys`,
`great_vessels`, `bowel`, `lymph_nodes`) are stored beside their parts.

## truth.csv

`baseline_alc_true`; `nadir_alc`, `nadir_day` (exact minimum of the true daily ALC, days
0..{len(summary.days) - 1}), `grade` (CTCAE v5 of the true nadir: G1 < 1.0, G2 < 0.8, G3 < 0.5,
G4 < 0.2 x 10^9/L); `final_baseline_alc` (lowered set point); `alc_end_rt`, `alc_month3/6/12`
(true ALC the day after the last fraction and 3, 6, 12 months later); `dropout_day`;
`theta_<param>` (total) and its parts `theta_re_*`, `theta_cov_*`, `theta_dose_*`; `<param>`
(physical values); the dose drivers ({', '.join(DRIVER_NAMES)}); `mean_body_dose_gy`, `edic_gy`,
`mean_blood_dose_gy_per_fx` (from the full phantom).

## Clinical features

{describe_clinical(settings["sites"])}
Schedules, techniques and the probability of concurrent chemotherapy per schedule follow
`lymphonet.twin.sites` (docs/twin.md).

## Kinetics and patient-specific parameters

True ALC = `LymphocyteKinetics` (docs/kinetics.md) run daily on days 0..{len(summary.days) - 1}
with the plan's blood-dose and lymphoid-organ dose quantiles, fraction days, chemo (concurrent
window) and the patient's theta. Priors at generation (theta = 0):

| parameter | unit | prior | bounds |
|---|---|---|---|
{priors}

{describe_effects(cov_effects, dose_effects)}

## Labs

{describe_schedule(labs_rules)}

## Outcome in this cohort (true nadir)

| site | modality | plans | median nadir | G0 | G1 | G2 | G3 | G4 |
|---|---|---|---|---|---|---|---|---|
{grade_rows}

Mean body dose by modality (Gy): {', '.join(f'{k} {v:.2f}' for k, v in t.groupby('modality')['mean_body_dose_gy'].mean().items())}.

## Known limits

Cartoon anatomy and analytic dose (docs/twin.md); lymphocyte model with assumed priors
(docs/kinetics.md: the priors may be re-tuned, `effects.json` records those used); all effect
sizes are assumptions; no survival, no immunotherapy, no re-irradiation.
"""

