"""Simulated clinical features and patient-specific kinetic parameters (SIMULATED).

Two layers:

1. **Clinical features** per site (:data:`DEMOGRAPHICS`): age, sex, height (from sex), BMI and the
   true baseline absolute lymphocyte count (ALC). Distributions are rounded, typical values of the
   published trial populations named in each entry; they are plausible, not fitted.
2. **Kinetic parameters** ``theta`` (``[9]``, columns :data:`~lymphonet.kinetics.PARAM_NAMES`,
   0 = population prior) as the sum of three parts, each kept separately in the ground truth:

   * ``theta_re``: a patient random effect, normal with the sd of :data:`RANDOM_EFFECT_SD`;
   * ``theta_cov``: covariate effects (:class:`CovariateEffects`): older age, lower BMI and
     concurrent chemotherapy give deeper depletion and slower recovery;
   * ``theta_dose``: effects of *where* the dose falls (:class:`DoseEffects`), beyond what the
     mechanistic layer already computes from organ dose: thresholded marrow V20, high dose to the
     posterior-midline (vertebral) marrow, high dose to the central node stations, spleen dose and
     the low-dose bath of the body. Some of them need the dose map and the label map (vertebral
     marrow, per-station node dose), so a model that sees the images can learn more than one that
     sees a DVH summary of the canonical organs.

Every coefficient is a lymphonet assumption chosen to be moderate (a few tenths of a theta unit,
i.e. tens of per cent on the physical parameter); :func:`describe_effects` writes them all out for
the cohort README.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from lymphonet.errors import InputError
from lymphonet.io.volume import StructureSet
from lymphonet.kinetics.params import PARAM_NAMES

__all__ = ["DEMOGRAPHICS", "RANDOM_EFFECT_SD", "ClinicalFeatures", "CovariateEffects",
           "DoseEffects", "SiteDemographics", "covariate_shift", "describe_clinical", "describe_effects",
           "dose_drivers", "dose_shift", "draw_clinical", "draw_random_effect"]

_IDX = {n: i for i, n in enumerate(PARAM_NAMES)}


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

#: Patient random effect sd per theta column (lymphonet assumption: inter-patient spread of a few
#: tens of per cent on each physical parameter around the prior).
RANDOM_EFFECT_SD: dict[str, float] = {
    "alpha_per_gy": 0.2, "beta_per_gy2": 0.1, "blood_share": 0.2, "blood_residence_days": 0.1,
    "fast_fraction": 0.15, "fast_recovery_days": 0.15, "slow_recovery_days": 0.15,
    "baseline_loss": 0.2, "chemo_rate_per_day": 0.2,
}


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


def draw_random_effect(rng: np.random.Generator) -> np.ndarray:
    """Patient random effect ``theta_re`` ``[9]`` (normal, sd :data:`RANDOM_EFFECT_SD`)."""
    sd = np.array([RANDOM_EFFECT_SD[n] for n in PARAM_NAMES])
    return sd * rng.standard_normal(len(sd))


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


def _vec(effects: dict[str, float], scale: float) -> np.ndarray:
    out = np.zeros(len(PARAM_NAMES))
    for name, coef in effects.items():
        out[_IDX[name]] += coef * scale
    return out


def covariate_shift(age: float, bmi: float, chemo: bool, regimen: str | None = None,
                    effects: CovariateEffects | None = None) -> np.ndarray:
    """``theta_cov`` ``[9]``: the covariate part of a patient's theta.

    Args:
        age: Years.
        bmi: kg/m^2.
        chemo: Concurrent chemotherapy given.
        regimen: Chemotherapy regimen name (``temozolomide`` adds its own effect).
        effects: Coefficients (default :class:`CovariateEffects`).
    """
    e = effects or CovariateEffects()
    out = _vec(e.age, (age - 60.0) / 10.0)
    out += _vec(e.low_bmi, (25.0 - float(np.clip(bmi, 17.0, 35.0))) / 5.0)
    if chemo:
        out += _vec(e.chemo, 1.0)
        if regimen and "temozolomide" in regimen:
            out += _vec(e.temozolomide, 1.0)
    return out


# ----------------------------------------------------------------------------- dose effects
#: Node stations whose high-dose volume counts fully (central stations, where most of the
#: recirculating pool passes); the others count half. Lymphonet assumption.
NODE_STATION_WEIGHT = {"lymph_nodes_mediastinal": 1.0, "lymph_nodes_para_aortic": 1.0,
                       "lymph_nodes_cervical": 0.5, "lymph_nodes_pelvic": 0.5}
DRIVER_NAMES = ("marrow_v20", "vertebral_marrow_v30", "node_station_v40", "spleen_mean_gy",
                "body_v5")


def _posterior_midline(marrow: np.ndarray, body: np.ndarray, grid) -> np.ndarray:
    """Marrow voxels within 25 mm of the body's left-right midline and >= 20 mm posterior of the
    body's centre on their slice (vertebral bodies, sacrum, posterior skull)."""
    _nz, ny, nx = marrow.shape
    dx, dy, _ = grid.spacing_mm
    sx, sy = np.sign(np.diag(grid.direction)[:2])
    x = sx * dx * np.arange(nx)
    y = sy * dy * np.arange(ny)
    count = body.sum((1, 2)).astype(float)
    safe = np.maximum(count, 1.0)
    xc = (body.sum(1) * x).sum(1) / safe  # [nz]
    yc = (body.sum(2) * y).sum(1) / safe
    near_x = np.abs(x[None, :] - xc[:, None]) <= 25.0  # [nz, nx]
    post_y = (y[None, :] - yc[:, None]) >= 20.0  # [nz, ny] (LPS: +y is posterior)
    return marrow & near_x[:, None, :] & post_y[:, :, None] & (count > 0)[:, None, None]


def dose_drivers(dose_gy: np.ndarray, structures: StructureSet) -> dict[str, float]:
    """Summaries of where the course dose falls that drive ``theta_dose``.

    Args:
        dose_gy: ``(nz, ny, nx)`` total course dose (Gy) on the structures' grid.
        structures: The phantom (needs ``body``; other organs optional).

    Returns:
        ``marrow_v20`` (share of bone marrow >= 20 Gy), ``vertebral_marrow_v30`` (share of the
        posterior-midline marrow >= 30 Gy), ``node_station_v40`` (station-weighted share of node
        volume >= 40 Gy), ``spleen_mean_gy`` (course mean spleen dose) and ``body_v5`` (share of
        the body >= 5 Gy); 0 where the structure is absent.
    """
    def share_above(mask, level):
        return float((dose_gy[mask] >= level).mean()) if mask is not None and mask.any() else 0.0

    masks = structures.masks
    marrow, body = masks.get("bone_marrow"), masks["body"]
    vert = _posterior_midline(marrow, body, structures.grid) if marrow is not None else None
    num = den = 0.0
    for name, w in NODE_STATION_WEIGHT.items():
        m = masks.get(name)
        if m is not None and m.any():
            num += w * float((dose_gy[m] >= 40.0).sum())
            den += float(m.sum())
    spleen = masks.get("spleen")
    return {
        "marrow_v20": share_above(marrow, 20.0),
        "vertebral_marrow_v30": share_above(vert, 30.0),
        "node_station_v40": num / den if den else 0.0,
        "spleen_mean_gy": float(dose_gy[spleen].mean()) if spleen is not None and spleen.any()
        else 0.0,
        "body_v5": share_above(body, 5.0),
    }


@dataclass(frozen=True)
class DoseEffects:
    """Dose-location effects on theta (additive, theta units; lymphonet assumptions).

    * marrow V20 above ~10%: ``s = sigmoid((V20 - marrow_v20_threshold) / marrow_v20_width)``
      scales ``marrow`` (slow recovery and lost production capacity: irradiated marrow
      regenerates lymphopoiesis slowly);
    * vertebral marrow V30: ``min(V30 / 0.3, 1)`` scales ``vertebral`` (the vertebral bodies hold
      much of the adult red marrow);
    * central node stations: station-weighted V40 ``min(V / 0.3, 1)`` scales ``nodes``
      (destroyed node architecture lowers the set point);
    * spleen: ``min(mean spleen dose / 10 Gy, 1.5)`` scales ``spleen`` (effective
      radiosensitivity of the pool rises when the splenic reservoir is irradiated);
    * low-dose bath: body V5 above ``bath_reference_v5`` scales ``bath`` (lymphocytes resident in
      irradiated non-lymphoid tissue, which the mechanistic layer does not model, raise the
      effectively exposed share).

    The spleen and bath terms are centred (``spleen_reference_gy``, ``bath_reference_v5``) and the
    concurrent-chemotherapy depletion rate is not shifted at all, because the population priors
    are already calibrated to published cohorts (docs/kinetics.md §7): these effects spread
    patients around the population rather than shifting the whole cohort.
    """

    marrow_v20_threshold: float = 0.10
    marrow_v20_width: float = 0.02
    marrow: dict[str, float] = field(default_factory=lambda: {
        "slow_recovery_days": 0.3, "baseline_loss": 0.2})
    vertebral: dict[str, float] = field(default_factory=lambda: {"slow_recovery_days": 0.3})
    nodes: dict[str, float] = field(default_factory=lambda: {"baseline_loss": 0.3})
    spleen: dict[str, float] = field(default_factory=lambda: {"alpha_per_gy": 0.2})
    bath: dict[str, float] = field(default_factory=lambda: {"blood_share": 1.0})
    spleen_reference_gy: float = 3.0
    bath_reference_v5: float = 0.4


def dose_shift(drivers: dict[str, float], effects: DoseEffects | None = None) -> np.ndarray:
    """``theta_dose`` ``[9]`` from :func:`dose_drivers` output."""
    e = effects or DoseEffects()
    s = 1.0 / (1.0 + np.exp(-(drivers["marrow_v20"] - e.marrow_v20_threshold)
                            / e.marrow_v20_width))
    out = _vec(e.marrow, float(s))
    out += _vec(e.vertebral, min(drivers["vertebral_marrow_v30"] / 0.3, 1.0))
    out += _vec(e.nodes, min(drivers["node_station_v40"] / 0.3, 1.0))
    out += _vec(e.spleen, (min(drivers["spleen_mean_gy"], 15.0) - e.spleen_reference_gy) / 10.0)
    out += _vec(e.bath, drivers["body_v5"] - e.bath_reference_v5)
    return out


def describe_effects(cov: CovariateEffects | None = None, dose: DoseEffects | None = None
                     ) -> str:
    """Markdown description of every mechanism and coefficient (for the cohort README)."""
    cov, dose = cov or CovariateEffects(), dose or DoseEffects()

    def fmt(d):
        return ", ".join(f"`{k}` {v:+g}" for k, v in d.items())

    lines = [
        "theta = theta_re + theta_cov + theta_dose (theta units; 0 = population prior; physical",
        "value = lower + (upper - lower) sigmoid(logit((prior - lower)/(upper - lower)) + theta)).",
        "",
        "**Random effect** `theta_re` ~ N(0, sd^2) per column: "
        + ", ".join(f"`{k}` {v:g}" for k, v in RANDOM_EFFECT_SD.items()) + ".",
        "",
        "**Covariates** `theta_cov` (lymphonet assumptions):",
        f"- per decade of age above 60: {fmt(cov.age)}",
        f"- per 5 kg/m^2 of BMI below 25 (BMI clipped to [17, 35]): {fmt(cov.low_bmi)}",
        (f"- concurrent chemotherapy: {fmt(cov.chemo)}; temozolomide in addition: "
        f"{fmt(cov.temozolomide)}"),
        "",
        ("**Where the dose falls** `theta_dose` (lymphonet assumptions; the mechanistic layer "
        "already kills lymphocytes in blood and in spleen, nodes, marrow and thymus by their own "
        "dose, these are *extra* effects):"),
        (f"- marrow V20 (share of `bone_marrow` >= 20 Gy) above a threshold: "
        f"s = sigmoid((V20 - {dose.marrow_v20_threshold:g}) / {dose.marrow_v20_width:g}); "
        f"s x ({fmt(dose.marrow)})"),
        ("- vertebral marrow V30: share >= 30 Gy of the `bone_marrow` voxels within 25 mm of the "
        "body's left-right midline and >= 20 mm posterior of the body centre on their slice "
        f"(vertebrae, sacrum, occiput); min(V30 / 0.3, 1) x ({fmt(dose.vertebral)})"),
        "- central node stations: V40 of the node stations weighted "
        + ", ".join(f"`{k}` {v:g}" for k, v in NODE_STATION_WEIGHT.items())
        + f" (sum of weighted voxels >= 40 Gy / all station voxels); min(V / 0.3, 1) x "
          f"({fmt(dose.nodes)})",
        f"- spleen: min(mean spleen dose / 10 Gy, 1.5) x ({fmt(dose.spleen)})",
        f"- low-dose bath: body V5 (share of `body` >= 5 Gy) x ({fmt(dose.bath)})",
    ]
    return "\n".join(lines)


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


def effects_dict(cov: CovariateEffects | None = None, dose: DoseEffects | None = None) -> dict:
    """All coefficients as a JSON-able dict (written beside the cohort)."""
    return {"random_effect_sd": dict(RANDOM_EFFECT_SD),
            "covariates": asdict(cov or CovariateEffects()),
            "dose": asdict(dose or DoseEffects()),
            "node_station_weight": dict(NODE_STATION_WEIGHT)}
