"""Experiment tracking: MLflow, or nothing. With :mod:`lymphonet.scoring.mlflow_pyfunc` (the
logged model), the only module that imports mlflow.

Default store: a local SQLite database ``<out_dir>/mlruns.db`` (tracking URI
``sqlite:///<absolute path>``), artifacts next to it in ``<out_dir>/mlartifacts``; or any
server via ``--tracking-uri`` / ``MLFLOW_TRACKING_URI``. Tracking is best effort: a failure to
log warns and never stops training. Callers must pass no patient identifiers
(configs, metrics, plots and de-identified summaries only). ``lymphonet/__init__.py`` has
already disabled MLflow telemetry.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lymphonet.errors import without_absolute_paths


def default_tracking_uri(out_dir: str | Path) -> str:
    """``sqlite:///<abs out_dir>/mlruns.db``."""
    return f"sqlite:///{(Path(out_dir).resolve() / 'mlruns.db').as_posix()}"


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


class NullTracker:
    """Tracking off: every call does nothing."""

    enabled = False
    uri: str | None = None
    run_id: str | None = None

    def log_config(self, config: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_tags(self, tags: dict[str, str]) -> None: ...
    def log_artifact(self, path: str | Path, subdir: str | None = None) -> None: ...
    def log_model(self, log: Callable[[], Any]) -> None: ...
    def log_dataset(self, record: dict[str, Any] | None, context: str) -> None: ...
    def end(self, status: str = "FINISHED") -> None: ...


class MlflowTracker(NullTracker):
    """One MLflow run.

    Args:
        out_dir: Output folder (default store location).
        run_name: Run name.
        experiment: Experiment name.
        uri: Tracking URI; default ``MLFLOW_TRACKING_URI`` or the local SQLite store.
    """

    enabled = True

    def __init__(self, out_dir: str | Path, run_name: str, experiment: str = "lymphonet",
                 uri: str | None = None) -> None:
        import logging

        import mlflow

        for name in ("alembic", "mlflow"):  # migrations of a new SQLite store are chatty
            logging.getLogger(name).setLevel(logging.WARNING)
        self._mlflow = mlflow
        self.uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(out_dir)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.uri)
        if mlflow.get_experiment_by_name(experiment) is None and self.uri.startswith("sqlite"):
            art = (Path(out_dir).resolve() / "mlartifacts").as_uri()
            mlflow.create_experiment(experiment, artifact_location=art)
        mlflow.set_experiment(experiment)
        # a run started inside another (a sweep's trial) is nested under it
        self.run = mlflow.start_run(run_name=run_name, nested=mlflow.active_run() is not None)
        self.run_id = self.run.info.run_id

    def _safe(self, what: str, fn, *args, **kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - tracking never stops training
            warnings.warn(f"MLflow {what} failed: {err}", stacklevel=3)

    def log_config(self, config: dict[str, Any]) -> None:
        config = without_absolute_paths(config)  # no input path leaves this machine
        flat = {k: str(v)[:500] for k, v in _flatten(config).items()}
        self._safe("log_params", self._mlflow.log_params, flat)
        self._safe("log_dict", self._mlflow.log_dict, config, "config.json")

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        clean = {k: float(v) for k, v in metrics.items() if not math.isnan(float(v))}
        self._safe("log_metrics", self._mlflow.log_metrics, clean, step=step)

    def log_tags(self, tags: dict[str, str]) -> None:
        self._safe("set_tags", self._mlflow.set_tags, tags)

    def log_artifact(self, path: str | Path, subdir: str | None = None) -> None:
        self._safe("log_artifact", self._mlflow.log_artifact, str(path), subdir)

    def log_dataset(self, record: dict[str, Any] | None, context: str) -> None:
        """Log the run's cohort as an MLflow dataset input (the UI's Dataset column): name,
        digest (the manifest's SHA-256, first 16 hex digits), and as source tags the numbers of
        plans and patients, the split hash and whether it is simulated. No identifier or path
        (``record``: :func:`lymphonet.data.prepare.cohort_fingerprint`)."""
        if not record:
            return

        def _log():
            from mlflow.data.code_dataset_source import CodeDatasetSource
            from mlflow.data.meta_dataset import MetaDataset

            tags = {k: str(v) for k, v in record.items() if k != "name" and v is not None}
            digest = (record.get("manifest_sha256") or "synthetic")[:16]
            ds = MetaDataset(CodeDatasetSource(tags), name=str(record.get("name", "cohort")),
                             digest=digest)
            self._mlflow.log_input(ds, context=context)

        self._safe("log_input", _log)

    def log_model(self, log: Callable[[], Any]) -> None:
        """Run ``log``, which logs the run's model into the active MLflow run (a pyfunc model
        without pickle: :func:`lymphonet.scoring.mlflow_pyfunc.log_run_model`); best effort."""
        self._safe("log_model", log)

    def end(self, status: str = "FINISHED") -> None:
        self._safe("end_run", self._mlflow.end_run, status=status)


def attach_run(uri: str | None, out_dir: str | Path, run_id: str) -> None:
    """Make an existing run (a sweep's parent) the active run of this process, so the runs this
    process starts nest under it."""
    import mlflow

    mlflow.set_tracking_uri(uri or os.environ.get("MLFLOW_TRACKING_URI")
                            or default_tracking_uri(out_dir))
    mlflow.start_run(run_id=run_id)


def make_tracker(enabled: bool, out_dir: str | Path, run_name: str, experiment: str = "lymphonet",
                 uri: str | None = None) -> NullTracker:
    """An :class:`MlflowTracker` if ``enabled`` (falls back to :class:`NullTracker` with a warning
    when the store cannot be opened), else a :class:`NullTracker`."""
    if not enabled:
        return NullTracker()
    try:
        return MlflowTracker(out_dir, run_name, experiment, uri)
    except Exception as err:  # noqa: BLE001
        warnings.warn(f"MLflow tracking disabled: {err}", stacklevel=2)
        return NullTracker()
