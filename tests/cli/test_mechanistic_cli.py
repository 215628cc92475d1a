"""simulate, blood-dose and demo commands end to end."""

import json

import pandas as pd
import pytest

from lymphonet.cli import main


def test_simulate_on_real_anatomy(openkbp_case, tmp_path, capsys):
    out, png = tmp_path / "traj.csv", tmp_path / "traj.png"
    args = ["simulate", "--dose", str(openkbp_case / "dose.nii.gz"), "--structures",
            str(openkbp_case / "labels.nii.gz"), "--fractions", "35", "--beam-on-time", "120",
            "--baseline-alc", "1.8", "--particles", "10000", "--days", "200", "--out", str(out),
            "--plot", str(png)]
    assert main(args) == 0
    traj = pd.read_csv(out)
    assert list(traj.columns) == ["day", "alc", "grade"] and len(traj) == 200
    assert traj["alc"].iloc[0] == pytest.approx(1.8, rel=1e-3)
    assert traj["alc"].min() < 1.8 and png.exists()
    assert "nadir" in capsys.readouterr().out
    # Longer beam-on exposes more blood: the nadir can only fall (Shin 2021 trend).
    slow = tmp_path / "slow.csv"
    assert main(args[:8] + ["600"] + args[9:-4] + ["--out", str(slow)]) == 0
    assert pd.read_csv(slow)["alc"].min() <= traj["alc"].min() + 1e-3


def test_simulate_rejects_bad_schedule(openkbp_case, tmp_path, capsys):
    code = main(["simulate", "--dose", str(openkbp_case / "dose.nii.gz"), "--structures",
                 str(openkbp_case / "labels.nii.gz"), "--fractions", "3", "--fraction-days",
                 "0,1", "--beam-on-time", "60", "--baseline-alc", "1.5", "--out",
                 str(tmp_path / "t.csv")])
    assert code == 2 and "--fraction-days" in capsys.readouterr().err


def test_blood_dose_json(capsys):
    assert main(["blood-dose", "--organ-dose", "lung=2.0", "--beam-on-time", "10", "--sex", "F",
                 "--particles", "20000", "--seed", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("mean_gy", "fraction_any_dose", "d2_gy", "particles", "seconds"):
        assert key in result
    assert 0 < result["fraction_any_dose"] < 1 and result["particles"] == 20000


def test_demo_runs_end_to_end(tmp_path):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    summary = pd.read_csv(tmp_path / "demo" / "summary.csv").set_index("plan")
    assert summary.loc["proton", "mean_body_dose_gy"] < summary.loc["photon", "mean_body_dose_gy"]
    assert summary.loc["proton", "predicted_nadir"] > summary.loc["photon", "predicted_nadir"]
    assert (tmp_path / "demo" / "trajectories.png").exists()
    assert (tmp_path / "demo" / "structures" / "body.nii.gz").exists()


def test_fit_kinetics_on_a_simulated_cohort(tmp_path, capsys):
    from lymphonet.kinetics.simulate import load_theta
    from lymphonet.twin.cohort import simulate_cohort

    out = tmp_path / "cohort"
    simulate_cohort(6, "lung", "photon", seed=2, out_dir=out, spacing_mm=8.0, particles=2000,
                    progress=False)
    params = tmp_path / "params.json"
    code = main(["fit-kinetics", "--manifest", str(out / "manifest.csv"), "--labs",
                 str(out / "labs.csv"), "--fit", "alpha_per_gy,baseline_loss", "--particles",
                 "2000", "--max-iter", "30", "--out", str(params)])
    assert code == 0
    fit = json.loads(params.read_text())
    assert fit["names"] == ["alpha_per_gy", "baseline_loss"] and fit["n_patients"] == 6
    assert all(s > 0 for s in fit["theta_sd"]) and fit["n_observations"] > 30
    assert "alpha_per_gy" in capsys.readouterr().out
    assert load_theta(params).abs().sum() > 0  # usable by `lymphonet simulate --params`
    bad = main(["fit-kinetics", "--manifest", str(out / "manifest.csv"), "--labs",
                str(out / "labs.csv"), "--fit", "nonsense", "--out", str(params)])
    assert bad == 2
