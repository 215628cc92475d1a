"""Sample ALC lab values from true trajectories the way clinics draw them (SIMULATED).

A patient's visits (days from the first fraction, day 0):

* **baseline**: one draw on a day in [-7, 0] (the week before treatment; never missed, it is the
  manifest's ``baseline_alc``);
* **weekly during RT**: days 7, 14, ... up to the last fraction day, each jittered by up to
  +-1 day (the weekly blood count of patients on chemoradiation);
* **follow-up** at about 1, 3, 6 and 12 months after the last fraction (30.4 days per month),
  jittered uniformly by +-7, +-14, +-21 and +-30 days.

Then: each non-baseline visit is missed with probability ``p_missed`` (about 15%); the patient
drops out at an exponential time with hazard ``dropout_per_day`` (default: 20% lost by a year),
after which nothing is drawn; measured values are ``true x exp(sigma z)``, z ~ N(0, 1), with
sigma = sqrt(ln(1 + CV^2)) (log-normal, median = true value, CV 12%: analytic plus biological
day-to-day variation of lymphocyte counts); values are rounded to 0.01 x 10^9/L as a
haematology analyser reports them.

All numbers are lymphonet choices of typical clinical practice, written into the cohort README.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lymphonet.errors import InputError

__all__ = ["LabSchedule", "describe_schedule", "sample_labs", "visit_days"]

DAYS_PER_MONTH = 30.4


@dataclass(frozen=True)
class LabSchedule:
    """How labs are drawn (see the module docstring).

    Attributes:
        baseline_window_days: Inclusive day range of the baseline draw.
        weekly_jitter_days: Max |jitter| of the weekly draws during RT (integer days).
        followup_months: Follow-up visits, months after the last fraction.
        followup_jitter_days: Max |jitter| of each follow-up visit (days).
        p_missed: Probability that a non-baseline visit is missed.
        dropout_per_day: Dropout hazard (1/day), from day 0.
        cv: Coefficient of variation of the multiplicative log-normal noise.
        decimals: Decimals of the reported value (10^9/L).
    """

    baseline_window_days: tuple[int, int] = (-7, 0)
    weekly_jitter_days: int = 1
    followup_months: tuple[float, ...] = (1.0, 3.0, 6.0, 12.0)
    followup_jitter_days: tuple[int, ...] = (7, 14, 21, 30)
    p_missed: float = 0.15
    dropout_per_day: float = -math.log(0.8) / 365.0
    cv: float = 0.12
    decimals: int = 2

    @property
    def sigma_log(self) -> float:
        """Log-scale sd of the noise: sqrt(ln(1 + CV^2))."""
        return math.sqrt(math.log1p(self.cv**2))

    def last_day(self, last_fraction_day: float) -> int:
        """Latest possible visit day for a course ending on ``last_fraction_day``."""
        return math.ceil(last_fraction_day + self.followup_months[-1] * DAYS_PER_MONTH
                             + self.followup_jitter_days[-1])


def visit_days(last_fraction_day: float, rng: np.random.Generator,
               schedule: LabSchedule | None = None) -> tuple[np.ndarray, list[str]]:
    """Planned visit days (integers, sorted) and their labels, before missed visits and dropout.

    Args:
        last_fraction_day: Day of the last fraction (days from the first).
        rng: Random generator (jitter).
        schedule: Visit rules (default :class:`LabSchedule`).

    Returns:
        ``(days [V], labels)``; labels ``baseline``, ``week<k>``, ``month<m>``.
    """
    s = schedule or LabSchedule()
    lo, hi = s.baseline_window_days
    days = [int(rng.integers(lo, hi + 1))]
    labels = ["baseline"]
    n_weeks = int(last_fraction_day // 7)
    if n_weeks:
        jit = rng.integers(-s.weekly_jitter_days, s.weekly_jitter_days + 1, n_weeks)
        days += [int(min(7 * (k + 1) + j, last_fraction_day)) for k, j in enumerate(jit)]
        labels += [f"week{k + 1}" for k in range(n_weeks)]
    for m, jmax in zip(s.followup_months, s.followup_jitter_days):
        j = int(rng.integers(-jmax, jmax + 1))
        days.append(round(last_fraction_day + m * DAYS_PER_MONTH) + j)
        labels.append(f"month{m:g}")
    order = np.argsort(days, kind="stable")
    return np.asarray(days, np.int64)[order], [labels[i] for i in order]


def sample_labs(true_alc: np.ndarray, baseline_alc: float, last_fraction_day: float,
                rng: np.random.Generator, schedule: LabSchedule | None = None,
                n_plans: int = 1) -> dict[str, np.ndarray]:
    """Draw one patient's lab series from true daily trajectories.

    Several plans of one patient (a paired cohort) share the visit days, missed visits, dropout
    and noise draws, so their labs differ only through the plans.

    Args:
        true_alc: ``[P, T]`` (or ``[T]``) true ALC (10^9/L) at days 0..T-1, P = ``n_plans``.
        baseline_alc: True pre-treatment ALC (10^9/L), the value at negative days.
        last_fraction_day: Day of the last fraction.
        rng: Random generator.
        schedule: Visit and noise rules (default :class:`LabSchedule`).
        n_plans: Number of rows of ``true_alc``.

    Returns:
        Dict with ``day`` [V] (int), ``visit`` [V] (str), ``alc_true`` [P, V] and ``alc`` [P, V]
        (reported, rounded, 10^9/L) for the visits kept, plus ``dropout_day`` (float, may lie
        beyond follow-up).

    Raises:
        InputError: the trajectory ends before the last possible visit.
    """
    s = schedule or LabSchedule()
    traj = np.atleast_2d(np.asarray(true_alc, float))
    days, labels = visit_days(last_fraction_day, rng, s)
    dropout_day = float(rng.exponential(1.0 / s.dropout_per_day)) if s.dropout_per_day > 0 \
        else math.inf
    missed = rng.random(len(days)) < s.p_missed
    missed[0] = False
    z = rng.standard_normal(len(days))
    keep = ~missed & ((days <= dropout_day) | (days <= 0))
    if days[-1] >= traj.shape[1]:
        raise InputError(f"trajectory of {traj.shape[1]} days is too short for visit day "
                         f"{days[-1]}", field="true_alc")
    idx = np.clip(days, 0, None)
    true = np.where(days[None, :] <= 0, baseline_alc, traj[:, idx])
    reported = np.round(true * np.exp(s.sigma_log * z)[None, :], s.decimals)
    return {"day": days[keep], "visit": np.asarray(labels, dtype=object)[keep],
            "alc_true": true[:, keep], "alc": reported[:, keep], "dropout_day": dropout_day}


def describe_schedule(schedule: LabSchedule | None = None) -> str:
    """Markdown description of the lab rules (for the cohort README)."""
    s = schedule or LabSchedule()
    p12 = 1.0 - math.exp(-s.dropout_per_day * 365.0)
    follow = ", ".join(f"{m:g} mo (+-{j} d)" for m, j in zip(s.followup_months,
                                                              s.followup_jitter_days))
    return "\n".join([
        (f"- baseline: one draw on a day in [{s.baseline_window_days[0]}, "
        f"{s.baseline_window_days[1]}] (never missed; it is the manifest's `baseline_alc`)"),
        f"- weekly during RT: days 7, 14, ... <= last fraction, jitter +-{s.weekly_jitter_days} d",
        f"- follow-up after the last fraction: {follow} (1 month = {DAYS_PER_MONTH} d)",
        f"- each non-baseline visit missed with probability {s.p_missed:g}",
        (f"- dropout: exponential, hazard {s.dropout_per_day:.3g}/day from day 0 "
        f"({100 * p12:.0f}% lost by one year); no draws after dropout"),
        (f"- noise: reported = true x exp(sigma z), sigma = sqrt(ln(1 + CV^2)) = "
        f"{s.sigma_log:.4f} (CV {s.cv:g}; median = true value)"),
        (f"- rounding: {s.decimals} decimals of 10^9/L; labs of plans of one patient share days, "
        "misses, dropout and noise draws"),
    ])
