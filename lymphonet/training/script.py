"""Find and import the repository's ``train.py``: the training that ``lymphonet train`` runs.

``train.py`` is a script a newcomer reads top to bottom; the command line, the evaluation harness
and the tests import it from the repository root (next to ``configs/``), so every training goes
through its one loop. Like ``configs/default.yaml`` it belongs to the repository: with a copy of
lymphonet installed without it, the training commands say so instead of running another loop.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from lymphonet.errors import InputError

#: The repository's training script.
TRAIN_SCRIPT = Path(__file__).resolve().parents[2] / "train.py"
_MODULE = "lymphonet_train_script"


def load_train_script() -> ModuleType:
    """The imported ``train.py`` (imported once per process).

    Raises:
        InputError: ``train.py`` is not next to the installed package (a non-editable install).
    """
    if _MODULE in sys.modules:
        return sys.modules[_MODULE]
    if not TRAIN_SCRIPT.is_file():
        raise InputError("train.py is not installed with this copy of lymphonet; install the "
                         "repository in editable mode (pip install -e .)", file=TRAIN_SCRIPT,
                         field="train.py")
    spec = importlib.util.spec_from_file_location(_MODULE, TRAIN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_MODULE]
        raise
    return module


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The options of the training command (shared by ``train.py`` and ``lymphonet train``)."""
    ap.add_argument("--config", help="YAML config (default: configs/default.yaml)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key, e.g. --set train.epochs=5 (repeatable)")
    ap.add_argument("--device", help="cuda, cuda:N, mps or cpu (default: best available)")
    ap.add_argument("--resume", nargs="?", const="auto", default=None,
                    help="continue from a checkpoint (no value: <out>/<name>/last.pt)")
    ap.add_argument("--out", help="output root (default: config out_dir, 'runs')")
    ap.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI "
                                           "or sqlite:///<out>/mlruns.db)")
    ap.add_argument("--no-tracking", action="store_true", help="do not track with MLflow")
