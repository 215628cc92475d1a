"""Scoring one manifest row in a worker (this process, a pool process or a Ray actor).

:func:`init_worker` loads the bundle once per process; :func:`score_task` turns one
:class:`Task` into an output row (never raising for bad input: the row says ``status="error"``
with the reason). The local engine (:mod:`.runner`), the Ray engine (:mod:`.ray_engine`) and the
MLflow model (:mod:`.mlflow_pyfunc`) all score rows through this one function.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lymphonet.errors import InputError, redact
from lymphonet.schema import SCORE_COLUMNS
from lymphonet.scoring.predict import Predictor
from lymphonet.scoring.prepare import ScoreOptions, prepare_plan

log = logging.getLogger(__name__)


@dataclass
class Task:
    """One manifest row: its number (1-based data row), ids, and a record or the problems."""

    row: int
    patient_id: str
    plan_id: str
    record: Any = None
    error: str | None = None
    key: str = ""


_STATE: dict[str, Any] = {}


def init_worker(bundle_dir: str, options: ScoreOptions, verify: bool, threads: int) -> None:
    """Load the bundle once per process (single-threaded torch)."""
    from lymphonet.bundle.load import load_bundle

    torch.set_num_threads(threads)
    bundle = load_bundle(bundle_dir, verify=verify)
    _STATE.update(bundle=bundle, options=options,
                  predictor=Predictor(bundle, options.backend, options.level))


def error_row(task: Task, version: str, message: str, root: Path | None) -> dict[str, Any]:
    row = {c: "" for c in SCORE_COLUMNS}
    row.update(patient_id=task.patient_id, plan_id=task.plan_id, model_version=version,
               input_sha256=task.key, status="error", error=redact(message, root))
    return row


def score_task(task: Task, root: Path) -> tuple[dict[str, Any], np.ndarray | None,
                                                  dict[str, float]]:
    """Score one task in this process (after :func:`_init_worker`); never raises for bad input.

    Returns:
        (output row, trajectory ``[T, 4]`` or None, stage timings in s).
    """
    bundle, options, predictor = _STATE["bundle"], _STATE["options"], _STATE["predictor"]
    timings: dict[str, float] = {}
    version = bundle.model_version
    if task.record is None:
        return error_row(task, version, task.error or "invalid row", root), None, timings
    try:
        plan = prepare_plan(task.record, root, bundle, options, timings)
        t0 = time.perf_counter()
        values, traj = predictor.predict(plan)
        timings["model"] = time.perf_counter() - t0
    except InputError as err:
        ctx = err.with_context(patient=task.patient_id, file=task.record.dose_path)
        return error_row(task, version, str(ctx.redacted(root)), root), None, timings
    except Exception as err:
        msg = redact(f"patient {task.patient_id!r}: scoring failed ({type(err).__name__}: "
                     f"{err})", root)
        log.error("%s", msg)
        log.debug("traceback of plan %s", task.plan_id, exc_info=True)
        return error_row(task, version, msg, root), None, timings
    if not all(math.isfinite(v) for v in values.values()):
        return (error_row(task, version, f"patient {task.patient_id!r}: non-finite prediction",
                           root), None, timings)
    row = {"patient_id": task.patient_id, "plan_id": task.plan_id, "model_version": version,
           "input_sha256": task.key, **values, "mean_body_dose_gy": plan.mean_body_dose_gy,
           "edic_gy": plan.edic_gy if math.isfinite(plan.edic_gy) else "",
           "mean_blood_dose_gy": plan.mean_blood_dose_gy, "status": "ok", "error": "",
           "warnings": redact("; ".join(plan.warnings), root)}
    return row, (traj if options.trajectories else None), timings
