"""Calibration of the kinetics layer: population fit and individual prediction.

Observation model: log ALC_obs = log ALC(t_obs) + eps, eps ~ N(0, sigma^2), with ALC(t) the model
trajectory interpolated linearly between grid days (labs may fall on non-integer days).
Priors are Gaussian in the unconstrained theta space (theta = 0 is the literature value, see
:mod:`lymphonet.kinetics.params`), so every estimate stays inside its physical bounds.

* :func:`fit_population` fits shared theta (MAP, L-BFGS) to a cohort and reports a Laplace
  posterior (inverse Hessian of the negative log posterior, mapped to physical units by the delta
  method) with an identifiability check (posterior-to-prior sd ratios and the eigen-decomposition).
* :func:`predict_individual` fits each patient's own theta to early counts (MAP under the
  population prior, batched over patients) and predicts the rest of the course with Laplace
  sampling intervals.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from lymphonet.errors import InputError
from lymphonet.kinetics.model import LymphocyteKinetics, interpolate_days
from lymphonet.kinetics.params import (
    N_PARAMS,
    PARAM_NAMES,
    dphysical_dtheta,
    expand_theta,
    param_spec,
    theta_to_tensor,
)
from lymphonet.kinetics.schedule import KineticsInputs
from lymphonet.metrics import normal_quantile

#: Half-width of a central 95% normal interval, in standard deviations.
Z95 = normal_quantile(0.975)

#: Posterior/prior sd ratio below which a parameter counts as pinned down by the data, and above
#: which it counts as not identified (the data barely move the prior).
IDENTIFIED_RATIO, UNIDENTIFIED_RATIO = 0.5, 0.9


@dataclass
class Observations:
    """Lab ALC series for B patients, padded to M observations.

    Attributes:
        days: ``[B, M]`` observation days from the first fraction (float; padding arbitrary).
        alc: ``[B, M]`` observed ALC (10^9/L, > 0 where observed).
        mask: ``[B, M]`` bool, True where observed.
    """

    days: torch.Tensor
    alc: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def from_long(cls, patient_id, day, alc, patients, dtype=torch.float64) -> Observations:
        """Build from a long labs table (columns ``patient_id, day, alc``; arrays or a DataFrame's
        columns). ``patients`` gives the batch order; labs of other patients are ignored.
        """
        pid = np.asarray(patient_id).astype(str)
        day, alc = np.asarray(day, dtype=float), np.asarray(alc, dtype=float)
        order = {str(p): i for i, p in enumerate(patients)}
        rows = [[] for _ in patients]
        for j, p in enumerate(pid):
            if p in order:
                if not (np.isfinite(day[j]) and np.isfinite(alc[j]) and alc[j] > 0):
                    raise InputError(f"lab row {j}: day and alc must be finite and alc > 0 "
                                     f"(10^9/L)", patient=p, field="alc")
                rows[order[p]].append((day[j], alc[j]))
        m = max(1, max(len(r) for r in rows))
        d = np.zeros((len(patients), m))
        a = np.ones((len(patients), m))
        mk = np.zeros((len(patients), m), dtype=bool)
        for i, r in enumerate(rows):
            if r:
                r = sorted(r)
                d[i, :len(r)], a[i, :len(r)], mk[i, :len(r)] = [x[0] for x in r], [x[1] for x in r], True
        return cls(torch.as_tensor(d, dtype=dtype), torch.as_tensor(a, dtype=dtype),
                   torch.as_tensor(mk))

    def window(self, first_day: float = -math.inf, last_day: float = math.inf) -> Observations:
        """Same observations, masked to ``first_day <= day <= last_day``."""
        keep = self.mask & (self.days >= first_day) & (self.days <= last_day)
        return Observations(self.days, self.alc, keep)

    def index(self, idx) -> Observations:
        return Observations(self.days[idx], self.alc[idx], self.mask[idx])


def log_likelihood(alc: torch.Tensor, days: torch.Tensor, obs: Observations,
                   sigma) -> torch.Tensor:
    """Gaussian log-likelihood of log ALC per patient, ``[B]``.

    Args:
        alc: ``[B, T]`` predicted ALC on ``days``.
        days: ``[T]`` grid days.
        obs: Observations (``[B, M]``).
        sigma: Residual sd on the log scale (scalar tensor/float or ``[B]``).
    """
    pred = interpolate_days(alc, days, obs.days.to(alc.dtype)).clamp_min(1e-12)
    y = torch.where(obs.mask, obs.alc.to(alc.dtype), torch.ones_like(pred))
    sigma = torch.as_tensor(sigma, dtype=alc.dtype)
    sigma = sigma.reshape(-1, 1) if sigma.dim() else sigma
    z = (torch.log(y) - torch.log(pred)) / sigma
    ll = -0.5 * z**2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)
    return torch.where(obs.mask, ll, torch.zeros_like(ll)).sum(1)


def _grid_days(obs: Observations, n_days: int | None, model: LymphocyteKinetics) -> int:
    if n_days is not None:
        return int(n_days)
    last = float(obs.days[obs.mask].max()) if obs.mask.any() else 1.0
    return max(2, min(model.n_days, math.ceil(last) + 2))


def _prior_sd_vec(prior_sd, n: int, dtype) -> torch.Tensor:
    sd = torch.as_tensor(prior_sd, dtype=dtype)
    return sd.expand(n).clone() if sd.dim() == 0 else sd


def _lbfgs(closure_loss, z: torch.Tensor, max_iter: int) -> tuple[int, bool]:
    opt = torch.optim.LBFGS([z], lr=1.0, max_iter=max_iter, tolerance_grad=1e-7,
                            tolerance_change=1e-10, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = closure_loss()
        loss.backward()
        return loss

    opt.step(closure)
    n_iter = opt.state[opt._params[0]].get("n_iter", 0)
    return n_iter, n_iter < max_iter


# ----------------------------------------------------------------------------- population
@dataclass
class PopulationFit:
    """Population (shared) kinetic parameters with Laplace uncertainty and identifiability.

    Attributes:
        names: Fitted parameter names (others stay at their prior, theta = 0).
        theta: MAP theta of the fitted parameters.
        theta_sd: Posterior sd of theta (Laplace).
        value: Physical MAP values; value_sd: delta-method sd (physical units).
        ci95_low, ci95_high: 95% interval in physical units (theta +- Z95 sd mapped, so inside
            the bounds).
        units: Units of each parameter.
        sd_ratio: posterior sd / prior sd in theta space (~1: the data say nothing).
        status: "identified" (ratio < 0.5), "weak", or "not identified" (ratio > 0.9).
        sigma: Residual sd of log ALC; sigma_sd its Laplace sd (0 when given).
        hessian_eigenvalues: Eigenvalues of the posterior Hessian in theta space, each divided by
            the prior precision (1 = prior only, >> 1 = informed direction), ascending.
        hessian_eigenvectors: Matching eigenvectors (rows, over ``names``).
        covariance_theta: Posterior covariance of theta (n x n).
        neg_log_posterior, n_patients, n_observations, n_iter, converged: Fit diagnostics.
    """

    names: list[str]
    theta: list[float]
    theta_sd: list[float]
    value: list[float]
    value_sd: list[float]
    ci95_low: list[float]
    ci95_high: list[float]
    units: list[str]
    sd_ratio: list[float]
    status: list[str]
    sigma: float
    sigma_sd: float
    hessian_eigenvalues: list[float]
    hessian_eigenvectors: list[list[float]]
    covariance_theta: list[list[float]]
    neg_log_posterior: float
    n_patients: int
    n_observations: int
    n_iter: int
    converged: bool
    prior_sd: list[float] = field(default_factory=list)

    def theta_full(self, dtype=torch.float64) -> torch.Tensor:
        """Full theta ``[n_params]`` (unfitted parameters at 0 = prior)."""
        return expand_theta(torch.tensor(self.theta, dtype=dtype), self.names)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self, path=None, indent: int = 2) -> str:
        """JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        return text

    def summary(self) -> str:
        """One line per parameter: value +- sd (unit) [status]."""
        return "\n".join(f"{n:22s} {v:10.4g} +- {s:<10.3g} {u:7s} sd ratio {r:.2f} [{st}]"
                         for n, v, s, u, r, st in zip(self.names, self.value, self.value_sd,
                                                      self.units, self.sd_ratio, self.status))


def fit_population(model: LymphocyteKinetics, inputs: KineticsInputs, obs: Observations,
                   fit_names=PARAM_NAMES, prior_sd=1.0, sigma: float | None = None,
                   max_iter: int = 200, n_days: int | None = None) -> PopulationFit:
    """MAP fit of shared theta to a cohort, with a Laplace posterior and identifiability check.

    Args:
        model: The kinetics module.
        inputs: Cohort inputs (B patients).
        obs: Their lab series.
        fit_names: Parameters to fit (the rest stay at their prior, theta = 0).
        prior_sd: Prior sd of theta (scalar or per fitted parameter); prior mean 0.
        sigma: Residual sd of log ALC; None to estimate it (flat prior on log sigma).
        max_iter: L-BFGS iterations.
        n_days: Simulation grid length (default: just past the last observation).
    """
    names = [param_spec(n).name for n in fit_names]
    n = len(names)
    dtype = inputs.blood_dose_q_gy.dtype
    t_days = _grid_days(obs, n_days, model)
    sd = _prior_sd_vec(prior_sd, n, dtype)
    learn_sigma = sigma is None
    z0 = torch.zeros(n + int(learn_sigma), dtype=dtype)
    if learn_sigma:
        z0[-1] = math.log(0.2)

    def neg_log_post(z):
        th = expand_theta(z[:n], names)
        out = model(inputs, th.expand(inputs.batch_size, N_PARAMS), n_days=t_days)
        s = torch.exp(z[n]) if learn_sigma else sigma
        ll = log_likelihood(out.alc, out.days, obs, s).sum()
        return -ll + 0.5 * ((z[:n] / sd) ** 2).sum()

    z = z0.clone().requires_grad_(True)
    n_iter, converged = _lbfgs(lambda: neg_log_post(z), z, max_iter)
    z_hat = z.detach()
    hess = torch.autograd.functional.hessian(neg_log_post, z_hat)
    hess = 0.5 * (hess + hess.T)
    cov = torch.linalg.pinv(hess)
    z_sd = cov.diagonal().clamp_min(0).sqrt()
    th_full = expand_theta(z_hat[:n], names)
    idx = [PARAM_NAMES.index(x) for x in names]
    phys = theta_to_tensor(th_full)[idx]
    jac = dphysical_dtheta(th_full)[idx]
    lo = theta_to_tensor(expand_theta(z_hat[:n] - Z95 * z_sd[:n], names))[idx]
    hi = theta_to_tensor(expand_theta(z_hat[:n] + Z95 * z_sd[:n], names))[idx]
    ratio = z_sd[:n] / sd
    status = ["identified" if r < IDENTIFIED_RATIO else "not identified" if r > UNIDENTIFIED_RATIO
              else "weak" for r in ratio.tolist()]
    h_theta = hess[:n, :n] * sd[:, None] * sd[None, :]  # prior-whitened: prior-only -> identity
    evals, evecs = torch.linalg.eigh(h_theta)
    sig = float(torch.exp(z_hat[n])) if learn_sigma else float(sigma)
    sig_sd = float(sig * z_sd[n]) if learn_sigma else 0.0
    return PopulationFit(
        names=names, theta=z_hat[:n].tolist(), theta_sd=z_sd[:n].tolist(), value=phys.tolist(),
        value_sd=(jac * z_sd[:n]).tolist(), ci95_low=lo.tolist(), ci95_high=hi.tolist(),
        units=[param_spec(x).unit for x in names], sd_ratio=ratio.tolist(), status=status,
        sigma=sig, sigma_sd=sig_sd, hessian_eigenvalues=evals.tolist(),
        hessian_eigenvectors=evecs.T.tolist(), covariance_theta=cov[:n, :n].tolist(),
        neg_log_posterior=float(neg_log_post(z_hat)), n_patients=inputs.batch_size,
        n_observations=int(obs.mask.sum()), n_iter=int(n_iter), converged=bool(converged),
        prior_sd=sd.tolist(),
    )


# ----------------------------------------------------------------------------- individual
@dataclass
class IndividualPrediction:
    """Per-patient MAP fit to early counts and the predicted trajectory with an interval.

    Attributes:
        names: Individually fitted parameters.
        theta: ``[B, n]`` MAP theta; theta_cov ``[B, n, n]`` Laplace covariance.
        theta_full: ``[B, n_params]`` full theta used for the MAP trajectory.
        days: ``[T]``; alc: ``[B, T]`` MAP trajectory; lower/upper: ``[B, T]`` pointwise
            quantiles (level) of the Laplace samples; samples: ``[S, B, T]`` or None.
        level: Central interval probability (e.g. 0.9 -> 5% and 95% quantiles).
        predictive: True if the interval includes the log-normal lab noise (for new lab values),
            False if it is a credible band for the underlying trajectory.
    """

    names: list[str]
    theta: torch.Tensor
    theta_cov: torch.Tensor
    theta_full: torch.Tensor
    days: torch.Tensor
    alc: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor
    level: float
    predictive: bool
    samples: torch.Tensor | None = None


def _batched_hessian(loss_fn, z: torch.Tensor) -> torch.Tensor:
    """Per-row Hessians ``[B, n, n]`` of a row-separable scalar loss (sum over rows)."""
    z = z.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(z), z, create_graph=True)
    rows = [torch.autograd.grad(g[:, j].sum(), z, retain_graph=True)[0] for j in range(z.shape[1])]
    h = torch.stack(rows, 1)
    return 0.5 * (h + h.transpose(1, 2))


def _quantiles0(x: torch.Tensor, probs) -> list[torch.Tensor]:
    """Quantiles along dim 0 by sorting (linear interpolation; no size limit unlike quantile)."""
    xs = x.sort(0).values
    out = []
    for p in probs:
        pos = p * (x.shape[0] - 1)
        i0 = math.floor(pos)
        i1 = min(i0 + 1, x.shape[0] - 1)
        out.append(xs[i0] + (pos - i0) * (xs[i1] - xs[i0]))
    return out


def _safe_cholesky(cov: torch.Tensor) -> torch.Tensor:
    evals, evecs = torch.linalg.eigh(cov)
    return evecs * evals.clamp_min(1e-10).sqrt()[..., None, :]


def predict_individual(model: LymphocyteKinetics, inputs: KineticsInputs, early: Observations,
                       population_theta: torch.Tensor | PopulationFit | None = None,
                       fit_names=("alpha_per_gy", "blood_share", "fast_recovery_days"),
                       omega=1.0, sigma: float | None = None, level: float = 0.9,
                       n_samples: int = 200, predictive: bool = False, max_iter: int = 100,
                       seed: int = 0, keep_samples: bool = False) -> IndividualPrediction:
    """Fit each patient's theta to early counts (MAP) and predict the full course with an interval.

    The individual prior is theta_i ~ N(population theta, omega^2) on ``fit_names``; other
    parameters stay at the population value. The MAP is found jointly for the batch with L-BFGS
    (the objective is a sum of per-patient terms); each patient's Hessian block gives the Laplace
    covariance; ``n_samples`` theta draws per patient are pushed through the model and the
    pointwise (1-level)/2 and (1+level)/2 quantiles form the interval.

    Args:
        model: The kinetics module (its n_days sets the prediction horizon).
        inputs: B patients.
        early: Their early observations (baseline and first 1-2 weeks).
        population_theta: Full population theta ``[n_params]`` or a :class:`PopulationFit`;
            None = literature prior (zeros).
        fit_names: Individually adjusted parameters.
        omega: Prior sd of individual deviations in theta space (scalar or per name).
        sigma: Residual sd of log ALC; None = the population fit's sigma, else 0.15.
        level: Interval probability.
        n_samples: Laplace samples per patient.
        predictive: Add lab noise to samples (interval for new lab values).
        max_iter: L-BFGS iterations.
        seed: RNG seed for the samples.
        keep_samples: Return the samples (memory S x B x T).
    """
    if isinstance(population_theta, PopulationFit):
        sigma = population_theta.sigma if sigma is None else sigma
        population_theta = population_theta.theta_full()
    sigma = 0.15 if sigma is None else float(sigma)
    names = [param_spec(n).name for n in fit_names]
    n, bsz = len(names), inputs.batch_size
    dtype = inputs.blood_dose_q_gy.dtype
    base = (torch.zeros(N_PARAMS, dtype=dtype) if population_theta is None
            else torch.as_tensor(population_theta, dtype=dtype).reshape(N_PARAMS))
    idx = [PARAM_NAMES.index(x) for x in names]
    mean = base[idx].expand(bsz, n)
    om = _prior_sd_vec(omega, n, dtype)
    t_fit = _grid_days(early, None, model)

    def loss(z):  # sum over patients of the negative log posterior
        out = model(inputs, expand_theta(z, names, base), n_days=t_fit)
        nll = -log_likelihood(out.alc, out.days, early, sigma)
        return (nll + 0.5 * (((z - mean) / om) ** 2).sum(1)).sum()

    z = mean.clone().requires_grad_(True)
    _lbfgs(lambda: loss(z), z, max_iter)
    z_hat = z.detach()
    cov = torch.linalg.inv(_batched_hessian(loss, z_hat))
    chol = _safe_cholesky(0.5 * (cov + cov.transpose(1, 2)))

    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(n_samples, bsz, n, generator=gen, dtype=dtype)
    zs = z_hat + torch.einsum("bij,sbj->sbi", chol, eps)  # [S, B, n]
    theta_s = expand_theta(zs.reshape(-1, n), names, base)
    with torch.no_grad():
        rep = inputs.index(torch.arange(bsz).repeat(n_samples))
        alc_s = model(rep, theta_s).alc.reshape(n_samples, bsz, -1)
        if predictive:
            alc_s = alc_s * torch.exp(sigma * torch.randn(alc_s.shape, generator=gen, dtype=dtype))
        theta_map = expand_theta(z_hat, names, base)
        out = model(inputs, theta_map)
        lo, hi = _quantiles0(alc_s, ((1 - level) / 2, (1 + level) / 2))
    return IndividualPrediction(names=names, theta=z_hat, theta_cov=cov, theta_full=theta_map,
                                days=out.days, alc=out.alc, lower=lo, upper=hi, level=level,
                                predictive=predictive, samples=alc_s if keep_samples else None)
