"""The estimator interface: every model name has an estimator with fit / predict, and the harness
loop runs any object with that face (refusals become notes, caveats are reported)."""

from types import SimpleNamespace

import numpy as np
import pytest

from lymphonet.errors import InputError
from lymphonet.evaluation import harness
from lymphonet.evaluation.estimators import Estimator, KimNomogramEstimator, NotScored
from lymphonet.evaluation.registry import ESTIMATORS, MODEL_NAMES, make_estimator
from lymphonet.evaluation.tables import Outcomes, Predictions, score_predictions


def test_every_model_name_maps_to_an_estimator():
    assert set(ESTIMATORS) == set(MODEL_NAMES) and harness.MODEL_NAMES == MODEL_NAMES
    for name in MODEL_NAMES:
        est = make_estimator(name)
        assert est.name == name and isinstance(est, Estimator)
        assert callable(est.fit) and callable(est.predict)


def test_unknown_models_are_refused_before_any_work(tmp_path):
    with pytest.raises(InputError, match="unknown models") as err:
        make_estimator("crystal_ball")
    assert err.value.field == "models"
    with pytest.raises(InputError, match="unknown models"):
        harness.evaluate_models(tmp_path / "missing", models=("hybrid", "crystal_ball"))


def test_kim_estimator_refuses_without_coefficients():
    with pytest.raises(NotScored, match="not available to lymphonet"):
        KimNomogramEstimator().fit(None)


def _fold(k: int, n: int, nadirs) -> SimpleNamespace:
    """A stand-in for FoldData: what the loop itself reads (fold, test_plans, outcomes)."""
    days = np.tile([5.0, 20.0, 40.0], (n, 1))
    alc = np.stack([np.asarray(nadirs, float), np.full(n, 1.0), np.full(n, 1.5)], 1)
    ids = np.array([f"p{k}_{i}" for i in range(n)])
    out = Outcomes(plan_ids=ids, patient_ids=ids, sites=np.full(n, "esophagus"),
                   modalities=np.full(n, "photon"), folds=np.full(n, k), obs_days=days,
                   obs_alc=alc, obs_mask=np.ones((n, 3), bool), end_rt_day=np.zeros(n))
    return SimpleNamespace(fold=k, test_plans=list(ids), outcomes=out)


class Constant:
    """A planted trivial estimator: the same probability for every plan."""

    name = "constant"
    note = "a planted constant"

    def __init__(self):
        self.calls = []

    def fit(self, fold):
        self.calls.append(("fit", fold.fold))
        return self

    def predict(self, fold):
        self.calls.append(("predict", fold.fold))
        n = len(fold.test_plans)
        return Predictions(g3=np.full(n, 0.3), g4=np.full(n, 0.1))


class RefusesOnSecondFold(Constant):
    name = "refuser"

    def predict(self, fold):
        if fold.fold == 1:
            raise NotScored("nothing to say about fold 1")
        return super().predict(fold)


def test_the_harness_loop_runs_any_estimator_face():
    folds = [_fold(0, 4, [0.1, 0.3, 0.6, 0.9]), _fold(1, 3, [0.15, 0.4, 0.8])]
    const, refuser = Constant(), RefusesOnSecondFold()
    outcomes, pooled, notes = harness.run_estimators(folds, [const, refuser])
    assert const.calls == [("fit", 0), ("predict", 0), ("fit", 1), ("predict", 1)]
    assert list(pooled) == ["constant"] and pooled["constant"].g3.shape == (7,)
    assert notes == {"refuser": "nothing to say about fold 1", "constant": "a planted constant"}
    assert list(outcomes.plan_ids) == [f"p0_{i}" for i in range(4)] + [f"p1_{i}" for i in range(3)]
    df = score_predictions(pooled, outcomes, n_boot=10, seed=0, reference="constant")
    overall = df[(df.model == "constant") & (df.subgroup == "all")].set_index("metric")
    assert overall.loc["auroc_g3", "value"] == 0.5  # constant scores: all pairs tied
    assert overall.loc["mean_p_g3", "value"] == pytest.approx(0.3)
    assert {"fold=0", "fold=1"} <= set(df.subgroup)


def test_a_wrong_number_of_predictions_is_an_error():
    class Short(Constant):
        def predict(self, fold):
            return Predictions(g3=np.zeros(1), g4=np.zeros(1))

    with pytest.raises(ValueError, match="predicted 1 plans"):
        harness.run_estimators([_fold(0, 3, [0.1, 0.3, 0.6])], [Short()])
