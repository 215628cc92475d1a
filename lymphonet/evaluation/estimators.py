"""One face for every model: ``fit(fold) -> self``, ``predict(fold) -> Predictions``.

The harness (:mod:`lymphonet.evaluation.harness`) is a loop over folds and estimators: for each
held-out fold it builds a :class:`FoldData` (what the fold offers: training, validation and
held-out datasets, their tables and plan records, the run config, device, seed), then for every
:class:`Estimator` calls ``fit(fold)`` (on the training folds) and ``predict(fold)`` (the held-out
fold), pools the predictions over folds and scores them. Adding a model is writing an object
with ``name``, ``fit`` and ``predict``; :mod:`.registry` maps model names to the built-in ones
(these, and the oracle, floor and ablations of :mod:`.reference_models`):

* networks (:class:`HybridEstimator`, :class:`CNNOnlyEstimator`), trained on the training folds
  with early stopping on the validation fold through ``train.py``'s one loop
  (:func:`~lymphonet.evaluation.networks.train_network`, seeded ``seed + fold``); a trained
  checkpoint is used as is for its own test fold;
* trajectory baselines (:class:`MechanisticPopulationEstimator`,
  :class:`MechanisticEarlyFitEstimator`), fitted on training + validation folds;
* tabular classifiers (:class:`EDICLogisticEstimator`, :class:`DVHLogisticEstimator`,
  :class:`DVHGradientBoostingEstimator`, :class:`KimNomogramEstimator`), one per endpoint
  (grade >= 3, grade 4), fitted on training + validation folds.

An estimator that cannot be scored raises :class:`NotScored` (its message becomes the report's
note); an estimator may carry a ``note`` attribute, a caveat reported when it is scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from lymphonet import metrics as M
from lymphonet.evaluation.baselines import (
    DVH_BOOSTING_GRID,
    DVH_LOGISTIC_GRID,
    CVTuned,
    DVHGradientBoosting,
    DVHLogistic,
    EDICLogistic,
    KimNomogram,
    tabular_features,
)
from lymphonet.evaluation.mechanistic import MechanisticEarlyFit, MechanisticPopulation
from lymphonet.evaluation.networks import network_predictions, train_network
from lymphonet.evaluation.tables import Outcomes, Predictions, outcomes_of

ENDPOINTS = ("g3", "g4")


@dataclass(frozen=True, eq=False)
class FoldData:
    """What one held-out fold offers the estimators.

    Attributes:
        fold: The held-out fold k; val_fold: the validation fold used with it.
        seed: Seed of everything fitted on this fold (the evaluation seed + k).
        config: The :class:`~lymphonet.training.config.TrainingRunConfig` (model, data, train).
        device: Torch device of the networks.
        train, val, test: :class:`~lymphonet.data.dataset.PlanDataset` of the training folds
            (augmented as configured), the validation fold and the held-out fold, sharing the
            training set's clinical encoder.
        fit: Training + validation folds (what the baselines fit on), not augmented.
        model_inputs: ``n_channels``, ``n_clinical``, ``n_dose_summary`` of the network.
        fit_table, test_table: Non-image batch-contract tensors of ``fit`` and ``test``
            (:func:`~lymphonet.evaluation.mechanistic.dataset_table`).
        shared: Work the estimators of this fold share (the mechanistic population fit, under
            ``"mechanistic_population"``).
        truth: The simulator's truth of the cohort
            (:class:`~lymphonet.evaluation.truth.CohortTruth`), or None.
    """

    fold: int
    val_fold: int
    seed: int
    config: Any
    device: Any
    train: Any
    val: Any
    test: Any
    fit: Any
    model_inputs: dict[str, int]
    fit_table: dict
    test_table: dict
    shared: dict[str, Any] = field(default_factory=dict)
    truth: Any = None

    @property
    def encoder(self):
        """The clinical encoder of every dataset of the fold (fitted on the training folds, or
        the checkpoint's for its own test fold)."""
        return self.train.clinical_encoder

    @property
    def fit_plans(self) -> list:
        """Plan records of the training + validation folds."""
        return self.fit.plans

    @property
    def test_plans(self) -> list:
        """Plan records of the held-out fold."""
        return self.test.plans

    @cached_property
    def outcomes(self) -> Outcomes:
        """What was observed for the held-out plans."""
        return outcomes_of(self.test_table, self.test_plans, self.fold, self.truth)

    @cached_property
    def fit_labels(self) -> dict[str, np.ndarray]:
        """``{"g3", "g4"}`` ``[N_fit]`` observed grade labels of the training + validation plans
        (NaN with too few labs)."""
        t = self.fit_table
        return M.grade_labels(M.observed_nadir(t["obs_days"].numpy(), t["obs_alc"].numpy(),
                                               t["obs_mask"].numpy()))

    @cached_property
    def fit_features(self) -> dict[str, np.ndarray]:
        """Tabular design matrices of the training + validation plans
        (:func:`~lymphonet.evaluation.baselines.tabular_features`)."""
        from lymphonet.data.batch import DOSE_SUMMARY_NAMES

        return tabular_features(self.fit_table, self.fit_plans, DOSE_SUMMARY_NAMES)

    @cached_property
    def test_features(self) -> dict[str, np.ndarray]:
        """Tabular design matrices of the held-out plans."""
        from lymphonet.data.batch import DOSE_SUMMARY_NAMES

        return tabular_features(self.test_table, self.test_plans, DOSE_SUMMARY_NAMES)


@runtime_checkable
class Estimator(Protocol):
    """A model as the harness sees it.

    ``fit(fold)`` learns from the fold's training data (never its held-out labs) and returns
    self; ``predict(fold)`` returns :class:`Predictions` for the ``len(fold.test_plans)``
    held-out plans. Either may raise :class:`NotScored`. Fitting again replaces the previous
    fit (one estimator object serves every fold).
    """

    name: str

    def fit(self, fold: FoldData) -> Estimator: ...

    def predict(self, fold: FoldData) -> Predictions: ...


class NotScored(Exception):
    """The estimator cannot be scored (its message is recorded in the result's notes and the
    model is left out of the table)."""


class PretrainedNetwork(NamedTuple):
    """A trained network to use as is when ``fold`` is held out (a checkpoint's test fold)."""

    fold: int
    model: Any


# ---------------------------------------------------------------------------------------------
# networks


class HybridEstimator:
    """The hybrid network: the pretrained one on its own fold, else trained on the fold."""

    name = "hybrid"

    def __init__(self, pretrained: PretrainedNetwork | None = None):
        self.pretrained = pretrained

    def model_config(self, config):
        """The network's :class:`~lymphonet.models.config.ModelConfig`."""
        return config.model

    def fit(self, fold: FoldData) -> HybridEstimator:
        if self.pretrained is not None and fold.fold == self.pretrained.fold:
            self.model_ = self.pretrained.model.to(fold.device)
        else:
            self.model_ = train_network(self.model_config(fold.config), fold.config, fold.train,
                                        fold.val, fold.model_inputs, fold.device, fold.seed)
        return self

    def predict(self, fold: FoldData) -> Predictions:
        return network_predictions(self.model_, fold.test, fold.device)


class CNNOnlyEstimator(HybridEstimator):
    """The ablation: the same network without the kinetics layer (``use_kinetics = False``),
    always trained on the fold."""

    name = "cnn_only"

    def __init__(self):
        super().__init__(None)

    def model_config(self, config):
        # knots dense in the first weeks, where most nadirs fall (evenly spaced knots ~41 days
        # apart could not resolve them)
        return replace(config.model, use_kinetics=False, knot_spacing="quadratic")


# ---------------------------------------------------------------------------------------------
# trajectory baselines


def _trajectory_predictions(model, table: dict) -> Predictions:
    p = model.predict_trajectory(table)
    return Predictions(g3=p["g3"], g4=p["g4"], days=p["days"].astype(float), alc=p["alc"],
                       lower=p["lower"], upper=p["upper"])


class MechanisticPopulationEstimator:
    """:class:`~lymphonet.evaluation.mechanistic.MechanisticPopulation` on the fold (its
    population fit is shared with the early-fit model of the same fold)."""

    name = "mechanistic_population"

    def fit(self, fold: FoldData) -> MechanisticPopulationEstimator:
        self.model_ = MechanisticPopulation(n_days=fold.config.model.n_days).fit(fold.fit_table)
        fold.shared["mechanistic_population"] = self.model_.population_
        return self

    def predict(self, fold: FoldData) -> Predictions:
        return _trajectory_predictions(self.model_, fold.test_table)


class MechanisticEarlyFitEstimator:
    """:class:`~lymphonet.evaluation.mechanistic.MechanisticEarlyFit`: each held-out patient
    refitted to their labs up to ``early_days`` (the population prior is the fold's shared fit
    when the population model ran first, else fitted here: the same numbers)."""

    name = "mechanistic_early_fit"

    def __init__(self, early_days: float = 14.0):
        self.early_days = early_days

    @property
    def note(self) -> str:
        text = (f"uses each patient's labs up to day {self.early_days:g}: its error on those "
                "days is partly in-sample")
        omega = getattr(getattr(self, "model_", None), "omega_", None)
        if omega is not None:
            text += ("; individual prior sd matched to the training patients (last fold): "
                     + ", ".join(f"{n} {v:.2f}" for n, v in
                                 zip(self.model_.individual_names, omega)))
        return text

    def fit(self, fold: FoldData) -> MechanisticEarlyFitEstimator:
        model = MechanisticEarlyFit(early_days=self.early_days, n_days=fold.config.model.n_days,
                                    seed=fold.seed)
        self.model_ = model.fit(fold.fit_table,
                                population=fold.shared.get("mechanistic_population"))
        return self

    def predict(self, fold: FoldData) -> Predictions:
        return _trajectory_predictions(self.model_, fold.test_table)


# ---------------------------------------------------------------------------------------------
# tabular baselines


class _TabularEstimator:
    """One classifier per endpoint on a tabular design matrix (``features``: a key of
    :func:`~lymphonet.evaluation.baselines.tabular_features`), fitted on the labelled plans."""

    name = ""
    features = ""

    def make(self, seed: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, fold: FoldData) -> _TabularEstimator:
        x, labels = fold.fit_features[self.features], fold.fit_labels
        self.models_ = {}
        for ep in ENDPOINTS:
            ok = np.isfinite(labels[ep])
            self.models_[ep] = self.make(fold.seed).fit(x[ok], labels[ep][ok].astype(int))
        return self

    def predict(self, fold: FoldData) -> Predictions:
        x = fold.test_features[self.features]
        probs = {}
        for ep, est in self.models_.items():
            pr = est.predict_proba(x)
            probs[ep] = (pr[:, list(est.classes_).index(1)] if 1 in est.classes_
                         else np.zeros(len(x)))
        return Predictions(**probs)


class EDICLogisticEstimator(_TabularEstimator):
    """:class:`~lymphonet.evaluation.baselines.EDICLogistic` on EDIC + missing flag."""

    name, features = "edic_logistic", "edic"

    def make(self, seed: int):
        return EDICLogistic()


class DVHLogisticEstimator(_TabularEstimator):
    """:class:`~lymphonet.evaluation.baselines.DVHLogistic` on dose summaries + clinical, its
    L2 strength chosen by cross-validation on the training folds (:class:`CVTuned`)."""

    name, features = "dvh_logistic", "dvh"

    def make(self, seed: int):
        return CVTuned(DVHLogistic(), DVH_LOGISTIC_GRID, random_state=seed)


class DVHGradientBoostingEstimator(_TabularEstimator):
    """:class:`~lymphonet.evaluation.baselines.DVHGradientBoosting`, seeded with the fold seed,
    depth / trees / learning rate chosen by cross-validation on the training folds."""

    name, features = "dvh_gradient_boosting", "dvh"

    def make(self, seed: int):
        return CVTuned(DVHGradientBoosting(random_state=seed), DVH_BOOSTING_GRID,
                       random_state=seed)


#: Why the Kim nomogram is not scored without coefficients.
KIM_NOT_SCORED = ("not scored: the published coefficients of Kim et al. 2024 are not available "
                  "to lymphonet (pass them explicitly to use it)")


class KimNomogramEstimator:
    """:class:`~lymphonet.evaluation.baselines.KimNomogram` (published, not fitted) on the
    held-out brain plans (P(grade >= 3) only; NaN elsewhere). Refuses (:class:`NotScored`)
    without coefficients."""

    name = "kim_nomogram"

    def __init__(self, coefficients: dict[str, float] | None = None):
        self.coefficients = coefficients

    def fit(self, fold: FoldData) -> KimNomogramEstimator:
        self.model_ = KimNomogram(self.coefficients)
        if not self.model_.available:
            raise NotScored(KIM_NOT_SCORED)
        return self

    def predict(self, fold: FoldData) -> Predictions:
        x = fold.test_features["kim"]
        brain = np.isfinite(x).all(1)
        if not brain.any():
            raise NotScored(f"not scored: held-out fold {fold.fold} has no brain plans (the "
                            "nomogram applies to brain cases only)")
        self.model_.fit(x[brain])
        g3 = np.full(len(x), np.nan)
        g3[brain] = self.model_.predict_proba(x[brain])[:, 1]
        return Predictions(g3=g3, g4=np.full(len(x), np.nan))
