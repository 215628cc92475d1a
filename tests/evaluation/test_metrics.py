"""Evaluation metrics: closed forms, scikit-learn agreement, weights = repetition, bootstrap."""

import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score

from lymphonet import metrics as M
from lymphonet.metrics import auroc as training_auroc

RNG = np.random.default_rng(0)


def test_auroc_closed_forms():
    y = np.array([0, 0, 1, 1])
    assert M.auroc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0           # perfect
    assert M.auroc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0           # perfectly wrong
    assert M.auroc(y, [0.1, 0.4, 0.35, 0.8]) == 0.75         # 3 of 4 pairs ordered
    assert M.auroc([0, 1], [0.5, 0.5]) == 0.5                # a tie counts half
    assert math.isnan(M.auroc([1, 1], [0.2, 0.3]))           # one class
    y_r = RNG.integers(0, 2, 4000)
    assert abs(M.auroc(y_r, RNG.random(4000)) - 0.5) < 0.03  # random scores


def test_auroc_matches_training_and_sklearn_with_weights():
    y = RNG.integers(0, 2, 200)
    s = np.round(RNG.random(200), 1)  # many ties
    w = RNG.integers(0, 4, 200).astype(float)
    assert M.auroc(y, s) == pytest.approx(training_auroc(y, s), abs=1e-12)
    assert M.auroc(y, s, w) == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-12)


def test_auprc_matches_sklearn():
    assert M.auprc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(5 / 6)
    y = RNG.integers(0, 2, 300)
    s = np.round(RNG.random(300), 2)
    w = RNG.integers(0, 3, 300).astype(float)
    assert M.auprc(y, s, w) == pytest.approx(
        average_precision_score(y, s, sample_weight=w), abs=1e-12)
    assert M.auprc(np.ones(5), np.arange(5.0)) == 1.0


def test_brier_closed_form():
    assert M.brier([1, 0], [0.8, 0.3]) == pytest.approx((0.04 + 0.09) / 2)
    assert M.brier([1, 0, 1], [1.0, 0.0, 1.0]) == 0.0


def test_calibration_of_calibrated_and_overconfident_probabilities():
    n = 40000
    p = 1 / (1 + np.exp(-RNG.normal(0, 1.5, n)))
    y = (RNG.random(n) < p).astype(float)
    slope, icpt = M.calibration(y, p)
    assert slope == pytest.approx(1.0, abs=0.05) and icpt == pytest.approx(0.0, abs=0.04)
    logit = np.log(p / (1 - p))
    over = 1 / (1 + np.exp(-2 * logit))  # twice too extreme -> slope 1/2
    assert M.calibration(y, over)[0] == pytest.approx(0.5, abs=0.03)
    shifted = 1 / (1 + np.exp(-(logit - 1.0)))  # too low by 1 logit -> intercept +1
    assert M.calibration(y, shifted)[1] == pytest.approx(1.0, abs=0.05)


def test_calibration_slope_matches_unpenalised_logistic_regression():
    p = RNG.random(60) * 0.9 + 0.05
    y = (RNG.random(60) < p).astype(float)
    x = np.log(p / (1 - p))[:, None]
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(x, y)
    assert M.calibration(y, p)[0] == pytest.approx(ref.coef_[0, 0], rel=1e-5)
    # perfect separation has no finite slope
    assert math.isnan(M.calibration([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])[0])


def test_integer_weights_equal_repetition():
    y = RNG.integers(0, 2, 50).astype(float)
    p = RNG.random(50)
    w = RNG.integers(0, 4, 50)
    rep = np.repeat(np.arange(50), w)
    for fn in (M.auroc, M.auprc, M.brier):
        assert fn(y, p, w) == pytest.approx(fn(y[rep], p[rep]), abs=1e-10)
    assert np.allclose(M.calibration(y, p, w), M.calibration(y[rep], p[rep]), atol=1e-6)
    # batched weights give the same values row by row
    w2 = np.stack([w, np.ones(50)])
    assert np.allclose(M.auroc(y, p, w2), [M.auroc(y, p, w), M.auroc(y, p)])


def test_patient_bootstrap_keeps_patients_together_and_is_seeded():
    pids = np.array(["a", "a", "b", "c", "c", "d"])
    w = M.patient_bootstrap_weights(pids, 200, seed=3)
    assert w.shape == (200, 6)
    assert np.array_equal(w[:, 0], w[:, 1]) and np.array_equal(w[:, 3], w[:, 4])
    assert np.allclose(w[:, [0, 2, 3, 5]].sum(1), 4)  # 4 patients drawn per replicate
    assert np.array_equal(w, M.patient_bootstrap_weights(pids, 200, seed=3))
    assert not np.array_equal(w, M.patient_bootstrap_weights(pids, 200, seed=4))


def test_bootstrap_ci_covers_the_point_estimate():
    y = RNG.integers(0, 2, 120)
    s = y + RNG.normal(0, 1.0, 120)
    point = M.auroc(y, s)
    w = M.patient_bootstrap_weights(np.arange(120), 500, seed=0)
    lo, hi = M.percentile_ci(M.auroc(y, s, w))
    assert lo < point < hi and hi - lo < 0.4
    assert (lo, hi) == M.percentile_ci(M.auroc(y, s, M.patient_bootstrap_weights(
        np.arange(120), 500, seed=0)))


def test_trajectory_metrics_closed_forms():
    days = np.arange(100.0)
    alc = np.tile(1.0 + 0.01 * days, (2, 1))
    obs_days = np.array([[5.0, 20.0, 50.0, 99.0], [10.0, 30.0, 80.0, 150.0]])
    truth = 1.0 + 0.01 * obs_days
    mask = np.ones_like(obs_days, bool)
    end_rt = np.array([30.0, 30.0])
    perfect = M.trajectory_metrics(M.trajectory_stats(days, alc, obs_days, truth, mask, end_rt,
                                                      alc * 0.9, alc * 1.1))
    assert perfect["log_alc_rmse_all"] == pytest.approx(0.0, abs=1e-12)
    assert perfect["nadir_mae"] == pytest.approx(0.0, abs=1e-12)
    assert perfect["coverage"] == 1.0
    c = 0.2
    stats = M.trajectory_stats(days, alc, obs_days, truth * math.exp(c), mask, end_rt,
                               alc * 0.9, alc * 1.1)
    res = M.trajectory_metrics(stats)
    assert res["log_alc_rmse_all"] == pytest.approx(c)       # constant log offset
    assert res["log_alc_rmse_during_rt"] == pytest.approx(c)
    assert res["coverage"] == 0.0                             # 22% off, band +-10%
    assert stats["n_labs"][:, -1].tolist() == [4, 3]          # day 150 > horizon 99
    # during RT: days 5, 20, 10, 30 (<= day 30); month 1: 50, 80; month 3: 99
    assert stats["n_labs"][:, :3].sum(0).tolist() == [4, 2, 1]
    # nadir: predicted min at lab days 1.05 / 1.10 vs observed 1.05 e^c / 1.10 e^c
    assert res["nadir_mae"] == pytest.approx(np.mean([1.05, 1.10]) * (math.exp(c) - 1))


def test_window_index_and_grade_labels():
    idx = M.window_index(np.array([[10.0, 40.0, 100.0, 200.0, 400.0, 600.0]]), np.array([35.0]))
    assert idx.tolist() == [[0, 1, 2, 3, 4, -1]]
    lab = M.grade_labels(np.array([0.6, 0.4, 0.1, np.nan]))
    assert lab["g3"][:3].tolist() == [0, 1, 1] and lab["g4"][:3].tolist() == [0, 0, 1]
    assert np.isnan(lab["g3"][3])
