"""Baselines: scikit-learn estimator checks, learned direction, the Kim nomogram's refusal,
the closed-form nadir model, and the mechanistic baselines on synthetic contract data."""

import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.utils.estimator_checks import parametrize_with_checks

from lymphonet import metrics as M
from lymphonet.data.synthetic import SyntheticCohort
from lymphonet.errors import InputError
from lymphonet.evaluation.baselines import (
    KIM_REFERENCE,
    CVTuned,
    DVHGradientBoosting,
    DVHLogistic,
    EDICLogistic,
    KimNomogram,
)
from lymphonet.evaluation.mechanistic import (
    MechanisticEarlyFit,
    MechanisticPopulation,
    NadirModel,
    dataset_table,
)


# DVHLogistic is EDICLogistic with another default C (same code path), so it is not rechecked
@parametrize_with_checks([EDICLogistic(), DVHGradientBoosting(n_estimators=10),
                          CVTuned(EDICLogistic(), {"C": [0.1, 1.0]}, n_splits=3)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_dvh_logistic_is_a_clonable_estimator():
    from sklearn.base import clone

    est = clone(DVHLogistic(C=0.3))
    assert est.get_params() == {"C": 0.3} and DVHLogistic().C == 0.1


def test_edic_logistic_learns_the_dose_response():
    rng = np.random.default_rng(0)
    edic = rng.uniform(0, 8, 300)
    y = (rng.random(300) < 1 / (1 + np.exp(-(edic - 4)))).astype(int)
    X = np.stack([edic, np.zeros(300)], 1)
    p = EDICLogistic().fit(X, y).predict_proba(np.array([[1.0, 0], [4.0, 0], [7.0, 0]]))[:, 1]
    assert p[0] < 0.2 < p[1] < 0.8 < p[2]


def test_gradient_boosting_is_seeded():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(80, 5)), rng.integers(0, 2, 80)
    a = DVHGradientBoosting(random_state=3).fit(X, y).predict_proba(X)
    b = DVHGradientBoosting(random_state=3).fit(X, y).predict_proba(X)
    assert np.array_equal(a, b)


def test_single_training_class_gives_constant_prediction():
    est = DVHLogistic().fit(np.random.default_rng(0).normal(size=(10, 3)), np.ones(10, int))
    assert est.predict_proba(np.zeros((4, 3))).tolist() == [[1.0]] * 4
    assert est.predict(np.zeros((2, 3))).tolist() == [1, 1]


def test_kim_nomogram_refuses_without_published_coefficients():
    X = np.array([[1.0, 1.5, 20.0]])
    nomo = KimNomogram()
    assert not nomo.available
    with pytest.raises(InputError, match="not available") as err:
        nomo.fit(X)
    assert err.value.field == "coefficients" and "10.1016/j.ctro.2024.100799" in KIM_REFERENCE
    coefs = {"intercept": -1.0, "female": 0.5, "baseline_alc": -0.8, "brain_mean_dose_gy": 0.05}
    p = KimNomogram(coefs).fit(X).predict_proba(X)[0, 1]
    assert p == pytest.approx(1 / (1 + math.exp(-(-1.0 + 0.5 - 0.8 * 1.5 + 0.05 * 20))))
    with pytest.raises(InputError, match="miss"):
        KimNomogram({"intercept": 0.0}).fit(X)


def test_nadir_model_closed_form():
    rng = np.random.default_rng(2)
    pred = rng.uniform(0.2, 1.5, 5000)
    obs = pred * np.exp(0.1 + 0.25 * rng.normal(size=5000))
    nm = NadirModel.fit(pred, obs)
    assert nm.shift == pytest.approx(0.1, abs=0.01) and nm.sigma == pytest.approx(0.25, abs=0.01)
    probs = nm.grade_probabilities(np.array([0.4]))
    expect = norm.cdf((math.log(0.5) - math.log(0.4) - nm.shift) / nm.sigma)
    assert probs["g3"][0] == pytest.approx(expect) and probs["g4"][0] < probs["g3"][0]


@pytest.fixture(scope="module")
def synthetic():
    return SyntheticCohort(24, image_size=8, n_days=60, seed=5, max_labs=10)


def test_mechanistic_baselines_on_synthetic_contract_data(synthetic):
    table = dataset_table(synthetic)
    pop = MechanisticPopulation(n_days=60, max_iter=40).fit(table)
    p_pop = pop.predict_trajectory(table)
    assert p_pop["alc"].shape == (24, 60) and np.all(p_pop["lower"] <= p_pop["alc"])
    assert np.all((p_pop["g4"] >= 0) & (p_pop["g4"] <= p_pop["g3"]) & (p_pop["g3"] <= 1))
    assert pop.predict_proba(table, grade=3).shape == (24, 2)
    early = MechanisticEarlyFit(early_days=20.0, n_days=60, max_iter=40, n_samples=30).fit(
        table, population=pop.population_)
    p_early = early.predict_trajectory(table)
    days, alc, mask = (table[k].numpy() for k in ("obs_days", "obs_alc", "obs_mask"))
    early_mask = mask & (days <= 20.0)

    def rmse(p):
        stats = M.trajectory_stats(p["days"], p["alc"], days, alc, early_mask, np.zeros(24))
        return M.trajectory_metrics(stats)["log_alc_rmse_all"]

    # refitting each patient to their early labs must describe those labs better
    assert rmse(p_early) < rmse(p_pop)


def test_cv_tuned_baseline_picks_by_cross_validation_on_training_data_only():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    y = (x[:, 0] + 0.2 * rng.normal(size=300) > 0).astype(int)  # strong, clean signal
    tuned = CVTuned(EDICLogistic(), {"C": [1e-4, 10.0]}, n_splits=5).fit(x, y)
    assert tuned.best_params_ == {"C": 10.0}  # a near-zero C would underfit a clean signal
    noisy = (rng.random(300) < 0.5).astype(int)  # no signal: the strongest shrinkage wins
    assert CVTuned(EDICLogistic(), {"C": [1e-4, 10.0]}).fit(x, noisy).best_params_ == {"C": 1e-4}
    rare = np.zeros(300, int)
    rare[0] = 1  # one event: cannot cross-validate, the defaults are used
    assert CVTuned(EDICLogistic(), {"C": [1e-4, 10.0]}).fit(x, rare).best_params_ == {}
