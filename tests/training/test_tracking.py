"""MLflow tracking: local SQLite store by default, config / metrics / plots / model logged,
tracking off leaves no store, and only tracking.py imports mlflow."""

import ast
from pathlib import Path

from lymphonet.training.tracking import NullTracker, default_tracking_uri, make_tracker

REPO = Path(__file__).resolve().parents[2]


def test_only_tracking_module_imports_mlflow():
    offenders = []
    for path in (REPO / "lymphonet").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "mlflow" for n in names):
                offenders.append(path.relative_to(REPO).as_posix())
    assert sorted(set(offenders)) == ["lymphonet/training/tracking.py"]


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

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    rc = main(["train", "--config", "configs/smoke.yaml", "--out", str(tmp_path / "runs"),
               "--set", "tracking.enabled=true", "--set", "train.epochs=2"])
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
    models = mlflow.search_logged_models(experiment_ids=[exp.experiment_id], output_format="list")
    assert models and models[0].source_run_id == run.info.run_id
    info = mlflow.models.get_model_info(f"models:/{models[0].model_id}")
    assert info.signature is not None and "image" in info.signature.inputs.input_names()
    mlflow.set_tracking_uri(None)
