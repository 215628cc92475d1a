"""Lab sampling: visit schedule, log-normal noise, missed visits, dropout, rounding, pairing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lymphonet.errors import InputError
from lymphonet.twin.labs import (
    DAYS_PER_MONTH,
    LabSchedule,
    describe_schedule,
    sample_labs,
    visit_days,
)

LAST_FX = 38.0  # 28 fractions Monday-Friday end on day 37; a break moves it later
T_DAYS = 460


def _many(n, schedule, true_level=1.0, n_plans=1, seed=0):
    rng = np.random.default_rng(seed)
    traj = np.full((n_plans, T_DAYS), true_level)
    return [sample_labs(traj, true_level, LAST_FX, rng, schedule, n_plans=n_plans)
            for _ in range(n)]


def test_visit_days_follow_the_clinic_schedule():
    s = LabSchedule()
    rng = np.random.default_rng(1)
    for _ in range(200):
        days, labels = visit_days(LAST_FX, rng, s)
        assert np.all(np.diff(days) > 0), "visits are distinct and sorted"
        by = dict(zip(labels, days))
        assert -7 <= by["baseline"] <= 0 and labels[0] == "baseline"
        weeks = [k for k in labels if k.startswith("week")]
        assert len(weeks) == int(LAST_FX // 7)
        for k in weeks:
            w = int(k[4:])
            assert abs(by[k] - 7 * w) <= 1 and by[k] <= LAST_FX
        for m, j in zip(s.followup_months, s.followup_jitter_days):
            centre = LAST_FX + m * DAYS_PER_MONTH
            assert abs(by[f"month{m:g}"] - centre) <= j + 0.5


def test_noise_is_lognormal_with_the_stated_cv():
    s = LabSchedule(p_missed=0.0, dropout_per_day=0.0, decimals=6)
    draws = _many(400, s, true_level=1.3)
    ratio = np.concatenate([d["alc"][0] / d["alc_true"][0] for d in draws])
    log_r = np.log(ratio)
    # n ~ 400 x 10 visits: standard errors ~0.0013 (mean) and ~0.001 (sd of logs)
    assert abs(np.mean(log_r)) < 0.006, "median of the noise is the true value"
    assert abs(np.std(log_r) - math.sqrt(math.log1p(0.12**2))) < 0.005
    assert abs(np.std(ratio) / np.mean(ratio) - 0.12) < 0.006


def test_missed_visits_at_the_stated_rate_and_baseline_never_missed():
    s = LabSchedule(dropout_per_day=0.0)
    rng = np.random.default_rng(3)
    planned = kept = 0
    for d in _many(500, s):
        assert d["visit"][0] == "baseline"
        planned += len(visit_days(LAST_FX, rng, s)[0]) - 1
        kept += len(d["day"]) - 1
    missed = 1 - kept / planned
    # binomial sd over ~4500 visits ~ 0.005
    assert abs(missed - 0.15) < 0.02


def test_dropout_hazard_and_no_draws_after_dropout():
    s = LabSchedule(p_missed=0.0)
    draws = _many(1000, s)
    for d in draws:
        assert np.all((d["day"] <= d["dropout_day"]) | (d["day"] <= 0))
    lost_by_year = np.mean([d["dropout_day"] < 365 for d in draws])
    assert abs(lost_by_year - 0.2) < 0.04  # 1 - exp(-h 365) = 0.2; sd ~0.013
    has_12m = np.mean(["month12" in d["visit"] for d in draws])
    assert has_12m < 0.85, "late visits are lost to dropout"


def test_values_are_rounded_like_a_lab_report():
    d = _many(50, LabSchedule(), true_level=0.8731)
    vals = np.concatenate([x["alc"].ravel() for x in d])
    assert np.allclose(vals * 100, np.round(vals * 100), atol=1e-9)
    assert len(np.unique(vals)) > 10


def test_paired_plans_share_days_misses_and_noise():
    rng = np.random.default_rng(5)
    traj = np.stack([np.linspace(1.5, 0.5, T_DAYS), np.linspace(1.5, 1.0, T_DAYS)])
    d = sample_labs(traj, 1.5, LAST_FX, rng, LabSchedule(decimals=9), n_plans=2)
    assert d["alc"].shape == (2, len(d["day"]))
    noise = d["alc"] / d["alc_true"]
    assert np.allclose(noise[0], noise[1], rtol=1e-6)
    assert d["alc"][0, 0] == d["alc"][1, 0], "baseline is the same for both plans"
    after = d["day"] > 60
    assert np.all(d["alc_true"][0, after] < d["alc_true"][1, after])


def test_labs_use_the_baseline_before_day_zero_and_the_trajectory_after():
    rng = np.random.default_rng(7)
    traj = np.arange(T_DAYS, dtype=float)[None] / 100 + 0.5  # ALC = 0.5 + day / 100
    d = sample_labs(traj, 9.0, LAST_FX, rng, LabSchedule(p_missed=0, dropout_per_day=0))
    pre = d["day"] <= 0
    assert np.all(d["alc_true"][0, pre] == 9.0), "pre-treatment draws (day <= 0) see the baseline"
    assert np.allclose(d["alc_true"][0, ~pre], 0.5 + d["day"][~pre] / 100)


def test_short_trajectory_is_an_input_error():
    with pytest.raises(InputError, match="too short") as err:
        sample_labs(np.ones((1, 100)), 1.0, LAST_FX, np.random.default_rng(0))
    assert err.value.field == "true_alc"


def test_description_states_the_numbers():
    text = describe_schedule(LabSchedule(p_missed=0.1, cv=0.15))
    assert "0.1" in text and "CV 0.15" in text and "20% lost by one year" in text
