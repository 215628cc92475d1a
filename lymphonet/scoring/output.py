"""The score file and its guarantees: one row per manifest row, current inputs, nothing leaked.

* **Lock**: one writer per output; a second ``lymphonet score`` on the same ``--out`` is refused
  while the first holds ``<out>.lock`` (an OS advisory lock, released when the process ends, even
  when it is killed).
* **Resume key**: a row is reused only when its plan id, model version AND input key match. The
  input key hashes the manifest row's values and each input file's name, size and mtime, so an
  edited row or a replaced dose file is re-scored and its old row replaced, never kept.
* **Order of writes**: a plan's trajectory is written and flushed before its score row, so a
  killed run never leaves a finished score behind a half trajectory (on resume, trajectories
  without a kept score row are dropped and recomputed).
* **No leaks**: messages lose absolute paths (made relative to the manifest folder, else reduced
  to the file name) and DICOM UIDs; cells that a spreadsheet would run as a formula are escaped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

from lymphonet.errors import InputError, safe_path
from lymphonet.schema import SCORE_COLUMNS, TRAJECTORY_COLUMNS, escape_cell


class OutputLock:
    """Exclusive lock on an output file for the life of a ``with`` block.

    Raises:
        InputError: Another process holds the lock (field ``--out``).
    """

    def __init__(self, out: Path) -> None:
        self.path = out.with_name(out.name + ".lock")
        self._fh = None

    def __enter__(self) -> Self:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.close()
            raise InputError(f"another lymphonet run is writing {self.path.stem} (lock "
                             f"{self.path.name} is held); wait for it to finish or choose another "
                             "output", field="--out") from None
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()


def input_key(row: dict[str, Any], files: Iterable[Path], root: Path) -> str:
    """16-hex key of a manifest row's values and its input files' names, sizes and mtimes."""
    stats = []
    for f in files:
        try:
            st = os.stat(f)
            stats.append([safe_path(f, root), st.st_size, st.st_mtime_ns])
        except OSError:
            stats.append([safe_path(f, root), None, None])
    payload = json.dumps({"row": {k: str(v) for k, v in sorted(row.items())}, "files": stats},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _fmt(v: Any) -> Any:
    return f"{v:.7g}" if isinstance(v, float) else escape_cell(v)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write_rows(path: Path, rows: list[dict[str, Any]], columns) -> None:
    """Replace ``path`` atomically with ``rows`` (temp file + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def previous_ok(out: Path, version: str) -> dict[str, dict[str, str]]:
    """(escaped) plan_id -> ok row of ``version`` in an existing output file."""
    if not out.is_file():
        return {}
    try:
        rows = read_rows(out)
    except (OSError, csv.Error, UnicodeDecodeError) as err:
        raise InputError(f"cannot resume from the existing output ({type(err).__name__}); move "
                         "it away", file=out.name, field="--out") from None
    return {r["plan_id"]: r for r in rows
            if r.get("status") == "ok" and r.get("model_version") == version and r.get("plan_id")}


def plans_with_trajectories(path: Path) -> set[str]:
    """Plan ids that have rows in a trajectory CSV (empty set when it does not exist)."""
    if not path.is_file():
        return set()
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        return {rec[0] for rec in reader if rec}


def keep_trajectories(path: Path, keep: set[str]) -> None:
    """Rewrite the trajectory CSV keeping only plans in ``keep`` (streamed line by line)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(path, newline="") as src, open(tmp, "w", newline="") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        next(reader, None)
        writer.writerow(TRAJECTORY_COLUMNS)
        for rec in reader:
            if rec and rec[0] in keep:
                writer.writerow(rec)
    os.replace(tmp, path)


class ScoreWriter:
    """Appends score rows (and trajectories first) to open files, flushed row by row."""

    def __init__(self, out: Path, trajectories: Path | None) -> None:
        self._fh = open(out, "a", newline="")  # noqa: SIM115 - closed in close()
        self._rows = csv.DictWriter(self._fh, SCORE_COLUMNS, extrasaction="ignore")
        self._tfh = open(trajectories, "a", newline="") if trajectories else None  # noqa: SIM115
        self._traj = csv.writer(self._tfh) if self._tfh else None

    def write(self, row: dict[str, Any], trajectory=None) -> None:
        if trajectory is not None and self._traj is not None:
            pid = escape_cell(row["plan_id"])
            self._traj.writerows([pid, int(d), f"{a:.6g}", f"{lo:.6g}", f"{hi:.6g}"]
                                 for d, a, lo, hi in trajectory)
            self._tfh.flush()
            os.fsync(self._tfh.fileno())
        self._rows.writerow({k: _fmt(v) for k, v in row.items()})
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
        if self._tfh:
            self._tfh.close()


def reorder(out: Path, keys: list[tuple[str, bool]]) -> None:
    """Put the output rows into manifest order, one per manifest row.

    Args:
        out: The score file.
        keys: Per manifest row, its escaped plan id and whether it has a record (a valid row).
            Ok rows are matched by plan id (plans no longer in the manifest are dropped); error
            rows were appended in row order by this run, so the i-th error row belongs to the
            i-th row without an ok row.
    """
    rows = read_rows(out)
    ok = {r["plan_id"]: r for r in rows if r["status"] == "ok"}
    pending = iter([r for r in rows if r["status"] != "ok"])
    ordered = []
    for plan_id, valid in keys:
        r = ok.get(plan_id) if valid else None
        r = r if r is not None else next(pending, None)
        if r is not None:
            ordered.append(r)
    write_rows(out, ordered, SCORE_COLUMNS)
