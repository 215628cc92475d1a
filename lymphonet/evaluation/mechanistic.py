"""Trajectory baselines: the mechanistic kinetics model without the network.

Both are ``fit(dataset) -> self`` on a dataset (or :func:`dataset_table`) of batch-contract items;
they are not tabular, so scikit-learn's estimator checks do not apply:

* :class:`MechanisticPopulation`: the kinetics layer with population parameters fitted to the
  training fold (MAP, :func:`lymphonet.kinetics.calibrate.fit_population`).
* :class:`MechanisticEarlyFit`: the same, with each patient's parameters refitted to their own
  early counts (labs up to ``early_days``; :func:`~lymphonet.kinetics.calibrate.predict_individual`).

Both turn their predicted nadir into grade probabilities with a log-normal nadir model
(:class:`NadirModel`) fitted in closed form on the training fold (the observed nadir, the minimum
of sparse labs, sits above the trajectory minimum: ``log nadir_obs = log nadir_pred + shift +
N(0, sigma^2)``), the same form as the hybrid's :class:`~lymphonet.models.noise.ResidualNoise`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from lymphonet.metrics import GRADE3_ALC, GRADE4_ALC, MIN_LABS, lab_mask, observed_nadir


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
        omega: Prior sd of individual deviations (theta space), or ``"cohort"`` (default):
            matched to the training patients by a moment estimate (see :meth:`fit`).
        n_samples: Laplace samples for the interval.
        seed: Seed of the samples.
        (other args as :class:`MechanisticPopulation`)

    Attributes:
        population_, nadir_model_: as :class:`MechanisticPopulation` (the nadir model is fitted
            on the training fold's *individual* predictions).
        omega_: ``[n]`` the individual prior sd in force (theta units).
    """

    def __init__(self, early_days: float = 14.0, individual_names: tuple[str, ...] = (
            "alpha_per_gy", "blood_share", "fast_recovery_days"), omega: float | str = "cohort",
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
        self.omega_ = (self._cohort_omega(table) if self.omega == "cohort"
                       else np.full(len(self.individual_names), float(self.omega)))
        res = self._individual(table)
        self.nadir_model_ = NadirModel.fit(res.alc.numpy().min(1), _obs_nadir(table))
        return self

    def _cohort_omega(self, table) -> np.ndarray:
        """Individual prior sd matched to the training patients: each one's deviations fitted
        to ALL their labs under a wide prior (sd 2), then the between-patient variance is the
        variance of the estimates minus their mean Laplace variance (a moment estimate; floored
        at 0.05, capped at 2)."""
        from lymphonet.kinetics.calibrate import predict_individual

        inputs, obs = _kinetics_and_obs(table)
        fit = predict_individual(self._kinetics(), inputs, obs, self.population_,
                                 self.individual_names, 2.0, n_samples=2,
                                 max_iter=self.max_iter, seed=self.seed)
        theta = fit.theta.detach().numpy()
        noise = np.diagonal(fit.theta_cov.detach().numpy(), axis1=1, axis2=2).mean(0)
        return np.sqrt(np.clip(theta.var(0) - noise, 0.05 ** 2, 4.0))

    def _individual(self, table):
        from lymphonet.kinetics.calibrate import predict_individual

        inputs, early = _kinetics_and_obs(table, self.early_days)
        return predict_individual(self._kinetics(), inputs, early, self.population_,
                                  self.individual_names, self.omega_.tolist(), level=self.level,
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
