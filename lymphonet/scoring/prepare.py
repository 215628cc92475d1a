"""One manifest row -> the model inputs of one plan (the scorer's read, reduce, resample step).

The plan is read by the one plan reader (:func:`lymphonet.io.plan.read_plan`), reduced to plan
features (:func:`lymphonet.dosimetry.plan_features.features_of_plan`), resampled onto the
bundle's input grid (:mod:`lymphonet.data.images`: the numpy fast path by default, torchio on
request) and turned into batch-contract arrays by :func:`lymphonet.data.batch.plan_arrays`, the
builder the training dataset uses too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from lymphonet.data.batch import plan_arrays
from lymphonet.data.images import image_from_plan, resample_fast
from lymphonet.dosimetry.plan_features import features_of_plan
from lymphonet.dosimetry.red_marrow import RED_MARROW_SHARE, SITE_PREFIX, age_note
from lymphonet.io.plan import read_plan

Backend = Literal["torch", "onnx", "torchscript"]


@dataclass(frozen=True)
class ScoreOptions:
    """Scoring switches.

    Attributes:
        backend: Network runtime: eager ``torch``, ``onnx`` (ONNX Runtime) or ``torchscript``.
        resampler: ``fast`` (numpy, same grid as training) or ``torchio`` (training code path).
        particles: Blood-dose particles per plan; None = the value the model was trained with.
        trajectories: Also return the daily trajectory with its 90% band.
        alc_unit: Unit of ``baseline_alc`` when the manifest has no unit column (None = 10^9/L).
        level: Central coverage of the intervals.
        max_dose_gy: Plausibility limit of a course's maximum dose (Gy); None = the model's.
        prescription_check: Refuse plans whose dose disagrees with their prescription
            (:func:`lymphonet.io.plan.check_dose_consistency`); off, they are scored with a warning.
        engine: ``local`` (this process or a process pool) or ``ray`` (Ray Data actors,
            :mod:`lymphonet.scoring.ray_engine`); the numbers do not depend on it.
        address: Ray cluster address for ``engine="ray"`` (None: a local Ray instance).
    """

    backend: Backend = "torch"
    resampler: Literal["fast", "torchio"] = "fast"
    particles: int | None = None
    trajectories: bool = False
    alc_unit: str | None = None
    level: float = 0.9
    max_dose_gy: float | None = None
    prescription_check: bool = True
    engine: Literal["local", "ray"] = "local"
    address: str | None = None


@dataclass
class PreparedPlan:
    """Model inputs of one plan (no batch dim) plus the summaries written to the output."""

    image: np.ndarray        # [C, D, H, W] float32, channel 0 = dose / dose_scale_gy
    clinical: np.ndarray     # [F]
    dose_summary: np.ndarray  # [S]
    kinetics: dict[str, np.ndarray]  # schedule + dose-quantile arrays of the batch contract
    mean_body_dose_gy: float
    edic_gy: float
    mean_blood_dose_gy: float  # course total (per-fraction mean x fractions)
    warnings: list[str] = field(default_factory=list)  # what was assumed for this plan


def prepare_plan(record, root: Path, bundle, options: ScoreOptions = ScoreOptions(),
                 timings: dict[str, float] | None = None) -> PreparedPlan:
    """Read, reduce and resample one plan into the bundle's input space.

    Args:
        record: A validated :class:`~lymphonet.schema.PlanRecord`.
        root: Manifest folder (for extra relative paths such as ``targets_path``).
        bundle: Loaded :class:`~lymphonet.bundle.export.Bundle`.
        options: Scoring options (particles, resampler).
        timings: If given, seconds per stage are added to it (read, features, resample, ...).
    """
    cfg, pid = bundle.data_config, record.patient_id
    t = [time.perf_counter()]
    plan = read_plan(record, root, default_beam_on_time_s=cfg.default_beam_on_time_s,
                     max_dose_gy=options.max_dose_gy or cfg.max_dose_gy,
                     check_prescription=options.prescription_check)
    t.append(time.perf_counter())
    feats = features_of_plan(plan, n_quantiles=cfg.n_quantiles,
                             particles=options.particles or cfg.blood_particles,
                             seed=cfg.feature_seed)
    t.append(time.perf_counter())
    if options.resampler == "torchio":
        image = image_from_plan(plan.dose, plan.structures, cfg, pid)[0]
    else:
        image = resample_fast(plan.dose, plan.structures, cfg, pid)
    image[0] = image[0].astype(np.float16).astype(np.float32) / cfg.dose_scale_gy  # as cached
    t.append(time.perf_counter())
    kin = plan_arrays(record, feats, len(record.fraction_days))
    summary = kin.pop("dose_summary")
    n_s = bundle.metadata["inputs"]["model_inputs"].get("n_dose_summary", 0)
    prepared = PreparedPlan(image, bundle.encoder.transform([record])[0], summary[:n_s], kin,
                            feats.mean_body_dose_gy, feats.edic_gy,
                            feats.mean_blood_dose_gy * record.n_fractions,
                            plan_warnings(record, plan, bundle.encoder,
                                          bundle.model.cfg.n_days) + list(feats.notes))
    if timings is not None:
        for name, a, b in zip(("read", "features", "resample"), t, t[1:]):
            timings[name] = timings.get(name, 0.0) + b - a
    return prepared


#: Days after the last fraction the model's horizon should still cover (nadirs typically fall
#: within a few weeks of the end of RT).
HORIZON_MARGIN_DAYS = 30


def plan_warnings(record, plan, encoder, horizon_days: int) -> list[str]:
    """What the score of this plan rests on that the plan did not say (documented warnings)."""
    out = []
    last = float(record.fraction_days[-1])
    if last + HORIZON_MARGIN_DAYS > horizon_days - 1:
        out.append(f"the course ends on day {last:g}, within {HORIZON_MARGIN_DAYS} days of the "
                   f"model's {horizon_days}-day horizon: the nadir may lie beyond it")
    site = (record.site or "").strip().lower()
    if site not in encoder.sites[:-1]:
        out.append(f"site {record.site or '(none)'!r} is not one the model was trained on: "
                   "encoded as 'other'")
    bones = [n for n, m in plan.structures.masks.items()
             if (n == "bone_marrow" or n.startswith(SITE_PREFIX)) and m.any()]
    named = {n[len(SITE_PREFIX):] in RED_MARROW_SHARE for n in bones if n != "bone_marrow"}
    for by_site in sorted(named | ({False} if "bone_marrow" in bones else set()), reverse=True):
        note = age_note(record.age, by_site=by_site)  # named sites, or bone by the volume rule
        out += [note] if note else []
    if plan.beam_on_assumed:
        out.append(f"beam-on time assumed {plan.beam_on_time_s:g} s per fraction (the manifest "
                   "gives none)")
    out += list(plan.notes)
    return out
