"""The simulated truth has an effect only the dose image carries (issue 15, item 2).

The reactive-nodes effect (:mod:`lymphonet.twin.dose_effects`) depends on the dose to a patient's
cluster of enlarged nodes, whose place beside the target varies by patient. A model that sees
only the DVH summaries of the canonical organs and the clinical features (the design matrix of
the DVH baselines) must not be able to predict it: cross-validated R^2 below 0.5. The same
models predict the vertebral-marrow driver, which the site and the organ doses pin down, almost
perfectly: the check can fail.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lymphonet.data.batch import dose_summary
from lymphonet.twin.cohort import simulate_cohort
from lymphonet.twin.dose_effects import DoseEffects

SITES = ("esophagus", "lung", "pancreas", "liver")


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(96, SITES, ("photon", "proton"), seed=11, spacing_mm=8.0,
                           particles=500, write_volumes=False, progress=False)


def _design(summary) -> np.ndarray:
    """DVH summaries + clinical features + site / modality / schedule, as a DVH model sees."""
    rows = []
    for r in summary.records:
        c = r.clinical
        rows.append(np.concatenate([
            dose_summary(r.features),
            [c.age, c.bmi, c.sex == "M", c.baseline_alc, r.n_fractions, r.dose_per_fraction_gy,
             r.chemo == "concurrent", r.modality == "proton"],
            [c.site == s for s in SITES]]).astype(float))
    return np.stack(rows)


def _cv_r2(x: np.ndarray, y: np.ndarray) -> float:
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    pred = cross_val_predict(model, x, y, cv=KFold(5, shuffle=True, random_state=0))
    return float(1.0 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def test_reactive_nodes_effect_is_invisible_to_a_dvh_model(cohort):
    t = cohort.truth
    ref = DoseEffects().reactive_reference_gy
    effect = np.minimum(t["reactive_nodes_mean_gy"].to_numpy() / ref, 1.5)
    assert effect.std() > 0.1, "the effect must vary between patients"
    assert (effect > 0.3).mean() > 0.15 and (effect < 0.05).mean() > 0.15
    x = _design(cohort)
    assert _cv_r2(x, effect) < 0.5
    # the same design predicts a driver the site and organ doses pin down
    assert _cv_r2(x, t["vertebral_marrow_v30"].to_numpy()) > 0.8


def test_reactive_nodes_move_the_true_theta(cohort):
    t = cohort.truth
    hot = t["reactive_nodes_mean_gy"] > 20.0
    cold = t["reactive_nodes_mean_gy"] < 1.0
    assert hot.sum() >= 5 and cold.sum() >= 5
    assert t.loc[hot, "theta_dose_alpha_per_gy"].mean() > t.loc[cold, "theta_dose_alpha_per_gy"].mean() + 0.4
