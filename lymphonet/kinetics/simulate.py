"""The mechanistic model on its own: plan features in, lymphocyte trajectory out.

This is the layer researchers use as a baseline and what ``lymphonet simulate``,
``lymphonet fit-kinetics``, the demo and the digital twin call: batch
:class:`~lymphonet.dosimetry.plan_features.PlanFeatures` into
:class:`~lymphonet.kinetics.schedule.KineticsInputs` and run
:class:`~lymphonet.kinetics.LymphocyteKinetics` with population parameters (``theta = 0``) or with a
fitted parameter file. Plans are read by :func:`lymphonet.io.plan.read_plan`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lymphonet.dosimetry.plan_features import PlanFeatures
from lymphonet.errors import InputError
from lymphonet.kinetics.model import LymphocyteKinetics, nadir
from lymphonet.kinetics.params import PARAM_NAMES, expand_theta
from lymphonet.kinetics.schedule import CHEMO_CODES, KineticsInputs, regimen_code
from lymphonet.schema import CTCAE_CUTOFFS_ALC, ctcae_grade, weekday_fraction_days


def load_theta(path: str | Path | None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Population theta ``[n_params]`` from a parameter file (None: the built-in population prior).

    Accepts the JSON written by ``lymphonet fit-kinetics`` / ``lymphonet calibrate``: an object with
    ``names`` and ``theta`` lists (parameters not listed stay at the prior, theta = 0).
    """
    if path is None:
        return torch.zeros(len(PARAM_NAMES), dtype=dtype)
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        names, theta = data["names"], data["theta"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise InputError(f"not a kinetic-parameter file ({err})", file=path, field="theta") from None
    unknown = sorted(set(names) - set(PARAM_NAMES))
    if unknown or len(names) != len(theta):
        raise InputError(f"unknown parameter names {unknown} or names/theta length mismatch",
                         file=path, field="names")
    return expand_theta(torch.as_tensor(theta, dtype=dtype), list(names))


def inputs_from_features(
    features: list[PlanFeatures],
    baseline_alc: list[float] | np.ndarray,
    *,
    fraction_days: list[np.ndarray | None] | None = None,
    chemo: list[str] | None = None,
    chemo_regimen: list[str | None] | None = None,
    dtype: torch.dtype = torch.float32,
) -> KineticsInputs:
    """Batch plans into :class:`~lymphonet.kinetics.schedule.KineticsInputs`.

    Args:
        features: One :class:`PlanFeatures` per plan (equal Q).
        baseline_alc: ``[B]`` pre-treatment ALC (10^9/L).
        fraction_days: Per plan, the fraction days (None: weekdays from day 0).
        chemo: Per plan ``"none"``/``"concurrent"``/``"sequential"`` (None: no chemo).
        chemo_regimen: Per plan free-text regimen (classed by
            :func:`~lymphonet.kinetics.schedule.regimen_code`); None: unspecified.
        dtype: Floating dtype of the tensors.
    """
    b = len(features)
    if b == 0:
        raise InputError("no plans to batch", field="features")
    days = [weekday_fraction_days(f.n_fractions) if fraction_days is None or fraction_days[i] is None
            else np.asarray(fraction_days[i], float) for i, f in enumerate(features)]
    k = max(len(d) for d in days)
    day_arr = np.zeros((b, k))
    mask = np.zeros((b, k), bool)
    beam_on = np.zeros((b, k))
    for i, (d, f) in enumerate(zip(days, features)):
        day_arr[i, : len(d)] = d
        day_arr[i, len(d):] = d[-1]
        mask[i, : len(d)] = True
        beam_on[i, : len(d)] = f.beam_on_time_s
    codes = [0] * b if chemo is None else [CHEMO_CODES[c or "none"] for c in chemo]
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype)
    return KineticsInputs(
        blood_dose_q_gy=t(np.stack([f.blood_dose_q_gy for f in features])),
        fraction_days=t(day_arr),
        fraction_mask=torch.as_tensor(mask),
        baseline_alc=t(np.asarray(baseline_alc, float)),
        lymphoid_dose_q_gy=t(np.stack([f.lymphoid_dose_q_gy for f in features])),
        lymphoid_coverage=t(np.stack([f.lymphoid_coverage for f in features])),
        beam_on_s=t(beam_on),
        chemo=torch.as_tensor(codes, dtype=torch.long),
        chemo_regimen=None if chemo_regimen is None else torch.as_tensor(
            [regimen_code(r) for r in chemo_regimen], dtype=torch.long),
    )


@dataclass(frozen=True)
class Trajectory:
    """A simulated ALC course: daily values, nadir and grade."""

    days: np.ndarray
    alc: np.ndarray
    nadir_alc: float
    nadir_day: float

    @property
    def nadir_grade(self) -> int:
        return int(ctcae_grade(self.nadir_alc))

    def to_frame(self) -> pd.DataFrame:
        """Columns ``day, alc, grade`` (ALC in 10^9/L, CTCAE v5 grade 0-4)."""
        grade = ctcae_grade(self.alc)
        return pd.DataFrame({"day": self.days, "alc": self.alc, "grade": grade})


def simulate(features: list[PlanFeatures], baseline_alc: Iterable[float], *,
             chemo: list[str] | None = None, fraction_days: list | None = None,
             theta: torch.Tensor | None = None, n_days: int = 365) -> list[Trajectory]:
    """Mechanistic ALC trajectories for a batch of plans (population or given ``theta``).

    Args:
        features: One :class:`PlanFeatures` per plan.
        baseline_alc: Pre-treatment ALC per plan (10^9/L).
        chemo: Per plan ``none``/``concurrent``/``sequential``.
        fraction_days: Per plan fraction days (None: weekdays from day 0).
        theta: ``[n_params]`` or ``[B, n_params]`` parameter adjustments (None: population).
        n_days: Length of the daily grid.
    """
    inputs = inputs_from_features(features, list(baseline_alc), fraction_days=fraction_days,
                             chemo=chemo, dtype=torch.float64)
    inputs.validate()
    b = inputs.batch_size
    th = torch.zeros(len(PARAM_NAMES), dtype=torch.float64) if theta is None else theta.double()
    th = th.expand(b, -1) if th.dim() == 1 else th
    with torch.no_grad():
        out = LymphocyteKinetics(n_days=n_days)(inputs, th)
        low, day = nadir(out.alc, out.days)
    days = out.days.numpy()
    return [Trajectory(days, out.alc[i].numpy(), float(low[i]), float(day[i])) for i in range(b)]


def plot_trajectories(trajectories: dict[str, Trajectory], path: str | Path, *,
                      title: str = "Simulated lymphocyte count",
                      observed: pd.DataFrame | None = None) -> Path:
    """Save ALC-vs-day curves (one per label) with CTCAE grade bands as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    cuts = [CTCAE_CUTOFFS_ALC[g] for g in (1, 2, 3, 4)] + [0.0]
    bands = [(cuts[g - 1], cuts[g], f"G{g}") for g in (1, 2, 3, 4)]
    for hi, lo, label in bands:
        ax.axhspan(lo, hi, color="tab:red", alpha=0.04 + 0.05 * bands.index((hi, lo, label)))
        ax.text(1.0, (hi + lo) / 2, label, transform=ax.get_yaxis_transform(), va="center",
                ha="left", fontsize=8, color="tab:red")
    for label, traj in trajectories.items():
        line, = ax.plot(traj.days, traj.alc, label=f"{label} (nadir {traj.nadir_alc:.2f} "
                                                    f"on day {traj.nadir_day:.0f})")
        ax.plot([traj.nadir_day], [traj.nadir_alc], "o", color=line.get_color())
    if observed is not None and len(observed):
        ax.plot(observed["day"], observed["alc"], "k.", label="observed")
    ax.set_xlabel("days from first fraction")
    ax.set_ylabel("ALC (10$^9$/L)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
