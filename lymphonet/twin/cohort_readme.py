"""The README.md written into every simulated cohort folder: files, columns, every mechanism and
parameter, and an outcome summary (SIMULATED)."""

from __future__ import annotations

from lymphonet.dosimetry.blood_dose import DEFAULT_TAU_C_S
from lymphonet.kinetics.cores import specs
from lymphonet.twin.cohort_types import CohortSpec, CohortSummary
from lymphonet.twin.covariates import describe_clinical, describe_covariates
from lymphonet.twin.dose_effects import DRIVER_NAMES, describe_dose_effects
from lymphonet.twin.labs import describe_schedule
from lymphonet.twin.patient import MAX_BREAK_DAYS, P_BREAK
from lymphonet.twin.truth import describe_truth

__all__ = ["README_TEMPLATE", "cohort_readme"]

#: ``str.format`` template of the cohort README (fields filled by :func:`cohort_readme`).
README_TEMPLATE = """# SIMULATED lymphopenia cohort (digital twins)

**Everything here is SIMULATED**: cartoon anatomy, analytic dose, invented patients, lymphocyte
counts from a lymphonet mechanistic model (truth core `{truth}`) with made-up patient effects.
For method development and tests only, never for clinical conclusions.

Made by (blood-dose particles {particles}, intra-organ correlation tau_c {tau_c_s:g} s, Q = {n_quantiles}):

```
{command}
```

{n_patients} patients, {n_plans} plans, {n_labs} lab values. The same
command with the same seed rewrites identical files.

## Files

| file | content |
|---|---|
| `manifest.csv` | one row per plan, the lymphonet data contract (`lymphonet.io.cohort.load_cohort`) |
| `labs.csv` | `patient_id, plan_id, day, alc` (10^9/L, as reported) + `visit` |
| `plans/<patient_id>/dose_<modality>.nii.gz` | total course dose, Gy (RBE-weighted for particles) |
| `plans/<patient_id>/structures/<name>.nii.gz` | one binary mask per structure (organs, node stations, composites, targets) |
| `truth.csv` | ground truth per plan: NOT an input, keep it away from models |
| `trajectories.parquet` | {trajectories} |
| `effects.json` | every coefficient below and the kinetic priors used, machine-readable |

Manifest extras beyond the contract: `technique`, `schedule`, `height_cm`.
`baseline_alc` is the *measured* baseline lab (with noise); the true one is in `truth.csv`.
`fraction_days` are Monday-Friday from day 0; with probability {p_break:g} a course has one break
of 1-{max_break_days} treatment days. Paired plans (`--paired`) of one patient share anatomy,
clinical features, schedule, chemo, random effect and lab draws; only the plan differs.

**Structures keep their overlaps**: each is its own mask file, so `body` is the whole external
contour, targets overlap the organs they touch, and composites (`lungs`, `kidneys`,
`great_vessels`, `vena_cava`, `bowel`, `lymph_nodes`, `bone_marrow`) are stored beside their parts
(the superior and inferior vena cava are separate parts since blood dose v2; the bones are named by
site, `bone_marrow_<site>`, since red marrow by bone site: each site holds its ICRP-89 share of the
red marrow, so the truth's marrow dose and coverage are no longer those of all bone).

## truth.csv

`baseline_alc_true`; `nadir_alc`, `nadir_day` (exact minimum of the true daily ALC, days
0..{last_day}), `grade` (CTCAE v5 of the true nadir: G1 < 1.0, G2 < 0.8, G3 < 0.5,
G4 < 0.2 x 10^9/L); `final_baseline_alc` (lowered set point); `alc_end_rt`, `alc_month3/6/12`
(true ALC the day after the last fraction and 3, 6, 12 months later); `dropout_day`;
`theta_<param>` (total) and its parts `theta_re_*`, `theta_cov_*`, `theta_dose_*`; `<param>`
(physical values); the dose drivers ({drivers}); `mean_body_dose_gy`, `edic_gy`,
`mean_blood_dose_gy_per_fx` (from the full phantom).

## Clinical features

{clinical}
Schedules, techniques and the probability of concurrent chemotherapy per schedule follow
`lymphonet.twin.sites` (docs/twin.md).

## Kinetics and patient-specific parameters: how the truth differs from the model

True ALC = the `{truth}` kinetics core (docs/kinetics.md) run daily on days 0..{last_day}
with the plan's blood-dose and lymphoid-organ dose quantiles, fraction days, chemo (concurrent
window and regimen) and the patient's theta.

{truth_text}

Priors of the truth core (theta = 0; the population theta is added to them):

| parameter | unit | prior | bounds |
|---|---|---|---|
{priors}

{effects}

## Labs

{labs}

## Outcome in this cohort (true nadir)

| site | modality | plans | median nadir | G0 | G1 | G2 | G3 | G4 |
|---|---|---|---|---|---|---|---|---|
{grade_rows}

Mean body dose by modality (Gy): {mean_body_dose}.

## Known limits

Cartoon anatomy and analytic dose (docs/twin.md); lymphocyte model with assumed priors
(docs/kinetics.md: the priors may be re-tuned, `effects.json` records those used); all effect
sizes are assumptions; no survival, no immunotherapy, no re-irradiation.
"""


def cohort_readme(summary: CohortSummary, spec: CohortSpec, trajectories: bool) -> str:
    """The cohort's README.md text (``trajectories``: whether trajectories.parquet is written)."""
    m, last_day = summary.manifest, len(summary.days) - 1
    return README_TEMPLATE.format(
        particles=spec.particles, n_quantiles=spec.n_quantiles, command=spec.command(),
        tau_c_s=DEFAULT_TAU_C_S,
        n_patients=m["patient_id"].nunique(), n_plans=len(m), n_labs=len(summary.labs),
        trajectories=(f"true daily ALC `plan_id, day, alc_true` (days 0..{last_day})"
                      if trajectories else "not written"),
        p_break=P_BREAK, max_break_days=MAX_BREAK_DAYS, last_day=last_day,
        drivers=", ".join(DRIVER_NAMES), clinical=describe_clinical(list(spec.sites)),
        priors=_priors_table(spec.truth), truth=spec.truth, truth_text=describe_truth(spec.truth),
        effects=(describe_covariates(spec.patient.covariates) + "\n\n"
                 + describe_dose_effects(spec.patient.dose)),
        labs=describe_schedule(spec.labs), grade_rows=_grade_rows(summary),
        mean_body_dose=_mean_body_dose(summary))


def _priors_table(truth: str) -> str:
    """Rows ``| parameter | unit | prior | bounds |`` of the truth core's priors."""
    return "\n".join(f"| `{s.name}` | {s.unit} | {s.prior:g} | [{s.lower:g}, {s.upper:g}] |"
                     for s in specs(truth))


def _grade_rows(summary: CohortSummary) -> str:
    """Rows ``| site | modality | plans | median nadir | G0..G4 |`` of the outcome table."""
    grades = summary.grade_table().reset_index()
    nadir_median = summary.truth.groupby(["site", "modality"])["nadir_alc"].median().to_numpy()
    return "\n".join(
        f"| {r.site} | {r.modality} | {int(r.n)} | {m:.2f} | "
        + " | ".join(f"{100 * getattr(r, f'G{g}'):.0f}%" for g in range(5)) + " |"
        for r, m in zip(grades.itertuples(), nadir_median))


def _mean_body_dose(summary: CohortSummary) -> str:
    """``photon 1.23, proton 0.45``: mean body dose (Gy) by modality."""
    means = summary.truth.groupby("modality")["mean_body_dose_gy"].mean()
    return ", ".join(f"{k} {v:.2f}" for k, v in means.items())
