"""Scoring on Ray Data, for archives larger than one machine (``lymphonet score --engine ray``).

The manifest is parsed once on the driver exactly as for the local engine (file-level checks,
duplicate plan ids, resume keys: :func:`lymphonet.scoring.runner.manifest_tasks`); the rows left
to score become a Ray dataset, and a pool of actors, each holding the verified bundle once,
scores them with the local engine's own per-row code (:func:`~lymphonet.scoring.worker.score_task`:
the same preparation, model and error isolation) through ``map_batches``. Results stream back
in manifest order (``preserve_order``) to the driver, which writes them with the same writer,
lock, resume and final re-ordering as the local engine: one row per input row, failing rows
reported, identical numbers. ``address`` joins an existing cluster (``ray start --head`` /
``auto``); without one a local Ray instance with ``workers`` CPUs is started and stopped.
Rows travel between processes as JSON text (scores, trajectories, timings).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


class _RayScorer:
    """A Ray actor: loads the bundle once, scores the rows it is given by task index."""

    def __init__(self, bundle_dir: str, options, root: Path, tasks: list) -> None:
        from lymphonet.scoring.worker import init_worker

        init_worker(bundle_dir, options, False, 1)
        self.tasks, self.root = tasks, root

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from lymphonet.scoring.worker import score_task

        rows, trajs, times = [], [], []
        for k in batch["k"]:
            row, traj, timings = score_task(self.tasks[int(k)], self.root)
            rows.append(json.dumps(row, default=str))
            trajs.append("" if traj is None else json.dumps(np.asarray(traj).tolist()))
            times.append(json.dumps(timings))
        return {"k": batch["k"], "row": np.array(rows, dtype=object),
                "traj": np.array(trajs, dtype=object), "timings": np.array(times, dtype=object)}


def iter_scores_ray(bundle_dir: str | Path, tasks: list, root: Path, options, workers: int = 1,
                    progress: bool = False) -> Iterator[tuple[Any, dict, np.ndarray | None,
                                                              dict[str, float]]]:
    """Score ``tasks`` on Ray (``options.address``, or a local instance with ``workers`` CPUs);
    yields ``(task, row, trajectory or None, timings)`` in task order."""
    import ray
    from tqdm import tqdm

    if not tasks:
        return
    own = not ray.is_initialized()
    if own:
        ray.init(address=options.address, num_cpus=None if options.address else max(1, workers),
                 include_dashboard=False, log_to_driver=False)
    bar = tqdm(total=len(tasks), desc="scoring (ray)", unit="plan", disable=not progress)
    try:
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        ds = ray.data.from_items([{"k": k} for k in range(len(tasks))])
        scored = ds.map_batches(_RayScorer, batch_size=1, batch_format="numpy",
                                fn_constructor_args=(str(bundle_dir), options, root, tasks),
                                concurrency=max(1, workers), num_cpus=1)
        for rec in scored.iter_rows():
            traj = json.loads(rec["traj"]) if rec["traj"] else None
            yield (tasks[int(rec["k"])], json.loads(rec["row"]),
                   None if traj is None else np.asarray(traj), json.loads(rec["timings"]))
            bar.update()
    finally:
        bar.close()
        if own:
            ray.shutdown()
