"""``lymphonet blood-dose``: per-beam RTDOSEs timed by their RTPLAN, organ DVHs with a tumour."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lymphonet.cli import main


def _beam_doses(case: Path, out: Path) -> list[Path]:
    """Split the plan RTDOSE into 4 BEAM RTDOSEs (interleaved columns), each naming its beam."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(case / "rtdose.dcm")
    stored = ds.pixel_array.astype(np.uint32)
    paths = []
    for beam in range(4):
        part = np.where(np.arange(stored.shape[2]) % 4 == beam, stored, 0).astype("<u4")
        one = ds.copy()
        one.PixelData = part.tobytes()
        one.DoseSummationType = "BEAM"
        ref_beam, group = Dataset(), Dataset()
        ref_beam.ReferencedBeamNumber = beam + 1
        group.ReferencedBeamSequence = Sequence([ref_beam])
        one.ReferencedRTPlanSequence[0].ReferencedFractionGroupSequence = Sequence([group])
        paths.append(out / f"beam{beam + 1}.dcm")
        one.save_as(paths[-1])
    return paths


def _run(args, capsys) -> tuple[int, dict | str]:
    code = main(["blood-dose", *args])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else out.err)


def test_per_beam_rtdoses_are_timed_by_the_plan(breast_boost, tmp_path, capsys):
    beams = _beam_doses(breast_boost, tmp_path)
    common = ["--structures", str(breast_boost / "rtss.dcm"), "--fractions", "7",
              "--unknown-structures", "remainder", "--particles", "5000", "--json"]
    code, out = _run(["--dose", str(breast_boost / "rtdose.dcm"), "--rtplan",
                      str(breast_boost / "rtplan.dcm"), "--beam-doses",
                      ",".join(map(str, beams)), *common], capsys)
    assert code == 0, out
    # the plan's beams: 14.55, 13.05, 13.35, 14.1 s (meterset / dose rate), 30 s apart
    starts = [w[0] for w in out["beam_windows"]]
    durations = [w[1] for w in out["beam_windows"]]
    np.testing.assert_allclose(durations, [14.55, 13.05, 13.35, 14.1], atol=1e-6)
    np.testing.assert_allclose(starts, [0.0, 44.55, 87.6, 130.95], atol=1e-6)
    assert any("assumed 30 s" in n for n in out["notes"])
    assert abs(out["mean_gy"] - out["expected_mean_gy"]) < 0.05 * out["expected_mean_gy"]
    # the same course as one map over the same windows: the same closed-form mean blood dose
    code, one_map = _run(["--dose", str(breast_boost / "rtdose.dcm"), "--beams",
                          ",".join(f"{s}:{d}" for s, d in out["beam_windows"]), *common], capsys)
    assert code == 0
    assert one_map["expected_mean_gy"] == pytest.approx(out["expected_mean_gy"], rel=1e-3)
    # BEAM doses without the plan dose cannot be checked; an incomplete set does not sum up
    code, err = _run(["--rtplan", str(breast_boost / "rtplan.dcm"), "--beam-doses",
                      ",".join(map(str, beams)), *common], capsys)
    assert code == 2 and "--dose" in err
    code, err = _run(["--dose", str(breast_boost / "rtdose.dcm"), "--rtplan",
                      str(breast_boost / "rtplan.dcm"), "--beam-doses",
                      ",".join(map(str, beams[:3])), *common], capsys)
    assert code == 2 and "do not sum" in err
    code, err = _run(["--dose", str(breast_boost / "rtdose.dcm"), "--beam-doses",
                      ",".join(map(str, beams)), *common], capsys)
    assert code == 2 and "--rtplan" in err


def _dvh(path: Path, mean_gy: float) -> Path:
    """A cumulative DVH in HEDOS's format: coverage falls linearly to 0 at 2 x mean (course)."""
    bins = np.linspace(0.0, 2 * mean_gy, 41)
    path.write_text("dose_bins,coverage\n" + "\n".join(
        f"{b},{100 * (1 - b / bins[-1])}" for b in bins))
    return path


def test_organ_dvhs_with_a_tumour_report_both_correlation_ends(tmp_path, capsys):
    lung, tumour = _dvh(tmp_path / "lung.csv", 15.0), _dvh(tmp_path / "tumor.csv", 60.0)
    args = ["--organ-dvh", f"lung={lung},tumor={tumour}", "--fractions", "30", "--beams",
            "10:10", "--sex", "F", "--particles", "20000", "--json"]
    code, err = _run(args, capsys)
    assert code == 2 and "tumor" in err  # a tumour needs its host
    code, out = _run([*args, "--tumor-host", "lung"], capsys)
    assert code == 0, out
    assert set(out["contributions_gy"]) == {"lung", "tumor"}
    assert out["tau_c_s"] == 1.0 and set(out["tau_c_ends"]) == {"0", "inf"}
    ends = out["tau_c_ends"]
    assert ends["0"]["d2_gy"] < out["d2_gy"] < ends["inf"]["d2_gy"]
    for end in ends.values():
        assert end["mean_gy"] == pytest.approx(out["expected_mean_gy"], rel=0.05)


def test_the_cpu_command_does_not_import_torch(tmp_path):
    code = ("import sys; from lymphonet.cli import main; "
            "rc = main(['blood-dose', '--organ-dose', 'lung=1', '--beam-on-time', '5', "
            "'--particles', '1000', '--json']); print('torch' in sys.modules); sys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("args, field", [
    (["--organ-dose", "lung=2", "--blood-fraction", "x.nii.gz", "--beam-on-time", "5"],
     "--blood-fraction"),
    (["--organ-dose", "lung=2", "--beams", "0:5", "--beam-on-time", "5"], "--beams"),
    (["--organ-dose", "lung=2", "--tumor-fraction", "0.3", "--beam-on-time", "5"],
     "--tumor-fraction"),
    (["--organ-dose", "lung=2", "--rtplan", "RP.dcm", "--beam-on-time", "5"], "--rtplan"),
    (["--organ-dose", "lung=2", "--tau-c", "1e-6", "--beam-on-time", "5"], "tau_c"),
    (["--organ-dose", "lung=2", "--tumor-host", "lung", "--beam-on-time", "5"], "tumor_host"),
])
def test_options_the_route_would_ignore_are_refused(args, field, capsys):
    code, err = _run([*args, "--particles", "100"], capsys)
    assert code == 2 and field in err


def test_plan_timing_is_cross_checked(breast_boost, tmp_path, capsys):
    beams = _beam_doses(breast_boost, tmp_path)
    base = ["--dose", str(breast_boost / "rtdose.dcm"), "--structures",
            str(breast_boost / "rtss.dcm"), "--unknown-structures", "remainder",
            "--rtplan", str(breast_boost / "rtplan.dcm"), "--particles", "100", "--json"]
    code, err = _run([*base, "--fractions", "30", "--beam-doses", ",".join(map(str, beams))],
                     capsys)
    assert code == 2 and "7 fractions" in err
    twice = [beams[0], beams[0], beams[1], beams[2]]
    code, err = _run([*base, "--fractions", "7", "--beam-doses", ",".join(map(str, twice))],
                     capsys)
    assert code == 2 and ("same plan beam" in err or "do not sum" in err)
    mixed = f"{beams[0]}@0:10,{beams[1]}"
    code, err = _run([*base, "--fractions", "7", "--beam-doses", mixed], capsys)
    assert code == 2 and "every beam dose or to none" in err
