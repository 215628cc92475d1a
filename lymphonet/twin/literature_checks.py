"""Named checks of a kinetics core against the published-cohort table (issue 14, item 6).

Each check has a name, the measured value, its target and whether it passed, so a report, a test or
a benchmark can fail on it. They read a per-row report (columns ``id, site, modality, statistic,
value`` and a prediction column) and the fitted physical parameters.

* ``maclennan_ratio``: predicted mean ALC three months after 24 Gy cranial RT in 20 fractions over
  5 fractions <= 0.55 (published 0.64 / 1.84 = 0.35; MacLennan & Kay, Cancer 41:108, 1978), with the
  ordering 5 > 12 > 20 fractions.
* ``blood_share_physiological``: 1-5% (Westermann & Pabst 1992).
* ``alpha_in_vivo_range``: 0.2-1.0 /Gy (Jin et al. 2020: in vivo 0.4, up to 0.65).
* ``particle_direction`` / ``particle_ratio``: in every photon/particle pair of one study with the
  same statistic, the particle arm is predicted better (lower depletion), and the predicted
  particle/photon ratio is within a factor 1.5 of the published one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lymphonet.twin.literature_table import FRACTION_STATISTICS


@dataclass(frozen=True)
class Check:
    """One named check: measured ``value`` against ``target`` (text), ``passed``."""

    name: str
    value: float
    target: str
    passed: bool
    detail: str = ""


def _maclennan(report: pd.DataFrame, column: str) -> list[Check]:
    rows = report[report["id"].str.startswith("maclennan1978_")]
    pred = {int(r["id"].split("_")[1].rstrip("fx")): float(r[column]) for _, r in rows.iterrows()}
    if not {5, 20} <= set(pred):
        return []
    ratio = pred[20] / pred[5]
    order = all(pred[a] > pred[b] for a, b in zip(sorted(pred), sorted(pred)[1:]))
    return [Check("maclennan_ratio", ratio, "<= 0.55 (published 0.35)", ratio <= 0.55),
            Check("maclennan_order", float(order), "5 > 12 > 20 fractions", order,
                  ", ".join(f"{k} fx {v:.2f}" for k, v in sorted(pred.items())))]


def _pairs(report: pd.DataFrame) -> list[tuple[pd.Series, pd.Series]]:
    """(photon row, particle row) of one study with the same statistic, window and threshold."""
    out = []
    study = report["id"].str.split("_").str[0]
    for _, g in report.assign(study=study).groupby("study"):
        photons = g[g["modality"] == "photon"]
        particles = g[g["modality"] != "photon"]
        for _, ph in photons.iterrows():
            for _, pa in particles.iterrows():
                same = (ph["statistic"] == pa["statistic"]
                        and (pd.isna(ph.get("threshold")) or ph.get("threshold") ==
                             pa.get("threshold")))
                if same:
                    out.append((ph, pa))
    return out


def _particle(report: pd.DataFrame, column: str) -> list[Check]:
    pairs = _pairs(report)
    if not pairs:
        return []
    right, within, notes = 0, 0, []
    for ph, pa in pairs:
        frac = ph["statistic"] in FRACTION_STATISTICS  # fractions of patients: lower is better
        better = pa[column] < ph[column] if frac else pa[column] > ph[column]
        right += bool(better)
        published = pa["value"] / ph["value"] if ph["value"] > 0 else np.nan
        predicted = pa[column] / ph[column] if ph[column] > 0 else np.inf
        ok = np.isfinite(predicted) and 1 / 1.5 <= predicted / published <= 1.5
        within += bool(ok)
        notes.append(f"{ph['id']}/{pa['id']}: published {published:.2f}, predicted "
                     f"{predicted:.2f}")
    n = len(pairs)
    return [Check("particle_direction", right / n, "every pair right", right == n,
                  "; ".join(notes)),
            Check("particle_ratio", within / n, "every pair within a factor 1.5", within == n)]


def named_checks(report: pd.DataFrame, column: str, params: dict[str, float]) -> list[Check]:
    """The named checks of a per-row report column and the fitted physical parameters."""
    checks = _maclennan(report, column)
    if "blood_share" in params:
        share = float(params["blood_share"])
        checks.append(Check("blood_share_physiological", share, "0.01-0.05",
                            0.01 <= share <= 0.05))
    if "alpha_per_gy" in params:
        alpha = float(params["alpha_per_gy"])
        checks.append(Check("alpha_in_vivo_range", alpha, "0.2-1.0 /Gy", 0.2 <= alpha <= 1.0))
    return checks + _particle(report, column)


def checks_table(checks: list[Check]) -> pd.DataFrame:
    """The checks as a table (name, value, target, passed, detail)."""
    return pd.DataFrame([c.__dict__ for c in checks])
