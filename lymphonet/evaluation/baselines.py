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

Trajectory baselines (``fit(dataset) -> self`` on a dataset of batch-contract items; not
tabular, so scikit-learn's checks do not apply):

* :class:`MechanisticPopulation`: the kinetics layer with population parameters fitted to the
  training fold (MAP, :func:`lymphonet.kinetics.calibrate.fit_population`).
* :class:`MechanisticEarlyFit`: the same, with each patient's parameters refitted to their own
  early counts (labs up to ``early_days``; :func:`~lymphonet.kinetics.calibrate.predict_individual`).

Both turn their predicted nadir into grade probabilities with a log-normal nadir model fitted in
closed form on the training fold (the observed nadir, the minimum of sparse labs, sits above the
trajectory minimum: ``log nadir_obs = log nadir_pred + shift + N(0, sigma^2)``), the same form as
the hybrid's :class:`~lymphonet.models.noise.ResidualNoise`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from lymphonet.errors import InputError
from lymphonet.metrics import GRADE3_ALC, GRADE4_ALC, MIN_LABS, lab_mask, observed_nadir

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


# ---------------------------------------------------------------------------------------------
# mechanistic


@dataclass
class NadirModel:
    """Log-normal observed-nadir model: ``log nadir_obs = log nadir_pred + shift + N(0, sigma^2)``.

    Attributes:
        shift: Mean log ratio observed / predicted nadir. sigma: Its sd (floored at 0.05).
    """

    shift: float = 0.0
    sigma: float = 0.3

    @classmethod
    def fit(cls, pred_nadir: np.ndarray, obs_nadir: np.ndarray) -> NadirModel:
        """Closed-form maximum likelihood on plans with both values finite and > 0."""
        ok = np.isfinite(pred_nadir) & np.isfinite(obs_nadir) & (pred_nadir > 0) & (obs_nadir > 0)
        if ok.sum() < 2:
            return cls()
        r = np.log(obs_nadir[ok]) - np.log(pred_nadir[ok])
        return cls(float(r.mean()), max(float(r.std()), 0.05))

    def grade_probabilities(self, pred_nadir: np.ndarray) -> dict[str, np.ndarray]:
        """``{"g3": P(nadir_obs < 0.5), "g4": P(nadir_obs < 0.2)}`` per plan."""
        mu = np.log(np.maximum(pred_nadir, 1e-6)) + self.shift
        return {"g3": ndtr((math.log(GRADE3_ALC) - mu) / self.sigma),
                "g4": ndtr((math.log(GRADE4_ALC) - mu) / self.sigma)}


def dataset_table(dataset, batch_size: int = 64) -> dict:
    """All non-image tensors of a contract dataset, concatenated (``image`` dropped); a dict
    (an already collected table) is returned as is."""
    import torch
    from torch.utils.data import DataLoader

    if isinstance(dataset, dict):
        return dataset
    parts: dict[str, list] = {}
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        for k, v in batch.items():
            if k != "image":
                parts.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in parts.items()}


def _kinetics_and_obs(table: dict, early_days: float | None = None):
    import torch

    from lymphonet.data.batch import kinetics_inputs
    from lymphonet.kinetics.calibrate import Observations

    inputs = kinetics_inputs(table).to(dtype=torch.float64)
    m = torch.as_tensor(lab_mask(table["obs_days"].numpy(), table["obs_alc"].numpy(),
                                 table["obs_mask"].numpy()))
    if early_days is not None:
        m &= table["obs_days"] <= early_days
    alc = torch.where(m, table["obs_alc"].double(), torch.ones((), dtype=torch.float64))
    return inputs, Observations(table["obs_days"].double(), alc, m)


class MechanisticPopulation(BaseEstimator):
    """Kinetics layer with population parameters MAP-fitted on the training fold.

    Args:
        n_days: Prediction horizon (grid days 0..n_days-1).
        fit_names: Population parameters fitted (the rest stay at the literature prior).
        prior_sd: Prior sd of theta (theta = 0 is the literature value).
        max_iter: L-BFGS iterations.
        level: Central probability of the predictive interval.

    Attributes:
        population_: :class:`~lymphonet.kinetics.calibrate.PopulationFit`.
        nadir_model_: :class:`NadirModel` fitted on the training fold.
    """

    def __init__(self, n_days: int = 200, fit_names: tuple[str, ...] = (
            "alpha_per_gy", "blood_share", "fast_fraction", "fast_recovery_days",
            "slow_recovery_days", "baseline_loss", "chemo_rate_per_day"),
            prior_sd: float = 1.0, max_iter: int = 100, level: float = 0.9):
        self.n_days = n_days
        self.fit_names = fit_names
        self.prior_sd = prior_sd
        self.max_iter = max_iter
        self.level = level

    def _kinetics(self):
        from lymphonet.kinetics import LymphocyteKinetics

        return LymphocyteKinetics(self.n_days)

    def fit(self, dataset, y=None):
        """Fit on a dataset of contract items (its observed labs); returns self."""
        from lymphonet.kinetics.calibrate import fit_population

        table = dataset_table(dataset)
        inputs, obs = _kinetics_and_obs(table)
        self.population_ = fit_population(self._kinetics(), inputs, obs, self.fit_names,
                                          self.prior_sd, max_iter=self.max_iter)
        alc = self._trajectories(inputs)[1]
        self.nadir_model_ = NadirModel.fit(alc.min(1), _obs_nadir(table))
        return self

    def _trajectories(self, inputs):
        import torch

        from lymphonet.kinetics import N_PARAMS

        theta = self.population_.theta_full().expand(inputs.batch_size, N_PARAMS)
        with torch.no_grad():
            out = self._kinetics()(inputs, theta)
        return out.days.numpy(), out.alc.numpy()

    def predict_trajectory(self, dataset) -> dict[str, np.ndarray]:
        """``days`` ``[T]``, ``alc`` / ``lower`` / ``upper`` ``[N, T]`` (10^9/L), ``g3`` / ``g4``
        ``[N]`` probabilities; the interval adds the fitted log-normal lab noise."""
        check_is_fitted(self, "population_")
        from scipy.special import ndtri

        table = dataset_table(dataset)
        inputs, _ = _kinetics_and_obs(table)
        days, alc = self._trajectories(inputs)
        z = float(ndtri(0.5 + self.level / 2)) * self.population_.sigma
        return {"days": days, "alc": alc, "lower": alc * math.exp(-z), "upper": alc * math.exp(z),
                **self.nadir_model_.grade_probabilities(alc.min(1))}

    def predict_proba(self, dataset, grade: int = 4) -> np.ndarray:
        """``[N, 2]``: P(grade < g), P(grade >= g) for g = 3 or 4."""
        p = self.predict_trajectory(dataset)[f"g{grade}"]
        return np.stack([1 - p, p], 1)


class MechanisticEarlyFit(MechanisticPopulation):
    """Population fit as the prior, then each patient refitted to their own early counts.

    Args:
        early_days: Labs up to this day (from the first fraction) are used for the individual
            fit (default 14 = the first two weeks).
        individual_names: Parameters refitted per patient.
        omega: Prior sd of individual deviations (theta space).
        n_samples: Laplace samples for the interval.
        seed: Seed of the samples.
        (other args as :class:`MechanisticPopulation`)

    Attributes:
        population_, nadir_model_: as :class:`MechanisticPopulation` (the nadir model is fitted
            on the training fold's *individual* predictions).
    """

    def __init__(self, early_days: float = 14.0, individual_names: tuple[str, ...] = (
            "alpha_per_gy", "blood_share", "fast_recovery_days"), omega: float = 1.0,
            n_samples: int = 100, seed: int = 0, n_days: int = 200,
            fit_names: tuple[str, ...] = ("alpha_per_gy", "blood_share", "fast_fraction",
                                          "fast_recovery_days", "slow_recovery_days",
                                          "baseline_loss", "chemo_rate_per_day"),
            prior_sd: float = 1.0, max_iter: int = 100, level: float = 0.9):
        super().__init__(n_days, fit_names, prior_sd, max_iter, level)
        self.early_days = early_days
        self.individual_names = individual_names
        self.omega = omega
        self.n_samples = n_samples
        self.seed = seed

    def fit(self, dataset, y=None, population=None):
        """Fit the population prior (or take ``population``, a fitted
        :class:`~lymphonet.kinetics.calibrate.PopulationFit` of the same data) and the nadir
        model on the training fold's individual predictions; returns self."""
        table = dataset_table(dataset)
        if population is None:
            super().fit(table)
        else:
            self.population_ = population
        res = self._individual(table)
        self.nadir_model_ = NadirModel.fit(res.alc.numpy().min(1), _obs_nadir(table))
        return self

    def _individual(self, table):
        from lymphonet.kinetics.calibrate import predict_individual

        inputs, early = _kinetics_and_obs(table, self.early_days)
        return predict_individual(self._kinetics(), inputs, early, self.population_,
                                  self.individual_names, self.omega, level=self.level,
                                  n_samples=self.n_samples, predictive=True,
                                  max_iter=self.max_iter, seed=self.seed)

    def predict_trajectory(self, dataset) -> dict[str, np.ndarray]:
        """As :meth:`MechanisticPopulation.predict_trajectory`, from the individual fits (the
        interval is the Laplace predictive band including lab noise)."""
        check_is_fitted(self, "population_")
        res = self._individual(dataset_table(dataset))
        alc = res.alc.numpy()
        return {"days": res.days.numpy(), "alc": alc, "lower": res.lower.numpy(),
                "upper": res.upper.numpy(), **self.nadir_model_.grade_probabilities(alc.min(1))}


def _obs_nadir(table: dict) -> np.ndarray:
    return observed_nadir(table["obs_days"].numpy(), table["obs_alc"].numpy(),
                          table["obs_mask"].numpy(), MIN_LABS)
