"""The command line: every subcommand has --help; dvh and inspect work on real cases."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from lymphonet.cli import build_parser, main

SUBCOMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


def test_expected_subcommands_are_registered():
    assert {"dvh", "inspect", "blood-dose"} <= set(SUBCOMMANDS)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: lymphonet" in capsys.readouterr().out


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "lymphonet", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("lymphonet ")


def test_dvh_matches_reference_table(breast_boost, tmp_path):
    out = tmp_path / "dvh.csv"
    code = main(["dvh", "--dose", str(breast_boost / "rtdose.dcm"), "--structures",
                 str(breast_boost / "rtss.dcm"), "--raw-names", "--out", str(out)])
    assert code == 0
    ours = pd.read_csv(out).set_index("structure")
    ref = pd.read_csv(breast_boost / "reference_dvh.csv").set_index("name")
    for name in ["BODY", "Heart", "Lt Lung", "Breast", "Tumor Bed Block"]:
        assert ours.loc[name, "mean_gy"] == pytest.approx(ref.loc[name, "mean_gy"], rel=0.01), name
        assert ours.loc[name, "volume_cc"] == pytest.approx(ref.loc[name, "volume_cc"],
                                                            rel=0.02), name
        assert ours.loc[name, "max_gy"] == pytest.approx(ref.loc[name, "max_gy"], abs=0.05), name
    for column in ["d95_gy", "d2cc_gy", "v5gy_cc", "min_gy"]:
        assert column in ours.columns
    assert bool(ours.loc["Areola", "empty"]) is True


def test_dvh_canonical_names(breast_boost, tmp_path):
    out = tmp_path / "dvh.csv"
    assert main(["dvh", "--dose", str(breast_boost / "rtdose.dcm"), "--structures",
                 str(breast_boost / "rtss.dcm"), "--out", str(out)]) == 0
    names = set(pd.read_csv(out)["structure"])
    assert {"body", "heart", "lung_left", "target"} <= names


def test_dvh_on_nifti_label_map(openkbp_case, tmp_path):
    out = tmp_path / "dvh.csv"
    assert main(["dvh", "--dose", str(openkbp_case / "dose.nii.gz"), "--structures",
                 str(openkbp_case / "labels.nii.gz"), "--out", str(out)]) == 0
    table = pd.read_csv(out).set_index("structure")
    assert table.loc["body", "volume_cc"] > 1000
    assert 66 < table.loc["PTV70", "mean_gy"] < 75


def test_inspect_json_has_no_identifiers(breast_boost, capsys):
    assert main(["inspect", str(breast_boost), "--json"]) == 0
    text = capsys.readouterr().out
    items = json.loads(text)
    modalities = {item.get("modality") for item in items}
    assert {"RTDOSE", "RTSTRUCT", "RTPLAN", "CT"} <= modalities
    # The case's (already anonymised) identifiers must not be echoed.
    assert "123456" not in text and "boost" not in text.lower().replace("breast-boost", "")


def test_bad_input_exits_2_with_clear_message(breast_boost, tmp_path, capsys):
    code = main(["dvh", "--dose", str(breast_boost / "ct.0.dcm"), "--structures",
                 str(breast_boost / "rtss.dcm")])
    assert code == 2
    err = capsys.readouterr().err
    assert "ct.0.dcm" in err and "Modality" in err
    missing = main(["dvh", "--dose", str(tmp_path / "nope.nii.gz"), "--structures",
                    str(tmp_path / "nope.nii.gz")])
    assert missing == 2
