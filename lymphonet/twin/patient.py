"""One simulated patient of a cohort and the true kinetics of simulated plans (SIMULATED).

For each patient: clinical features (:mod:`.covariates`), a site phantom, a schedule (with
occasional treatment breaks) and chemotherapy, one plan per modality, plan features (blood-dose
quantiles, lymphoid-organ doses) and a patient-specific theta (random effect + covariates + where
the dose falls), in the columns of the truth core (:mod:`.truth`, which also runs the truth on such
plans for the true daily ALC). :func:`lymphonet.twin.cohort.simulate_cohort` puts patients
together into a cohort.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from lymphonet.dosimetry.plan_features import PlanFeatures, plan_features
from lymphonet.io.volume import StructureSet
from lymphonet.schema import weekday_fraction_days
from lymphonet.twin.covariates import (
    ClinicalFeatures,
    CovariateEffects,
    covariate_shift,
    draw_clinical,
)
from lymphonet.twin.dose_effects import DoseEffects, dose_drivers, dose_shift
from lymphonet.twin.phantoms import add_reactive_nodes
from lymphonet.twin.plans import Plan
from lymphonet.twin.sites import (
    Schedule,
    Site,
    draw_schedule,
    get_site,
    plan_for_site,
    site_phantom,
)
from lymphonet.twin.truth import (
    DEFAULT_TRUTH,
    draw_random_effect,
    population_theta,
    truth_names,
)

__all__ = ["MAX_BREAK_DAYS", "P_BREAK", "PatientSettings", "SimulatedPlan", "child_seed",
           "fraction_days_with_breaks", "simulate_patient"]

#: Treatment breaks: probability that a course has one, and its length (1-3 treatment days).
P_BREAK, MAX_BREAK_DAYS = 0.25, 3


@dataclass(frozen=True)
class PatientSettings:
    """How every patient is simulated (the same for all patients of a cohort).

    Attributes:
        spacing_mm: Isotropic grid spacing of phantoms and doses (mm).
        particles: Blood-dose particles per plan.
        n_quantiles: Quantile levels Q of the plan features.
        cov_effects, dose_effects: Coefficients (None: the truth core's defaults,
            :meth:`CovariateEffects.for_core`, :meth:`DoseEffects.for_core`).
        truth: Kinetics core of the truth (:data:`~lymphonet.twin.truth.TRUTH_CORES`).
    """

    spacing_mm: float = 5.0
    particles: int = 5000
    n_quantiles: int = 32
    cov_effects: CovariateEffects | None = None
    dose_effects: DoseEffects | None = None
    truth: str = DEFAULT_TRUTH

    @property
    def covariates(self) -> CovariateEffects:
        """The covariate effects in force."""
        return self.cov_effects or CovariateEffects.for_core(self.truth)

    @property
    def dose(self) -> DoseEffects:
        """The dose-location effects in force."""
        return self.dose_effects or DoseEffects.for_core(self.truth)


@dataclass
class SimulatedPlan:
    """One simulated plan of one patient, in memory.

    Attributes:
        patient_id, plan_id: Identifiers (``SIM00012``, ``SIM00012_photon``).
        clinical: The patient's clinical features.
        plan: The plan (dose Volume in Gy, schedule, chemo); None if not kept.
        structures: The phantom (full masks incl. composites and targets); None if not kept.
        features: Plan features (blood and lymphoid dose quantiles, dose summaries).
        fraction_days: ``[K]`` day of each fraction.
        chemo: ``"concurrent"`` or ``"none"``.
        theta_re, theta_cov, theta_dose: ``[P]`` parts of theta in the truth core's columns;
            ``theta`` is their sum plus the truth's population theta.
        drivers: Dose-location summaries (:func:`~lymphonet.twin.dose_effects.dose_drivers`).
        truth: The truth core.
    """

    patient_id: str
    plan_id: str
    clinical: ClinicalFeatures
    plan: Plan | None
    structures: StructureSet | None
    features: PlanFeatures
    fraction_days: np.ndarray
    chemo: str
    theta_re: np.ndarray
    theta_cov: np.ndarray
    theta_dose: np.ndarray
    drivers: dict[str, float]
    modality: str = ""
    technique: str = ""
    schedule: str = ""
    n_fractions: int = 0
    dose_per_fraction_gy: float = 0.0
    beam_on_time_s: float = 0.0
    chemo_regimen: str | None = None
    truth: str = DEFAULT_TRUTH

    @property
    def theta(self) -> np.ndarray:
        """``[P]`` total theta: population + random effect + covariates + dose location."""
        return population_theta(self.truth) + self.theta_re + self.theta_cov + self.theta_dose


def fraction_days_with_breaks(n_fractions: int, rng: np.random.Generator) -> np.ndarray:
    """Monday-Friday fraction days from day 0 with, at probability :data:`P_BREAK`, one break of
    1-:data:`MAX_BREAK_DAYS` treatment days (machine service, holiday) after a random fraction."""
    u, k, pos = rng.random(), int(rng.integers(1, MAX_BREAK_DAYS + 1)), rng.random()
    if n_fractions < 2 or u >= P_BREAK:
        return weekday_fraction_days(n_fractions)
    slots = weekday_fraction_days(n_fractions + k)
    start = 1 + int(pos * (n_fractions - 1))  # the first fraction stays on day 0
    return np.delete(slots, np.arange(start, start + k))


def child_seed(seq: np.random.SeedSequence, k: int) -> np.random.SeedSequence:
    """The k-th child of ``seq``, the same however often it is asked for (unlike ``spawn``)."""
    return np.random.SeedSequence(seq.entropy, spawn_key=tuple(seq.spawn_key) + (k,))


@dataclass(frozen=True)
class _PatientDraws:
    """What the plans of one patient share: anatomy, features, schedule, chemo, theta parts."""

    patient_id: str
    site: Site
    clinical: ClinicalFeatures
    theta_re: np.ndarray
    phantom: StructureSet
    schedule: Schedule
    chemo: bool
    fraction_days: np.ndarray
    theta_cov: np.ndarray
    feature_seed: int
    plan_seq: np.random.SeedSequence


def simulate_patient(index: int, site: str, modalities: list[str], seq: np.random.SeedSequence,
                     settings: PatientSettings | None = None, *,
                     clinical: ClinicalFeatures | None = None,
                     theta_re: np.ndarray | None = None, **overrides) -> list[SimulatedPlan]:
    """Simulate one patient: anatomy, schedule, chemo, and one plan per modality.

    Args:
        index: Patient number (ids ``SIM<index:05d>``).
        site: Site name.
        modalities: Modalities to plan (several = paired plans on identical anatomy, schedule,
            chemo and random effect).
        seq: The patient's seed sequence.
        settings: Grid spacing, blood-dose particles, quantile levels and coefficients
            (default :class:`PatientSettings`).
        clinical: Clinical features to use instead of drawing them (e.g. to vary one covariate).
        theta_re: Random effect to use instead of drawing it.
        **overrides: :class:`PatientSettings` fields by name (``spacing_mm=8.0``,
            ``particles=2000``, ...), replacing those of ``settings``.

    Returns:
        One :class:`SimulatedPlan` per modality, each with its ``plan`` and the shared
        ``structures`` (phantom).
    """
    settings = replace(settings or PatientSettings(), **overrides)
    draws = _draw_patient(index, site, seq, settings, clinical, theta_re)
    return [_simulate_plan(draws, modality, settings) for modality in modalities]


def _draw_patient(index: int, site: str, seq: np.random.SeedSequence, settings: PatientSettings,
                  clinical: ClinicalFeatures | None, theta_re: np.ndarray | None
                  ) -> _PatientDraws:
    """The patient-level draws, each from its own child of ``seq`` (children 0-5 and 7; child 6
    draws the labs)."""
    s = get_site(site)
    c_clin, c_anat, c_sched, c_plan, c_feat, c_re = (child_seed(seq, k) for k in range(6))
    r_clin = np.random.default_rng(c_clin)
    clin = clinical or draw_clinical(site, r_clin, sex_of_site=s.sex)
    r_re = np.random.default_rng(c_re)
    re = (draw_random_effect(r_re, settings.truth) if theta_re is None
          else np.asarray(theta_re, float))
    phantom = site_phantom(s, sex=clin.sex, height_cm=clin.height_cm, bmi=clin.bmi,
                           spacing_mm=(settings.spacing_mm,) * 3,
                           rng=np.random.default_rng(c_anat))
    phantom = add_reactive_nodes(phantom, np.random.default_rng(child_seed(seq, 7)))
    r_sched = np.random.default_rng(c_sched)
    sched = draw_schedule(s, r_sched)
    chemo = bool(r_sched.random() < sched.chemo_probability)
    fx_days = fraction_days_with_breaks(sched.n_fractions, r_sched)
    cov = covariate_shift(clin.age, clin.bmi, chemo, sched.chemo_regimen, settings.covariates,
                          truth_names(settings.truth))
    return _PatientDraws(f"SIM{index:05d}", s, clin, re, phantom, sched, chemo, fx_days, cov,
                         int(c_feat.generate_state(1)[0]), c_plan)


def _simulate_plan(p: _PatientDraws, modality: str, settings: PatientSettings) -> SimulatedPlan:
    """Plan the patient with one modality (same beam jitter for every modality) and score it."""
    plan = plan_for_site(p.phantom, p.site, modality, schedule=p.schedule,
                         rng=np.random.default_rng(p.plan_seq))
    plan = replace(plan, concurrent_chemo=p.chemo,
                   chemo_regimen=p.schedule.chemo_regimen if p.chemo else None)
    feats = plan_features(plan.dose, p.phantom, n_fractions=plan.n_fractions,
                          beam_on_time_s=plan.beam_on_time_s, sex=p.clinical.sex,
                          n_quantiles=settings.n_quantiles, particles=settings.particles,
                          seed=p.feature_seed, patient=p.patient_id)
    drivers = dose_drivers(np.asarray(plan.dose.array), p.phantom)
    return SimulatedPlan(
        p.patient_id, f"{p.patient_id}_{modality}", p.clinical, plan, p.phantom, feats,
        p.fraction_days, "concurrent" if p.chemo else "none", p.theta_re, p.theta_cov,
        dose_shift(drivers, settings.dose, truth_names(settings.truth)), drivers,
        modality=modality, technique=plan.technique, schedule=p.schedule.name,
        n_fractions=plan.n_fractions, dose_per_fraction_gy=plan.dose_per_fraction_gy,
        beam_on_time_s=plan.beam_on_time_s, chemo_regimen=plan.chemo_regimen,
        truth=settings.truth)
