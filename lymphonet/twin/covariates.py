"""Simulated clinical features and patient-specific kinetic parameters (SIMULATED).

Two layers:

1. **Clinical features** per site (:data:`DEMOGRAPHICS`): age, sex, height (from sex), BMI and the
   true baseline absolute lymphocyte count (ALC). Distributions are rounded, typical values of the
   published trial populations named in each entry; they are plausible, not fitted.
2. **Covariate effects** on the truth's kinetic parameters (:class:`CovariateEffects`, one set of
   defaults per truth core, :meth:`CovariateEffects.for_core`): older age, lower BMI and
   concurrent chemotherapy give deeper depletion and slower recovery. They are one of the three
   parts of a simulated patient's theta (:mod:`lymphonet.twin.truth` puts them together with the
   random effect and the dose-location effects of :mod:`lymphonet.twin.dose_effects`).

Every coefficient is a lymphonet assumption chosen to be moderate (a few tenths of a theta unit,
i.e. tens of per cent on the physical parameter); :func:`describe_covariates` writes them out for
the cohort README.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lymphonet.errors import InputError
from lymphonet.kinetics.params import PARAM_NAMES

__all__ = ["DEMOGRAPHICS", "ClinicalFeatures", "CovariateEffects", "SiteDemographics",
           "covariate_shift", "describe_clinical", "describe_covariates", "draw_clinical",
           "effect_vector"]


@dataclass(frozen=True)
class SiteDemographics:
    """Clinical-feature distribution of one site.

    Attributes:
        age_mean, age_sd: Normal age distribution (years), clipped to ``age_range``.
        p_male: Probability of male sex (ignored for sex-specific sites).
        bmi_median, bmi_sdlog: Log-normal BMI (kg/m^2), clipped to [16, 45].
        source: Population the numbers follow (rounded typical values).
        age_range: Clip range of the age (years).
    """

    age_mean: float
    age_sd: float
    p_male: float
    bmi_median: float
    bmi_sdlog: float
    source: str
    age_range: tuple[float, float] = (30.0, 90.0)


_D = SiteDemographics
#: Per-site demographics (rounded typical values of the named populations; lymphonet choices).
DEMOGRAPHICS: dict[str, SiteDemographics] = {
    "esophagus": _D(64, 9, 0.78, 24.5, 0.16, "CROSS (van Hagen et al., NEJM 2012): median age "
                    "60, ~75% male; definitive series are older; weight loss lowers BMI"),
    "lung": _D(64, 9, 0.60, 25.5, 0.17, "RTOG 0617 (Bradley et al., Lancet Oncol 2015): median "
               "age 64, ~60% male"),
    "lung_sbrt": _D(72, 8, 0.50, 26.0, 0.18, "early-stage SBRT series (e.g. RTOG 0236, Timmerman "
                    "et al., JAMA 2010): median age ~72, sexes about equal", (45.0, 92.0)),
    "liver": _D(64, 10, 0.78, 26.0, 0.17, "hepatocellular carcinoma series: median age ~60-65, "
                "~75-80% male"),
    "pancreas": _D(66, 9, 0.55, 24.5, 0.16, "locally advanced pancreatic cancer trials: median "
                   "age ~65, slight male excess, weight loss"),
    "stomach": _D(62, 10, 0.68, 24.0, 0.16, "INT-0116 (Macdonald et al., NEJM 2001): median age "
                  "~60, about two thirds male"),
    "glioblastoma": _D(58, 11, 0.62, 26.5, 0.17, "EORTC/NCIC (Stupp et al., NEJM 2005): median age "
                       "56, ~64% male", (25.0, 85.0)),
    "whole_brain": _D(62, 11, 0.50, 26.0, 0.17, "brain-metastasis series: median age ~60"),
    "prostate": _D(68, 7, 1.0, 27.5, 0.14, "CHHiP (Dearnaley et al., Lancet Oncol 2016): median "
                   "age 69", (45.0, 88.0)),
    "prostate_nodes": _D(68, 7, 1.0, 27.5, 0.14, "as prostate", (45.0, 88.0)),
    "cervix": _D(50, 12, 0.0, 26.0, 0.20, "chemoradiation trials for cervical cancer: median age "
                 "~45-50", (22.0, 85.0)),
    "breast": _D(58, 11, 0.0, 27.0, 0.18, "START/FAST-Forward (adjuvant whole-breast RT): median "
                 "age ~57-62, female"),
    "head_neck": _D(60, 9, 0.80, 25.0, 0.17, "chemoradiation trials for head and neck cancer: "
                    "median age ~58-60, ~80% male"),
}

#: Adult height (cm) by sex: mean, sd (rounded population values of Western adults).
HEIGHT_CM = {"M": (176.0, 7.0), "F": (163.0, 6.5)}
#: Baseline ALC: log-normal median (10^9/L) and log sd. Lymphonet choice in the 1.6-1.8 x 10^9/L
#: range of pre-treatment medians of adult solid-tumour RT cohorts; counts fall slowly with age
#: (median x exp(-0.005 (age - 60))), a lymphonet assumption. Clipped to [0.4, 5.0].
BASELINE_ALC_MEDIAN, BASELINE_ALC_SDLOG, BASELINE_ALC_AGE_SLOPE = 1.7, 0.35, -0.005

@dataclass(frozen=True)
class ClinicalFeatures:
    """Clinical features of one simulated patient.

    Attributes:
        site: Treatment site (key of :data:`lymphonet.twin.sites.SITES`).
        age: Years.
        sex: ``"M"`` or ``"F"``.
        height_cm: Height, cm.
        bmi: Body-mass index, kg/m^2.
        baseline_alc: True pre-treatment ALC, 10^9/L (labs measure it with noise).
    """

    site: str
    age: float
    sex: str
    height_cm: float
    bmi: float
    baseline_alc: float


def draw_clinical(site: str, rng: np.random.Generator, *, sex_of_site: str | None = None
                  ) -> ClinicalFeatures:
    """Draw a patient's clinical features for ``site``.

    Args:
        site: Site name (must be in :data:`DEMOGRAPHICS`).
        rng: Random generator.
        sex_of_site: Sex forced by the site (``"M"`` prostate, ``"F"`` cervix), else None.
    """
    if site not in DEMOGRAPHICS:
        raise InputError(f"no demographics for site {site!r}; known {sorted(DEMOGRAPHICS)}",
                         field="site")
    d = DEMOGRAPHICS[site]
    u_sex, z_age, z_h, z_bmi, z_alc = rng.random(), *rng.standard_normal(4)
    sex = sex_of_site or ("M" if u_sex < d.p_male else "F")
    age = float(np.clip(d.age_mean + d.age_sd * z_age, *d.age_range))
    h_mean, h_sd = HEIGHT_CM[sex]
    height = float(np.clip(h_mean + h_sd * z_h, 145.0, 200.0))
    bmi = float(np.clip(d.bmi_median * np.exp(d.bmi_sdlog * z_bmi), 16.0, 45.0))
    median_alc = BASELINE_ALC_MEDIAN * np.exp(BASELINE_ALC_AGE_SLOPE * (age - 60.0))
    alc = float(np.clip(median_alc * np.exp(BASELINE_ALC_SDLOG * z_alc), 0.4, 5.0))
    return ClinicalFeatures(site, round(age, 1), sex, round(height, 1), round(bmi, 1), alc)


@dataclass(frozen=True)
class CovariateEffects:
    """Covariate effects on theta (additive, theta units; lymphonet assumptions).

    ``age`` acts per decade above 60 years, ``low_bmi`` per 5 kg/m^2 below 25 (BMI clipped to
    [17, 35] first, so high BMI protects a little), ``chemo`` when chemotherapy is concurrent, and
    ``temozolomide`` on top of it for that regimen (a notably lymphotoxic drug: Grossman et al.,
    Clin Cancer Res 2011). Direction: older age and low BMI raise the risk of severe lymphopenia
    (DESIGN.md 4.3).
    """

    age: dict[str, float] = field(default_factory=lambda: {
        "alpha_per_gy": 0.10, "slow_recovery_days": 0.15, "baseline_loss": 0.15,
        "fast_recovery_days": 0.10})
    low_bmi: dict[str, float] = field(default_factory=lambda: {
        "alpha_per_gy": 0.10, "baseline_loss": 0.10})
    chemo: dict[str, float] = field(default_factory=lambda: {
        "slow_recovery_days": 0.1, "baseline_loss": 0.1})
    temozolomide: dict[str, float] = field(default_factory=lambda: {"chemo_rate_per_day": 0.4})

    @classmethod
    def for_core(cls, core: str) -> CovariateEffects:
        """The default effects on the parameters of a truth core (the class defaults are the
        two-population core's). On the recirculation core older age and low BMI slow
        reconstitution (lower homeostatic turnover, slower marrow recovery) and raise
        radiosensitivity a little; chemotherapy slows marrow recovery; the regimen's own death
        rate is the core's (calibrated per regimen class), so temozolomide adds nothing here."""
        if core == "two_population":
            return cls()
        return cls(age={"alpha_per_gy": 0.10, "turnover_per_day": -0.15,
                        "marrow_recovery_days": 0.15},
                   low_bmi={"alpha_per_gy": 0.10, "turnover_per_day": -0.10},
                   chemo={"marrow_recovery_days": 0.10}, temozolomide={})


def effect_vector(effects: dict[str, float], scale: float, names: tuple[str, ...]) -> np.ndarray:
    """``[len(names)]`` theta shift: ``coef x scale`` at each named parameter, 0 elsewhere.

    Raises:
        InputError: an effect names a parameter the core does not have.
    """
    out = np.zeros(len(names))
    for name, coef in effects.items():
        if name not in names:
            raise InputError(f"effect on unknown parameter {name!r}; the truth core has "
                             f"{list(names)}", field="effects")
        out[names.index(name)] += coef * scale
    return out


def covariate_shift(age: float, bmi: float, chemo: bool, regimen: str | None = None,
                    effects: CovariateEffects | None = None,
                    names: tuple[str, ...] = PARAM_NAMES) -> np.ndarray:
    """``theta_cov`` ``[len(names)]``: the covariate part of a patient's theta.

    Args:
        age: Years.
        bmi: kg/m^2.
        chemo: Concurrent chemotherapy given.
        regimen: Chemotherapy regimen name (``temozolomide`` adds its own effect).
        effects: Coefficients (default :class:`CovariateEffects`).
        names: The truth core's parameter names (default the two-population core's).
    """
    e = effects or CovariateEffects()
    out = effect_vector(e.age, (age - 60.0) / 10.0, names)
    out += effect_vector(e.low_bmi, (25.0 - float(np.clip(bmi, 17.0, 35.0))) / 5.0, names)
    if chemo:
        out += effect_vector(e.chemo, 1.0, names)
        if regimen and "temozolomide" in regimen:
            out += effect_vector(e.temozolomide, 1.0, names)
    return out


def describe_covariates(cov: CovariateEffects) -> str:
    """Markdown lines of the covariate effects."""
    def fmt(d):
        return ", ".join(f"`{k}` {v:+g}" for k, v in d.items()) or "none"

    return "\n".join([
        "**Covariates** `theta_cov` (lymphonet assumptions):",
        f"- per decade of age above 60: {fmt(cov.age)}",
        f"- per 5 kg/m^2 of BMI below 25 (BMI clipped to [17, 35]): {fmt(cov.low_bmi)}",
        (f"- concurrent chemotherapy: {fmt(cov.chemo)}; temozolomide in addition: "
         f"{fmt(cov.temozolomide)}")])


def describe_clinical(sites: list[str]) -> str:
    """Markdown table and text of the clinical-feature distributions of ``sites``."""
    rows = "\n".join(
        f"| {s} | {d.age_mean:g} +- {d.age_sd:g} (clip {d.age_range[0]:g}-{d.age_range[1]:g}) | "
        f"{d.p_male:g} | {d.bmi_median:g} (log sd {d.bmi_sdlog:g}) | {d.source} |"
        for s, d in DEMOGRAPHICS.items() if s in sites)
    (hm, hsd), (hf, hfsd) = HEIGHT_CM["M"], HEIGHT_CM["F"]
    return f"""| site | age (years) | P(male) | BMI median | source (rounded typical values) |
|---|---|---|---|---|
{rows}

Height: normal, M {hm:g} +- {hsd:g} cm, F {hf:g} +- {hfsd:g} cm (clip 145-200). BMI clipped to
[16, 45]. True baseline ALC: log-normal, median {BASELINE_ALC_MEDIAN:g} x
exp({BASELINE_ALC_AGE_SLOPE:g} (age - 60)) x 10^9/L, log sd {BASELINE_ALC_SDLOG:g}, clipped to
[0.4, 5] (lymphonet choice in the 1.6-1.8 range of pre-treatment medians of adult RT cohorts).
"""
