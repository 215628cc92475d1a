"""Residual noise model: turns a predicted trajectory into calibrated probabilities and intervals.

Observation model (lymphonet's; the usual multiplicative-error model for cell counts)::

    log ALC_obs(t) = log ALC_pred(t) + eps(t),            eps(t) ~ N(0, sigma(t)^2)
    log nadir_obs  = log nadir_pred + b + eta,            eta    ~ N(0, sigma_nadir^2)

``sigma(t)`` is a learned, piecewise-linear function of the day in log space (a few knots evenly
spaced on [0, horizon]; one knot = constant). It absorbs lab noise *and* the model's own error,
which grows after treatment. The nadir term has its own shift ``b`` and spread ``sigma_nadir``:
the observed nadir is the minimum of a few sparse labs, not the true minimum, so it sits above
the predicted one by a learnable amount. Grade probabilities follow in closed form,
``P(nadir < c) = Phi((log c - log nadir_pred - b) / sigma_nadir)`` with the CTCAE v5 cut-offs
c = 0.5 (grade >= 3) and 0.2 (grade 4) x 10^9/L.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lymphonet.metrics import normal_quantile
from lymphonet.schema import CTCAE_CUTOFFS_ALC

#: CTCAE v5 lymphocyte-count-decreased cut-offs (10^9/L): grade >= g when ALC < cut-off.
GRADE_CUTOFFS = CTCAE_CUTOFFS_ALC
_SIGMA_FLOOR = 1e-3


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


class ResidualNoise(nn.Module):
    """Learned log-normal residual noise.

    Args:
        horizon_days: Last day of the prediction grid (knots span [0, horizon]).
        n_knots: Knots of log sigma(t) (1 = constant sigma).
        init_sigma: Initial sigma of log ALC (e.g. 0.3 = about 30% multiplicative error).
        init_sigma_nadir: Initial sigma of log nadir.
    """

    def __init__(self, horizon_days: float, n_knots: int = 4, init_sigma: float = 0.3,
                 init_sigma_nadir: float = 0.3) -> None:
        super().__init__()
        self.horizon_days = float(horizon_days)
        self.log_sigma_knots = nn.Parameter(torch.full((max(1, n_knots),), math.log(init_sigma)))
        self.log_sigma_nadir = nn.Parameter(torch.tensor(math.log(init_sigma_nadir)))
        self.nadir_shift = nn.Parameter(torch.tensor(0.0))

    def sigma(self, t_days: torch.Tensor) -> torch.Tensor:
        """sigma of log ALC at days ``t_days`` (any shape; same shape out, float32)."""
        knots = self.log_sigma_knots.float()
        n = knots.numel()
        if n == 1:
            log_s = knots.expand(t_days.shape)
        else:
            pos = (t_days.float() / self.horizon_days * (n - 1)).clamp(0, n - 1)
            i0 = pos.floor().long().clamp(max=n - 2)
            w = pos - i0.float()
            log_s = knots[i0] * (1 - w) + knots[i0 + 1] * w
        return log_s.exp() + _SIGMA_FLOOR

    @property
    def sigma_nadir(self) -> torch.Tensor:
        """sigma of log nadir (0-d)."""
        return self.log_sigma_nadir.float().exp() + _SIGMA_FLOOR

    def log_likelihood(self, pred_alc: torch.Tensor, obs_alc: torch.Tensor,
                       t_days: torch.Tensor) -> torch.Tensor:
        """Per-observation Gaussian log-density of log ALC (no masking), ``[B, M]``.

        Args:
            pred_alc: ``[B, M]`` predicted ALC at the lab days (10^9/L, > 0).
            obs_alc: ``[B, M]`` observed ALC (10^9/L, > 0 where used).
            t_days: ``[B, M]`` lab days.
        """
        s = self.sigma(t_days)
        z = (obs_alc.float().clamp_min(1e-6).log() - pred_alc.float().clamp_min(1e-6).log()) / s
        return -0.5 * z**2 - s.log() - 0.5 * math.log(2 * math.pi)

    def nadir_log_likelihood(self, pred_nadir: torch.Tensor, obs_nadir: torch.Tensor) -> torch.Tensor:
        """``[B]`` log-density of the observed nadir (log scale) given the predicted one."""
        s = self.sigma_nadir
        mu = pred_nadir.float().clamp_min(1e-6).log() + self.nadir_shift.float()
        z = (obs_nadir.float().clamp_min(1e-6).log() - mu) / s
        return -0.5 * z**2 - s.log() - 0.5 * math.log(2 * math.pi)

    def grade_probabilities(self, pred_nadir: torch.Tensor) -> dict[int, torch.Tensor]:
        """P(grade >= g) for g = 1..4 from the predicted nadir ``[B]`` (10^9/L); each ``[B]``."""
        mu = pred_nadir.float().clamp_min(1e-6).log() + self.nadir_shift.float()
        s = self.sigma_nadir
        return {g: _std_normal_cdf((math.log(c) - mu) / s) for g, c in GRADE_CUTOFFS.items()}

    def interval(self, alc: torch.Tensor, days: torch.Tensor, level: float = 0.9
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pointwise central predictive interval of lab ALC on the grid.

        Args:
            alc: ``[B, T]`` predicted ALC; days: ``[T]``.
            level: Central coverage (e.g. 0.9).

        Returns:
            (lower ``[B, T]``, upper ``[B, T]``) in 10^9/L.
        """
        z = normal_quantile(0.5 + level / 2)
        s = self.sigma(days)[None, :]
        return alc * torch.exp(-z * s), alc * torch.exp(z * s)

    def nadir_interval(self, pred_nadir: torch.Tensor, level: float = 0.9
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Central interval of the (observed) nadir ``[B]`` -> (lower, upper), 10^9/L."""
        z = normal_quantile(0.5 + level / 2)
        mu = pred_nadir.float().clamp_min(1e-6).log() + self.nadir_shift.float()
        s = self.sigma_nadir
        return torch.exp(mu - z * s), torch.exp(mu + z * s)
