"""Training loss of the hybrid model.

``loss = NLL(log ALC labs) + w_nadir NLL(log observed nadir) + w_grade BCE(grades)
         + w_prior mean(adjustment^2) / 2 prior_sd^2``

* The lab term is the Gaussian negative log-likelihood of each observed log ALC under the noise
  model (:class:`~lymphonet.models.noise.ResidualNoise`), at irregular (masked) days. It is
  averaged *per patient first* and then over patients, so a patient with two labs weighs as much
  as one with twenty and no patient is dropped for having few labs; patients with none
  contribute nothing.
* The nadir and grade terms use the minimum observed lab as the label (the only nadir a clinic
  sees) and need ``min_labs_for_nadir`` labs; the grade term is binary cross-entropy of
  P(grade >= 3) and P(grade 4).
* The prior penalty is the negative log density of a N(0, prior_sd^2) prior on the per-patient
  adjustment in theta space, keeping the hybrid near the population model unless the data say
  otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lymphonet.kinetics import interpolate_days
from lymphonet.models.hybrid import HybridOutput
from lymphonet.models.noise import GRADE_CUTOFFS, ResidualNoise


@dataclass(frozen=True)
class LossConfig:
    """Weights of the loss terms (documented in configs/default.yaml)."""

    nadir_weight: float = 0.5
    grade_weight: float = 0.5
    prior_weight: float = 1.0
    prior_sd: float = 1.0
    min_labs_for_nadir: int = 2


def observed(batch: dict[str, torch.Tensor], horizon_days: float) -> torch.Tensor:
    """``[B, M]`` mask of usable labs: given, positive and within [0, horizon]."""
    return (batch["obs_mask"].bool() & (batch["obs_alc"] > 0) & (batch["obs_days"] >= 0)
            & (batch["obs_days"] <= horizon_days))


def clean_labs(batch: dict[str, torch.Tensor], mask: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(days, ALC) ``[B, M]`` with unused entries replaced by (0, 1), so NaN padding can never
    leak into gradients through ``torch.where``."""
    t = torch.where(mask, batch["obs_days"].float(), 0.0)
    return t, torch.where(mask, batch["obs_alc"].float(), 1.0)


def observed_nadir(batch: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """``[B]`` minimum observed ALC (inf where no lab)."""
    return torch.where(mask, batch["obs_alc"].float(), torch.inf).min(1).values


def per_patient_mean(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over masked entries of each row ``[B, M]`` -> (``[B]`` means, ``[B]`` has-any mask)."""
    n = mask.sum(1)
    mean = torch.where(mask, values, 0.0).sum(1) / n.clamp_min(1)
    return mean, n > 0


def compute_loss(out: HybridOutput, batch: dict[str, torch.Tensor], noise: ResidualNoise,
                 cfg: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss (scalar) and its parts (python floats) for one batch."""
    days = out.days
    mask = observed(batch, float(days[-1]))
    t_obs, obs_alc = clean_labs(batch, mask)
    pred = interpolate_days(out.alc.float(), days, t_obs)
    ll = noise.log_likelihood(pred, obs_alc, t_obs)
    per_pt, has = per_patient_mean(-ll, mask)
    n_has = has.sum().clamp_min(1)
    lab_nll = per_pt[has].sum() / n_has
    loss = lab_nll
    parts = {"lab_nll": float(lab_nll.detach())}

    enough = mask.sum(1) >= cfg.min_labs_for_nadir
    if (cfg.nadir_weight > 0 or cfg.grade_weight > 0) and bool(enough.any()):
        pred_nadir = out.alc.float().min(1).values
        obs_nadir = observed_nadir(batch, mask)
        if cfg.nadir_weight > 0:
            nadir_nll = -noise.nadir_log_likelihood(pred_nadir[enough], obs_nadir[enough]).mean()
            loss = loss + cfg.nadir_weight * nadir_nll
            parts["nadir_nll"] = float(nadir_nll.detach())
        if cfg.grade_weight > 0:
            probs = noise.grade_probabilities(pred_nadir[enough])
            bce = sum(F.binary_cross_entropy(probs[g].clamp(1e-6, 1 - 1e-6),
                                             (obs_nadir[enough] < GRADE_CUTOFFS[g]).float())
                      for g in (3, 4)) / 2
            loss = loss + cfg.grade_weight * bce
            parts["grade_bce"] = float(bce.detach())
    if out.adjustment is not None and cfg.prior_weight > 0:
        prior = 0.5 * (out.adjustment.float() ** 2).sum(1).mean() / cfg.prior_sd**2
        loss = loss + cfg.prior_weight * prior
        parts["prior"] = float(prior.detach())
    # every noise parameter in the graph every step (zero gradient if unused): DDP needs it
    loss = loss + 0.0 * sum(p.sum() for p in noise.parameters())
    parts["loss"] = float(loss.detach())
    return loss, parts
