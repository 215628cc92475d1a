"""Lab export -> labs table: recognition, units, day axis, baseline."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lymphonet.errors import InputError
from lymphonet.ingest.labs import LabConfig, baseline_alc, convert_labs
from lymphonet.ingest.pseudonym import Pseudonymizer

PSEUDO = Pseudonymizer(b"s" * 32)
P1, P2 = PSEUDO.patient("001"), PSEUDO.patient("002")
HEADER = "patient_id,datetime,test,code,value,unit,first_fraction_date\n"


def _labs(tmp_path, body: str, **kw):
    path = tmp_path / "labs.csv"
    path.write_text(HEADER + body)
    return convert_labs(path, PSEUDO, **kw)


def _alc(result, patient, day):
    t = result.table
    hit = t[(t["patient_id"] == patient) & (t["day"].sub(day).abs() < 1e-9)]
    assert len(hit) == 1, t
    return float(hit["alc"].iloc[0])


@pytest.mark.parametrize(("value", "unit", "alc"), [
    ("1500", "cells/uL", 1.5), ("1500", "/mm3", 1.5), ("1.5", "10^9/L", 1.5),
    ("1.5", "10*3/uL", 1.5), ("1.5", "K/µL", 1.5), ("1,5", "G/L", 1.5), ("<0.2", "10^9/L", 0.2),
])
def test_absolute_counts_are_converted_to_1e9_per_litre(tmp_path, value, unit, alc):
    result = _labs(tmp_path, f'001,2024-03-05 08:00,Lymphocytes,,"{value}",{unit},2024-03-04\n')
    assert _alc(result, P1, 1 + 8 / 24) == pytest.approx(alc)
    assert result.table["source"].tolist() == ["absolute"]


def test_percent_times_wbc_and_absolute_wins(tmp_path):
    result = _labs(tmp_path, (
        "001,2024-03-01 08:00,Lymph%,,20,%,2024-03-04\n"
        "001,2024-03-01 08:00,WBC,,5.0,10^9/L,2024-03-04\n"
        "001,2024-03-08 08:00,Lymphocytes,,30,%,2024-03-04\n"     # generic name, % unit
        "001,2024-03-08 08:00,Leukocytes,,4000,cells/uL,2024-03-04\n"
        "001,2024-03-08 08:00,Lymphocytes,,1.3,10^9/L,2024-03-04\n"  # absolute at same time
        "001,2024-03-09 08:00,Lymph%,,25,%,2024-03-04\n"          # no WBC -> reported
    ))
    assert _alc(result, P1, -3 + 8 / 24) == pytest.approx(0.20 * 5.0)
    assert _alc(result, P1, 4 + 8 / 24) == pytest.approx(1.3)  # not 0.30 x 4.0
    assert len(result.table) == 2
    codes = {(i.code, i.count) for i in result.issues}
    assert ("lab_rows_unusable", 1) in codes


def test_loinc_codes_recognise_tests_without_names(tmp_path):
    result = _labs(tmp_path, (
        "001,2024-03-02,,736-9,10,%,2024-03-04\n"
        "001,2024-03-02,,6690-2,8.0,10^3/uL,2024-03-04\n"
        "001,2024-03-06,,731-0,700,cells/uL,2024-03-04\n"
        "001,2024-03-06,Haemoglobin,718-7,13.1,g/dL,2024-03-04\n"
    ))
    assert _alc(result, P1, -2) == pytest.approx(0.8)
    assert _alc(result, P1, 2) == pytest.approx(0.7)
    assert result.counts["lab_rows_other_tests"] == 1


def test_unknown_or_missing_units_are_reported_not_guessed(tmp_path):
    result = _labs(tmp_path, (
        "001,2024-03-02,Lymphocytes,,1.2,mg/dL,2024-03-04\n"
        "001,2024-03-03,Lymphocytes,,1200,,2024-03-04\n"
        "002,2024-03-03,Lymphocytes,,abc,10^9/L,2024-03-04\n"
    ))
    assert result.table.empty
    messages = " | ".join(i.message for i in result.issues)
    assert "'mg/dl' not converted" in messages and "'(missing)'" in messages
    assert "not a number" in messages
    assert {i.patient_id for i in result.issues} == {P1, P2}


def test_day_axis_from_start_dates_and_missing_day0(tmp_path):
    path = tmp_path / "labs.csv"
    path.write_text("MRN,Collected,Test,Result,Units\n"
                    "001,2024-01-10 12:00,ALC,1.1,10^9/L\n"
                    "002,2024-01-10 12:00,ALC,1.1,10^9/L\n")
    result = convert_labs(path, PSEUDO, start_dates={"001": "2024-01-01"})
    assert _alc(result, P1, 9.5) == pytest.approx(1.1)
    assert [(i.code, i.patient_id) for i in result.issues] == [("no_day0", P2)]
    assert result.raw_ids == {"001": P1, "002": P2}


def test_day_column_and_baseline_window(tmp_path):
    path = tmp_path / "labs.csv"
    path.write_text("patient_id,day,test,value,unit\n"
                    "001,-20,lymphocytes,2.0,10^9/L\n001,-5,lymphocytes,1.8,10^9/L\n"
                    "001,0,lymphocytes,1.6,10^9/L\n001,3,lymphocytes,0.9,10^9/L\n"
                    "002,-20,lymphocytes,2.0,10^9/L\n002,2,lymphocytes,1.0,10^9/L\n")
    result = convert_labs(path, PSEUDO)
    base = baseline_alc(result.table, window_days=14)
    assert base.loc[P1, "baseline_alc"] == pytest.approx(1.6)
    assert base.loc[P1, "baseline_day"] == 0
    assert P2 not in base.index  # day -20 is outside the window, day 2 is after the start
    assert baseline_alc(result.table, window_days=30).loc[P2, "baseline_alc"] == 2.0


def test_config_from_yaml(tmp_path):
    cfg_path = tmp_path / "labs.yaml"
    cfg_path.write_text("lymphocyte_names: [lymfocyty]\nbaseline_window_days: 7\n")
    cfg = LabConfig.from_yaml(cfg_path)
    assert cfg.lymphocyte_names == ("lymfocyty",) and math.isclose(cfg.baseline_window_days, 7)
    result = _labs(tmp_path, "001,2024-03-01,Lymfocyty,,1.0,10^9/L,2024-03-04\n", config=cfg)
    assert _alc(result, P1, -3) == 1.0
    cfg_path.write_text("lymphocyte_name: [x]\n")
    with pytest.raises(InputError, match="unknown keys"):
        LabConfig.from_yaml(cfg_path)


def test_missing_value_column_is_an_input_error(tmp_path):
    path = tmp_path / "labs.csv"
    pd.DataFrame({"patient_id": ["1"], "test": ["ALC"]}).to_csv(path, index=False)
    with pytest.raises(InputError) as err:
        convert_labs(path, PSEUDO)
    assert err.value.field == "value"
