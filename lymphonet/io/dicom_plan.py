"""DICOM RTPLAN / RT Ion Plan reader: fractionation, prescription and a beam-on time estimate.

Beam-on time per fraction is *estimated* from the plan as ``sum_beams BeamMeterset / DoseRateSet``
(MU / (MU/min), DICOM PS3.3 C.8.8.13-14: BeamMeterset is the meterset of one fraction,
DoseRateSet of the first control point the nominal dose rate in MU/min). For dynamic beams
(IMRT/VMAT) the machine may run below the nominal rate, so the estimate is a lower bound; it is
``None`` with ``beam_on_time_status == "unknown"`` (and a reason) when any treatment beam lacks a
meterset or a dose rate (typical for ion plans, whose metersets are in MU or particles without a
dose rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lymphonet.errors import InputError
from lymphonet.io.dicom_common import read_dataset, require_modality

#: RadiationType (DICOM defined terms) -> lymphonet modality. ION is resolved by atomic number.
_RADIATION_MODALITY = {"PHOTON": "photon", "ELECTRON": "electron", "PROTON": "proton",
                       "NEUTRON": "neutron"}
_ION_BY_Z = {1: "proton", 2: "helium", 6: "carbon", 8: "oxygen"}


@dataclass(frozen=True)
class BeamInfo:
    """One treatment beam of a plan (per fraction).

    Attributes:
        name: BeamName (or "beam <number>").
        number: BeamNumber.
        radiation_type: lymphonet modality of the beam ("photon", "proton", "carbon", ...).
        meterset_mu: BeamMeterset of one fraction (MU; for ion beams MU or particles), or None.
        dose_rate_mu_per_min: DoseRateSet of the first control point (MU/min), or None.
        beam_on_time_s: ``meterset_mu / dose_rate_mu_per_min * 60`` (s), or None if unknown.
    """

    name: str
    number: int
    radiation_type: str
    meterset_mu: float | None
    dose_rate_mu_per_min: float | None
    beam_on_time_s: float | None


@dataclass(frozen=True)
class RTPlanInfo:
    """Treatment-schedule facts of an RT plan; holds no patient identifier.

    Attributes:
        n_fractions: NumberOfFractionsPlanned of the first fraction group.
        prescription_gy: Highest TargetPrescriptionDose of the DoseReferenceSequence (Gy, course),
            or None when the plan states none.
        dose_per_fraction_gy: ``prescription_gy / n_fractions``, or None.
        modality: "photon", "proton", "carbon", "electron", ...; "mixed" when beams differ.
        beams: Treatment beams (setup beams excluded).
        beam_on_time_s: Estimated beam-on time of one fraction (s), or None when unknown.
        beam_on_time_status: "estimated" or "unknown".
        beam_on_time_reason: Why the time is unknown (empty when estimated).
        sop_instance_uid: SOPInstanceUID of the plan (links RTDOSE to it).
        notes: Other things a user should know (e.g. extra fraction groups ignored).
    """

    n_fractions: int
    prescription_gy: float | None
    dose_per_fraction_gy: float | None
    modality: str
    beams: tuple[BeamInfo, ...]
    beam_on_time_s: float | None
    beam_on_time_status: str
    beam_on_time_reason: str
    sop_instance_uid: str | None
    notes: tuple[str, ...] = ()


def read_rtplan(path: str | Path, *, patient: str | None = None) -> RTPlanInfo:
    """Read fractionation, prescription, beams and a beam-on time estimate from an RTPLAN.

    Args:
        path: RTPLAN or RT Ion Plan file (Modality ``RTPLAN``).
        patient: Patient id used in error messages only.

    Returns:
        :class:`RTPlanInfo`. Only the first fraction group is used (a note records others).

    Raises:
        InputError: Unreadable/truncated file, wrong Modality, missing or invalid
            ``FractionGroupSequence`` / ``NumberOfFractionsPlanned``, no treatment beam.
    """
    ds = read_dataset(path, patient=patient)
    require_modality(ds, "RTPLAN", path, patient)
    ctx = {"patient": patient, "file": path}
    groups = ds.get("FractionGroupSequence", None) or []
    if not groups:
        raise InputError("plan has no FractionGroupSequence", field="FractionGroupSequence", **ctx)
    group = groups[0]
    n_fractions = _positive_int(group.get("NumberOfFractionsPlanned"), "NumberOfFractionsPlanned",
                                **ctx)
    notes = [] if len(groups) == 1 else [f"{len(groups) - 1} further fraction group(s) ignored"]
    metersets = {int(ref.get("ReferencedBeamNumber", -1)): _float_or_none(ref.get("BeamMeterset"))
                 for ref in group.get("ReferencedBeamSequence", None) or []}

    beams = tuple(_beam(b, metersets) for b in _treatment_beams(ds))
    if not beams:
        raise InputError("plan has no treatment beam", field="BeamSequence", **ctx)
    kinds = {b.radiation_type for b in beams}
    modality = kinds.pop() if len(kinds) == 1 else "mixed"

    missing = [b.name for b in beams if b.beam_on_time_s is None]
    if missing:
        total, status = None, "unknown"
        reason = ("no BeamMeterset or DoseRateSet (first control point) for beam(s) "
                  + ", ".join(missing))
    else:
        total, status, reason = float(sum(b.beam_on_time_s for b in beams)), "estimated", ""

    prescription = _prescription_gy(ds)
    per_fraction = None if prescription is None else prescription / n_fractions
    sop = ds.get("SOPInstanceUID", None)
    return RTPlanInfo(n_fractions, prescription, per_fraction, modality, beams, total, status,
                      reason, None if sop is None else str(sop), tuple(notes))


#: Assumed pause between consecutive beams of a fraction (s) when only the plan is known:
#: gantry / couch moves and mode-up take tens of seconds on C-arm linacs (lymphonet assumption;
#: every use is reported).
DEFAULT_BEAM_GAP_S = 30.0


def beam_windows_from_plan(info: RTPlanInfo, beam_numbers: list[int],
                           gap_s: float = DEFAULT_BEAM_GAP_S) -> list[tuple[float, float]]:
    """Delivery windows ``[(start_s, duration_s)]`` of the given beams, in that order.

    Each beam lasts its estimated beam-on time (BeamMeterset / DoseRateSet); beams follow each other
    with ``gap_s`` between them, the first starting at 0.

    Raises:
        InputError: A beam number the plan does not have, or a beam without a time estimate.
    """
    beams = {b.number: b for b in info.beams}
    out, t = [], 0.0
    for number in beam_numbers:
        if number not in beams:
            raise InputError(f"beam {number} is not a treatment beam of the plan (beams "
                             f"{sorted(beams)})", field="ReferencedBeamNumber")
        seconds = beams[number].beam_on_time_s
        if seconds is None:
            raise InputError(f"beam {number}: the plan gives no meterset or dose rate, so its "
                             "delivery time is unknown; give FILE@START:DURATION instead",
                             field="BeamMeterset")
        out.append((t, float(seconds)))
        t += float(seconds) + float(gap_s)
    return out


def plan_summary(info: RTPlanInfo) -> dict[str, Any]:
    """Summarise ``info`` as a JSON-friendly dict (used by ``inspect_dicom``)."""
    return {
        "n_fractions": info.n_fractions,
        "prescription_gy": info.prescription_gy,
        "dose_per_fraction_gy": info.dose_per_fraction_gy,
        "radiation": info.modality,
        "n_beams": len(info.beams),
        "beams": [{"name": b.name, "meterset_mu": b.meterset_mu,
                   "dose_rate_mu_per_min": b.dose_rate_mu_per_min,
                   "beam_on_time_s": b.beam_on_time_s} for b in info.beams],
        "beam_on_time_s": info.beam_on_time_s,
        "beam_on_time_status": info.beam_on_time_status,
        "beam_on_time_reason": info.beam_on_time_reason,
    }


def _treatment_beams(ds: Any) -> list[Any]:
    beams = list(ds.get("BeamSequence", None) or []) + list(ds.get("IonBeamSequence", None) or [])
    return [b for b in beams
            if str(b.get("TreatmentDeliveryType", "TREATMENT") or "TREATMENT").upper() != "SETUP"]


def _beam(beam: Any, metersets: dict[int, float | None]) -> BeamInfo:
    number = int(beam.get("BeamNumber", -1))
    name = str(beam.get("BeamName", "") or "").strip() or f"beam {number}"
    kind = str(beam.get("RadiationType", "") or "").strip().upper()
    if kind == "ION":
        z = int(beam.get("RadiationAtomicNumber", 0) or 0)
        radiation = _ION_BY_Z.get(z, f"ion Z={z}")
    else:
        radiation = _RADIATION_MODALITY.get(kind, kind.lower() or "unknown")
    points = beam.get("IonControlPointSequence", None) or beam.get("ControlPointSequence", None)
    rate = _float_or_none(points[0].get("DoseRateSet")) if points else None
    meterset = metersets.get(number)
    on_time = None
    if meterset is not None and rate is not None and rate > 0:
        on_time = meterset / rate * 60.0
    return BeamInfo(name, number, radiation, meterset, rate, on_time)


def _prescription_gy(ds: Any) -> float | None:
    """Highest TargetPrescriptionDose (Gy) among the plan's dose references, or None."""
    doses = [_float_or_none(ref.get("TargetPrescriptionDose"))
             for ref in ds.get("DoseReferenceSequence", None) or []]
    doses = [d for d in doses if d is not None and d > 0]
    return max(doses) if doses else None


def _float_or_none(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _positive_int(value: Any, field: str, **ctx: Any) -> int:
    number = _float_or_none(value)
    if number is None or number < 1 or number != int(number):
        raise InputError(f"{field} must be a positive integer, got {value!r}", field=field, **ctx)
    return int(number)
