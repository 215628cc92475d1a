"""The mechanistic model on its own: plan files in, lymphocyte trajectory out.

This is the layer researchers use as a baseline and what ``lymphonet simulate`` and
``lymphonet fit-kinetics`` call: read a plan (dose + structures), reduce it to
:class:`~lymphonet.features.PlanFeatures`, and run :class:`~lymphonet.kinetics.LymphocyteKinetics`
with population parameters (``theta = 0``) or with a fitted parameter file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lymphonet.errors import InputError
from lymphonet.features import PlanFeatures, kinetics_inputs, plan_features
from lymphonet.kinetics import PARAM_NAMES, LymphocyteKinetics, ctcae_grade, nadir
from lymphonet.kinetics.params import expand_theta
from lymphonet.schema import PlanRecord

#: Beam-on time assumed when a plan does not say (s per fraction; a mid-range IMRT value). Every
#: use is reported, since delivery time changes the blood-dose distribution (DESIGN.md §4.2).
DEFAULT_BEAM_ON_TIME_S = 120.0


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


def features_for_plan(record: PlanRecord, *, n_quantiles: int = 64, particles: int = 20_000,
                      seed: int = 0, default_beam_on_time_s: float | None = None) -> PlanFeatures:
    """Read one manifest row's dose and structures and reduce them to plan features.

    Args:
        record: A validated manifest row.
        n_quantiles, particles, seed: Blood-dose engine settings (see ``plan_features``).
        default_beam_on_time_s: Used when the row has no beam-on time; None makes that an error.

    Raises:
        InputError: Naming the patient, file and field of whatever is wrong.
    """
    from lymphonet.io.loaders import read_dose, read_structures

    patient = record.plan_id
    if record.structures_path is None:
        raise InputError("structures are needed for the blood-dose model (body and organs)",
                         patient=patient, field="structures_path")
    beam_on = record.beam_on_time_s
    if not math.isfinite(beam_on):
        if default_beam_on_time_s is None:
            raise InputError("beam-on time per fraction is missing", patient=patient,
                             field="beam_on_time_s")
        beam_on = default_beam_on_time_s
    dose = read_dose(record.dose_path, patient=patient,
                     prescription_gy=record.total_dose_gy)
    structures = read_structures(record.structures_path, dose, patient=patient,
                                 structure_map=record.structure_map)
    return plan_features(dose, structures, n_fractions=record.n_fractions, beam_on_time_s=beam_on,
                         sex=record.sex or "M", n_quantiles=n_quantiles, particles=particles,
                         seed=seed, patient=patient)


@dataclass(frozen=True)
class Trajectory:
    """A simulated ALC course: daily values, nadir and grade."""

    days: np.ndarray
    alc: np.ndarray
    nadir_alc: float
    nadir_day: float

    @property
    def nadir_grade(self) -> int:
        return int(ctcae_grade(torch.tensor([self.nadir_alc]))[0])

    def to_frame(self) -> pd.DataFrame:
        """Columns ``day, alc, grade`` (ALC in 10^9/L, CTCAE v5 grade 0-4)."""
        grade = ctcae_grade(torch.as_tensor(self.alc)).numpy()
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
    inputs = kinetics_inputs(features, list(baseline_alc), fraction_days=fraction_days,
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
    bands = [(1.0, 0.8, "G1"), (0.8, 0.5, "G2"), (0.5, 0.2, "G3"), (0.2, 0.0, "G4")]
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
