"""Named checks of a kinetics core against published cohorts (logic on hand-made reports)."""

from __future__ import annotations

import pandas as pd

from lymphonet.twin.literature_checks import checks_table, named_checks


def _report(mac, eso_photon, eso_proton):
    rows = [{"id": f"maclennan1978_{n}fx", "site": "whole_brain", "modality": "photon",
             "statistic": "mean_alc", "value": v, "threshold": float("nan"), "pred": p}
            for (n, v), p in zip({5: 1.84, 12: 1.12, 20: 0.64}.items(), mac)]
    rows += [{"id": "shiraishi2018_imrt", "site": "esophagus", "modality": "photon",
              "statistic": "fraction_nadir_below", "value": 0.40, "threshold": 0.2,
              "pred": eso_photon},
             {"id": "shiraishi2018_pbt", "site": "esophagus", "modality": "proton",
              "statistic": "fraction_nadir_below", "value": 0.18, "threshold": 0.2,
              "pred": eso_proton}]
    return pd.DataFrame(rows)


def test_checks_pass_when_the_published_pattern_is_reproduced():
    checks = {c.name: c for c in named_checks(_report((1.8, 1.2, 0.7), 0.42, 0.20), "pred",
                                              {"blood_share": 0.02, "alpha_per_gy": 0.45})}
    assert all(c.passed for c in checks.values()), checks_table(list(checks.values()))
    assert checks["maclennan_ratio"].value < 0.55


def test_checks_fail_on_compressed_fractionation_wrong_modality_and_effective_values():
    checks = {c.name: c for c in named_checks(_report((1.53, 1.37, 1.32), 0.20, 0.25), "pred",
                                              {"blood_share": 0.70, "alpha_per_gy": 1.2})}
    failed = {name for name, c in checks.items() if not c.passed}
    assert failed == {"maclennan_ratio", "blood_share_physiological", "alpha_in_vivo_range",
                      "particle_direction", "particle_ratio"}
    assert checks["maclennan_order"].passed  # the ordering is still right
