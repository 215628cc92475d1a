"""Calibration of the population kinetic parameters to a published-cohort table.

Weighted least squares between the virtual cohorts' statistics (:mod:`lymphonet.twin.literature`)
and the published values: ALC statistics on a log scale, fractions on an arcsine-square-root scale,
weighted by cohort size; threshold indicators are smoothed by sigmoids so the objective is
differentiable; L-BFGS-B with autograd gradients; optionally joint with a cohort's lab series.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lymphonet.errors import InputError
from lymphonet.kinetics.model import LymphocyteKinetics
from lymphonet.kinetics.params import (
    N_PARAMS,
    PARAM_NAMES,
    PARAM_SPECS,
    expand_theta,
    param_spec,
    theta_to_tensor,
)
from lymphonet.kinetics.schedule import KineticsInputs
from lymphonet.twin.literature import (
    BASELINE_ALC_LOG_SD,
    BASELINE_ALC_MEDIAN,
    DEFAULT_N,
    FRACTION_STATISTICS,
    THETA_SD,
    VirtualCohort,
    row_statistics,
    simulate_alc,
)

#: Parameters fitted to the table by default (the ones the statistics can see).
FIT_NAMES = ("alpha_per_gy", "blood_share", "fast_fraction", "fast_recovery_days",
             "slow_recovery_days", "baseline_loss", "chemo_rate_per_day")
#: Prior sd (theta scale) of the table fit: radiosensitivity is held near its in-vivo estimate
#: (Jin et al. 2020), the assumption-only parameters are left broad.
FIT_PRIOR_SD = {"alpha_per_gy": 0.5, "blood_share": 3.0, "fast_fraction": 1.0,
                "fast_recovery_days": 2.0, "slow_recovery_days": 2.0, "baseline_loss": 2.0,
                "chemo_rate_per_day": 2.0}

# ----------------------------------------------------------------------------- calibration
def residual_weights(table: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """Transformed published values and their weights 1 / variance, each ``[R]``.

    ALC statistics: log scale, variance 0.5^2 / n + 0.1^2 (between-patient cv about 0.5, plus a
    model-error floor). Fractions: arcsine-sqrt scale, variance 1 / (4 n) + 0.05^2 (binomial plus
    floor). Rows without n use :data:`DEFAULT_N`.
    """
    n = table["n"].fillna(DEFAULT_N).to_numpy(float)
    is_frac = table["statistic"].isin(FRACTION_STATISTICS).to_numpy()
    v = table["value"].to_numpy(float)
    target = np.where(is_frac, np.arcsin(np.sqrt(np.clip(v, 1e-4, 1 - 1e-4))),
                      np.log(np.clip(v, 1e-3, None)))
    var = np.where(is_frac, 1.0 / (4 * n) + 0.05**2, 0.25 / n + 0.1**2)
    return torch.as_tensor(target), torch.as_tensor(1.0 / var)


def transform_predictions(pred: torch.Tensor, table: pd.DataFrame) -> torch.Tensor:
    """Predictions on the residual scale of :func:`residual_weights`."""
    is_frac = torch.tensor(table["statistic"].isin(FRACTION_STATISTICS).to_numpy().copy())
    frac = torch.arcsin(torch.sqrt(pred.clamp(1e-4, 1 - 1e-4)))
    return torch.where(is_frac, frac, torch.log(pred.clamp_min(1e-3)))


@dataclass
class TableFit:
    """Result of :func:`calibrate_to_table`.

    Attributes:
        names: Fitted parameters; theta: their fitted theta (relative to the priors in force).
        params: Physical values of all parameters at the fit.
        prior_at_fit: Prior value of every parameter when the fit ran (theta = 0).
        report: Per row ``id, statistic, published, before, after`` (exact indicators).
        loss_before, loss_after: Objective at the start and at the optimum.
        converged, n_evals, message: Optimiser diagnostics.
        lab_sigma: Lab residual sd (log ALC) used with a lab cohort, else None.
    """

    names: list[str]
    theta: list[float]
    params: dict[str, float]
    prior_at_fit: dict[str, float]
    report: pd.DataFrame
    loss_before: float
    loss_after: float
    converged: bool
    n_evals: int
    message: str
    lab_sigma: float | None = None

    def to_dict(self) -> dict:
        rep = self.report.replace({np.nan: None}).to_dict(orient="records")
        return {"fitted": self.names, "theta": dict(zip(self.names, self.theta)),
                "params": self.params, "prior_at_fit": self.prior_at_fit, "rows": rep,
                "loss_before": self.loss_before, "loss_after": self.loss_after,
                "converged": self.converged, "n_evals": self.n_evals, "message": self.message,
                "lab_sigma": self.lab_sigma}


# size: independent fit options by name (prior, surrogate width, optional lab term, optimiser)
def calibrate_to_table(cohort: VirtualCohort, fit_names=FIT_NAMES, *,
                       theta0: torch.Tensor | None = None,
                       prior_sd: float | dict[str, float] | None = None,
                       smooth_tau: float = 0.1, max_iter: int = 150,
                       labs: tuple[KineticsInputs, object] | None = None,
                       lab_sigma: float = 0.3, gtol: float = 1e-5,
                       ftol: float = 2.2e-9) -> TableFit:
    """Fit population theta of ``fit_names`` to the table's statistics (and optional labs).

    Objective: 0.5 sum_r w_r (g(pred_r) - g(published_r))^2 + 0.5 sum (theta / prior_sd)^2
    (+ the negative log-likelihood of a lab cohort under the log-normal observation model of
    :mod:`lymphonet.kinetics.calibrate`, population theta, lab sd ``lab_sigma``), minimised by
    L-BFGS-B over theta in [-8, 8] with autograd gradients.

    Args:
        cohort: Virtual cohort of the table.
        fit_names: Parameters to fit; others stay at ``theta0`` (default 0 = prior).
        theta0: Starting full theta ``[N_PARAMS]``.
        prior_sd: Prior sd of each fitted theta (mean 0: the prior values in force): a number
            or a dict by name (missing names: 2.0); default :data:`FIT_PRIOR_SD`.
        smooth_tau: Sigmoid width (log ALC) of the indicator surrogate.
        max_iter: Optimiser iterations.
        labs: Optional ``(inputs, observations)`` of a cohort with lab series.
        lab_sigma: Residual sd of log lab ALC for ``labs``.
        gtol, ftol: L-BFGS-B stopping tolerances (projected gradient, relative decrease).
    """
    from scipy.optimize import minimize

    names = [param_spec(n).name for n in fit_names]
    idx = [PARAM_NAMES.index(n) for n in names]
    base = torch.zeros(N_PARAMS, dtype=torch.float64) if theta0 is None else theta0.double()
    fun = _TableObjective(cohort, names, base, _prior_sd(names, prior_sd), smooth_tau, labs,
                          lab_sigma)
    x0 = base[idx].numpy().copy()
    loss0 = fun(x0)[0]
    res = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=[(-8.0, 8.0)] * len(names),
                   options={"maxiter": max_iter, "gtol": gtol, "ftol": ftol})
    theta_hat = expand_theta(torch.as_tensor(res.x, dtype=torch.float64), names, base)
    phys = theta_to_tensor(theta_hat)
    return TableFit(
        names=names, theta=[float(res.x[i]) for i in range(len(names))],
        params={n: float(phys[i]) for i, n in enumerate(PARAM_NAMES)},
        prior_at_fit={s.name: s.prior for s in PARAM_SPECS},
        report=_fit_report(cohort, fun.model, base, theta_hat),
        loss_before=float(loss0), loss_after=float(res.fun), converged=bool(res.success),
        n_evals=fun.n_evals, message=str(res.message), lab_sigma=lab_sigma if labs else None)


def _prior_sd(names: list[str], prior_sd: float | dict[str, float] | None) -> torch.Tensor:
    """Prior sd of each fitted theta (a number, a dict with 2.0 for missing names, or None for
    :data:`FIT_PRIOR_SD`)."""
    sd_map = FIT_PRIOR_SD if prior_sd is None else prior_sd
    return torch.tensor([sd_map.get(n, 2.0) if isinstance(sd_map, dict) else float(sd_map)
                         for n in names], dtype=torch.float64)


@dataclass
class _TableObjective:
    """The fit objective of :func:`calibrate_to_table` as scipy wants it: ``x -> (loss, grad)``
    over the fitted theta, counting its evaluations."""

    cohort: VirtualCohort
    names: list[str]
    base: torch.Tensor
    sd: torch.Tensor
    smooth_tau: float
    labs: tuple[KineticsInputs, object] | None
    lab_sigma: float
    n_evals: int = 0

    def __post_init__(self) -> None:
        self.target, self.weight = residual_weights(self.cohort.table)
        self.model = LymphocyteKinetics(n_days=self.cohort.n_days)
        self.lab_model = None
        if self.labs is not None:
            obs = self.labs[1]
            lab_days = math.ceil(float(obs.days[obs.mask].max())) + 2
            self.lab_model = LymphocyteKinetics(n_days=max(lab_days, 2))

    def loss(self, z: torch.Tensor) -> torch.Tensor:
        """Weighted table residuals + Gaussian prior (+ lab negative log-likelihood)."""
        from lymphonet.kinetics.calibrate import log_likelihood

        th = expand_theta(z, self.names, self.base)
        pred = row_statistics(simulate_alc(self.cohort, th, self.model), self.cohort,
                              self.smooth_tau)
        r = transform_predictions(pred, self.cohort.table) - self.target
        loss = 0.5 * (self.weight * r**2).sum() + 0.5 * ((z / self.sd) ** 2).sum()
        if self.labs is not None:
            inp, obs = self.labs
            out = self.lab_model(inp, th.expand(inp.batch_size, N_PARAMS))
            loss = loss - log_likelihood(out.alc, out.days, obs, self.lab_sigma).sum()
        return loss

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        self.n_evals += 1
        z = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        loss = self.loss(z)
        (g,) = torch.autograd.grad(loss, z)
        return float(loss.detach()), g.numpy().astype(float)


def _fit_report(cohort: VirtualCohort, model: LymphocyteKinetics, base: torch.Tensor,
                theta_hat: torch.Tensor) -> pd.DataFrame:
    """Per row: published value, exact predictions before and after the fit, their errors."""
    with torch.no_grad():
        before = row_statistics(simulate_alc(cohort, base, model), cohort).numpy()
        after = row_statistics(simulate_alc(cohort, theta_hat, model), cohort).numpy()
    t = cohort.table
    return pd.DataFrame({"id": t["id"], "statistic": t["statistic"], "published": t["value"],
                         "before": before, "after": after,
                         "abs_error_before": np.abs(before - t["value"]),
                         "abs_error_after": np.abs(after - t["value"]), "n": t["n"],
                         "source": t["source"]})


def write_params_json(fit: TableFit, path: str | Path, *, table_path=None, n_per_row=None,
                      seed=None, n_phantoms=None, extra: dict | None = None) -> dict:
    """Write the shipped-format params JSON: physical values, theta, provenance, fit report."""
    from lymphonet import __version__

    prov = {"lymphonet_version": __version__, "method": "lymphonet.twin.literature."
            "calibrate_to_table", "n_per_row": n_per_row, "seed": seed, "n_phantoms": n_phantoms,
            "baseline_alc": {"median": BASELINE_ALC_MEDIAN, "log_sd": BASELINE_ALC_LOG_SD},
            "inter_patient_theta_sd": THETA_SD}
    if table_path is not None:
        data = Path(table_path).read_bytes()
        prov["table"] = Path(table_path).name
        prov["table_sha256"] = hashlib.sha256(data).hexdigest()
    prov.update(extra or {})
    doc = {"format": "lymphonet.population_params/1",
           "units": {s.name: s.unit for s in PARAM_SPECS}, "params": fit.params,
           "provenance": prov, "fit": fit.to_dict()}
    Path(path).write_text(json.dumps(doc, indent=2, default=float), encoding="utf-8")
    return doc


def lab_cohort_inputs(directory: str | Path, *, n_quantiles: int = 32, particles: int = 4000,
                      seed: int = 0, progress: bool = False,
                      default_beam_on_time_s: float | None = None):
    """Kinetics inputs and lab observations of a cohort folder (manifest + labs), for a joint fit.

    Each patient's first plan is read (:func:`lymphonet.io.plan.read_plan`: dose, canonical
    structures, beam-on rule), reduced to plan features and paired with its lab series. Returns
    ``(inputs, observations, patient_ids)``.

    Raises:
        InputError: the cohort has no labs, or a plan cannot be read (naming patient and file).
    """
    from lymphonet.dosimetry.plan_features import features_of_plan
    from lymphonet.io.cohort import load_cohort
    from lymphonet.io.plan import read_plan
    from lymphonet.kinetics.calibrate import Observations
    from lymphonet.kinetics.simulate import inputs_from_features

    cohort = load_cohort(directory)
    if cohort.labs.empty:
        raise InputError("the lab cohort has no lab values", file=directory, field="labs")
    seen: set[str] = set()
    plans = [p for p in cohort.plans if not (p.patient_id in seen or seen.add(p.patient_id))]
    if progress:
        from tqdm import tqdm

        plans = tqdm(plans, desc="lab cohort plans", unit="plan")
    feats, base, days, chemo, ids = [], [], [], [], []
    for p in plans:
        plan = read_plan(p, cohort.root, default_beam_on_time_s=default_beam_on_time_s)
        feats.append(features_of_plan(plan, n_quantiles=n_quantiles, particles=particles,
                                      seed=seed))
        base.append(p.baseline_alc)
        days.append(np.asarray(p.fraction_days, float))
        chemo.append(p.chemo or "none")
        ids.append(p.patient_id)
    inputs = inputs_from_features(feats, base, fraction_days=days, chemo=chemo, dtype=torch.float64)
    labs = cohort.labs
    obs = Observations.from_long(labs["patient_id"].to_numpy(), labs["day"].to_numpy(float),
                                 labs["alc"].to_numpy(float), ids)
    return inputs, obs, ids
