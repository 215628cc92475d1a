"""Plans as training tensors: torchio preprocessing, an on-disk cache, a Dataset and loaders.

The only module of lymphonet that uses torchio (imported inside functions, so importing this
module is cheap). One plan becomes, once, a cache file holding

* the image: dose (Gy) and organ masks resampled with torchio onto a fixed output grid of
  ``DataConfig.shape`` voxels of ``DataConfig.spacing_mm``, axis-aligned in LPS (W to the
  patient's left, H posterior, D superior) and centred on the bounding box of the target (or the
  body). Resampling straight onto that grid does resample + crop + pad in one interpolation and
  puts the target centre exactly at the grid centre, whatever the input orientation;
* the plan features (:func:`lymphonet.features.plan_features`: per-fraction blood-dose and
  lymphoid-organ dose quantiles, dose summaries), so the blood-dose engine runs once per plan.

Cache files are ``<cache_dir>/<key>.npz`` where ``key`` hashes the input files (path, size,
mtime), the relevant manifest fields and the preprocessing settings
(:func:`lymphonet.preprocess.cache_key`); later passes read only the cache. A plan that fails is
reported (an :class:`~lymphonet.errors.InputError` naming patient, file and field) and left out.

Items follow the batch contract shared with the model and training code (keys, shapes and units
are listed in :class:`PlanDataset`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from lymphonet.errors import InputError
from lymphonet.features import plan_features
from lymphonet.io.cohort import Cohort, load_cohort
from lymphonet.io.volume import StructureSet, Volume
from lymphonet.preprocess import (
    DOSE_SUMMARY_NAMES,
    ClinicalEncoder,
    DataConfig,
    beam_on_time_s,
    cache_key,
    dose_summary,
    extra_path,
    kinetics_inputs_from_batch,
    lab_arrays,
    labs_by_plan,
    load_cached_features,
    load_cached_image,
    make_loader,
    n_observations,
    schedule_arrays,
    write_atomic,
)
from lymphonet.schema import PlanRecord

__all__ = ["ClinicalEncoder", "DataConfig", "PlanDataset", "PreprocessReport", "augment_image",
           "image_from_plan", "kinetics_inputs_from_batch", "load_cached_features",
           "load_cached_image", "make_loader", "preprocess_cohort", "read_plan"]

log = logging.getLogger(__name__)

#: Combined organs -> parts whose masks are OR-ed into the combined channel.
ORGAN_PARTS: dict[str, tuple[str, ...]] = {
    "lungs": ("lung_left", "lung_right"), "kidneys": ("kidney_left", "kidney_right"),
    "great_vessels": ("aorta", "vena_cava", "pulmonary_artery"),
    "bowel": ("small_bowel", "large_bowel"),
}
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


# ---------------------------------------------------------------------------------------------
# one plan -> image


def channel_masks(structures: StructureSet, organs: tuple[str, ...]) -> np.ndarray:
    """``[C_m, nz, ny, nx]`` bool: per channel, the OR of the organ, ``organ_*`` and its parts."""
    out = np.zeros((len(organs), *structures.grid.shape), bool)
    for c, organ in enumerate(organs):
        parts = ORGAN_PARTS.get(organ, ())
        for name, mask in structures.masks.items():
            if name == organ or name.startswith(organ + "_") or name in parts:
                out[c] |= mask
    return out


def crop_centre_mm(structures: StructureSet, crop_center: str = "target",
                   patient: str | None = None) -> np.ndarray:
    """Bounding-box centre ``(x, y, z)`` (mm, LPS) of the target (else the body)."""
    for organ in (("target", "body") if crop_center == "target" else ("body",)):
        mask = channel_masks(structures, (organ,))[0]
        if mask.any():
            idx = np.argwhere(mask)  # (k, j, i)
            return structures.grid.index_to_physical((idx.min(0) + idx.max(0)) / 2.0)
    raise InputError("no target and no body voxel to centre the crop on", patient=patient,
                     file=structures.source, field="body")


def output_grid(centre_mm: np.ndarray, config: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Origin ``(x, y, z)`` (mm, LPS) and torchio affine (RAS, ``[4, 4]``) of the output grid
    whose centre (index ``(n - 1) / 2`` on every axis) is ``centre_mm``."""
    spacing = np.asarray(config.spacing_mm, float)
    n_xyz = np.asarray(config.shape[::-1], float)
    origin = np.asarray(centre_mm, float) - spacing * (n_xyz - 1) / 2.0
    lps = np.eye(4)
    lps[:3, :3] = np.diag(spacing)
    lps[:3, 3] = origin
    return origin, _LPS_TO_RAS @ lps


def tio_affine(volume: Volume) -> np.ndarray:
    """torchio / NIfTI affine (voxel ``(i, j, k)`` -> RAS mm) of a Volume (LPS geometry)."""
    lps = np.eye(4)
    lps[:3, :3] = volume.direction @ np.diag(volume.spacing_mm)
    lps[:3, 3] = volume.origin_mm
    return _LPS_TO_RAS @ lps


def _to_tio(array: np.ndarray) -> torch.Tensor:
    """``[..., nz, ny, nx]`` numpy -> torchio ``[C, W, H, D]`` (= ``[C, i, j, k]``) tensor."""
    a = array if array.ndim == 4 else array[None]
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 2, 1)))


def image_from_plan(dose: Volume, structures: StructureSet, config: DataConfig,
                    patient: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Resample dose (trilinear) and organ masks (nearest) onto the output grid with torchio.

    Returns:
        ``(image, origin_mm)``: ``[C, D, H, W]`` float32 with channel 0 the dose in Gy (not yet
        scaled) and channels 1.. the masks (0/1); and the output grid origin ``(x, y, z)`` mm.
        Outside the input volume dose and masks are 0.
    """
    import torchio as tio

    origin, affine = output_grid(crop_centre_mm(structures, config.crop_center, patient), config)
    src_affine = tio_affine(dose)
    images = {"dose": tio.ScalarImage(tensor=_to_tio(dose.array.astype(np.float32)),
                                      affine=src_affine)}
    if config.organ_channels:
        masks = channel_masks(structures, config.organ_channels).astype(np.uint8)
        images["masks"] = tio.LabelMap(tensor=_to_tio(masks), affine=src_affine)
    spatial = tuple(int(n) for n in config.shape[::-1])
    out = tio.Resample(target=(spatial, affine), image_interpolation="linear",
                       label_interpolation="nearest", copy=False)(tio.Subject(**images))
    chans = [out["dose"].data.numpy()]
    if config.organ_channels:
        chans.append(out["masks"].data.numpy())
    image = np.concatenate(chans).transpose(0, 3, 2, 1).astype(np.float32)
    image[0] = np.maximum(image[0], 0.0)  # torchio pads with the image minimum; dose >= 0
    return image, origin


def read_plan(record: PlanRecord, root: Path) -> tuple[Volume, StructureSet]:
    """Dose (Gy) and canonical structures of a plan, plus ``targets_path`` if the manifest has one.

    Raises:
        InputError: Unreadable files, or no structures (the body is needed).
    """
    from lymphonet.io.loaders import read_dose, read_structures

    pid = record.patient_id
    dose = read_dose(record.dose_path, patient=pid)
    if record.structures_path is None:
        raise InputError("structures_path is needed (at least the body contour)", patient=pid,
                         field="structures_path")
    structures = read_structures(record.structures_path, dose, patient=pid,
                                 structure_map=record.structure_map)
    targets = extra_path(record, "targets_path", root)
    if targets is not None:
        extra = read_structures(targets, dose, patient=pid, structure_map=record.structure_map)
        masks = dict(structures.masks)
        for name, mask in extra.masks.items():
            masks[name] = masks[name] | mask if name in masks else mask
        structures = StructureSet(masks, dose, structures.empty + extra.empty, structures.source)
    if "body" not in structures:
        raise InputError("no body contour among the structures", patient=pid,
                         file=record.structures_path, field="body")
    return dose, structures


def preprocess_plan(record: PlanRecord, root: Path, config: DataConfig) -> dict[str, np.ndarray]:
    """Cache content of one plan: ``dose_gy`` float16 ``[D, H, W]``, ``masks`` (bit-packed bool
    ``[C_m, D, H, W]``), ``origin_mm`` and the plan features (``feat_*``)."""
    dose, structures = read_plan(record, root)
    feats = plan_features(dose, structures, n_fractions=record.n_fractions,
                          beam_on_time_s=beam_on_time_s(record, config), sex=record.sex or "M",
                          n_quantiles=config.n_quantiles, particles=config.blood_particles,
                          seed=config.feature_seed, patient=record.patient_id)
    image, origin = image_from_plan(dose, structures, config, record.patient_id)
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
        """A line for logs (plus one line per failure)."""
        head = (f"{len(self.paths)} plans ready ({self.n_cached} cached, {self.n_computed} "
                f"computed, {len(self.errors)} failed) in {self.elapsed_s:.1f} s; cache "
                f"{self.cache_dir}")
        return "\n".join([head] + [f"  - {e}" for e in self.errors])


def _as_cohort(cohort: Cohort | str | Path) -> Cohort:
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
        log.exception("preprocessing plan %s failed", record.plan_id)
        return (f"preprocessing failed ({type(err).__name__}: {err})", record.patient_id,
                str(record.dose_path), "preprocessing")


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
    cohort = _as_cohort(cohort)
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
        log.warning("plan left out: %s", err)
    return report


# ---------------------------------------------------------------------------------------------
# Dataset


class PlanDataset(Dataset):
    """A torch Dataset over the plans of a cohort; ``ds[i]`` is one item of the batch contract.

    Item keys (no batch dim; the DataLoader's default collate adds ``B``): ``image`` float32
    ``[C, D, H, W]`` (channel 0 = dose / dose_scale_gy, then :attr:`channel_names` masks);
    ``clinical`` float32 ``[F]``; ``dose_summary`` float32 ``[S]``; ``blood_dose_q_gy`` ``[Q]``,
    ``lymphoid_dose_q_gy`` ``[L, Q]``, ``lymphoid_coverage`` ``[L]`` (float32, Gy per fraction);
    ``fraction_days``, ``beam_on_s`` float32 ``[K]``, ``fraction_mask`` bool ``[K]``; ``chemo``
    int64; ``baseline_alc`` float32 (10^9/L); ``obs_days``, ``obs_alc`` float32 ``[M]``,
    ``obs_mask`` bool ``[M]``; ``index`` int64 (position in :attr:`plans`).

    Args:
        cohort: Cohort, cohort folder or manifest.
        config: Settings (default :class:`DataConfig`).
        indices: Rows of ``cohort.plans`` to use (e.g. a fold); None = all.
        clinical_encoder: A fitted encoder (pass the training set's one to validation / test
            sets); None fits one on this dataset's plans (do that for the training fold only).
        augment: Apply random rigid transforms and LR flips (training only).
        progress: Progress bar for uncached plans.

    Attributes:
        plans: The usable plans (failing ones are left out and listed in :attr:`errors`).
        errors: InputErrors of plans left out. report: the :class:`PreprocessReport`.
    """

    def __init__(self, cohort: Cohort | str | Path, config: DataConfig | None = None, *,
                 indices: list[int] | None = None,
                 clinical_encoder: ClinicalEncoder | None = None, augment: bool = False,
                 progress: bool = False) -> None:
        self.config = config = config or DataConfig()
        cohort = _as_cohort(cohort)
        if indices is not None:
            indices = [int(i) for i in indices]
            bad = [i for i in indices if not 0 <= i < len(cohort.plans)]
            if bad:
                raise InputError(f"plan indices {bad[:5]} outside 0..{len(cohort.plans) - 1}",
                                 field="indices")
        self.report = preprocess_cohort(cohort, config, progress=progress, indices=indices)
        self.errors = self.report.errors
        chosen = cohort.plans if indices is None else [cohort.plans[i] for i in indices]
        self.plans = [p for p in chosen if p.plan_id in self.report.paths]
        if not self.plans:
            raise InputError("no plan could be preprocessed:\n" + self.report.summary(),
                             file=cohort.manifest_path, field="plans")
        self.paths = [self.report.paths[p.plan_id] for p in self.plans]
        self.augment = augment
        self.clinical_encoder = clinical_encoder or ClinicalEncoder.fit(self.plans)
        all_labs = labs_by_plan(cohort.labs, cohort.plans)  # cohort-wide K and M
        k_max = config.max_fractions or max(p.n_fractions for p in cohort.plans)
        m_max = config.max_obs or max(1, max(n_observations(r, config.obs_after_day)
                                             for r in all_labs))
        labs = labs_by_plan(cohort.labs, self.plans)
        feats = [load_cached_features(path) for path in self.paths]
        rows = []
        for p, f, lab in zip(self.plans, feats, labs):
            row = schedule_arrays(p, f.beam_on_time_s, k_max)
            row.update(lab_arrays(lab, m_max, config.obs_after_day))
            row.update(blood_dose_q_gy=f.blood_dose_q_gy, lymphoid_dose_q_gy=f.lymphoid_dose_q_gy,
                       lymphoid_coverage=f.lymphoid_coverage, dose_summary=dose_summary(f))
            rows.append(row)
        self._table = {k: torch.as_tensor(np.stack([r[k] for r in rows])) for k in rows[0]}
        for k in ("blood_dose_q_gy", "lymphoid_dose_q_gy", "lymphoid_coverage", "dose_summary"):
            self._table[k] = self._table[k].float()
        self._table["clinical"] = torch.as_tensor(self.clinical_encoder.transform(self.plans))
        self._swap = _lr_pairs(config.organ_channels)

    @property
    def channel_names(self) -> list[str]:
        """Names of the C image channels."""
        return ["dose"] + list(self.config.organ_channels)

    @property
    def n_channels(self) -> int:
        return self.config.n_channels

    @property
    def n_clinical(self) -> int:
        return self.clinical_encoder.n_features

    @property
    def n_dose_summary(self) -> int:
        return len(DOSE_SUMMARY_NAMES)

    @property
    def plan_ids(self) -> list[str]:
        return [p.plan_id for p in self.plans]

    @property
    def patient_ids(self) -> list[str]:
        return [p.patient_id for p in self.plans]

    def __len__(self) -> int:
        return len(self.plans)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        image, origin = load_cached_image(self.paths[i], self.config)
        image = torch.from_numpy(image)
        if self.augment:
            image = augment_image(image, origin, self.config, self._swap)
        item = {k: v[i] for k, v in self._table.items()}
        item["image"] = image
        item["index"] = torch.tensor(i, dtype=torch.int64)
        return item


def _lr_pairs(organs: tuple[str, ...]) -> list[tuple[int, int]]:
    """Image-channel index pairs (``*_left``, ``*_right``) that swap on a left-right flip."""
    pos = {o: 1 + c for c, o in enumerate(organs)}
    return [(pos[o], pos[o[:-5] + "_right"]) for o in organs
            if o.endswith("_left") and o[:-5] + "_right" in pos]


def augment_image(image: torch.Tensor, origin_mm: np.ndarray, config: DataConfig,
                  swap: list[tuple[int, int]]) -> torch.Tensor:
    """Random rigid transform (torchio RandomAffine, no scaling; dose trilinear, masks nearest)
    and, if ``config.flip_lr``, a left-right flip with probability 0.5 swapping ``swap`` channel
    pairs. Uses torch's RNG (seeded per DataLoader worker). ``image`` is ``[C, D, H, W]``."""
    import torchio as tio

    if config.max_rotation_deg > 0 or config.max_translation_mm > 0:
        _, affine = output_grid(np.asarray(origin_mm) + np.asarray(config.spacing_mm)
                                * (np.asarray(config.shape[::-1]) - 1) / 2.0, config)
        t = lambda x: x.permute(0, 3, 2, 1).contiguous()  # [C,D,H,W] <-> [C,W,H,D]
        subject = tio.Subject(dose=tio.ScalarImage(tensor=t(image[:1]), affine=affine),
                              masks=tio.LabelMap(tensor=t(image[1:]), affine=affine)
                              ) if image.shape[0] > 1 else tio.Subject(
            dose=tio.ScalarImage(tensor=t(image[:1]), affine=affine))
        out = tio.RandomAffine(scales=0, degrees=config.max_rotation_deg,
                               translation=config.max_translation_mm, default_pad_value=0.0,
                               image_interpolation="linear",
                               label_interpolation="nearest")(subject)
        parts = [out["dose"].data] + ([out["masks"].data] if image.shape[0] > 1 else [])
        image = t(torch.cat(parts).float())
    if config.flip_lr and bool(torch.rand(()) < 0.5):
        image = image.flip(-1)  # W runs along the patient's left-right axis
        for a, b in swap:
            image[[a, b]] = image[[b, a]]
    return image
