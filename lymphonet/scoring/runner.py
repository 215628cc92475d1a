"""Batch risk scoring: a manifest of plans -> one output row per input row, streamed to CSV.

Per row (:func:`lymphonet.scoring.worker.score_task`, in a worker process when ``workers > 1``,
or a Ray actor with ``engine="ray"``): read dose + structures
(:func:`lymphonet.io.plan.read_plan`), reduce to plan features (blood-dose engine, lymphoid
doses, dose summaries; :func:`lymphonet.dosimetry.plan_features.features_of_plan`), resample dose and organ masks
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
* **Resume**: plans already in the output with ``status="ok"``, the same ``model_version`` and
  the same input key (the row's values and its files' names, sizes and mtimes) are skipped; a
  changed row is re-scored and its old row replaced; error rows are retried.
* **One writer**: an exclusive lock on the output refuses a concurrent run; a plan's trajectory
  is flushed before its score row (:mod:`lymphonet.scoring.output`).
* **Determinism**: the blood-dose engine has a fixed seed, each row is scored alone (batch of
  one) with one thread, so numbers do not depend on ``workers``, order or resumption.

Only manifest ids (patient_id, plan_id) are written; never names, DICOM UIDs or absolute paths
(messages are redacted), and text cells that start like a spreadsheet formula are escaped.
The default resampler is a direct numpy implementation of what the training pipeline does with
torchio (same grid, trilinear dose, nearest-neighbour masks, zero outside the input) and ~50x
faster; ``resampler="torchio"`` uses the training code path itself.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lymphonet.errors import InputError
from lymphonet.schema import SCORE_COLUMNS, TRAJECTORY_COLUMNS, escape_cell
from lymphonet.scoring.output import (
    OutputLock,
    ScoreWriter,
    input_key,
    keep_trajectories,
    plans_with_trajectories,
    previous_ok,
    reorder,
    write_rows,
)
from lymphonet.scoring.predict import Predictor
from lymphonet.scoring.prepare import ScoreOptions, prepare_plan
from lymphonet.scoring.worker import Task, init_worker, score_task

__all__ = ["SCORE_COLUMNS", "TRAJECTORY_COLUMNS", "Predictor", "ScoreOptions", "ScoreSummary",
           "Task", "iter_scores", "manifest_tasks", "prepare_plan", "score_manifest",
           "score_task", "settings_key"]


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


def manifest_tasks(path: str | Path, alc_unit: str | None = None,
                   settings: str = "") -> tuple[list[Task], Path]:
    """One :class:`Task` per data row of a manifest (CSV or Parquet), in file order.

    File-level problems (unreadable file, missing required column, ALC that looks like cells/uL
    without a unit) raise; row-level problems become ``Task.error``. Duplicate plan ids make
    every row using them an error.
    """
    from lymphonet.io.cohort import load_manifest, read_table
    from lymphonet.io.plan import plan_input_files
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
        files = plan_input_files(record, path.parent) if record is not None else []
        tasks.append(Task(i, pat, plan, record, "; ".join(str(e) for e in errors) or None,
                          input_key({**row, "_settings": settings}, files, path.parent)))
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

def _score_job(args):
    return score_task(*args)


def iter_scores(bundle_dir: str | Path, tasks: list[Task], root: Path,
                options: ScoreOptions | None = None, workers: int = 1, progress: bool = False,
                verify: bool = True) -> Iterator[tuple[Task, dict[str, Any], np.ndarray | None,
                                                       dict[str, float]]]:
    """Score tasks in order (``imap`` over a process pool when ``workers > 1``; Ray Data actors
    with ``options.engine == "ray"``).

    Yields:
        ``(task, row, trajectory or None, timings)`` in task order.
    """
    from tqdm import tqdm

    options = options or ScoreOptions()
    if options.engine == "ray":
        from lymphonet.scoring.ray_engine import iter_scores_ray

        yield from iter_scores_ray(bundle_dir, tasks, root, options, workers, progress)
        return
    bar = tqdm(total=len(tasks), desc="scoring", unit="plan", disable=not progress)
    try:
        if workers <= 1:
            init_worker(str(bundle_dir), options, verify, 1)
            for task in tasks:
                yield (task, *score_task(task, root))
                bar.update()
            return
        import multiprocessing

        with multiprocessing.get_context().Pool(
                workers, initializer=init_worker,
                initargs=(str(bundle_dir), options, False, 1)) as pool:
            jobs = ((t, root) for t in tasks)
            for task, result in zip(tasks, pool.imap(_score_job, jobs, chunksize=1)):
                yield (task, *result)
                bar.update()
    finally:
        bar.close()


# ---------------------------------------------------------------------------------------------
# the batch job


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
        resume: Skip plans already scored ok by the same model version from the same inputs.

    Returns:
        A :class:`ScoreSummary` (stage timings summed over rows, seconds).

    Raises:
        InputError: Unusable bundle or manifest, or another run holds the output's lock.
    """
    from dataclasses import replace

    from lymphonet.bundle.load import load_bundle

    t0 = time.perf_counter()
    bundle = load_bundle(bundle_dir)  # verify checksums + versions once, fail early
    options = replace(options or ScoreOptions(), trajectories=trajectories is not None)
    tasks, root = manifest_tasks(manifest, options.alc_unit, settings_key(options))
    out = Path(out)
    traj_path = Path(trajectories) if trajectories is not None else None
    _check_outputs(Path(manifest), out, traj_path)
    with OutputLock(out), (OutputLock(traj_path) if traj_path else contextlib.nullcontext()):
        todo = _start_output(out, traj_path, tasks, bundle.model_version, resume)
        summary = ScoreSummary(n_rows=len(tasks), n_skipped=len(tasks) - len(todo), out=out,
                               trajectories=traj_path)
        writer = ScoreWriter(out, traj_path)
        try:
            for _, row, traj, timings in iter_scores(bundle.path, todo, root, options, workers,
                                                     progress, verify=False):
                writer.write(row, traj)
                summary.n_ok += row["status"] == "ok"
                summary.n_error += row["status"] == "error"
                for k, v in timings.items():
                    summary.stage_s[k] = summary.stage_s.get(k, 0.0) + v
        finally:
            writer.close()
        reorder(out, [(escape_cell(t.plan_id), t.record is not None) for t in tasks])
    summary.elapsed_s = time.perf_counter() - t0
    return summary


def settings_key(options: ScoreOptions) -> str:
    """The scoring settings that change a row's numbers (part of its resume key)."""
    return repr((options.backend, options.resampler, options.particles, options.alc_unit,
                 options.level, options.max_dose_gy))


def _check_outputs(manifest: Path, out: Path, traj_path: Path | None) -> None:
    """Refuse outputs that would overwrite an input or each other, or that cannot be files."""
    paths = {"--out": out} | ({"--trajectories": traj_path} if traj_path is not None else {})
    for flag, path in paths.items():
        if path.exists() and path.is_dir():
            raise InputError("is a folder; give a file name", file=path.name, field=flag)
        if path.resolve() == manifest.resolve():
            raise InputError("would overwrite the manifest", file=path.name, field=flag)
    if traj_path is not None and traj_path.resolve() == out.resolve():
        raise InputError("the trajectories need a file of their own", file=traj_path.name,
                         field="--trajectories")


def _start_output(out: Path, traj_path: Path | None, tasks: list[Task], version: str,
                  resume: bool) -> list[Task]:
    """Keep the rows that are still current, drop the rest (and their trajectories); return the
    tasks left to score."""
    previous = previous_ok(out, version) if resume else {}
    key_of = {escape_cell(t.plan_id): t.key for t in tasks if t.record is not None}
    done = {pid: r for pid, r in previous.items() if key_of.get(pid) == r.get("input_sha256")}
    if traj_path is not None:  # a kept row needs its trajectory too
        have = plans_with_trajectories(traj_path)
        done = {pid: r for pid, r in done.items() if pid in have}
    if traj_path is not None and traj_path.exists() and done:
        keep_trajectories(traj_path, set(done))
    elif traj_path is not None:
        traj_path.parent.mkdir(parents=True, exist_ok=True)
        write_rows(traj_path, [], TRAJECTORY_COLUMNS)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_rows(out, list(done.values()), SCORE_COLUMNS)
    return [t for t in tasks if not (t.record is not None and escape_cell(t.plan_id) in done)]
