"""Resumed, killed-and-resumed and concurrent scoring runs: exactly one row per input row, from
the current inputs, and never a finished score behind a half trajectory."""

from __future__ import annotations

import csv
import pickle
import shutil

import pandas as pd
import pytest

from lymphonet.errors import InputError
from lymphonet.scoring import output as score_output
from lymphonet.scoring.output import OutputLock
from lymphonet.scoring.runner import score_manifest

from .conftest import run_cli
from .test_score import COLUMNS, KBP_ROW, _write

N_DAYS = 80  # the bundle's trajectory length


def _manifest(corpus, name="runs.csv", **changes):
    rows = {f"p{i}": {**KBP_ROW, "baseline_alc": 1.2 + 0.1 * i} for i in range(4)}
    for plan, change in changes.items():
        rows[plan].update(change)
    return _write(corpus, corpus["root"] / name, rows)


def _read(path):
    return pd.read_csv(path, dtype={"plan_id": str}, keep_default_na=False)


def test_concurrent_run_is_refused(corpus, bundle, tmp_path):
    out = tmp_path / "scores.csv"
    with OutputLock(out), pytest.raises(InputError, match="another lymphonet run"):
        score_manifest(bundle, _manifest(corpus), out, progress=False)


def test_resume_rescores_an_edited_row_and_replaces_its_old_row(corpus, bundle, tmp_path):
    out = tmp_path / "scores.csv"
    score_manifest(bundle, _manifest(corpus), out, progress=False)
    first = _read(out).set_index("plan_id")
    again = score_manifest(bundle, _manifest(corpus), out, progress=False)
    assert again.n_skipped == 4 and again.n_ok == 0  # nothing changed: nothing re-scored
    edited = _manifest(corpus, p1={"baseline_alc": 0.5}, p2={"dose_path": "kbp_cgy"})
    summary = score_manifest(bundle, edited, out, progress=False)
    assert summary.n_skipped == 2  # p0 and p3 kept
    table = _read(out)
    assert table["plan_id"].tolist() == ["p0_plan", "p1_plan", "p2_plan", "p3_plan"]
    new = table.set_index("plan_id")
    assert float(new.loc["p1_plan", "predicted_nadir"]) < float(first.loc["p1_plan",
                                                                           "predicted_nadir"])
    assert new.loc["p2_plan", "status"] == "error" and "plausibility" in new.loc["p2_plan",
                                                                                 "error"]
    assert new.loc["p1_plan", "input_sha256"] != first.loc["p1_plan", "input_sha256"]


def test_killed_run_resumes_without_a_half_trajectory(corpus, bundle, tmp_path, monkeypatch):
    out, traj = tmp_path / "scores.csv", tmp_path / "traj.csv"
    manifest = _manifest(corpus)
    real_write = score_output.ScoreWriter.write
    calls = {"n": 0}

    def dies_mid_row(self, row, trajectory=None):
        calls["n"] += 1
        if calls["n"] == 3:  # killed after the third plan's trajectory, before its score row
            self._traj.writerows([row["plan_id"], d, 0.1, 0.1, 0.1] for d in range(5))
            self._tfh.flush()
            raise KeyboardInterrupt
        real_write(self, row, trajectory)

    monkeypatch.setattr(score_output.ScoreWriter, "write", dies_mid_row)
    with pytest.raises(KeyboardInterrupt):
        score_manifest(bundle, manifest, out, trajectories=traj, progress=False)
    monkeypatch.setattr(score_output.ScoreWriter, "write", real_write)
    assert len(_read(out)) == 2  # two finished rows on disk, the third never written
    score_manifest(bundle, manifest, out, trajectories=traj, progress=False)
    scores, days = _read(out), pd.read_csv(traj, dtype={"plan_id": str})
    assert scores["plan_id"].tolist() == [f"p{i}_plan" for i in range(4)]
    assert (scores["status"] == "ok").all()
    counts = days.groupby("plan_id")["day"].agg(["count", "nunique", "min", "max"])
    assert (counts["count"] == N_DAYS).all() and (counts["nunique"] == N_DAYS).all()
    assert set(counts.index) == set(scores["plan_id"])


def test_a_second_cli_run_on_a_locked_output_exits_2(corpus, bundle, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    with OutputLock(out):
        code, _, err = run_cli(["score", "--model", bundle, "--manifest", _manifest(corpus),
                                "--out", out], capsys)
    assert code == 2 and "another lymphonet run" in err


def test_pickled_weights_are_refused_without_running_them(bundle, tmp_path, capsys):
    from lymphonet.bundle.load import write_checksums

    bad = tmp_path / "bundle"
    shutil.copytree(bundle, bad)
    marker = tmp_path / "executed"
    payload = pickle.dumps(_Boom(str(marker)))
    (bad / "weights.pt").write_bytes(payload)
    write_checksums(bad)  # a tamperer recomputes the checksums
    code, _, err = run_cli(["score", "--model", bad, "--manifest", tmp_path / "none.csv",
                            "--out", tmp_path / "s.csv"], capsys)
    assert code == 2 and "weights.pt" in err and "plain tensor file" in err
    assert "weights_only=False" not in err and not marker.exists()


class _Boom:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_duplicate_column_refused_for_the_whole_manifest(corpus, bundle, tmp_path, capsys):
    path = tmp_path / "dup.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS + ["baseline_alc"])
        w.writerow(["a", "a_plan", "lung", "photon", 30, 2, 60, 1.5, 60, "M", "d.nii.gz",
                    "s.nii.gz", 0.3])
    code, _, err = run_cli(["score", "--model", bundle, "--manifest", path, "--out",
                            tmp_path / "s.csv"], capsys)
    assert code == 2 and "'baseline_alc' appears more than once" in err


def test_exported_bundles_carry_no_absolute_input_path(tmp_path):
    from lymphonet.bundle.export import export_bundle, untrained_checkpoint
    from lymphonet.training.checkpoint import load_checkpoint, save_checkpoint

    ckpt_path = untrained_checkpoint(tmp_path / "run" / "best.pt")
    ckpt = load_checkpoint(ckpt_path)
    ckpt["config"]["cohort"]["path"] = "/hospital/exports/Doe_Jane_0001/cohort"
    from lymphonet.training.checkpoint import model_from_checkpoint

    save_checkpoint(ckpt_path, model_from_checkpoint(ckpt), config=ckpt["config"],
                    model_inputs=ckpt["model_inputs"], state=ckpt["state"],
                    encoder=ckpt["encoder"])
    bundle = export_bundle(ckpt_path, tmp_path / "bundle", onnx=False, torchscript=False)
    text = "".join(p.read_text() for p in bundle.glob("*.json"))
    assert "/hospital" not in text and "Doe_Jane" not in text and str(tmp_path) not in text


def test_changed_settings_or_new_trajectories_are_rescored(corpus, bundle, tmp_path):
    from lymphonet.scoring.prepare import ScoreOptions

    out = tmp_path / "scores.csv"
    manifest = _manifest(corpus)
    score_manifest(bundle, manifest, out, progress=False)
    again = score_manifest(bundle, manifest, out, progress=False,
                           options=ScoreOptions(particles=50))
    assert again.n_skipped == 0 and again.n_ok == 4  # other particles: other numbers
    traj = tmp_path / "traj.csv"
    with_traj = score_manifest(bundle, manifest, out, trajectories=traj, progress=False,
                               options=ScoreOptions(particles=50))
    assert with_traj.n_ok == 4  # rows without a trajectory are not "done" for a run wanting one
    assert set(pd.read_csv(traj, dtype={"plan_id": str})["plan_id"]) == \
        {f"p{i}_plan" for i in range(4)}


@pytest.mark.parametrize("target", ["manifest", "folder", "same"])
def test_outputs_that_would_clobber_are_refused(corpus, bundle, tmp_path, target):
    manifest = _manifest(corpus, name="clobber.csv")
    before = manifest.read_text()
    out = {"manifest": manifest, "folder": tmp_path, "same": tmp_path / "s.csv"}[target]
    traj = tmp_path / "s.csv" if target == "same" else None
    with pytest.raises(InputError):
        score_manifest(bundle, manifest, out, trajectories=traj, progress=False)
    assert manifest.read_text() == before


def test_prescription_check_can_be_switched_off_and_says_so(corpus, bundle, tmp_path):
    from lymphonet.scoring.prepare import ScoreOptions

    manifest = _manifest(corpus, name="sfrt.csv", p0={"n_fractions": 70})  # 140 Gy vs 74 Gy max
    out = tmp_path / "s.csv"
    score_manifest(bundle, manifest, out, progress=False)
    assert _read(out).set_index("plan_id").loc["p0_plan", "status"] == "error"
    score_manifest(bundle, manifest, out, progress=False,
                   options=ScoreOptions(prescription_check=False))
    row = _read(out).set_index("plan_id").loc["p0_plan"]
    assert row["status"] == "ok" and "not checked against the prescription" in row["warnings"]
