"""The on-disk preprocessing cache: one ``<key>.npz`` per plan, computed once.

A plan's cache file holds its resampled image (dose float16 + bit-packed organ masks, see
:mod:`lymphonet.data.images`) and its plan features (blood-dose and lymphoid-organ dose quantiles,
dose summaries; :mod:`lymphonet.dosimetry.plan_features`). The key hashes the plan's input files
(path, size, mtime), the manifest fields that change the result and the preprocessing settings,
so a changed input or setting is recomputed, never silently reused. Plans that fail are reported
(an :class:`~lymphonet.errors.InputError` naming patient, file and field) and left out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lymphonet.data.config import DataConfig
from lymphonet.data.images import image_from_plan
from lymphonet.dosimetry.plan_features import PlanFeatures, features_of_plan
from lymphonet.errors import InputError, redact
from lymphonet.io.cohort import Cohort, load_cohort
from lymphonet.io.plan import plan_input_files, read_plan
from lymphonet.schema import PlanRecord

log = logging.getLogger(__name__)

#: Bump when the preprocessing code changes what it writes: every cache entry is then recomputed.
CACHE_VERSION = 5  # 3: blood dose v2 (organ map, tau_c, numba walk); 4-5: resident sites, red marrow


def cache_key(record: PlanRecord, root: Path, config: DataConfig) -> str:
    """SHA-256 of the plan's input files (path, size, mtime), its relevant manifest fields, the
    preprocessing settings and :data:`CACHE_VERSION`.

    Raises:
        InputError: An input file cannot be stat-ed.
    """
    files = []
    for path in plan_input_files(record, root):
        try:
            st = os.stat(path)
        except OSError as err:
            raise InputError(f"cannot read file ({err.strerror})", patient=record.patient_id,
                             file=path, field="dose_path") from None
        files.append([str(Path(path).resolve()), st.st_size, st.st_mtime_ns])
    payload = {
        "version": CACHE_VERSION,
        "config": config.preprocessing_fields(),
        "plan": {"plan_id": record.plan_id, "n_fractions": record.n_fractions,
                 "dose_per_fraction_gy": record.dose_per_fraction_gy,
                 "beam_on_time_s": None if math.isnan(record.beam_on_time_s)
                 else record.beam_on_time_s, "sex": record.sex},
        "files": files,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def write_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez to a temporary file, then rename (readers never see half a file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_cached_features(path: Path) -> PlanFeatures:
    """Plan features from a cache file."""
    with np.load(path, allow_pickle=False) as data:
        return PlanFeatures.from_npz_dict({k[5:]: data[k] for k in data.files
                                           if k.startswith("feat_")})


def load_cached_image(path: Path, config: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """``[C, D, H, W]`` float32 image (channel 0 = dose / dose_scale_gy) and grid origin (mm)."""
    shape = tuple(config.shape)
    n_masks = len(config.organ_channels)
    with np.load(path, allow_pickle=False) as data:
        image = np.empty((1 + n_masks, *shape), np.float32)
        image[0] = data["dose_gy"].astype(np.float32) / config.dose_scale_gy
        if n_masks:
            bits = np.unpackbits(data["masks"], count=n_masks * int(np.prod(shape)))
            image[1:] = bits.reshape(n_masks, *shape)
        return image, data["origin_mm"]


def preprocess_plan(record: PlanRecord, root: Path, config: DataConfig) -> dict[str, np.ndarray]:
    """Cache content of one plan: ``dose_gy`` float16 ``[D, H, W]``, ``masks`` (bit-packed bool
    ``[C_m, D, H, W]``), ``origin_mm`` and the plan features (``feat_*``)."""
    plan = read_plan(record, root, default_beam_on_time_s=config.default_beam_on_time_s,
                     max_dose_gy=config.max_dose_gy,
                     check_prescription=config.prescription_check)
    feats = features_of_plan(plan, n_quantiles=config.n_quantiles,
                             particles=config.blood_particles, seed=config.feature_seed)
    image, origin = image_from_plan(plan.dose, plan.structures, config, record.patient_id)
    out = {"dose_gy": image[0].astype(np.float16), "masks": np.packbits(image[1:] > 0.5),
           "origin_mm": origin}
    out.update({f"feat_{k}": v for k, v in feats.to_npz_dict().items()})
    return out


# ---------------------------------------------------------------------------------------------
# whole cohort


@dataclass
class PreprocessReport:
    """Outcome of :func:`preprocess_cohort`.

    Attributes:
        cache_dir: The cache folder.
        paths: plan_id -> cache file, for every plan that is ready.
        errors: One InputError per plan (or manifest row) that failed; those are left out.
        n_cached: Plans found in the cache; n_computed: plans preprocessed now.
        elapsed_s: Wall time (s).
    """

    cache_dir: Path
    paths: dict[str, Path] = field(default_factory=dict)
    errors: list[InputError] = field(default_factory=list)
    n_cached: int = 0
    n_computed: int = 0
    elapsed_s: float = 0.0

    def error_table(self) -> pd.DataFrame:
        """One row per failure: patient, file, field, message."""
        return pd.DataFrame([{"patient": e.patient, "file": e.file, "field": e.field,
                              "message": e.message} for e in self.errors],
                            columns=["patient", "file", "field", "message"])

    def summary(self) -> str:
        """A line for logs (plus one line per failure; no absolute input path, no UID)."""
        head = (f"{len(self.paths)} plans ready ({self.n_cached} cached, {self.n_computed} "
                f"computed, {len(self.errors)} failed) in {self.elapsed_s:.1f} s")
        return "\n".join([head] + [f"  - {e.redacted()}" for e in self.errors])


def as_cohort(cohort: Cohort | str | Path) -> Cohort:
    if isinstance(cohort, Cohort):
        return cohort
    return load_cohort(cohort, errors="collect")


def resolve_cache_dir(cohort: Cohort, config: DataConfig) -> Path:
    """``config.cache_dir`` or ``<cohort folder>/.cache/lymphonet`` (created)."""
    path = Path(config.cache_dir) if config.cache_dir else cohort.root / ".cache" / "lymphonet"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create the cache folder ({err.strerror}); set data.cache_dir",
                         file=path, field="cache_dir") from None
    return path


def _preprocess_job(record: PlanRecord, root: Path, config: DataConfig, path: Path):
    """Worker: preprocess one plan into ``path``; errors come back as plain tuples (picklable)."""
    try:
        write_atomic(path, preprocess_plan(record, root, config))
        return None
    except InputError as err:
        ctx = err.with_context(patient=record.patient_id, file=record.dose_path)
        return (ctx.message, ctx.patient, ctx.file, ctx.field)
    except Exception as err:  # a batch never loses the other plans
        message = redact(f"preprocessing failed ({type(err).__name__}: {err})")
        log.error("plan %s: %s", record.plan_id, message)
        log.debug("traceback of plan %s", record.plan_id, exc_info=True)
        return (message, record.patient_id, str(record.dose_path), "preprocessing")


def _init_worker() -> None:
    torch.set_num_threads(1)


def preprocess_cohort(cohort: Cohort | str | Path, config: DataConfig | None = None, *,
                      workers: int | None = None, progress: bool = True,
                      indices: list[int] | None = None) -> PreprocessReport:
    """Preprocess every plan not yet in the cache (the others are only looked up).

    Args:
        cohort: A loaded cohort or its folder / manifest (loaded with ``errors="collect"``:
            bad manifest rows are reported, not raised).
        config: Settings (default :class:`DataConfig`).
        workers: Processes for uncached plans (default ``config.preprocess_workers``).
        progress: Show a progress bar.
        indices: Only these rows of ``cohort.plans``.

    Returns:
        A :class:`PreprocessReport`; failures are logged as warnings and listed in it.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    config = config or DataConfig()
    cohort = as_cohort(cohort)
    report = PreprocessReport(resolve_cache_dir(cohort, config), errors=list(cohort.errors))
    plans = cohort.plans if indices is None else [cohort.plans[i] for i in indices]
    todo: list[tuple[PlanRecord, Path]] = []
    for record in plans:
        try:
            path = report.cache_dir / f"{cache_key(record, cohort.root, config)}.npz"
        except InputError as err:
            report.errors.append(err)
            continue
        if path.is_file():
            report.paths[record.plan_id] = path
            report.n_cached += 1
        else:
            todo.append((record, path))
    workers = config.preprocess_workers if workers is None else workers
    bar = tqdm(total=len(todo), desc="preprocessing plans", unit="plan",
               disable=not progress or not todo)
    if workers > 1 and len(todo) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker) as pool:
            futures = [pool.submit(_preprocess_job, r, cohort.root, config, p) for r, p in todo]
            results = []
            for fut in futures:
                results.append(fut.result())
                bar.update()
    else:
        results = []
        for r, p in todo:
            results.append(_preprocess_job(r, cohort.root, config, p))
            bar.update()
    bar.close()
    for (record, path), err in zip(todo, results):
        if err is None:
            report.paths[record.plan_id] = path
            report.n_computed += 1
        else:
            message, patient, file, fld = err
            report.errors.append(InputError(message, patient=patient, file=file, field=fld))
    report.elapsed_s = time.perf_counter() - t0
    for err in report.errors:
        log.warning("plan left out: %s", err.redacted())
    return report

