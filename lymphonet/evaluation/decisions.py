"""Decision-oriented scores: net benefit for grade 4 (decision curves) and the compare-plans use
case (the within-patient particle-minus-photon nadir difference, predicted vs true).

* Net benefit at threshold probability ``p_t`` (Vickers & Elkin, Med Decis Making 2006):
  ``NB = TP / n - FP / n * p_t / (1 - p_t)``, a patient flagged when ``p >= p_t``; "treat all"
  and "treat none" (NB = 0) are the references a model must beat.
* Paired plans: a patient with a photon and a particle plan (``--paired`` cohorts). The use case
  is choosing between them, so what matters is the predicted difference of nadirs against the
  true (simulated) one, or the observed one where there is no truth.

Both take patient-bootstrap weights ``w`` ``[R, N]`` (row 0 = the original sample) and return
``[R]`` arrays, like every metric of :mod:`lymphonet.evaluation.tables`.
"""

from __future__ import annotations

import numpy as np

#: Threshold probabilities of grade 4 at which net benefit is tabulated.
NET_BENEFIT_THRESHOLDS = (0.1, 0.2, 0.3)
PARTICLES = ("proton", "carbon")


def net_benefit(y: np.ndarray, p: np.ndarray, threshold: float, w: np.ndarray) -> np.ndarray:
    """``[R]`` net benefit of flagging plans with ``p >= threshold`` (NaN labels left out)."""
    ok = np.isfinite(y) & np.isfinite(p)
    flag = ok & (p >= threshold)
    ww = w * ok[None]
    n = ww.sum(1)
    tp = (w * (flag & (y == 1))[None]).sum(1)
    fp = (w * (flag & (y == 0))[None]).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (tp - fp * threshold / (1.0 - threshold)) / n


def treat_all_net_benefit(y: np.ndarray, threshold: float, w: np.ndarray) -> np.ndarray:
    """``[R]`` net benefit of flagging every plan."""
    return net_benefit(y, np.ones_like(y, float), threshold, w)


def paired_rows(patient_ids, modalities) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(photon, particle)`` of the patients that have both a photon and a particle
    plan (the first of each)."""
    photon, particle = {}, {}
    for i, (pid, mod) in enumerate(zip(patient_ids, modalities)):
        target = photon if mod == "photon" else particle if mod in PARTICLES else None
        if target is not None:
            target.setdefault(str(pid), i)
    both = [pid for pid in photon if pid in particle]
    return (np.array([photon[p] for p in both], int), np.array([particle[p] for p in both], int))


def paired_difference_error(pred_nadir: np.ndarray, ref_nadir: np.ndarray, photon: np.ndarray,
                            particle: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``[R]`` mean |predicted - reference| of (particle - photon) nadir over paired patients,
    each pair weighted by its photon plan's bootstrap weight (both plans move together)."""
    pred = pred_nadir[particle] - pred_nadir[photon]
    ref = ref_nadir[particle] - ref_nadir[photon]
    err = np.abs(pred - ref)
    ok = np.isfinite(err)
    ww = w[:, photon] * ok[None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ww * np.where(ok, err, 0.0)[None]).sum(1) / ww.sum(1)


def decision_values(pred, labels: dict, outcomes, w: np.ndarray
                    ) -> dict[str, tuple[np.ndarray, int]]:
    """metric -> (``[R]``, n): ``net_benefit_g4@<p_t>`` and, with paired plans,
    ``paired_nadir_diff_mae`` (against the true nadirs when the cohort has truth, else the
    observed ones; 10^9/L)."""
    out: dict[str, tuple[np.ndarray, int]] = {}
    y, p = labels["g4"], pred.g4
    n = int((np.isfinite(y) & np.isfinite(p) & (w[0] > 0)).sum())
    if n and np.isfinite(p).any():
        for t in NET_BENEFIT_THRESHOLDS:
            out[f"net_benefit_g4@{t:g}"] = (net_benefit(y, p, t, w), n)
    photon, particle = paired_rows(outcomes.patient_ids, outcomes.modalities)
    sel = w[0][photon] > 0 if len(photon) else np.zeros(0, bool)
    if pred.alc is not None and sel.any():
        ref = outcomes.true_nadir if outcomes.true_nadir is not None else outcomes.nadir
        err = paired_difference_error(pred.alc.min(1), ref, photon, particle, w)
        out["paired_nadir_diff_mae"] = (err, int(sel.sum()))
    return out
