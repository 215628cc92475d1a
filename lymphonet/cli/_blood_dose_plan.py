"""Plan inputs of ``lymphonet blood-dose``: dose, structures, per-beam doses and their timing.

Per-beam doses (``--beam-doses FILE[@START:DURATION],...``) are always checked against the plan
dose (``--dose``): their sum must match it, so a per-fraction map taken for a course one (or the
reverse) cannot pass. Without windows, ``--rtplan`` times them: the plan must be the one the
RTDOSEs reference, state the same number of fractions, and hold each referenced beam once; beams
are delivered in beam-number order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lymphonet.errors import InputError


def parse_beam_doses(text: str) -> list[tuple[str, tuple[float, float] | None]]:
    """``"b1.nii.gz@10:20,b2.dcm"`` -> ``[("b1.nii.gz", (10.0, 20.0)), ("b2.dcm", None)]``."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        path, sep, window = part.rpartition("@")
        if not sep:
            out.append((part, None))
            continue
        try:
            if not path:
                raise ValueError
            start, duration = (float(x) for x in window.split(":"))
        except ValueError:
            raise InputError(f"expected FILE or FILE@START:DURATION, got {part!r}",
                             field="--beam-doses") from None
        out.append((path, (start, duration)))
    timed = {w is not None for _, w in out}
    if len(timed) > 1:
        raise InputError("give a window to every beam dose or to none (then --rtplan times "
                         "them)", field="--beam-doses")
    return out


def _plan_windows(beams, args) -> tuple[list, list, list[str]]:
    """(beams in beam-number order, their windows, notes) from the RTPLAN, cross-checked."""
    from lymphonet.io.dicom_plan import beam_windows_from_plan, read_rtplan

    plan = read_rtplan(args.rtplan, patient=args.patient)
    if plan.n_fractions != args.fractions:
        raise InputError(f"the plan states {plan.n_fractions} fractions, --fractions is "
                         f"{args.fractions}", field="--fractions")
    numbers = []
    for dose in beams:
        refs = dose.metadata.get("ReferencedBeamNumbers") or ()
        name = Path(dose.metadata.get("path", "beam dose")).name
        if len(refs) != 1:
            raise InputError(f"{name}: an RTDOSE referencing exactly one plan beam is needed to "
                             f"time it from the plan (found {len(refs)})", field="--beam-doses")
        uids = dose.metadata.get("ReferencedRTPlanSOPInstanceUIDs") or ()
        if plan.sop_instance_uid and uids and plan.sop_instance_uid not in uids:
            raise InputError(f"{name} references another plan than --rtplan", field="--rtplan")
        numbers.append(refs[0])
    if len(set(numbers)) != len(numbers):
        raise InputError("two beam doses reference the same plan beam", field="--beam-doses")
    order = np.argsort(numbers)
    ordered = [beams[i] for i in order]
    windows = beam_windows_from_plan(plan, [numbers[i] for i in order], args.beam_gap)
    note = (f"beam windows from the plan's metersets and dose rates (a lower bound for modulated "
            f"beams), beams in beam-number order with an assumed {args.beam_gap:g} s between "
            "them")
    return ordered, windows, [note]


def read_beam_doses(args, dose) -> dict:
    """Per-beam maps (course Gy), their windows and notes, checked against the plan dose."""
    from lymphonet.io.loaders import read_dose

    if dose is None:
        raise InputError("--beam-doses needs --dose (the plan dose they must add up to)",
                         field="--beam-doses")
    specs = parse_beam_doses(args.beam_doses)
    beams = [read_dose(path, patient=args.patient, n_fractions=args.fractions, beam=True)
             for path, _ in specs]
    for b in beams:
        dose.require_same_grid(b, "beam dose", patient=args.patient)
    total = sum(np.asarray(b.array, np.float64) for b in beams)
    if not np.allclose(total, dose.array, rtol=0.02, atol=0.01 * float(dose.array.max())):
        raise InputError("the beam doses do not sum to --dose (2% / 1% of max tolerance)",
                         field="--beam-doses")
    if specs[0][1] is not None:
        return {"beam_doses": beams, "beams": [w for _, w in specs], "notes": []}
    if not args.rtplan:
        raise InputError("beam doses without @START:DURATION need --rtplan (its beams give the "
                         "delivery times)", field="--beam-doses")
    ordered, windows, notes = _plan_windows(beams, args)
    return {"beam_doses": ordered, "beams": windows, "notes": notes}


def read_plan_inputs(args):
    """Dose, structures, and the per-beam maps / blood fraction of the dose-map route."""
    from lymphonet.io.loaders import read_dose, read_structures
    from lymphonet.io.plan import check_dose_consistency

    dose = read_dose(args.dose, patient=args.patient, n_fractions=args.fractions)
    extra = read_beam_doses(args, dose) if args.beam_doses else {}
    structures = read_structures(args.structures, dose, structure_map=args.structure_map,
                                 patient=args.patient)
    if "body" in structures:  # the structures must hold the dose
        check_dose_consistency(dose, structures, None, patient=args.patient,
                               structures_file=Path(args.structures).name)
    if args.blood_fraction:
        from lymphonet.io.nifti import read_volume

        extra["blood_fraction"] = read_volume(args.blood_fraction, units="fraction",
                                              patient=args.patient)
    return dose, structures, extra
