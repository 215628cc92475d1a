"""`lymphonet dvh` on bad inputs: exit 2 with a message naming the file and field, or a
documented warning; never a traceback, never a confident wrong number."""

import pandas as pd
import pytest

from .conftest import run_cli


def _dvh(corpus, capsys, dose, structures, *extra):
    out = corpus["root"] / "dvh_out.csv"
    out.unlink(missing_ok=True)
    code, _stdout, stderr = run_cli(["dvh", "--dose", corpus[dose], "--structures",
                                    corpus[structures], "--out", out, *extra], capsys)
    return code, stderr, (pd.read_csv(out) if code == 0 else None)


@pytest.mark.parametrize("dose, structures, extra, field, words", [
    ("dose_no_scaling", "breast_rtss", (), "DoseGridScaling", "missing"),
    ("kbp_cgy", "kbp_labels", (), "dose_path", "plausibility limit"),
    ("kbp_zero", "kbp_labels", (), "dose_path", "zero everywhere"),
    ("kbp_nan", "kbp_labels", (), "dose", "NaN"),
    ("dose_fraction", "breast_rtss", (), "DoseSummationType", "FRACTION"),
    ("dose_beam", "breast_rtss", (), "DoseSummationType", "BEAM"),
    ("dose_mgy", "breast_rtss", (), "DoseUnits", "MGY"),
    ("dose_relative", "breast_rtss", (), "DoseUnits", "prescription"),
    ("dose_shifted", "breast_rtss", (), "structures", "do not overlap"),
    ("dose_other_for", "breast_rtss", (), "FrameOfReferenceUID", "another frame of reference"),
    ("dose_truncated", "breast_rtss", (), None, "truncated"),
    ("kbp_dose", "breast_rtss", (), None, "frame of reference"),
    ("breast_ct", "breast_rtss", (), "Modality", "RTDOSE"),
    ("empty", "breast_rtss", (), "dose_path", "empty (0 bytes)"),
    ("folder", "breast_rtss", (), "dose_path", "folder"),
    ("breast_dose", "empty", (), None, "empty (0 bytes)"),
    ("breast_dose", "breast_rtss", ("--fractions", "0"), "--fractions", ">= 1"),
    ("kbp_cgy", "kbp_labels", ("--max-dose-gy", "100"), "dose_path", "100 Gy"),
])
def test_refused_with_file_and_field(corpus, capsys, dose, structures, extra, field, words):
    code, stderr, _ = _dvh(corpus, capsys, dose, structures, *extra)
    assert code == 2, stderr
    assert words.lower() in stderr.lower(), stderr
    if field is not None:
        assert f"field {field!r}" in stderr, stderr
    assert str(corpus["root"]) not in stderr  # no absolute input path in the message


def test_fraction_dose_is_scaled_when_the_fractions_are_given(corpus, capsys):
    code, _, good = _dvh(corpus, capsys, "breast_dose", "breast_rtss")
    code_f, _, scaled = _dvh(corpus, capsys, "dose_fraction", "breast_rtss", "--fractions", "7")
    assert code == code_f == 0
    pd.testing.assert_series_equal(good["mean_gy"], scaled["mean_gy"], rtol=1e-5)


def test_relative_dose_needs_and_uses_the_prescription(corpus, capsys):
    _, _, good = _dvh(corpus, capsys, "breast_dose", "breast_rtss")
    code, _, rel = _dvh(corpus, capsys, "dose_relative", "breast_rtss", "--prescription-gy", "14")
    assert code == 0
    pd.testing.assert_series_equal(good["max_gy"], rel["max_gy"], rtol=1e-5)


def test_labels_named_but_absent_are_a_documented_warning(corpus, capsys):
    code, stderr, table = _dvh(corpus, capsys, "kbp_dose", "kbp_labels_extra", "--raw-names")
    assert code == 0
    assert "warning" in stderr and "Heart" in stderr
    assert bool(table.set_index("structure").loc["Heart", "empty"])


def test_inspect_shows_no_uid_name_id_or_absolute_path(corpus, capsys):
    import re

    from .conftest import BREAST, BREAST_ID, BREAST_NAME

    code, out, _ = run_cli(["inspect", BREAST], capsys)
    assert code == 0 and "rtdose.dcm" in out
    assert not re.search(r"\b[0-2](?:\.\d+){4,}\b", out)
    assert BREAST_NAME not in out.lower() and BREAST_ID not in out and str(BREAST) not in out
