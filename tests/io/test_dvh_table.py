"""Cumulative organ DVHs in HEDOS's format: read, checked, and fed to the blood-dose engine."""

import json

import numpy as np
import pytest

from lymphonet.errors import InputError, UnitError
from lymphonet.io.dvh_table import read_cumulative_dvh


def _write(path, dose, coverage):
    path.write_text("dose_bins,coverage\n" + "".join(f"{d},{c}\n" for d, c in zip(dose, coverage)))
    return path


def test_differential_shares_and_mean_match_a_hand_computed_dvh(tmp_path):
    # 100% >= 0 Gy, 60% >= 10 Gy, 20% >= 20 Gy, 0% >= 30 Gy: 40% in [0,10), 40% in [10,20),
    # 20% in [20,30) -> bin mids 5, 15, 25 Gy; mean 0.4*5 + 0.4*15 + 0.2*25 = 13 Gy
    dvh = read_cumulative_dvh(_write(tmp_path / "a.csv", [0, 10, 20, 30], [100, 60, 20, 0]))
    np.testing.assert_allclose(dvh.dose_gy, [5, 15, 25])
    np.testing.assert_allclose(dvh.fraction, [0.4, 0.4, 0.2])
    assert dvh.mean_gy == pytest.approx(13.0)
    assert dvh.per_fraction(10).mean_gy == pytest.approx(1.3)


@pytest.mark.parametrize("dose, coverage, error, words", [
    ([0, 10, 20], [1.0, 0.6, 0.0], UnitError, "fraction"),
    ([0, 10, 20], [100, 70, 80], InputError, "non-increasing"),
    ([0, 20, 10], [100, 70, 0], InputError, "increasing"),
    ([0, 10, 20], [80, 50, 0], InputError, "not 100%"),
    ([0], [100], InputError, "two rows"),
])
def test_bad_dvhs_are_refused(tmp_path, dose, coverage, error, words):
    with pytest.raises(error, match=words):
        read_cumulative_dvh(_write(tmp_path / "b.csv", dose, coverage))


def test_missing_columns_and_files(tmp_path):
    (tmp_path / "c.csv").write_text("dose,volume\n0,100\n10,0\n")
    with pytest.raises(InputError, match="dose_bins"):
        read_cumulative_dvh(tmp_path / "c.csv")
    with pytest.raises(InputError, match="not found"):
        read_cumulative_dvh(tmp_path / "none.csv")


def test_blood_dose_cli_from_organ_dvhs_matches_the_analytic_mean(tmp_path, capsys):
    from lymphonet.cli import main

    lung = _write(tmp_path / "lung.csv", [0, 10, 20, 30], [100, 60, 20, 0])  # mean 13 Gy
    liver = _write(tmp_path / "liver.csv", [0, 30, 60], [100, 50, 0])        # mean 30 Gy
    code = main(["blood-dose", "--organ-dvh", f"lung={lung},liver={liver}", "--fractions", "30",
                 "--beam-on-time", "120", "--particles", "20000", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    # mean blood dose = sum_i V_i D_i, whatever the delivery time (the engine's expectation)
    assert out["mean_gy"] == pytest.approx(out["expected_mean_gy"], rel=0.02)
    assert out["contributions_gy"]["lung"] > 0 and out["contributions_gy"]["liver"] > 0


def test_blood_dose_cli_refuses_bad_dvh_input(tmp_path, capsys):
    from lymphonet.cli import main

    frac = _write(tmp_path / "f.csv", [0, 10], [1.0, 0.0])
    assert main(["blood-dose", "--organ-dvh", f"lung={frac}", "--fractions", "30",
                 "--beam-on-time", "60"]) == 2
    err = capsys.readouterr().err
    assert "field 'coverage'" in err and "percent" in err
    assert main(["blood-dose", "--organ-dvh", "lung", "--beam-on-time", "60"]) == 2
    assert "ORGAN=FILE" in capsys.readouterr().err
