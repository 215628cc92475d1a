"""Dosimetry: DVH statistics, mean body dose and EDIC from a dose volume and its structures.

Pure numpy (no torchio, no mlflow). Blood-dose modules live here too but are imported from their own
modules, not re-exported.
"""

from lymphonet.dosimetry.dvh import (
    DVH,
    cumulative_dvh,
    dose_histogram,
    dvh_stats,
    dvh_table,
    mean_body_dose_gy,
)
from lymphonet.dosimetry.edic import edic_body_coefficient, edic_from_structures, edic_gy

__all__ = [
    "DVH",
    "cumulative_dvh",
    "dose_histogram",
    "dvh_stats",
    "dvh_table",
    "edic_body_coefficient",
    "edic_from_structures",
    "edic_gy",
    "mean_body_dose_gy",
]
