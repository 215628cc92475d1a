"""The rows that let a reader see how much of the gap each model closes, and the ablations.

* :class:`OracleEstimator` (``oracle``, the ceiling): the simulator's true daily ALC itself, with
  the lab-noise nadir model fitted on the training folds; refused (:class:`NotScored`) on a
  cohort without truth.
* :class:`MechanisticPriorEstimator` (``mechanistic_prior``, the floor): the kinetics layer at
  theta = 0 (its shipped literature calibration, nothing fitted to the cohort but the nadir
  noise model). Not to be confused with ``mechanistic_population`` (population parameters
  MAP-fitted on the training folds).
* Ablations of the hybrid, trained exactly like it: ``hybrid_no_cnn`` (``use_cnn = False``: the
  clinical MLP and dose summaries adjust the kinetics) and ``hybrid_no_clinical``
  (``use_clinical = False``: the CNN alone adjusts them). ``cnn_only`` (no kinetics layer) lives
  with the hybrid in :mod:`.estimators`.
"""

from __future__ import annotations

import math
from dataclasses import replace

from lymphonet.evaluation.estimators import (
    FoldData,
    HybridEstimator,
    NotScored,
    _trajectory_predictions,
)
from lymphonet.evaluation.mechanistic import MechanisticPopulation, NadirModel, _obs_nadir
from lymphonet.evaluation.tables import Predictions


class OracleEstimator:
    """The true daily ALC of each held-out plan (the ceiling no model can beat on truth metrics;
    on observed labs it still pays the lab noise)."""

    name = "oracle"
    level = 0.9

    def fit(self, fold: FoldData) -> OracleEstimator:
        if fold.truth is None:
            raise NotScored("the cohort has no simulator truth (truth.csv and "
                            "trajectories.parquet): the oracle needs it")
        _, nadir, _ = fold.truth.rows([p.plan_id for p in fold.fit_plans])
        self.nadir_model_ = NadirModel.fit(nadir, _obs_nadir(fold.fit_table))
        return self

    def predict(self, fold: FoldData) -> Predictions:
        from scipy.special import ndtri

        alc, nadir, _ = fold.truth.rows([p.plan_id for p in fold.test_plans])
        z = float(ndtri(0.5 + self.level / 2)) * self.nadir_model_.sigma
        return Predictions(**self.nadir_model_.grade_probabilities(nadir),
                           days=fold.truth.days.astype(float), alc=alc,
                           lower=alc * math.exp(-z), upper=alc * math.exp(z))


class MechanisticPriorEstimator:
    """The kinetics layer at theta = 0 (the floor): only the nadir noise model and the residual
    sigma of the predictive interval are fitted, on the training + validation folds."""

    name = "mechanistic_prior"

    def fit(self, fold: FoldData) -> MechanisticPriorEstimator:
        self.model_ = MechanisticPopulation(n_days=fold.config.model.n_days, fit_names=())
        self.model_.fit(fold.fit_table)
        return self

    def predict(self, fold: FoldData) -> Predictions:
        return _trajectory_predictions(self.model_, fold.test_table)


class HybridNoCNNEstimator(HybridEstimator):
    """Ablation: the hybrid without the image branch (``use_cnn = False``)."""

    name = "hybrid_no_cnn"

    def __init__(self):
        super().__init__(None)

    def model_config(self, config):
        return replace(config.model, use_cnn=False)


class HybridNoClinicalEstimator(HybridEstimator):
    """Ablation: the hybrid without the clinical branch (``use_clinical = False``: no clinical
    features, no dose summaries; the CNN alone adjusts the kinetics)."""

    name = "hybrid_no_clinical"

    def __init__(self):
        super().__init__(None)

    def model_config(self, config):
        return replace(config.model, use_clinical=False)
