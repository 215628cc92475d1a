"""lymphonet: predict radiation-induced lymphopenia from dose, schedule and clinical features."""

import os as _os

# MLflow phones home on first use; lymphonet never lets it (set before any mlflow import).
_os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# logging a model re-reads its artifacts once; no progress bar for that in the run's output
_os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
_os.environ.setdefault("DO_NOT_TRACK", "true")

__version__ = "0.1.0"
