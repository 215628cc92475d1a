"""Protracted delivery: the continuous LQ hazard with repair and its use in the kinetics layer."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from lymphonet.errors import InputError
from lymphonet.kinetics import KineticParams, KineticsInputs, LymphocyteKinetics, lea_catcheside_g
from lymphonet.kinetics.dose_rate import (
    biexponential_rate_gy_h,
    generalised_lea_catcheside,
    log_kill,
    on_step_grid,
    quadratic_increments,
)
from lymphonet.organs import LYMPHOID_ORGANS

N_SITES = len(LYMPHOID_ORGANS)  # resident sites (lymphoid organs, bowel, body)

F64 = torch.float64
MU = math.log(2) / 0.5  # 0.5 h repair half-time


def test_constant_rate_gives_the_closed_form_lea_catcheside_factor():
    for hours in (0.01, 0.5, 3.0, 48.0):
        rate = torch.full((int(hours / 0.01),), 2.0 / hours, dtype=F64)
        g = generalised_lea_catcheside(rate, 0.01, MU)
        closed = lea_catcheside_g(torch.tensor(MU * hours, dtype=F64))
        assert float(g) == pytest.approx(float(closed), rel=1e-9)


def test_biexponential_curve_matches_a_brute_force_double_integral():
    """G = 2/D^2 int int_{u<s} R(s) R(u) exp(-mu (s-u)): a 2-D midpoint sum written here."""
    dt = 0.25
    t = torch.arange(0, 24 * 10, dt, dtype=F64)
    rate = biexponential_rate_gy_h(t + dt / 2, 0.1, 2.0, 60.0)
    mid = (t + dt / 2).numpy()
    r = rate.numpy()
    fine = 8  # refine each step for the brute-force reference
    s = (np.arange(len(mid) * fine) + 0.5) * dt / fine
    rs = np.repeat(r, fine)
    diff = s[:, None] - s[None, :]
    kernel = np.where(diff > 0, np.exp(-MU * np.clip(diff, 0, None)), 0.0)
    h, x = dt / fine, MU * dt / fine
    within = float((rs ** 2).sum()) * h ** 2 * (x - 1 + math.exp(-x)) / x ** 2  # same cell
    q_ref = float(rs @ kernel @ rs) * h ** 2 + within
    dose = float(rate.sum()) * dt
    assert float(quadratic_increments(rate, dt, MU).sum()) == pytest.approx(q_ref, rel=2e-3)
    g = float(generalised_lea_catcheside(rate, dt, MU))
    assert g == pytest.approx(2 * q_ref / dose ** 2, rel=2e-3)
    assert 0 < g < 0.05  # days-long delivery against a 30 min repair: almost no quadratic term
    assert float(biexponential_rate_gy_h(torch.tensor([0.0]), 0.1, 2.0, 60.0)) == 0.0
    peak_t = math.log((math.log(2) / 2) / (math.log(2) / 60)) / (math.log(2) / 2 - math.log(2) / 60)
    assert float(biexponential_rate_gy_h(torch.tensor([peak_t]), 0.1, 2.0, 60.0)) == \
        pytest.approx(0.1)


def test_log_kill_is_differentiable_and_steps_tile_the_kinetics_grid():
    rate = (torch.rand(2, 12, dtype=F64) + 0.1).requires_grad_()
    alpha = torch.tensor([0.3, 0.5], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda r, a: log_kill(r, 0.5, a, 0.03, MU), (rate, alpha))
    grid = on_step_grid(torch.ones(1, 30), 1.0, 4, 2)  # 6 h steps of six 1 h intervals
    assert grid.tolist() == [[6.0, 6.0]]
    with pytest.raises(InputError, match="divide"):
        on_step_grid(torch.ones(1, 30), 5.0, 4, 2)


def test_a_short_rate_pulse_equals_a_fraction_with_the_same_beam_on_time():
    """2 Gy to all blood over 30 min, as a rate curve, = one fraction of 2 Gy with 1800 s beam-on."""
    params = KineticParams.population(F64, blood_share=0.3)
    model = LymphocyteKinetics(n_days=40)
    fraction = KineticsInputs.single(1, torch.full((8,), 2.0, dtype=F64), 2.0,
                                     fraction_days=[3.0], beam_on_s=1800.0)
    step_h = 0.25
    rate = torch.zeros(1, int(40 * 24 / step_h), dtype=F64)
    start = int(3 * 24 / step_h)
    rate[0, start:start + 2] = 2.0 / 0.5
    none = KineticsInputs.single(1, torch.zeros(8, dtype=F64), 2.0, fraction_days=[3.0])
    protracted = replace(none, dose_rate_blood_gy_h=rate,
                         dose_rate_step_h=torch.tensor([step_h], dtype=F64))
    a, b = model(fraction, params).alc, model(protracted, params).alc
    assert float(a.min()) < 0.95 * float(a[0, 0])  # the dose matters
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_organ_rates_deplete_the_resident_pool_and_a_missing_step_is_refused():
    params = KineticParams.population(F64)
    model = LymphocyteKinetics(n_days=60)
    base = KineticsInputs.single(1, torch.zeros(8, dtype=F64), 2.0, fraction_days=[0.0])
    t = torch.arange(0, 60 * 24, 1.0, dtype=F64)
    rate = biexponential_rate_gy_h(t + 0.5, 0.05, 2.0, 70.0)  # ~ 6 Gy over days
    organs = rate[None, :, None].expand(1, -1, N_SITES).clone()
    treated = replace(base, dose_rate_organs_gy_h=organs,
                      dose_rate_step_h=torch.tensor([1.0], dtype=F64))
    out0, out1 = model(base, params).alc, model(treated, params).alc
    assert float(out1.min()) < float(out0.min()) - 0.05
    with pytest.raises(InputError, match="dose_rate_step_h"):
        replace(base, dose_rate_organs_gy_h=organs).validate()
