"""What a simulated cohort is made of (:class:`CohortSpec`) and what simulating it gives
(:class:`CohortSummary`); :func:`lymphonet.twin.cohort.simulate_cohort` turns one into the other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lymphonet.errors import InputError
from lymphonet.twin.covariates import CovariateEffects
from lymphonet.twin.dose_effects import DoseEffects
from lymphonet.twin.labs import LabSchedule
from lymphonet.twin.patient import PatientSettings, SimulatedPlan
from lymphonet.twin.sites import get_site
from lymphonet.twin.truth import DEFAULT_TRUTH, truth_names

__all__ = ["MODALITIES", "CohortSpec", "CohortSummary"]

MODALITIES = ("photon", "proton", "carbon")


def _names(value: list[str] | tuple[str, ...] | str | None) -> tuple[str, ...]:
    """Names from a list or a comma-separated string."""
    if isinstance(value, str):
        return tuple(s.strip() for s in value.split(","))
    return tuple(value) if value is not None else ()


@dataclass(frozen=True)
class CohortSpec:
    """What to simulate; the same spec (seed included) gives identical files.

    Patient ``i`` gets site ``sites[i % len(sites)]`` and, unless ``paired``, modality
    ``modalities[(i // len(sites)) % len(modalities)]`` (balanced over site x modality). With
    ``paired`` every patient gets one plan per modality (same anatomy, clinical features,
    schedule, chemo, random effect and lab draws; only the plan, hence ``theta_dose``, differs).

    Attributes:
        n: Number of patients (>= 1).
        sites: Site names, keys of :data:`~lymphonet.twin.sites.SITES` (a list or a
            comma-separated string is turned into a tuple).
        modalities: ``photon``, ``proton``, ``carbon`` (list, tuple or comma-separated string).
        seed: Seed; the same seed gives identical output.
        paired: One plan per modality per patient.
        spacing_mm: Isotropic grid spacing of phantoms and doses (mm).
        particles: Blood-dose particles per plan.
        n_quantiles: Quantile levels of the plan features.
        lab_schedule, cov_effects, dose_effects: Rules and coefficients (None: the defaults of
            the lab module and of the truth core).
        truth: Kinetics core that makes the true ALC (:data:`~lymphonet.twin.truth.TRUTH_CORES`;
            default ``recirculation``, not the hybrid's own core).

    Raises:
        InputError: bad n, unknown site or modality.
    """

    n: int
    sites: tuple[str, ...]
    modalities: tuple[str, ...] = ("photon",)
    seed: int = 0
    paired: bool = False
    spacing_mm: float = 5.0
    particles: int = 5000
    n_quantiles: int = 32
    lab_schedule: LabSchedule | None = None
    cov_effects: CovariateEffects | None = None
    dose_effects: DoseEffects | None = None
    truth: str = DEFAULT_TRUTH

    def __post_init__(self) -> None:
        object.__setattr__(self, "sites", _names(self.sites))
        object.__setattr__(self, "modalities", _names(self.modalities))
        if not isinstance(self.n, int) or self.n < 1:
            raise InputError(f"n must be a positive integer, got {self.n!r}", field="n")
        if not self.sites:
            raise InputError("name at least one site", field="sites")
        for s in self.sites:
            get_site(s)
        truth_names(self.truth)
        bad = [m for m in self.modalities if m not in MODALITIES]
        if not self.modalities or bad:
            raise InputError(f"unknown modalities {bad}; use photon, proton, carbon",
                             field="modalities")

    @property
    def patient(self) -> PatientSettings:
        """The per-patient settings (grid, blood-dose engine, coefficients)."""
        return PatientSettings(self.spacing_mm, self.particles, self.n_quantiles,
                               self.cov_effects, self.dose_effects, self.truth)

    @property
    def labs(self) -> LabSchedule:
        """The lab rules in force (the module default when none was given)."""
        return self.lab_schedule or LabSchedule()

    def site_of(self, i: int) -> str:
        """Site of patient ``i``."""
        return self.sites[i % len(self.sites)]

    def modalities_of(self, i: int) -> list[str]:
        """Modalities planned for patient ``i`` (all of them when paired)."""
        if self.paired:
            return list(self.modalities)
        return [self.modalities[(i // len(self.sites)) % len(self.modalities)]]

    def command(self) -> str:
        """The ``lymphonet simulate-cohort`` command line that simulates this spec."""
        return (f"lymphonet simulate-cohort --n {self.n} --sites {','.join(self.sites)} "
                f"--modalities {','.join(self.modalities)} "
                f"--seed {self.seed}{' --paired' if self.paired else ''} "
                f"--spacing-mm {self.spacing_mm:g} --particles {self.particles} "
                f"--truth {self.truth}")


@dataclass
class CohortSummary:
    """What :func:`~lymphonet.twin.cohort.simulate_cohort` produced.

    Attributes:
        manifest: One row per plan (the data contract; paths relative to ``out_dir``).
        labs: Long lab table ``patient_id, plan_id, day, alc, visit``.
        truth: Ground truth per plan (theta parts, physical parameters, drivers, nadir, grade).
        alc_true: ``[P, T]`` true daily ALC (10^9/L), rows in manifest order.
        days: ``[T]`` days 0..T-1.
        records: In-memory plans (with plans/phantoms only when ``keep_objects``).
        out_dir: Folder written, or None.
        elapsed_s: Wall time of the simulation.
    """

    manifest: pd.DataFrame
    labs: pd.DataFrame
    truth: pd.DataFrame
    alc_true: np.ndarray
    days: np.ndarray
    records: list[SimulatedPlan] = field(default_factory=list)
    out_dir: Path | None = None
    elapsed_s: float = 0.0

    def grade_table(self) -> pd.DataFrame:
        """Share of plans per true CTCAE grade (columns G0..G4) by site and modality, plus n."""
        t = self.truth
        tab = pd.crosstab([t["site"], t["modality"]], t["grade"], normalize="index")
        tab = tab.reindex(columns=range(5), fill_value=0.0)
        tab.columns = [f"G{g}" for g in tab.columns]
        tab["n"] = t.groupby(["site", "modality"]).size()
        return tab
