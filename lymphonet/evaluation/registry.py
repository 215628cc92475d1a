"""Every built-in model by name: :data:`ESTIMATORS`, :data:`MODEL_NAMES` (report order) and
:func:`make_estimator`."""

from __future__ import annotations

from lymphonet.errors import InputError
from lymphonet.evaluation.estimators import (
    CNNOnlyEstimator,
    DVHGradientBoostingEstimator,
    DVHLogisticEstimator,
    EDICLogisticEstimator,
    Estimator,
    HybridEstimator,
    KimNomogramEstimator,
    MechanisticEarlyFitEstimator,
    MechanisticPopulationEstimator,
    PretrainedNetwork,
)
from lymphonet.evaluation.reference_models import (
    HybridNoClinicalEstimator,
    HybridNoCNNEstimator,
    MechanisticPriorEstimator,
    OracleEstimator,
)

#: Models in report order: the hybrid and its ablations, the ceiling (``oracle``, simulated
#: cohorts only) and the floor (``mechanistic_prior``), then the baselines (``kim_nomogram``
#: only with coefficients, see baselines).
MODEL_NAMES = ("hybrid", "hybrid_no_cnn", "hybrid_no_clinical", "cnn_only", "oracle",
               "mechanistic_prior", "mechanistic_population", "mechanistic_early_fit",
               "edic_logistic", "dvh_logistic", "dvh_gradient_boosting", "kim_nomogram")

#: Model name -> estimator class (:func:`make_estimator` configures them).
ESTIMATORS: dict[str, type] = {
    "hybrid": HybridEstimator, "hybrid_no_cnn": HybridNoCNNEstimator,
    "hybrid_no_clinical": HybridNoClinicalEstimator, "cnn_only": CNNOnlyEstimator,
    "oracle": OracleEstimator, "mechanistic_prior": MechanisticPriorEstimator,
    "mechanistic_population": MechanisticPopulationEstimator,
    "mechanistic_early_fit": MechanisticEarlyFitEstimator,
    "edic_logistic": EDICLogisticEstimator, "dvh_logistic": DVHLogisticEstimator,
    "dvh_gradient_boosting": DVHGradientBoostingEstimator, "kim_nomogram": KimNomogramEstimator}


def make_estimator(name: str, *, early_days: float = 14.0,
                   kim_coefficients: dict[str, float] | None = None,
                   pretrained: PretrainedNetwork | None = None) -> Estimator:
    """The estimator registered as ``name`` (one of :data:`MODEL_NAMES`), configured.

    Args:
        name: Model name.
        early_days: Last lab day of the early-fit mechanistic model.
        kim_coefficients: Coefficients of the Kim nomogram (None: refused, not invented).
        pretrained: The hybrid to use as is on its own test fold.
    """
    if name not in ESTIMATORS:
        raise InputError(f"unknown models {[name]}; known {list(MODEL_NAMES)}", field="models")
    settings = {"hybrid": {"pretrained": pretrained},
                "mechanistic_early_fit": {"early_days": early_days},
                "kim_nomogram": {"coefficients": kim_coefficients}}
    return ESTIMATORS[name](**settings.get(name, {}))
