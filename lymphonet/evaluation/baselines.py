"""Baselines the hybrid must beat, as scikit-learn-style estimators.

Tabular classifiers (``fit(X, y) -> self``, ``predict_proba(X)`` ``[N, n_classes]``; pass
scikit-learn's estimator checks):

* :class:`EDICLogistic`: logistic regression on the effective dose to immune cells (EDIC, Jin et
  al.) and its missing indicator (EDIC needs lungs and heart).
* :class:`DVHLogistic` / :class:`DVHGradientBoosting`: dose summaries (mean body / blood / organ
  doses, EDIC) plus the standardised clinical vector, with L2 logistic regression or gradient
  boosting.
* :class:`KimNomogram`: the brain nomogram of Kim et al. (Clin Transl Radiat Oncol 2024;47:100799,
  doi:10.1016/j.ctro.2024.100799): predictors sex, pre-chemoradiation ALC and mean brain dose,
  endpoint severe lymphopenia (ALC < 0.5 x 10^9/L) during chemoradiation. Its published
  coefficients could not be sourced here; it refuses to predict unless coefficients are given.

Trajectory baselines (:mod:`lymphonet.evaluation.mechanistic`, re-exported here):
:class:`MechanisticPopulation` (the kinetics layer with population parameters fitted to the
training fold) and :class:`MechanisticEarlyFit` (each patient refitted to their own early counts),
both with a closed-form log-normal :class:`NadirModel` for grade probabilities.

The evaluation harness gives each of them one fit / predict face on a fold
(:mod:`lymphonet.evaluation.estimators`).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from lymphonet.errors import InputError

#: Sites treated as brain cases (the Kim nomogram applies to them only).
BRAIN_SITES = ("glioblastoma", "whole_brain", "brain")


# ---------------------------------------------------------------------------------------------
# tabular


class _TabularClassifier(ClassifierMixin, BaseEstimator):
    """Shared fit / predict of the tabular baselines (a single training class -> constant)."""

    def _make(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, X, y):
        """Fit on ``X`` ``[N, F]`` (float) and labels ``y`` ``[N]``; returns self."""
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) == 1:
            self.model_ = None
        else:
            self.model_ = self._make().fit(X, y_idx)
        return self

    def predict_proba(self, X):
        """``[N, n_classes]`` class probabilities (columns :attr:`classes_`)."""
        check_is_fitted(self, "classes_")
        X = validate_data(self, X, reset=False)
        if self.model_ is None:
            return np.ones((X.shape[0], 1))
        return self.model_.predict_proba(X)

    def predict(self, X):
        """Most probable class per row."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class EDICLogistic(_TabularClassifier):
    """Standardised features -> L2 logistic regression; meant for EDIC (Gy) [+ missing flag].

    Args:
        C: Inverse L2 strength of scikit-learn's LogisticRegression.

    Attributes:
        model_: The fitted scikit-learn pipeline (None when training had one class).
        classes_: Class labels seen in fit.
    """

    def __init__(self, C: float = 1.0):
        self.C = C

    def _make(self):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=1000))


class DVHLogistic(EDICLogistic):
    """Dose summaries + clinical features -> standardised -> L2 logistic regression (C = 0.1 by
    default: many correlated features, few events)."""

    def __init__(self, C: float = 0.1):
        self.C = C


class DVHGradientBoosting(_TabularClassifier):
    """Dose summaries + clinical features -> shallow gradient-boosted trees (seeded).

    Args:
        n_estimators, max_depth, learning_rate, subsample: As in scikit-learn's
            GradientBoostingClassifier (small, regularised defaults for small cohorts).
        random_state: Seed.
    """

    def __init__(self, n_estimators: int = 100, max_depth: int = 2, learning_rate: float = 0.05,
                 subsample: float = 0.8, random_state: int = 0):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.random_state = random_state

    def _make(self):
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                          learning_rate=self.learning_rate,
                                          subsample=self.subsample, random_state=self.random_state)


#: Hyper-parameter grids searched by :class:`CVTuned` for the DVH baselines.
DVH_LOGISTIC_GRID = {"C": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]}
DVH_BOOSTING_GRID = {"max_depth": [1, 2, 3], "n_estimators": [50, 150],
                     "learning_rate": [0.05, 0.1]}


class CVTuned(_TabularClassifier):
    """A tabular baseline whose hyper-parameters are chosen by stratified K-fold
    cross-validation (log loss) on the training data only, then refitted on all of it: the DVH
    baselines are tuned as fairly as the networks (which early-stop on a validation fold).

    Args:
        estimator: The baseline (e.g. :class:`DVHLogistic`).
        grid: Parameter name -> candidate values.
        n_splits: CV folds (fewer when the rarer class has fewer plans; with < 2 of them the
            estimator's own defaults are used).
        random_state: Seed of the CV split.

    Attributes:
        best_params_: The chosen parameters ({} when not tuned).
    """

    def __init__(self, estimator=None, grid=None, n_splits: int = 5, random_state: int = 0):
        self.estimator = estimator
        self.grid = grid
        self.n_splits = n_splits
        self.random_state = random_state

    def fit(self, X, y):
        """Tune on ``X``, ``y`` and refit the best; returns self."""
        from sklearn.base import clone
        from sklearn.model_selection import GridSearchCV, StratifiedKFold

        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        base = clone(self.estimator if self.estimator is not None else DVHLogistic())
        k = min(self.n_splits, int(np.bincount(y_idx).min())) if len(self.classes_) > 1 else 0
        self.best_params_ = {}
        if len(self.classes_) == 1:
            self.model_ = None
            return self
        if k >= 2 and self.grid:
            cv = StratifiedKFold(k, shuffle=True, random_state=self.random_state)
            search = GridSearchCV(base, self.grid, scoring="neg_log_loss", cv=cv,
                                  error_score=np.nan).fit(X, y_idx)
            self.best_params_ = dict(search.best_params_)
            base = search.best_estimator_
        else:
            base = base.fit(X, y_idx)
        self.model_ = base
        return self


#: Citation of the Kim et al. nomogram.
KIM_REFERENCE = ("Kim N, Lee J, Shin H, et al. Nomogram for radiation-induced lymphopenia in "
                 "patients receiving intensity-modulated radiotherapy based-chemoradiation "
                 "therapy for newly diagnosed glioblastoma: a multi-institutional study. Clin "
                 "Transl Radiat Oncol 2024;47:100799. doi:10.1016/j.ctro.2024.100799")
#: Published coefficients (log-odds) of the nomogram: NOT AVAILABLE to lymphonet. The abstract
#: names the predictors (sex, pre-CCRT ALC, brain mean dose; AUC 0.723, 21% severe lymphopenia in
#: 348 patients) but the point scale / regression coefficients could not be sourced with
#: confidence, and lymphonet does not invent them.
KIM_PUBLISHED_COEFFICIENTS: dict[str, float] | None = None
#: Keys a user-supplied coefficient dict must have (log-odds per unit of the X columns).
KIM_TERMS = ("intercept", "female", "baseline_alc", "brain_mean_dose_gy")


class KimNomogram(ClassifierMixin, BaseEstimator):
    """Kim et al. 2024 brain nomogram as a logistic model on ``[female, baseline_alc, mean brain
    dose]``: P(grade >= 3) = sigmoid(intercept + sum coef x).

    The published coefficients are unavailable (:data:`KIM_PUBLISHED_COEFFICIENTS` is None), so
    by default :meth:`predict_proba` raises an InputError rather than inventing numbers. A user
    who has the paper's coefficients passes them as ``coefficients`` (keys :data:`KIM_TERMS`).
    The nomogram is published, not fitted: :meth:`fit` only checks inputs.

    Args:
        coefficients: Log-odds coefficients (keys :data:`KIM_TERMS`) or None for the published
            ones.

    Attributes:
        coef_: ``[3]`` coefficients of female (0/1), baseline ALC (10^9/L), mean brain dose (Gy);
            intercept_: float. Set by fit when coefficients are available.
    """

    def __init__(self, coefficients: dict[str, float] | None = None):
        self.coefficients = coefficients

    @property
    def available(self) -> bool:
        """Whether coefficients exist (given, or published ones known to lymphonet)."""
        return (self.coefficients or KIM_PUBLISHED_COEFFICIENTS) is not None

    def _coefficients(self) -> dict[str, float]:
        coefs = self.coefficients or KIM_PUBLISHED_COEFFICIENTS
        if coefs is None:
            raise InputError("the Kim et al. 2024 nomogram coefficients are not available to "
                             "lymphonet (only its predictors are published in the abstract); "
                             f"pass coefficients with keys {list(KIM_TERMS)} from the paper "
                             f"({KIM_REFERENCE})",
                             field="coefficients")
        missing = [k for k in KIM_TERMS if k not in coefs]
        if missing:
            raise InputError(f"Kim nomogram coefficients miss {missing}", field="coefficients")
        return {k: float(coefs[k]) for k in KIM_TERMS}

    def fit(self, X, y=None):
        """Check X ``[N, 3]`` and set the (published or given) coefficients; returns self."""
        coefs = self._coefficients()
        validate_data(self, X, reset=True)
        if self.n_features_in_ != 3:
            raise InputError(f"Kim nomogram needs 3 columns (female, baseline_alc, "
                             f"brain_mean_dose_gy), got {self.n_features_in_}", field="X")
        self.classes_ = np.array([0, 1])
        self.coef_ = np.array([coefs[k] for k in KIM_TERMS[1:]])
        self.intercept_ = coefs["intercept"]
        return self

    def predict_proba(self, X):
        """``[N, 2]``: P(no severe lymphopenia), P(grade >= 3)."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False)
        p = 1.0 / (1.0 + np.exp(-(self.intercept_ + X @ self.coef_)))
        return np.stack([1 - p, p], 1)

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


# ---------------------------------------------------------------------------------------------
# feature matrices from a dataset table


def tabular_features(table: dict, plans, dose_summary_names) -> dict[str, np.ndarray]:
    """Design matrices of the tabular baselines for N plans.

    Args:
        table: Batch-contract arrays of the plans (``dose_summary`` ``[N, S]``, ``clinical``
            ``[N, F]``, ``baseline_alc`` ``[N]``).
        plans: The N :class:`~lymphonet.schema.PlanRecord` (sex and site).
        dose_summary_names: Column names of ``dose_summary``.

    Returns:
        ``edic`` ``[N, 2]`` (EDIC Gy, missing flag), ``dvh`` ``[N, S + F]``, ``kim`` ``[N, 3]``
        (female, baseline ALC 10^9/L, mean brain dose Gy; NaN rows for non-brain plans).
    """
    ds = np.asarray(table["dose_summary"], float)
    col = {n: i for i, n in enumerate(dose_summary_names)}
    edic = ds[:, [col["edic_gy"], col["edic_missing"]]]
    dvh = np.concatenate([ds, np.asarray(table["clinical"], float)], 1)
    brain = np.array([(p.site or "").lower() in BRAIN_SITES for p in plans])
    kim = np.stack([np.array([p.sex == "F" for p in plans], float),
                    np.asarray(table["baseline_alc"], float), ds[:, col["mean_brain_gy"]]], 1)
    kim[~brain] = np.nan
    return {"edic": edic, "dvh": dvh, "kim": kim}
