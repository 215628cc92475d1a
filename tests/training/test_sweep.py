"""Sweeps: a 3-trial Optuna study on the smoke config, nested MLflow runs, the pruning record,
resumption, the best config, and the pruning path itself with a trial told to prune."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lymphonet.errors import InputError
from lymphonet.training.config import load_training_config
from lymphonet.training.sweep import SweepJob, _objective, load_space, overrides_of, run_sweep

REPO = Path(__file__).resolve().parents[2]
SMOKE, SPACE = REPO / "configs" / "smoke.yaml", REPO / "configs" / "space_smoke.yaml"


def _runs(uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("lymphonet")
    return client, client.search_runs([exp.experiment_id], max_results=100)


def test_sweep_nests_trials_records_them_and_resumes(tmp_path):
    uri = f"sqlite:///{(tmp_path / 'mlruns.db').as_posix()}"
    res = run_sweep(SMOKE, SPACE, 3, out_dir=tmp_path, tracking_uri=uri)
    assert res["n_trials"] == 3 and res["n_complete"] >= 1
    trials = pd.read_csv(tmp_path / "smoke-sweep" / "trials.csv")
    assert list(trials["trial"]) == [0, 1, 2]
    assert set(trials["state"]) <= {"COMPLETE", "PRUNED"}
    _, runs = _runs(uri)
    parent = [r for r in runs if r.info.run_name == "sweep smoke-sweep"]
    assert len(parent) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id]
    assert sorted(r.info.run_name for r in children) == [f"smoke-sweep-trial{i}" for i in range(3)]
    for r in children:  # each trial: its full config and its metrics per epoch
        assert "train.lr" in r.data.params and "val_loss" in r.data.metrics
        pruned = trials.loc[trials["mlflow_run_name"] == r.info.run_name, "state"].item()
        assert ("TrialPruned" in r.data.tags.get("stopped", "")) == (pruned == "PRUNED")
    best = load_training_config(res["best_config"])  # trainable as is
    assert best.train.lr == pytest.approx(res["best_params"]["train.lr"])
    # killed or finished, the same command resumes: --trials is the total
    again = run_sweep(SMOKE, SPACE, 4, out_dir=tmp_path, tracking_uri=uri)
    assert again["n_trials"] == 4
    assert run_sweep(SMOKE, SPACE, 4, out_dir=tmp_path, tracking=False)["n_trials"] == 4


class _PruneNow:
    """An Optuna-trial stand-in whose pruner says stop after the first epoch."""

    number = 7

    def __init__(self):
        self.reports, self.attrs = [], {}

    def suggest_float(self, name, low, high, log=False):
        return low

    def suggest_categorical(self, name, choices):
        return choices[0]

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return True

    def set_user_attr(self, key, value):
        self.attrs[key] = value


def test_a_pruned_trial_stops_after_the_epoch_and_its_run_says_why(tmp_path):
    import optuna

    uri = f"sqlite:///{(tmp_path / 'mlruns.db').as_posix()}"
    job = SweepJob(str(SMOKE), str(SPACE), "prune", "unused", 1, str(tmp_path),
                   tracking_uri=uri)
    trial = _PruneNow()
    with pytest.raises(optuna.TrialPruned):
        _objective(job, load_space(SPACE))(trial)
    assert [s for s, _ in trial.reports] == [1] and trial.attrs["pruned_at_epoch"] == 1
    _, runs = _runs(uri)
    (run,) = [r for r in runs if r.info.run_name == "prune-trial7"]
    assert run.info.status == "KILLED" and run.data.tags["stopped"].startswith("TrialPruned")


def test_bad_spaces_are_refused(tmp_path):
    bad = tmp_path / "space.yaml"
    bad.write_text("space: {train.lr: {low: 1}}\n")
    with pytest.raises(InputError, match="low, high"):
        load_space(bad)
    bad.write_text("space: {train.lr: {choices: [1]}}\nsampler: grid\n")
    with pytest.raises(InputError, match="unknown keys"):
        load_space(bad)
    assert overrides_of({"data.shape": [8, 8, 8], "train.lr": 0.001}) == [
        "data.shape=[8, 8, 8]", "train.lr=0.001"]
