"""MLflow tracking: local SQLite store by default, config / metrics / plots / model logged,
tracking off leaves no store (which modules may import mlflow: tests/test_layering.py)."""

from pathlib import Path

from lymphonet.training.tracking import NullTracker, default_tracking_uri, make_tracker

REPO = Path(__file__).resolve().parents[2]


def test_default_uri_and_off(tmp_path):
    uri = default_tracking_uri(tmp_path / "runs")
    assert uri == f"sqlite:///{(tmp_path / 'runs').resolve().as_posix()}/mlruns.db"
    tracker = make_tracker(False, tmp_path, "x")
    assert isinstance(tracker, NullTracker) and not tracker.enabled
    tracker.log_metrics({"a": 1.0})  # no-ops
    tracker.end()
    assert not any(tmp_path.iterdir())


def test_cli_run_is_tracked_in_local_sqlite(tmp_path, monkeypatch, capsys):
    import mlflow
    from mlflow.tracking import MlflowClient

    from lymphonet.cli import main
    from lymphonet.twin.cohort import simulate_cohort

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cohort = tmp_path / "cohort"  # files, so the run has a clinical encoder and a bundle
    simulate_cohort(9, ["esophagus", "lung"], ["photon"], seed=4, out_dir=cohort,
                    spacing_mm=12.0, particles=200, progress=False)
    sets = ["tracking.enabled=true", "train.epochs=2", "cohort.synthetic=false",
            f"cohort.path={cohort}", "train.n_folds=3", "model.n_days=200",
            "data.shape=[8,8,8]", "data.spacing_mm=[24,24,24]", "data.blood_particles=300"]
    rc = main(["train", "--config", "configs/smoke.yaml", "--out", str(tmp_path / "runs"),
               *[a for x in sets for a in ("--set", x)]])
    assert rc == 0
    uri = default_tracking_uri(tmp_path / "runs")
    assert (tmp_path / "runs" / "mlruns.db").exists()
    assert "MLflow" in capsys.readouterr().out
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("lymphonet")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.params["train.epochs"] == "2" and run.data.params["name"] == "smoke"
    hist = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in hist] == [1, 2]
    assert "test_hybrid_log_alc_rmse_all" in run.data.metrics
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"learning_curves.png", "trajectories.png", "config.yaml", "metrics.json"} <= arts
    for name in ("config.yaml", "metrics.json"):  # no absolute path leaves the machine
        text = Path(client.download_artifacts(run.info.run_id, name, str(tmp_path))).read_text()
        assert str(tmp_path) not in text
    assert not any(str(tmp_path) in v for v in run.data.params.values())
    (ds_input,) = run.inputs.dataset_inputs  # the Dataset column: which data trained it
    assert ds_input.dataset.name == "cohort" and len(ds_input.dataset.digest) == 16
    assert "n_plans" in ds_input.dataset.source and str(tmp_path) not in ds_input.dataset.source
    assert {t.key: t.value for t in ds_input.tags}.get("mlflow.data.context") == "training"
    models = mlflow.search_logged_models(experiment_ids=[exp.experiment_id], output_format="list")
    assert models and models[0].source_run_id == run.info.run_id
    info = mlflow.models.get_model_info(f"models:/{models[0].model_id}")
    # the pyfunc over the export bundle: manifest rows in, score rows out (no pickle)
    assert info.signature is not None and "dose_path" in info.signature.inputs.input_names()
    assert info.flavors["python_function"]["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    mlflow.set_tracking_uri(None)
