"""The batch contract: what one plan looks like to the model, built in one place.

:class:`Batch` names every key with its shape, dtype and unit; :func:`plan_item` builds the item of
one plan (training dataset and scorer alike) from its record, plan features and labs, and
:func:`kinetics_inputs` turns a collated batch into the kinetics layer's inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, TypedDict

import numpy as np
import pandas as pd
import torch

from lymphonet.dosimetry.plan_features import SUMMARY_ORGANS, PlanFeatures
from lymphonet.errors import InputError
from lymphonet.kinetics.schedule import CHEMO_CODES, KineticsInputs, regimen_code
from lymphonet.organs import LYMPHOID_ORGANS
from lymphonet.schema import PlanRecord

#: Organs whose course mean dose is a dose-summary column (SUMMARY_ORGANS + other lymphoid organs;
#: the body remainder is already summarised by the mean body dose).
SUMMARY_MEAN_ORGANS: tuple[str, ...] = SUMMARY_ORGANS + tuple(
    o for o in LYMPHOID_ORGANS if o not in SUMMARY_ORGANS and o != "body")
#: Columns of ``dose_summary``.
DOSE_SUMMARY_NAMES: tuple[str, ...] = (
    ("mean_body_dose_gy", "edic_gy", "edic_missing", "mean_blood_dose_gy_per_fx",
     "fraction_blood_any_dose")
    + tuple(f"mean_{o}_gy" for o in SUMMARY_MEAN_ORGANS)
    + tuple(f"has_{o}" for o in SUMMARY_MEAN_ORGANS))


def dose_summary(features: PlanFeatures) -> np.ndarray:
    """``[S]`` float32 dose summaries (columns :data:`DOSE_SUMMARY_NAMES`; Gy, not standardised;
    missing EDIC or organ -> 0 with its indicator)."""
    edic_ok = math.isfinite(features.edic_gy)
    means = [features.organ_mean_gy.get(o, 0.0) for o in SUMMARY_MEAN_ORGANS]
    has = [float(o in features.organ_mean_gy) for o in SUMMARY_MEAN_ORGANS]
    return np.asarray([features.mean_body_dose_gy, features.edic_gy if edic_ok else 0.0,
                       0.0 if edic_ok else 1.0, features.mean_blood_dose_gy,
                       features.fraction_blood_any_dose, *means, *has], np.float32)


def schedule_arrays(record: PlanRecord, beam_on_s: float, k_max: int) -> dict[str, np.ndarray]:
    """Fraction days ``[K]`` (padding repeats the last day), mask ``[K]``, beam-on ``[K]`` (s,
    padding 0), chemo code (unknown -> none), regimen class (unknown -> unspecified) and baseline
    ALC (10^9/L)."""
    days = np.asarray(record.fraction_days, np.float32)
    if days.size > k_max:
        raise InputError(f"{days.size} fractions exceed max_fractions={k_max}",
                         patient=record.patient_id, field="n_fractions")
    out_days = np.full(k_max, days[-1], np.float32)
    out_days[: days.size] = days
    mask = np.arange(k_max) < days.size
    return {"fraction_days": out_days, "fraction_mask": mask,
            "beam_on_s": np.where(mask, beam_on_s, 0.0).astype(np.float32),
            "chemo": np.int64(CHEMO_CODES.get(record.chemo or "none", 0)),
            "chemo_regimen": np.int64(regimen_code(record.chemo_regimen, record.chemo)),
            "baseline_alc": np.float32(record.baseline_alc)}


def labs_by_plan(labs: pd.DataFrame, plans: Sequence[PlanRecord]) -> list[pd.DataFrame]:
    """Each plan's lab rows: rows naming the plan, plus the patient's rows that name no plan."""
    out = []
    by_plan = {k: g for k, g in labs.groupby("plan_id", sort=False, dropna=True)}
    unnamed = labs[labs["plan_id"].isna()]
    by_patient = {k: g for k, g in unnamed.groupby("patient_id", sort=False)}
    empty = labs.iloc[:0]
    for p in plans:
        parts = [g for g in (by_plan.get(p.plan_id), by_patient.get(p.patient_id))
                 if g is not None]
        out.append(pd.concat(parts).sort_values("day", kind="stable") if parts else empty)
    return out


def lab_arrays(rows: pd.DataFrame, m_max: int, obs_after_day: float) -> dict[str, np.ndarray]:
    """Observed draws after ``obs_after_day``, padded to ``[M]`` (days and ALC 0 in padding)."""
    sel = rows[rows["day"].to_numpy(float) > obs_after_day]
    days = sel["day"].to_numpy(np.float32)[:m_max]
    alc = sel["alc"].to_numpy(np.float32)[:m_max]
    out_d, out_a = np.zeros(m_max, np.float32), np.zeros(m_max, np.float32)
    out_d[: days.size], out_a[: alc.size] = days, alc
    return {"obs_days": out_d, "obs_alc": out_a, "obs_mask": np.arange(m_max) < days.size}


def n_observations(rows: pd.DataFrame, obs_after_day: float) -> int:
    """Number of draws after ``obs_after_day``."""
    return int((rows["day"].to_numpy(float) > obs_after_day).sum())


class Key(NamedTuple):
    """One key of the batch contract: dtype, per-item shape (symbols), unit, required."""

    dtype: torch.dtype
    shape: tuple[str, ...]
    unit: str
    required: bool = True


#: The batch contract, item shapes (a collated batch adds a leading ``B``). Symbols: C image
#: channels, D/H/W grid, F clinical features, S dose summaries, Q quantile levels, L lymphoid
#: organs, K padded fractions, M padded lab draws.
BATCH_KEYS: dict[str, Key] = {
    "image": Key(torch.float32, ("C", "D", "H", "W"), "channel 0 dose / dose_scale_gy; masks 0/1"),
    "clinical": Key(torch.float32, ("F",), "standardised (ClinicalEncoder)"),
    "dose_summary": Key(torch.float32, ("S",), "Gy and 0/1 indicators (DOSE_SUMMARY_NAMES)"),
    "blood_dose_q_gy": Key(torch.float32, ("Q",), "Gy per fraction"),
    "lymphoid_dose_q_gy": Key(torch.float32, ("L", "Q"), "Gy per fraction"),
    "lymphoid_coverage": Key(torch.float32, ("L",), "share of the organ's lymphocytes"),
    "fraction_days": Key(torch.float32, ("K",), "days from the first fraction"),
    "fraction_mask": Key(torch.bool, ("K",), "true for real fractions"),
    "beam_on_s": Key(torch.float32, ("K",), "s per fraction (0 in padding)"),
    "chemo": Key(torch.int64, (), "CHEMO_CODES"),
    "chemo_regimen": Key(torch.int64, (), "index in CHEMO_REGIMENS (0 unspecified)",
                         required=False),
    "baseline_alc": Key(torch.float32, (), "10^9/L"),
    "obs_days": Key(torch.float32, ("M",), "days", required=False),
    "obs_alc": Key(torch.float32, ("M",), "10^9/L", required=False),
    "obs_mask": Key(torch.bool, ("M",), "true for real lab draws", required=False),
    "index": Key(torch.int64, (), "row in the dataset's plans", required=False),
}


class Batch(TypedDict, total=False):
    """A collated batch (a dict at run time; keys, shapes and units in :data:`BATCH_KEYS`)."""

    image: torch.Tensor
    clinical: torch.Tensor
    dose_summary: torch.Tensor
    blood_dose_q_gy: torch.Tensor
    lymphoid_dose_q_gy: torch.Tensor
    lymphoid_coverage: torch.Tensor
    fraction_days: torch.Tensor
    fraction_mask: torch.Tensor
    beam_on_s: torch.Tensor
    chemo: torch.Tensor
    chemo_regimen: torch.Tensor
    baseline_alc: torch.Tensor
    obs_days: torch.Tensor
    obs_alc: torch.Tensor
    obs_mask: torch.Tensor
    index: torch.Tensor


def check_batch(batch: Batch) -> None:
    """Raise InputError if a key is missing, unknown, of another dtype or of inconsistent shape.

    Symbols of :data:`BATCH_KEYS` must take one size across keys; ``B`` leads every key.
    """
    unknown = sorted(set(batch) - set(BATCH_KEYS))
    missing = [k for k, spec in BATCH_KEYS.items() if spec.required and k not in batch]
    if unknown or missing:
        raise InputError(f"batch keys: unknown {unknown}, missing {missing}", field="batch")
    sizes: dict[str, int] = {}
    for key, value in batch.items():
        spec = BATCH_KEYS[key]
        if value.dtype != spec.dtype:
            raise InputError(f"{key} has dtype {value.dtype}, expected {spec.dtype}", field=key)
        if value.dim() != 1 + len(spec.shape):
            raise InputError(f"{key} has shape {tuple(value.shape)}, expected "
                             f"[B, {', '.join(spec.shape)}]", field=key)
        for sym, n in zip(("B", *spec.shape), value.shape):
            if sizes.setdefault(sym, int(n)) != int(n):
                raise InputError(f"{key}: size of {sym} is {n}, elsewhere {sizes[sym]}",
                                 field=key)


def kinetics_inputs(batch: Batch) -> KineticsInputs:
    """:class:`~lymphonet.kinetics.schedule.KineticsInputs` (float32) of a collated batch; the
    one converter used by the model, the losses and the data pipeline (tensors keep their
    device)."""
    return KineticsInputs(
        blood_dose_q_gy=batch["blood_dose_q_gy"].float(),
        fraction_days=batch["fraction_days"].float(),
        fraction_mask=batch["fraction_mask"].bool(),
        baseline_alc=batch["baseline_alc"].float(),
        lymphoid_dose_q_gy=batch["lymphoid_dose_q_gy"].float(),
        lymphoid_coverage=batch["lymphoid_coverage"].float(),
        beam_on_s=batch["beam_on_s"].float(),
        chemo=batch["chemo"].long(),
        chemo_regimen=batch["chemo_regimen"].long() if "chemo_regimen" in batch else None,
    )


def plan_arrays(record: PlanRecord, features: PlanFeatures, k_max: int) -> dict[str, np.ndarray]:
    """The per-plan kinetics arrays of an item (schedule + dose quantiles + dose summary); the
    one builder used by the training dataset and the scorer."""
    out = schedule_arrays(record, features.beam_on_time_s, k_max)
    out.update(blood_dose_q_gy=features.blood_dose_q_gy,
               lymphoid_dose_q_gy=features.lymphoid_dose_q_gy,
               lymphoid_coverage=features.lymphoid_coverage, dose_summary=dose_summary(features))
    return out
