"""Calibration tests: parameter recovery on a simulated cohort and interval coverage."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from lymphonet.errors import InputError
from lymphonet.kinetics import (
    PARAM_NAMES,
    KineticsInputs,
    LymphocyteKinetics,
    blood_quantiles_from_exposure,
    concat_inputs,
    expand_theta,
    interpolate_days,
    param_spec,
    theta_to_tensor,
)
from lymphonet.kinetics.calibrate import (
    Observations,
    fit_population,
    log_likelihood,
    predict_individual,
)
from lymphonet.organs import LYMPHOID_ORGANS

N_SITES = len(LYMPHOID_ORGANS)  # resident sites (lymphoid organs, bowel, body)

F64 = torch.float64
SIGMA = 0.1


def make_cohort(n: int, seed: int) -> KineticsInputs:
    """Varied schedules, blood exposure, nodal/marrow dose and chemotherapy."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        nfx = int(rng.choice([5, 15, 25, 30, 35]))
        dose = rng.uniform(0.2, 3.0) * math.sqrt(30 / nfx)
        lym = torch.zeros(N_SITES, 16, dtype=F64)
        lym[1] = torch.linspace(0, rng.uniform(0, 2.5), 16)  # lymph nodes
        lym[2] = torch.linspace(0, rng.uniform(0, 1.5), 16)  # bone marrow
        x = KineticsInputs.single(
            nfx, blood_quantiles_from_exposure(rng.uniform(0.05, 0.5), dose, 16),
            float(rng.uniform(1.0, 3.0)), lymphoid_dose_q_gy=lym, chemo=int(rng.integers(0, 3)))
        x.lymphoid_coverage = torch.tensor(
            [[1.0, rng.uniform(0.05, 0.3), rng.uniform(0.1, 0.4), 1.0] + [0.0] * (N_SITES - 4)], dtype=F64)
        items.append(x)
    return concat_inputs(items)


def simulate_labs(model, inputs, theta, days, seed):
    """Noisy labs (log-normal, SIGMA) at jittered, non-integer days; returns (obs, truth)."""
    out = model(inputs, theta)
    gen = torch.Generator().manual_seed(seed)
    d = torch.as_tensor(days, dtype=F64).expand(inputs.batch_size, -1).clone()
    d = d + 0.9 * torch.rand(d.shape, generator=gen, dtype=F64) * (d > 0)
    truth = interpolate_days(out.alc, out.days, d)
    y = truth * torch.exp(SIGMA * torch.randn(truth.shape, generator=gen, dtype=F64))
    return Observations(d, y, torch.ones_like(d, dtype=torch.bool)), truth


TRUE_THETA = {"alpha_per_gy": 0.5, "blood_share": 1.5, "fast_fraction": -0.5,
              "fast_recovery_days": 0.4, "slow_recovery_days": -0.5, "baseline_loss": 0.5,
              "chemo_rate_per_day": 0.7}


def test_population_fit_recovers_simulation_parameters(tmp_path):
    torch.manual_seed(0)
    # labs every 2 weeks for ~10 months: the true slow recovery time here is ~255 days (theta
    # -0.5 about the calibrated prior of 352 days; 180 days before calibration), which 5 months
    # of labs cannot pin down to 25%
    model = LymphocyteKinetics(n_days=301)
    inputs = make_cohort(120, seed=1)
    theta = torch.zeros(len(PARAM_NAMES), dtype=F64)
    for name, v in TRUE_THETA.items():
        theta[PARAM_NAMES.index(name)] = v
    obs, _ = simulate_labs(model, inputs, theta.expand(120, -1), list(range(0, 300, 14)), seed=2)
    fit = fit_population(model, inputs, obs)

    assert fit.converged
    assert abs(fit.sigma - SIGMA) < 4 * fit.sigma_sd + 1e-3
    for i, name in enumerate(fit.names):
        true = float(theta[PARAM_NAMES.index(name)])
        assert abs(fit.theta[i] - true) < 4 * fit.theta_sd[i], (name, fit.theta[i], true)
        assert fit.ci95_low[i] >= param_spec(name).lower
        assert fit.ci95_high[i] <= param_spec(name).upper
        if fit.status[i] == "identified":
            true_phys = float(theta_to_tensor(theta)[PARAM_NAMES.index(name)])
            assert abs(fit.value[i] - true_phys) < 0.25 * true_phys, name
    status = dict(zip(fit.names, fit.status))
    # fast, sharply sampled effects are pinned down ...
    for name in ("alpha_per_gy", "blood_share", "baseline_loss", "chemo_rate_per_day"):
        assert status[name] == "identified", name
    # ... the sub-hour blood residence time is invisible to daily labs
    assert status["blood_residence_days"] == "not identified"
    assert min(fit.hessian_eigenvalues) < 1.5  # a prior-only direction exists
    assert max(fit.hessian_eigenvalues) > 100

    data = json.loads(fit.to_json(tmp_path / "fit.json"))
    assert data["names"] == fit.names and len(data["covariance_theta"]) == len(fit.names)
    assert json.loads((tmp_path / "fit.json").read_text())["sigma"] == pytest.approx(fit.sigma)


def test_individual_interval_coverage_from_prior():
    model = LymphocyteKinetics(n_days=181)
    n = 50
    inputs = make_cohort(n, seed=3)
    names = ("alpha_per_gy", "blood_share", "fast_recovery_days")
    omega = 0.7
    base = torch.zeros(len(PARAM_NAMES), dtype=F64)
    base[PARAM_NAMES.index("blood_share")] = 1.0  # population value (as from a population fit)
    gen = torch.Generator().manual_seed(5)
    z_true = omega * torch.randn(n, len(names), generator=gen, dtype=F64)
    theta = expand_theta(z_true, names, base)
    early, _ = simulate_labs(model, inputs, theta, [0, 2, 4, 7, 9, 11, 14], seed=6)
    truth = model(inputs, theta).alc

    pred = predict_individual(model, inputs, early, base, fit_names=names, omega=omega,
                              sigma=SIGMA, level=0.9, n_samples=200)
    late = slice(15, 181)
    inside = (truth[:, late] >= pred.lower[:, late]) & (truth[:, late] <= pred.upper[:, late])
    coverage = inside.double().mean().item()
    assert 0.80 <= coverage <= 0.97, coverage
    # individual fit beats the population trajectory on the held-out part
    pop = model(inputs, base.expand(n, -1)).alc
    err_ind = (pred.alc[:, late].log() - truth[:, late].log()).abs().median()
    err_pop = (pop[:, late].log() - truth[:, late].log()).abs().median()
    assert err_ind < 0.7 * err_pop

    # predictive interval vs new noisy labs
    pred_y = predict_individual(model, inputs, early, base, fit_names=names, omega=omega,
                                sigma=SIGMA, level=0.9, n_samples=200, predictive=True)
    held, _ = simulate_labs(model, inputs, theta, list(range(21, 181, 10)), seed=7)
    lo = interpolate_days(pred_y.lower, pred_y.days, held.days)
    hi = interpolate_days(pred_y.upper, pred_y.days, held.days)
    cov_y = ((held.alc >= lo) & (held.alc <= hi)).double().mean().item()
    assert 0.80 <= cov_y <= 0.97, cov_y


def test_observations_from_long_table():
    obs = Observations.from_long(["b", "a", "b", "x", "a"], [7.5, 0.0, 0.0, 1.0, 3.0],
                                 [0.8, 2.0, 1.5, 9.0, 1.1], patients=["a", "b", "c"])
    assert obs.mask.tolist() == [[True, True], [True, True], [False, False]]
    assert obs.days[1].tolist() == [0.0, 7.5] and obs.alc[1].tolist() == [1.5, 0.8]
    assert obs.window(last_day=5).mask.tolist() == [[True, True], [True, False], [False, False]]
    with pytest.raises(InputError) as err:
        Observations.from_long(["a"], [1.0], [-2.0], patients=["a"])
    assert "'a'" in str(err.value) and "alc" in str(err.value)


def test_log_likelihood_matches_closed_form():
    days = torch.arange(5, dtype=F64)
    alc = torch.tensor([[2.0, 1.8, 1.6, 1.4, 1.2]], dtype=F64)
    obs = Observations(torch.tensor([[0.5, 3.0, 9.0]], dtype=F64),
                       torch.tensor([[1.7, 1.5, 5.0]], dtype=F64),
                       torch.tensor([[True, True, False]]))
    ll = log_likelihood(alc, days, obs, 0.2)
    expect = norm.logpdf(np.log([1.7, 1.5]), np.log([1.9, 1.4]), 0.2).sum()
    assert math.isclose(float(ll), expect, rel_tol=1e-12)
