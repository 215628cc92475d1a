"""Published-cohort check and population calibration of the mechanistic model.

A *literature table* (:mod:`.literature_table`: one row per published observation, one ALC
statistic of one treated cohort in a day window) is checked against the model here.

For every row a *virtual cohort* is simulated (all SIMULATED, never clinical data):

* anatomy: ``n_phantoms`` site phantoms per site (sexes alternate unless the site is sex-specific;
  height sd 6 cm about the ICRP-89 reference; BMI ~ N(25, 4) clipped to 17-38; organ jitter of
  :func:`~lymphonet.twin.phantoms.make_phantom`), planned with the row's modality and schedule;
  plan features (blood- and lymphoid-dose quantiles) are computed once per phantom and plan and
  shared by the patients who get that phantom;
* baseline ALC: log-normal, median :data:`BASELINE_ALC_MEDIAN` (or the row's optional
  ``baseline_alc_median``), log-sd :data:`BASELINE_ALC_LOG_SD`, clipped to [0.3, 5] x 10^9/L;
* kinetics: theta_i = theta_pop + :data:`THETA_SD` * z_i, z_i ~ N(0, I) fixed per virtual patient
  (common random numbers: the predicted statistics are smooth in theta_pop).

Every row uses the *same* virtual patients (baseline, z, phantom index): arms differ only in
treatment, as in a paired virtual trial, so comparisons between rows carry no sampling noise.

Statistics use the daily model ALC in the window (labs are sparser in practice, so predicted
nadirs are slightly deeper than observed ones).
:func:`lymphonet.twin.literature_fit.calibrate_to_table` fits population theta to the table (weighted least squares on a log scale for ALC statistics and on the arcsine-sqrt
scale for fractions, with sigmoid surrogates for the indicators, L-BFGS-B with autograd
gradients, Gaussian prior on theta), optionally jointly with a cohort's lab series.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lymphonet.errors import InputError
from lymphonet.kinetics.model import LymphocyteKinetics
from lymphonet.kinetics.params import (
    N_PARAMS,
    PARAM_NAMES,
    KineticParams,
    params_to_theta,
)
from lymphonet.kinetics.schedule import KineticsInputs, concat_inputs
from lymphonet.twin.literature_table import (
    ALC_STATISTICS,
    DATA_DIR,
    DEFAULT_TABLE,
    FRACTION_STATISTICS,
    MAX_DAY,
    OPTIONAL_COLUMNS,
    STATISTICS,
    TABLE_COLUMNS,
    load_table,
    validate_table,
)

__all__ = ["ALC_STATISTICS", "BASELINE_ALC_LOG_SD", "BASELINE_ALC_MEDIAN", "DATA_DIR",
           "DEFAULT_N", "DEFAULT_PARAMS", "DEFAULT_TABLE", "FRACTION_STATISTICS", "MAX_DAY",
           "OPTIONAL_COLUMNS", "STATISTICS", "TABLE_COLUMNS", "THETA_SD", "VirtualCohort",
           "build_virtual_cohort", "literature_check", "load_params", "load_table",
           "plot_report", "predict_table", "row_statistics", "simulate_alc", "theta_of",
           "validate_table"]

DEFAULT_PARAMS = DATA_DIR / "population_params.json"

#: Baseline ALC of virtual patients: log-normal median (10^9/L) and log-sd (lymphonet assumption
#: for adults starting RT; e.g. Campian et al. 2013 report mean pre-RT counts of 1.4-1.8 with
#: sds of 0.6-0.9, i.e. a log-sd of about 0.4-0.5).
BASELINE_ALC_MEDIAN, BASELINE_ALC_LOG_SD = 1.8, 0.5
#: Inter-patient variability: sd of theta (the logit scale of the bounded map) around the
#: population value (lymphonet assumption; 0.4 on the logit scale is roughly +-40% in a value far
#: from its bounds). They stand in for what the phantoms do not vary: target volume and stage,
#: chemotherapy regimen and dose, marrow reserve.
THETA_SD = {"alpha_per_gy": 0.5, "blood_share": 0.8, "fast_fraction": 0.3,
            "fast_recovery_days": 0.4, "slow_recovery_days": 0.4, "baseline_loss": 0.6,
            "chemo_rate_per_day": 1.2}
#: Unit used when a row gives no cohort size.
DEFAULT_N = 20


# ----------------------------------------------------------------------------- parameters
def load_params(path: str | Path = DEFAULT_PARAMS) -> KineticParams:
    """Physical population parameters from a params JSON (``{"params": {name: value}}``); names
    not given keep their prior."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        values = data["params"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read population parameters: {exc}", file=path,
                         field="params") from exc
    unknown = sorted(set(values) - set(PARAM_NAMES))
    if unknown:
        raise InputError(f"unknown kinetic parameters {unknown}", file=path, field="params")
    return KineticParams.population(torch.float64, **{k: float(v) for k, v in values.items()})


def theta_of(params: KineticParams | None) -> torch.Tensor:
    """Population theta ``[N_PARAMS]`` (float64) for physical params (None: the priors)."""
    if params is None:
        return torch.zeros(N_PARAMS, dtype=torch.float64)
    return params_to_theta(params.to(dtype=torch.float64))[0]


# ----------------------------------------------------------------------------- virtual cohort
@dataclass
class VirtualCohort:
    """Virtual patients for every row of a literature table.

    Attributes:
        table: The validated table (R rows).
        inputs: Kinetics inputs of all B = sum of row sizes patients.
        slices: Per row, the slice of its patients in the batch.
        theta_offset: ``[B, N_PARAMS]`` per-patient theta offsets (THETA_SD * z).
        n_days: Simulation length (days 0 .. n_days - 1).
        plans: One row per (table row, phantom): mean blood dose per fraction etc.
    """

    table: pd.DataFrame
    inputs: KineticsInputs
    slices: list[slice]
    theta_offset: torch.Tensor
    n_days: int
    plans: pd.DataFrame = field(default_factory=pd.DataFrame)


def _row_schedule(site, row):
    from lymphonet.twin.sites import Schedule

    nearest = min(site.schedules, key=lambda s: (abs(s.n_fractions - row["n_fractions"]),
                                                 abs(s.dose_per_fraction_gy
                                                     - row["dose_per_fraction_gy"])))
    tech = row["technique"] if isinstance(row["technique"], str) else nearest.photon_technique
    elective = None
    if nearest.elective_dose_per_fraction_gy is not None:
        elective = (nearest.elective_dose_per_fraction_gy / nearest.dose_per_fraction_gy
                    * row["dose_per_fraction_gy"])
    return Schedule(str(row["id"]), int(row["n_fractions"]), float(row["dose_per_fraction_gy"]),
                    elective_dose_per_fraction_gy=elective, photon_technique=tech)


def _phantoms(site_name: str, n_phantoms: int, seed: int, cache: dict):
    from lymphonet.twin.phantoms import REF_HEIGHT_CM
    from lymphonet.twin.sites import SITES, site_phantom

    key = (site_name, n_phantoms, seed)
    if key not in cache:
        site = SITES[site_name]
        site_idx = sorted(SITES).index(site_name)
        out = []
        for k in range(n_phantoms):
            rng = np.random.default_rng([seed, site_idx, k])
            sex = site.sex or ("M" if k % 2 == 0 else "F")
            height = float(np.clip(rng.normal(REF_HEIGHT_CM[sex], 6.0), 145.0, 200.0))
            bmi = float(np.clip(rng.normal(25.0, 4.0), 17.0, 38.0))
            out.append((sex, site_phantom(site, sex=sex, height_cm=height, bmi=bmi, rng=rng)))
        cache[key] = out
    return cache[key]


# size: public keyword API (CLI, tests): cohort size, anatomy, blood-dose engine, variability
def build_virtual_cohort(table: pd.DataFrame, n_per_row: int = 200, *, n_phantoms: int = 6,
                         seed: int = 0, particles: int = 4000, n_quantiles: int = 32,
                         theta_sd: dict[str, float] | None = None, progress: bool = False,
                         dtype: torch.dtype = torch.float64) -> VirtualCohort:
    """Simulate the virtual patients of every table row (anatomy, plan features, baseline, theta).

    Args:
        table: Validated literature table.
        n_per_row: Virtual patients per row.
        n_phantoms: Phantoms (anatomies) per site, shared by the rows of the site.
        seed: Seeds phantoms, blood-dose engine and patient draws (results are reproducible).
        particles, n_quantiles: Blood-dose engine particles and quantile levels Q.
        theta_sd: Inter-patient theta sd per parameter (default :data:`THETA_SD`).
        progress: Show a progress bar.
    """
    if n_per_row < 1 or n_phantoms < 1:
        raise InputError("n_per_row and n_phantoms must be >= 1", field="n_per_row")
    sd = dict(THETA_SD if theta_sd is None else theta_sd)
    sd_vec = torch.tensor([sd.get(n, 0.0) for n in PARAM_NAMES], dtype=dtype)
    row_features = _RowFeatures(n_phantoms, seed, particles, n_quantiles)
    items, slices, offsets, plan_rows = [], [], [], []
    rows = list(table.iterrows())
    if progress:
        from tqdm import tqdm

        rows = tqdm(rows, desc="virtual cohorts", unit="row")
    start = 0
    for _, row in rows:
        feats, phantom_rows = row_features(row)
        plan_rows += phantom_rows
        inputs, offset = _row_patients(row, feats, n_per_row, seed, sd_vec)
        items.append(inputs)
        offsets.append(offset)
        slices.append(slice(start, start + n_per_row))
        start += n_per_row
    n_days = int(table["day_to"].max()) + 1
    return VirtualCohort(table.reset_index(drop=True), concat_inputs(items), slices,
                         torch.cat(offsets), max(n_days, 2), pd.DataFrame(plan_rows))


class _RowFeatures:
    """Plan features of a row's phantoms, each (site, phantom, plan) computed once and shared
    by the rows that plan it alike."""

    def __init__(self, n_phantoms: int, seed: int, particles: int, n_quantiles: int):
        self.n_phantoms, self.seed = n_phantoms, seed
        self.particles, self.n_quantiles = particles, n_quantiles
        self.phantom_cache: dict = {}
        self.feature_cache: dict = {}

    def __call__(self, row: pd.Series) -> tuple[list, list[dict]]:
        """Features of each phantom planned as the row says, and one summary row per phantom."""
        from lymphonet.dosimetry.plan_features import plan_features
        from lymphonet.twin.sites import SITES, plan_for_site

        site = SITES[row["site"]]
        sched = _row_schedule(site, row)
        tech = sched.photon_technique if row["modality"] == "photon" else row["modality"]
        feats, plan_rows = [], []
        phantoms = _phantoms(row["site"], self.n_phantoms, self.seed, self.phantom_cache)
        for k, (sex, st) in enumerate(phantoms):
            fkey = (row["site"], k, row["modality"], tech, sched.n_fractions,
                    sched.dose_per_fraction_gy, sched.elective_dose_per_fraction_gy)
            if fkey not in self.feature_cache:
                plan = plan_for_site(st, site, row["modality"], schedule=sched,
                                     technique=tech if row["modality"] == "photon" else None)
                self.feature_cache[fkey] = plan_features(
                    plan.dose, st, n_fractions=plan.n_fractions,
                    beam_on_time_s=plan.beam_on_time_s, sex=sex, n_quantiles=self.n_quantiles,
                    particles=self.particles, seed=self.seed + k,
                    patient=f"{row['id']}/phantom{k}")
            f = self.feature_cache[fkey]
            feats.append(f)
            plan_rows.append({"id": row["id"], "phantom": k, "sex": sex, "technique": tech,
                              "mean_blood_dose_gy": f.mean_blood_dose_gy,
                              "mean_body_dose_gy": f.mean_body_dose_gy})
        return feats, plan_rows


def _row_patients(row: pd.Series, feats: list, n_per_row: int, seed: int,
                  sd_vec: torch.Tensor) -> tuple[KineticsInputs, torch.Tensor]:
    """Kinetics inputs and theta offsets of a row's virtual patients: the same baselines, z and
    phantom indices in every row (common random numbers); ``feats`` holds one entry per phantom."""
    from lymphonet.kinetics.simulate import inputs_from_features

    rng = np.random.default_rng([seed, 7919])  # same virtual patients in every row
    med = row["baseline_alc_median"]
    med = BASELINE_ALC_MEDIAN if pd.isna(med) else float(med)
    base = np.clip(med * np.exp(BASELINE_ALC_LOG_SD * rng.standard_normal(n_per_row)), 0.3, 5.0)
    which = np.arange(n_per_row) % len(feats)
    regimen = row.get("chemo_regimen")
    regimen = None if regimen is None or pd.isna(regimen) else str(regimen)
    inputs = inputs_from_features([feats[i] for i in which], base,
                                  chemo=[str(row["chemo"])] * n_per_row,
                                  chemo_regimen=[regimen] * n_per_row, dtype=sd_vec.dtype)
    offsets = torch.as_tensor(rng.standard_normal((n_per_row, N_PARAMS)), dtype=sd_vec.dtype)
    return inputs, offsets * sd_vec


# ----------------------------------------------------------------------------- prediction
def simulate_alc(cohort: VirtualCohort, theta_pop: torch.Tensor,
                 model: LymphocyteKinetics | None = None) -> torch.Tensor:
    """Daily ALC ``[B, n_days]`` (10^9/L) of all virtual patients for population theta ``[P]``."""
    model = model or LymphocyteKinetics(n_days=cohort.n_days)
    theta = theta_pop.to(cohort.theta_offset.dtype)[None, :] + cohort.theta_offset
    return model(cohort.inputs, theta, n_days=cohort.n_days).alc


def row_statistics(alc: torch.Tensor, cohort: VirtualCohort,
                   smooth_tau: float | None = None) -> torch.Tensor:
    """Predicted statistic of every row, ``[R]``.

    Args:
        alc: ``[B, T]`` daily ALC of the cohort.
        cohort: The virtual cohort (rows, slices).
        smooth_tau: None for exact indicators; else ``1[x < thr]`` is replaced by
            ``sigmoid((log thr - log x) / smooth_tau)`` (differentiable, for calibration).
    """
    out = []
    for (_, row), sl in zip(cohort.table.iterrows(), cohort.slices):
        win = alc[sl, int(row["day_from"]): int(row["day_to"]) + 1]
        stat = row["statistic"]
        per = win.min(1).values if stat in ("median_nadir", "fraction_nadir_below") else win.mean(1)
        if stat == "mean_alc":
            out.append(per.mean())
        elif stat in ("median_alc", "median_nadir"):
            out.append(per.median() if smooth_tau is None else per.quantile(0.5))
        else:
            thr = float(row["threshold"])
            if smooth_tau is None:
                out.append((per < thr).to(per.dtype).mean())
            else:
                z = (math.log(thr) - torch.log(per.clamp_min(1e-6))) / smooth_tau
                out.append(torch.sigmoid(z).mean())
    return torch.stack(out)


def predict_table(cohort: VirtualCohort, params: KineticParams | None = None) -> np.ndarray:
    """Predicted statistic of every row (exact indicators) under population ``params``."""
    with torch.no_grad():
        return row_statistics(simulate_alc(cohort, theta_of(params)), cohort).numpy()


def literature_check(table: pd.DataFrame, params: KineticParams | None = None, *,
                     n_per_row: int = 200, seed: int = 0, n_phantoms: int = 6,
                     progress: bool = False, cohort: VirtualCohort | None = None) -> pd.DataFrame:
    """Compare predicted with published statistics, one output row per table row.

    Returns:
        Columns ``id, statistic, published, predicted, abs_error, n, source, site, modality``.
    """
    cohort = cohort or build_virtual_cohort(table, n_per_row, n_phantoms=n_phantoms, seed=seed,
                                            progress=progress)
    pred = predict_table(cohort, params)
    t = cohort.table
    return pd.DataFrame({
        "id": t["id"], "statistic": t["statistic"], "published": t["value"], "predicted": pred,
        "abs_error": np.abs(pred - t["value"].to_numpy(float)), "n": t["n"],
        "source": t["source"], "site": t["site"], "modality": t["modality"]})


def plot_report(report: pd.DataFrame, path: str | Path) -> None:
    """Predicted vs published scatter (ALC statistics and fractions side by side) with identity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, stats, label in ((axes[0], ALC_STATISTICS, "ALC statistic (10^9/L)"),
                             (axes[1], FRACTION_STATISTICS, "fraction of patients")):
        sub = report[report["statistic"].isin(stats)]
        hi = max(1.0, float(np.nanmax(sub[["published", "predicted"]].to_numpy()))
                 if len(sub) else 1.0) * 1.05
        ax.plot([0, hi], [0, hi], "k--", lw=1, label="identity")
        for modality, g in sub.groupby("modality"):
            ax.scatter(g["published"], g["predicted"], label=modality, s=30)
            for _, r in g.iterrows():
                ax.annotate(r["id"], (r["published"], r["predicted"]), fontsize=6,
                            xytext=(3, 3), textcoords="offset points")
        ax.set(xlim=(0, hi), ylim=(0, hi), xlabel=f"published {label}",
               ylabel=f"predicted {label}")
        ax.legend(fontsize=8)
    fig.suptitle("lymphonet mechanistic model vs published cohorts (virtual cohorts, SIMULATED)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
