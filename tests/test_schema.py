"""Tests for lymphonet.schema: pure row validation, schedules and unit conversion."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lymphonet.errors import UnitError
from lymphonet.schema import (
    alc_factor,
    check_alc_unit_stated,
    default_fraction_days,
    parse_fraction_days,
    plan_from_row,
)

GOOD_ROW = {"patient_id": "007", "modality": "Proton", "n_fractions": "5",
            "dose_per_fraction_gy": "5", "baseline_alc": "1.6", "dose_path": "p/dose.nii.gz",
            "sex": "female", "age": "64", "chemo": "Concurrent", "hospital": "A"}


def test_default_fraction_days_are_weekdays():
    days = default_fraction_days(12)
    assert days == (0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 14, 15)
    # every fraction falls on a weekday when day 0 is a Monday
    assert all(d % 7 < 5 for d in default_fraction_days(35))
    assert default_fraction_days(35)[-1] == 7 * 6 + 4


@pytest.mark.parametrize("value", ["0,2,4", "[0, 2, 4]", [0, 2, 4], np.array([0.0, 2.0, 4.0]),
                                   "0; 2; 4"])
def test_parse_fraction_days_forms(value):
    assert parse_fraction_days(value, 3) == (0.0, 2.0, 4.0)


@pytest.mark.parametrize("value, message", [("0,1", "2 fraction days"), ("0,-1,2", ">= 0"),
                                            ("0,3,2", "non-decreasing"), ("a,b,c", "numbers"),
                                            ("[0, 1", "JSON")])
def test_parse_fraction_days_errors(value, message):
    with pytest.raises(ValueError, match=message):
        parse_fraction_days(value, 3)


def test_twice_daily_same_day_allowed():
    assert parse_fraction_days("0,0,1,1", 4) == (0, 0, 1, 1)


def test_alc_units():
    assert alc_factor("cells/uL") == 1e-3 and alc_factor("cells/µL") == 1e-3
    assert alc_factor("10^9/L") == 1.0 and alc_factor("K/uL") == 1.0
    with pytest.raises(ValueError, match="unknown ALC unit"):
        alc_factor("mmol/L")
    check_alc_unit_stated(1.4, what="alc", file="x.csv")  # plausible 10^9/L: no error
    with pytest.raises(UnitError):
        check_alc_unit_stated(1400.0, what="alc", file="x.csv")


def test_good_row_normalised():
    record, errors = plan_from_row(GOOD_ROW, root=Path("/data/cohort"), file="m.csv")
    assert errors == []
    assert record.patient_id == "007" and record.plan_id == "007"
    assert record.modality == "proton" and record.sex == "F" and record.chemo == "concurrent"
    assert record.n_fractions == 5 and record.total_dose_gy == 25.0
    assert record.fraction_days == (0, 1, 2, 3, 4)
    assert record.dose_path == Path("/data/cohort/p/dose.nii.gz")
    assert math.isnan(record.bmi) and math.isnan(record.beam_on_time_s)
    assert record.extras == {"hospital": "A"}


def test_row_collects_every_problem():
    row = {**GOOD_ROW, "modality": "electrons", "n_fractions": "2.5", "age": "130",
           "dose_per_fraction_gy": "40", "baseline_alc": "nan", "sex": "x"}
    record, errors = plan_from_row(row, root=Path("."), file="m.csv", row_label="row 4")
    assert record is None
    fields = {e.field for e in errors}
    assert fields == {"modality", "n_fractions", "age", "dose_per_fraction_gy", "baseline_alc",
                      "sex"}
    assert all(e.patient == "007" and e.file == "m.csv row 4" for e in errors)


def test_row_unit_conversion_and_hint():
    record, _ = plan_from_row({**GOOD_ROW, "baseline_alc": "1600", "alc_unit": "cells/uL"},
                              root=Path("."))
    assert record.baseline_alc == pytest.approx(1.6)
    _, errors = plan_from_row({**GOOD_ROW, "baseline_alc": "1600"}, root=Path("."))
    assert errors[0].field == "baseline_alc" and "cells/uL" in errors[0].message


def test_steroids_column_is_optional_checked_and_normalised():
    yes, errors = plan_from_row({**GOOD_ROW, "steroids": "Y"}, root=Path("."), file="m.csv")
    assert errors == [] and yes.steroids == "yes"
    unknown, _ = plan_from_row(GOOD_ROW, root=Path("."), file="m.csv")
    assert unknown.steroids is None and "steroids" not in unknown.extras
    bad, errors = plan_from_row({**GOOD_ROW, "steroids": "sometimes"}, root=Path("."),
                                file="m.csv")
    assert bad is None and {e.field for e in errors} == {"steroids"}


def test_clinical_encoder_carries_steroids_and_regimen_class():
    import dataclasses

    from lymphonet.data.clinical import ClinicalEncoder

    base, _ = plan_from_row(GOOD_ROW, root=Path("."), file="m.csv")
    plans = [dataclasses.replace(base, steroids="yes", chemo_regimen="cisplatin weekly"),
             dataclasses.replace(base, chemo_regimen="TMZ 75 mg/m2"), base]
    enc = ClinicalEncoder.identity()
    x, names = enc.transform(plans), enc.feature_names
    assert x[0, names.index("steroids=yes")] == 1 and x[0, names.index("regimen=platinum")] == 1
    assert x[1, names.index("steroids=unknown")] == 1
    assert x[1, names.index("regimen=temozolomide")] == 1
    assert x[2, names.index("regimen=unspecified")] == 1
    old = {**enc.to_dict(), "version": 1}
    with pytest.raises(Exception, match="version 1"):
        ClinicalEncoder.from_dict(old)
