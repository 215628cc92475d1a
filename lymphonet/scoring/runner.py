"""Batch risk scoring: a manifest of plans -> one output row per input row, streamed to CSV.

Per row (in a worker process when ``workers > 1``): read dose + structures
(:func:`lymphonet.dataset.read_plan`), reduce to plan features (blood-dose engine, lymphoid
doses, dose summaries; :func:`lymphonet.features.plan_features`), resample dose and organ masks
onto the model's input grid, encode the clinical row with the bundle's fitted encoder, run the
network part (eager torch, ONNX Runtime or TorchScript) and the kinetics layer, and summarise the
trajectory: nadir, nadir day, P(grade >= 3), P(grade 4), a 90% interval of the observed nadir.

Guarantees:

* **Isolation**: a row that fails (bad manifest value, unreadable file, no body contour, ...)
  becomes ``status="error"`` with the message (an InputError naming patient, file and field);
  the other rows are unaffected.
* **Streaming**: rows are scored one at a time (``imap``, ordered) and appended to the CSV as
  they finish, so memory does not grow with the cohort; the output is re-ordered into manifest
  order at the end (a pass over the small score table only).
* **Resume**: plans already in the output with ``status="ok"`` and the same ``model_version``
  are skipped; error rows are retried.
* **Determinism**: the blood-dose engine has a fixed seed, each row is scored alone (batch of
  one) with one thread, so numbers do not depend on ``workers``, order or resumption.

Only manifest ids (patient_id, plan_id) are written; never names or DICOM identifiers.
The default resampler is a direct numpy implementation of what the training pipeline does with
torchio (same grid, trilinear dose, nearest-neighbour masks, zero outside the input) and ~50x
faster; ``resampler="torchio"`` uses the training code path itself.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lymphonet.errors import InputError
from lymphonet.schema import SCORE_COLUMNS, TRAJECTORY_COLUMNS
from lymphonet.scoring.predict import Predictor
from lymphonet.scoring.prepare import ScoreOptions, prepare_plan

log = logging.getLogger(__name__)

@dataclass
class ScoreSummary:
    """Outcome of :func:`score_manifest`."""

    n_rows: int = 0
    n_ok: int = 0
    n_error: int = 0
    n_skipped: int = 0
    elapsed_s: float = 0.0
    out: Path | None = None
    trajectories: Path | None = None
    stage_s: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        rate = (self.n_ok + self.n_error) / self.elapsed_s if self.elapsed_s > 0 else float("nan")
        return (f"{self.n_rows} rows: {self.n_ok} scored, {self.n_error} errors, {self.n_skipped} "
                f"already done; {self.elapsed_s:.1f} s ({rate:.1f} rows/s) -> {self.out}")


# ---------------------------------------------------------------------------------------------
# manifest rows -> tasks


@dataclass
class Task:
    """One manifest row: its number (1-based data row), ids, and a record or the problems."""

    row: int
    patient_id: str
    plan_id: str
    record: Any = None
    error: str | None = None


def manifest_tasks(path: str | Path, alc_unit: str | None = None) -> tuple[list[Task], Path]:
    """One :class:`Task` per data row of a manifest (CSV or Parquet), in file order.

    File-level problems (unreadable file, missing required column, ALC that looks like cells/uL
    without a unit) raise; row-level problems become ``Task.error``. Duplicate plan ids make
    every row using them an error.
    """
    from lymphonet.io.cohort import load_manifest, read_table
    from lymphonet.schema import as_id, is_missing, plan_from_row

    path = Path(path)
    load_manifest(path, alc_unit=alc_unit, check_files=False, errors="collect")  # file level
    table = read_table(path, field="manifest")
    tasks = []
    for i, row in enumerate(table.to_dict("records"), 1):
        pat = "" if is_missing(row.get("patient_id")) else as_id(row["patient_id"])
        plan = pat if is_missing(row.get("plan_id")) else as_id(row["plan_id"])
        record, errors = plan_from_row(row, root=path.parent, file=path.name,
                                       row_label=f"row {i}", alc_unit=alc_unit)
        tasks.append(Task(i, pat, plan, record, "; ".join(str(e) for e in errors) or None))
    rows_of: dict[str, list[int]] = {}
    for t in tasks:
        if t.plan_id:
            rows_of.setdefault(t.plan_id, []).append(t.row)
    for t in tasks:
        if len(rows_of.get(t.plan_id, ())) > 1:
            t.record, t.error = None, str(InputError(
                f"plan id {t.plan_id!r} is used by rows {rows_of[t.plan_id]}; give each plan a "
                "unique plan_id", patient=t.patient_id, file=f"{path.name} row {t.row}",
                field="plan_id"))
    return tasks, path.parent


# ---------------------------------------------------------------------------------------------
# workers

_STATE: dict[str, Any] = {}


def _init_worker(bundle_dir: str, options: ScoreOptions, verify: bool, threads: int) -> None:
    """Load the bundle once per process (single-threaded torch)."""
    from lymphonet.bundle.load import load_bundle

    torch.set_num_threads(threads)
    bundle = load_bundle(bundle_dir, verify=verify)
    _STATE.update(bundle=bundle, options=options,
                  predictor=Predictor(bundle, options.backend, options.level))


def _error_row(task: Task, version: str, message: str) -> dict[str, Any]:
    row = {c: "" for c in SCORE_COLUMNS}
    row.update(patient_id=task.patient_id, plan_id=task.plan_id, model_version=version,
               status="error", error=" ".join(message.split()))
    return row


def score_task(task: Task, root: Path) -> tuple[dict[str, Any], np.ndarray | None,
                                                  dict[str, float]]:
    """Score one task in this process (after :func:`_init_worker`); never raises for bad input.

    Returns:
        (output row, trajectory ``[T, 4]`` or None, stage timings in s).
    """
    bundle, options, predictor = _STATE["bundle"], _STATE["options"], _STATE["predictor"]
    timings: dict[str, float] = {}
    if task.record is None:
        return _error_row(task, bundle.model_version, task.error or "invalid row"), None, timings
    try:
        plan = prepare_plan(task.record, root, bundle, options, timings)
        t0 = time.perf_counter()
        values, traj = predictor.predict(plan)
        timings["model"] = time.perf_counter() - t0
    except InputError as err:
        ctx = err.with_context(patient=task.patient_id, file=task.record.dose_path)
        return _error_row(task, bundle.model_version, str(ctx)), None, timings
    except Exception as err:
        log.exception("scoring plan %s failed", task.plan_id)
        msg = f"patient {task.patient_id!r}: scoring failed ({type(err).__name__}: {err})"
        return _error_row(task, bundle.model_version, msg), None, timings
    if not all(math.isfinite(v) for v in values.values()):
        return (_error_row(task, bundle.model_version,
                           f"patient {task.patient_id!r}: non-finite prediction"), None, timings)
    row = {"patient_id": task.patient_id, "plan_id": task.plan_id,
           "model_version": bundle.model_version, **values,
           "mean_body_dose_gy": plan.mean_body_dose_gy,
           "edic_gy": plan.edic_gy if math.isfinite(plan.edic_gy) else "",
           "mean_blood_dose_gy": plan.mean_blood_dose_gy, "status": "ok", "error": ""}
    return row, (traj if options.trajectories else None), timings


def _score_job(args):
    return score_task(*args)


def iter_scores(bundle_dir: str | Path, tasks: list[Task], root: Path,
                options: ScoreOptions | None = None, workers: int = 1, progress: bool = False,
                verify: bool = True) -> Iterator[tuple[Task, dict[str, Any], np.ndarray | None,
                                                       dict[str, float]]]:
    """Score tasks in order (``imap`` over a process pool when ``workers > 1``).

    Yields:
        ``(task, row, trajectory or None, timings)`` in task order.
    """
    from tqdm import tqdm

    options = options or ScoreOptions()
    bar = tqdm(total=len(tasks), desc="scoring", unit="plan", disable=not progress)
    try:
        if workers <= 1:
            _init_worker(str(bundle_dir), options, verify, 1)
            for task in tasks:
                yield (task, *score_task(task, root))
                bar.update()
            return
        import multiprocessing

        with multiprocessing.get_context().Pool(
                workers, initializer=_init_worker,
                initargs=(str(bundle_dir), options, False, 1)) as pool:
            jobs = ((t, root) for t in tasks)
            for task, result in zip(tasks, pool.imap(_score_job, jobs, chunksize=1)):
                yield (task, *result)
                bar.update()
    finally:
        bar.close()


# ---------------------------------------------------------------------------------------------
# CSV output with resume


def _read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _write_rows(path: Path, rows: list[dict[str, Any]], columns) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def _keep_trajectories(path: Path, keep: set[str]) -> None:
    """Rewrite the trajectory CSV keeping only plans in ``keep`` (streamed line by line)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(path, newline="") as src, open(tmp, "w", newline="") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        header = next(reader, None)
        writer.writerow(TRAJECTORY_COLUMNS)
        if header is not None:
            for rec in reader:
                if rec and rec[0] in keep:
                    writer.writerow(rec)
    os.replace(tmp, path)


def _fmt(v: Any) -> Any:
    return f"{v:.7g}" if isinstance(v, float) else v


def score_manifest(bundle_dir: str | Path, manifest: str | Path, out: str | Path, *,
                   trajectories: str | Path | None = None, workers: int = 1,
                   progress: bool = True, options: ScoreOptions | None = None,
                   resume: bool = True) -> ScoreSummary:
    """Score every row of a manifest into ``out`` (CSV, columns :data:`SCORE_COLUMNS`).

    Args:
        bundle_dir: Model bundle (verified once here; workers trust the verified folder).
        manifest: Manifest CSV / Parquet (data contract).
        out: Output CSV; an existing one is resumed (``resume``) or replaced.
        trajectories: Optional CSV of daily trajectories (:data:`TRAJECTORY_COLUMNS`).
        workers: Processes (each single-threaded); 1 = in this process.
        progress: Progress bar.
        options: :class:`ScoreOptions` (``trajectories`` is set from the argument).
        resume: Skip plans already scored ok by the same model version.

    Returns:
        A :class:`ScoreSummary` (stage timings summed over rows, seconds).
    """
    from dataclasses import replace

    from lymphonet.bundle.load import load_bundle

    t0 = time.perf_counter()
    bundle = load_bundle(bundle_dir)  # verify checksums + versions once, fail early
    options = replace(options or ScoreOptions(), trajectories=trajectories is not None)
    tasks, root = manifest_tasks(manifest, options.alc_unit)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    traj_path = Path(trajectories) if trajectories is not None else None
    done = _previous_ok(out, bundle.model_version) if resume else {}
    if traj_path is not None and traj_path.exists() and done:
        _keep_trajectories(traj_path, set(done))
    elif traj_path is not None:
        _write_rows(traj_path, [], TRAJECTORY_COLUMNS)
    _write_rows(out, list(done.values()), SCORE_COLUMNS)
    todo = [t for t in tasks if not (t.record is not None and t.plan_id in done)]
    summary = ScoreSummary(n_rows=len(tasks), n_skipped=len(tasks) - len(todo), out=out,
                           trajectories=traj_path)
    with open(out, "a", newline="") as fh, \
            (open(traj_path, "a", newline="") if traj_path else open(os.devnull, "w")) as tfh:
        writer = csv.DictWriter(fh, SCORE_COLUMNS, extrasaction="ignore")
        twriter = csv.writer(tfh)
        for task, row, traj, timings in iter_scores(bundle.path, todo, root, options, workers,
                                                    progress, verify=False):
            writer.writerow({k: _fmt(v) for k, v in row.items()})
            fh.flush()
            if traj is not None:
                twriter.writerows([task.plan_id, int(d), f"{a:.6g}", f"{lo:.6g}", f"{hi:.6g}"]
                                  for d, a, lo, hi in traj)
            summary.n_ok += row["status"] == "ok"
            summary.n_error += row["status"] == "error"
            for k, v in timings.items():
                summary.stage_s[k] = summary.stage_s.get(k, 0.0) + v
    _reorder(out, tasks)
    summary.elapsed_s = time.perf_counter() - t0
    return summary


def _previous_ok(out: Path, version: str) -> dict[str, dict[str, str]]:
    """plan_id -> row of plans scored ok by ``version`` in an existing output file."""
    if not out.is_file():
        return {}
    try:
        rows = _read_rows(out)
    except (OSError, csv.Error) as err:
        raise InputError(f"cannot resume from the existing output ({err}); move it away",
                         file=out, field="--out") from None
    return {r["plan_id"]: r for r in rows
            if r.get("status") == "ok" and r.get("model_version") == version and r.get("plan_id")}


def _reorder(out: Path, tasks: list[Task]) -> None:
    """Put the output rows into manifest order, one per task.

    Ok rows are matched by plan id (stale plans of an older manifest are dropped); error rows
    were appended in task order by this call, so the i-th error row belongs to the i-th task
    without an ok row.
    """
    rows = _read_rows(out)
    ok = {r["plan_id"]: r for r in rows if r["status"] == "ok"}
    pending = iter([r for r in rows if r["status"] != "ok"])
    ordered = []
    for t in tasks:
        r = ok.get(t.plan_id) if t.record is not None else None
        r = r if r is not None else next(pending, None)
        if r is not None:
            ordered.append(r)
    _write_rows(out, ordered, SCORE_COLUMNS)
