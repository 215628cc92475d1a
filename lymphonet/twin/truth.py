"""The simulator's truth: which kinetics make the true daily ALC, and each patient's parameters.

A benchmark whose truth is the model under test cannot be lost. The default truth is therefore
**not** the hybrid's kinetics layer (the two-population core, ``model.kinetics_core``):

* ``recirculation`` (default): :class:`~lymphonet.kinetics.recirculation.RecirculationKinetics`
  at its literature calibration (``resources/recirculation_theta.json``, fitted to the published
  cohorts before any benchmark was run): eight resident lymphoid sites dosed where they sit and
  refilled by recirculation, marrow production capacity that falls with marrow dose and recovers
  slowly, a death rate per chemotherapy regimen class;
* ``two_population``: the hybrid's own core at its shipped calibration (a correctly specified
  control, to see how much of a model's advantage is the specification).

Each patient's theta (columns of the truth core) is ``theta_pop + theta_re + theta_cov +
theta_dose``: the population, a random effect (:data:`RANDOM_EFFECT_LOG_SD`: published
between-person spreads where one was found, the physical parameter's log sd converted to theta
units at the population value, never shrunk), covariates (:mod:`.covariates`) and where the dose
falls (:mod:`.dose_effects`, including the image-only reactive nodes). On top of the
kinetics both truths add effects the hybrid's layer lacks (the marrow-V20 threshold, the
reactive nodes); the recirculation truth adds its compartments, production and regimen rates.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import numpy as np
import torch

from lymphonet.errors import InputError
from lymphonet.kinetics import cores

__all__ = ["DEFAULT_TRUTH", "RANDOM_EFFECT_LOG_SD", "TRUTH_CORES", "describe_truth",
           "draw_random_effect", "population_theta", "random_effect_sd", "true_trajectories",
           "truth_names"]

TRUTH_CORES: tuple[str, ...] = ("recirculation", "two_population")
DEFAULT_TRUTH = "recirculation"

#: Between-person log sd of each physical parameter of the recirculation truth, with its source.
RANDOM_EFFECT_LOG_SD: dict[str, tuple[float, str]] = {
    "alpha_per_gy": (0.18, ("Mei et al., J Radiat Res 1996: T-lymphocyte mean inactivation dose "
                           "0.82-1.86 Gy, CV 18% among 56 healthy men")),
    "stem_alpha_per_gy": (0.18, ("as alpha (Green et al., Int J Radiat Biol 1991: D0 1.26-2.15 "
                                "Gy between donors)")),
    "turnover_per_day": (0.6, ("Macallan et al., Blood 2005: B-cell division 1.9% (+-1.0%) per "
                              "day in young adults, 1.5% (+-1.3%) in the elderly (CV 0.5-0.9)")),
    "blood_share": (0.2, "lymphonet assumption (no between-person spread found)"),
    "blood_residence_h": (0.2, "lymphonet assumption"),
    "marrow_recovery_days": (0.4, ("lymphonet assumption (recovery over months to years, no "
                                  "spread found)")),
    "chemo_rate_per_day": (0.4, "lymphonet assumption"),
    "chemo_temozolomide_per_day": (0.4, "lymphonet assumption"),
    "chemo_platinum_per_day": (0.4, "lymphonet assumption"),
    "chemo_antimetabolite_per_day": (0.4, "lymphonet assumption"),
}

#: Random-effect sd (theta units) of the two-population truth: the sizes the simulator has used
#: since the first cohorts (a few tens of per cent on each physical parameter; lymphonet
#: assumption), kept for the correctly specified control.
TWO_POPULATION_RE_SD: dict[str, float] = {
    "alpha_per_gy": 0.2, "beta_per_gy2": 0.1, "blood_share": 0.2, "blood_residence_days": 0.1,
    "fast_fraction": 0.15, "fast_recovery_days": 0.15, "slow_recovery_days": 0.15,
    "baseline_loss": 0.2, "chemo_rate_per_day": 0.2,
}
_MAX_THETA_SD = 1.5


def _check(core: str) -> None:
    if core not in TRUTH_CORES:
        raise InputError(f"unknown truth {core!r}; choose from {TRUTH_CORES}", field="truth")


def truth_names(core: str) -> tuple[str, ...]:
    """The truth core's theta columns."""
    _check(core)
    return cores.param_names(core)


@cache
def _recirculation_population() -> dict[str, float]:
    text = resources.files("lymphonet.resources").joinpath("recirculation_theta.json").read_text()
    return json.loads(text)["theta"]


def population_theta(core: str) -> np.ndarray:
    """``[P]`` population theta of the truth core (two-population: 0, its shipped priors are
    already calibrated; recirculation: its literature calibration)."""
    names = truth_names(core)
    if core == "two_population":
        return np.zeros(len(names))
    pop = _recirculation_population()
    return np.array([float(pop.get(n, 0.0)) for n in names])


def random_effect_sd(core: str) -> np.ndarray:
    """``[P]`` random-effect sd in theta units.

    Recirculation: the physical log sd ``s`` of :data:`RANDOM_EFFECT_LOG_SD` at the population
    value ``v`` of a parameter bounded in ``[l, u]`` is ``s v / ((u - l) q (1 - q))`` theta units,
    ``q = (v - l) / (u - l)`` (delta method on the sigmoid map), capped at 1.5.
    """
    names = truth_names(core)
    if core == "two_population":
        return np.array([TWO_POPULATION_RE_SD.get(n, 0.0) for n in names])
    specs = {s.name: s for s in cores.specs(core)}
    theta = population_theta(core)
    out = np.zeros(len(names))
    for j, n in enumerate(names):
        if n not in RANDOM_EFFECT_LOG_SD:
            continue
        s = specs[n]
        v = float(s.physical(torch.tensor(theta[j], dtype=torch.float64)))
        q = (v - s.lower) / (s.upper - s.lower)
        slope = (s.upper - s.lower) * q * (1.0 - q)
        out[j] = min(RANDOM_EFFECT_LOG_SD[n][0] * v / slope, _MAX_THETA_SD)
    return out


def draw_random_effect(rng: np.random.Generator, core: str = DEFAULT_TRUTH) -> np.ndarray:
    """A patient's random effect ``theta_re`` ``[P]`` (normal, sd :func:`random_effect_sd`)."""
    sd = random_effect_sd(core)
    return sd * rng.standard_normal(len(sd))


def true_trajectories(recs, n_days: int, core: str = DEFAULT_TRUTH, chunk: int = 2048
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the truth core (float64, batched) on each record's features, schedule, chemo regimen
    and total theta (:attr:`~lymphonet.twin.patient.SimulatedPlan.theta`).

    Returns:
        True daily ALC ``[P, T]`` (10^9/L, days 0..n_days-1), physical parameters ``[P, C]`` (the
        core's columns) and the final set point ``[P]`` (10^9/L; the ALC of the last day where
        the core has no set point).
    """
    from lymphonet.kinetics.simulate import inputs_from_features

    model = cores.build(core, n_days)
    specs = cores.specs(core)
    alc, phys, final = [], [], []
    for lo in range(0, len(recs), chunk):
        part = recs[lo: lo + chunk]
        inp = inputs_from_features(
            [r.features for r in part], [r.clinical.baseline_alc for r in part],
            fraction_days=[r.fraction_days for r in part], chemo=[r.chemo for r in part],
            chemo_regimen=[r.chemo_regimen for r in part], dtype=torch.float64)
        theta = torch.as_tensor(np.stack([r.theta for r in part]), dtype=torch.float64)
        with torch.no_grad():
            out = model(inp, theta)
        alc.append(out.alc.numpy())
        phys.append(np.stack([s.physical(theta[:, j]).numpy() for j, s in enumerate(specs)], 1))
        # the two-population core reports its lowered set point; otherwise the last day's ALC
        last = getattr(out, "final_baseline_alc", None)
        final.append((out.alc[:, -1] if last is None else last).numpy())
    return np.concatenate(alc), np.concatenate(phys), np.concatenate(final)


def describe_truth(core: str) -> str:
    """Markdown: how the truth differs from the hybrid's model, and its tuning history."""
    _check(core)
    sd = random_effect_sd(core)
    re = ", ".join(f"`{n}` {v:.2f}" for n, v in zip(truth_names(core), sd) if v > 0)
    if core == "two_population":
        kinetics = ("**Truth kinetics: `two_population`, the hybrid's own core** (a correctly "
                    "specified control). A hybrid that adjusts its parameters per patient can "
                    "represent every systematic effect below except the shape of the dose "
                    "effects; do not read a win on this truth as evidence.")
    else:
        kinetics = ("**Truth kinetics: `recirculation`, not the hybrid's core.** The hybrid's "
                    "kinetics layer (two-population) has no resident lymphoid compartments "
                    "refilled by recirculation, no marrow production capacity that falls with "
                    "marrow dose, and one chemotherapy rate for all regimens; the truth has all "
                    "three, at the recirculation core's literature calibration "
                    "(`resources/recirculation_theta.json`, fitted before any benchmark).")
    return "\n".join([
        kinetics, "",
        "theta = theta_pop + theta_re + theta_cov + theta_dose (theta units of the truth core).",
        f"**Random effect** `theta_re` ~ N(0, sd^2), sd: {re}"
        + (" (published between-person spreads where found: `lymphonet.twin.truth."
           "RANDOM_EFFECT_LOG_SD`)." if core != "two_population" else "."),
        "",
        ("**Tuning history (say it when it changes).** Before issue 15 the truth was the "
        "two-population core, its random effects had been halved and its effects re-centred "
        "after the hybrid existed, so that covariate and dose-location signal was learnable. "
        "Since issue 15 the default truth is the recirculation core at its literature "
        "calibration, the random effects come from published spreads (not shrunk), and the "
        "reactive-nodes (image-only) effect was added; none of it was tuned after seeing a "
        "benchmark result."),
    ])


def effects_record(core: str, cov, dose) -> dict:
    """The truth's settings and coefficients as a JSON-able dict (written beside the cohort)."""
    from dataclasses import asdict

    from lymphonet.twin.dose_effects import NODE_STATION_WEIGHT

    names = truth_names(core)
    return {"truth": core,
            "population_theta": dict(zip(names, population_theta(core).tolist())),
            "random_effect_sd": dict(zip(names, random_effect_sd(core).tolist())),
            "covariates": asdict(cov), "dose": asdict(dose),
            "node_station_weight": dict(NODE_STATION_WEIGHT)}
