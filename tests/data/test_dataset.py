"""Data pipeline: preprocessing, cache, batches, clinical encoder, augmentation, loaders.

A small cohort (SIMULATED phantoms planned with lymphonet.twin, 8 mm grids) is written on the
fly in the data contract, plus one plan whose dose file is corrupt.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lymphonet.data.batch import BATCH_KEYS, DOSE_SUMMARY_NAMES, check_batch, kinetics_inputs
from lymphonet.data.cache import load_cached_image, preprocess_cohort
from lymphonet.data.clinical import ClinicalEncoder
from lymphonet.data.config import DataConfig
from lymphonet.data.dataset import PlanDataset, make_loader
from lymphonet.data.images import augment_image, channel_masks, image_from_plan
from lymphonet.data.splits import fold_indices, make_splits
from lymphonet.errors import InputError
from lymphonet.io.cohort import load_cohort
from lymphonet.io.nifti import resample_to, write_label_map, write_volume
from lymphonet.io.plan import read_plan
from lymphonet.io.volume import StructureSet, Volume
from lymphonet.organs import LYMPHOID_ORGANS

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
_COMPOSITES = ("lungs", "kidneys", "great_vessels", "bowel", "lymph_nodes", "target")
# patient: (site, modalities, age, sex, bmi, chemo, n lab draws after day 0)
PATIENTS = {
    "P0": ("lung", ("photon", "proton"), 61.0, "M", 24.0, "concurrent", 4),
    "P1": ("esophagus", ("photon",), 70.0, "F", 21.0, "concurrent", 2),
    "P2": ("lung_sbrt", ("proton",), 75.0, "M", 28.0, "none", 5),
    "P3": ("lung", ("photon",), None, None, None, None, 3),  # missing clinical values
    "P4": ("esophagus", ("proton",), 58.0, "F", 19.5, "sequential", 1),
    "P5": ("breast", ("photon",), 49.0, "F", 26.0, "none", 3),
}


def _write_cohort(root: Path) -> Path:
    from lymphonet.twin.sites import plan_for_site, site_phantom

    rows, labs = [], []
    for i, (pid, (site, mods, age, sex, bmi, chemo, n_obs)) in enumerate(PATIENTS.items()):
        phantom = site_phantom(site, sex=sex, spacing_mm=(8.0, 8.0, 8.0),
                               rng=np.random.default_rng(i))
        folder = root / "plans" / pid
        organs = {n: m for n, m in phantom.masks.items() if n not in _COMPOSITES + ("body",)}
        inside = np.logical_or.reduce(list(organs.values()))
        write_label_map(StructureSet({"body": phantom["body"] & ~inside, **organs},
                                     phantom.grid), folder / "structures.nii.gz")
        write_label_map(StructureSet({"target": phantom["target"]}, phantom.grid),
                        folder / "targets.nii.gz")
        for mod in mods:
            plan = plan_for_site(phantom, site, mod)
            write_volume(plan.dose, folder / f"dose_{mod}.nii.gz")
            plan_id = f"{pid}_{mod}"
            baseline = 1.5 + 0.1 * i
            rows.append({
                "patient_id": pid, "plan_id": plan_id, "site": site, "modality": mod,
                "n_fractions": plan.n_fractions, "dose_per_fraction_gy": plan.dose_per_fraction_gy,
                "beam_on_time_s": plan.beam_on_time_s, "chemo": chemo or "", "age": age or "",
                "sex": sex or "", "bmi": bmi or "", "baseline_alc": baseline,
                "dose_path": f"plans/{pid}/dose_{mod}.nii.gz",
                "structures_path": f"plans/{pid}/structures.nii.gz",
                "targets_path": f"plans/{pid}/targets.nii.gz"})
            labs.append({"patient_id": pid, "plan_id": plan_id, "day": -3, "alc": baseline})
            labs += [{"patient_id": pid, "plan_id": plan_id, "day": 7 * (j + 1),
                      "alc": round(baseline * 0.8 ** (j + 1), 3)} for j in range(n_obs)]
    bad = dict(rows[0], patient_id="BAD", plan_id="BAD_photon",
               dose_path="plans/BAD/dose_photon.nii.gz")
    (root / "plans" / "BAD").mkdir(parents=True)
    (root / "plans" / "BAD" / "dose_photon.nii.gz").write_bytes(b"this is not a NIfTI file")
    rows.append(bad)
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    pd.DataFrame(labs).to_csv(root / "labs.csv", index=False)
    return root


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory) -> Path:
    return _write_cohort(tmp_path_factory.mktemp("cohort"))


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> DataConfig:
    return DataConfig(shape=(32, 32, 32), blood_particles=1000, n_quantiles=8,
                      cache_dir=str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def dataset(cohort_dir, config) -> PlanDataset:
    return PlanDataset(cohort_dir, config)


N_GOOD = sum(len(v[1]) for v in PATIENTS.values())


def test_failing_plan_reported_and_excluded(dataset):
    assert len(dataset) == N_GOOD
    assert "BAD_photon" not in dataset.plan_ids
    assert len(dataset.errors) == 1
    err = dataset.errors[0]
    assert err.patient == "BAD" and "dose_photon.nii.gz" in str(err.file)
    assert err.field in ("dose", "dose_path")
    assert "BAD" in dataset.report.error_table()["patient"].tolist()
    assert "1 failed" in dataset.report.summary()


def test_batch_keys_shapes_dtypes(dataset, config):
    batch = next(iter(make_loader(dataset, batch_size=3, shuffle=False, workers=0)))
    cohort = load_cohort(_root(dataset), errors="collect")
    k = max(p.n_fractions for p in cohort.plans)
    m = max(v[-1] for v in PATIENTS.values())
    n_l, q = len(LYMPHOID_ORGANS), config.n_quantiles
    expected = {
        "image": ((3, 1 + len(config.organ_channels), 32, 32, 32), torch.float32),
        "clinical": ((3, dataset.clinical_encoder.n_features), torch.float32),
        "dose_summary": ((3, len(DOSE_SUMMARY_NAMES)), torch.float32),
        "blood_dose_q_gy": ((3, q), torch.float32),
        "lymphoid_dose_q_gy": ((3, n_l, q), torch.float32),
        "lymphoid_coverage": ((3, n_l), torch.float32),
        "fraction_days": ((3, k), torch.float32), "fraction_mask": ((3, k), torch.bool),
        "beam_on_s": ((3, k), torch.float32), "chemo": ((3,), torch.int64),
        "chemo_regimen": ((3,), torch.int64),
        "baseline_alc": ((3,), torch.float32), "obs_days": ((3, m), torch.float32),
        "obs_alc": ((3, m), torch.float32), "obs_mask": ((3, m), torch.bool),
        "index": ((3,), torch.int64),
    }
    assert set(batch) == set(expected) == set(BATCH_KEYS)
    check_batch(batch)  # the declared contract agrees with what the dataset yields
    for key, (shape, dtype) in expected.items():
        assert tuple(batch[key].shape) == shape, key
        assert batch[key].dtype == dtype, key
        if batch[key].is_floating_point():
            assert torch.isfinite(batch[key]).all(), key
    assert batch["index"].tolist() == [0, 1, 2]
    assert dataset.n_channels == expected["image"][0][1]
    assert dataset.n_dose_summary == len(DOSE_SUMMARY_NAMES)
    # masks are binary, fraction mask counts the fractions
    assert set(torch.unique(batch["image"][:, 1:]).tolist()) <= {0.0, 1.0}
    for b, plan in enumerate(dataset.plans[:3]):
        assert int(batch["fraction_mask"][b].sum()) == plan.n_fractions
        assert torch.allclose(batch["fraction_days"][b, : plan.n_fractions],
                              torch.tensor(plan.fraction_days, dtype=torch.float32))
        assert batch["baseline_alc"][b] == pytest.approx(plan.baseline_alc)


def _root(dataset) -> Path:
    return Path(dataset.plans[0].dose_path).parents[2]


def test_dose_channel_scale_and_resampling(dataset, config):
    """Dose stays in Gy / fixed scale; torchio output equals an independent SimpleITK resample
    (lymphonet.io.nifti.resample_to) of the dose (trilinear) and each mask (nearest)."""
    for i, plan in enumerate(dataset.plans):
        _plan = read_plan(plan, _root(dataset))
        dose, structures = _plan.dose, _plan.structures
        img = dataset[i]["image"].numpy()
        assert img[0].max() * config.dose_scale_gy == pytest.approx(float(dose.array.max()),
                                                                    rel=0.08)
        _, origin = load_cached_image(dataset.paths[i], config)
        grid = Volume(np.zeros(config.shape, np.float32), config.spacing_mm, tuple(origin))
        ref = resample_to(dose, grid, order=1).array
        assert np.abs(img[0] * config.dose_scale_gy - ref).max() < 2e-3 * ref.max() + 1e-3
        masks = channel_masks(structures, config.organ_channels)
        for c in range(len(config.organ_channels)):
            ref_mask = resample_to(dose.with_array(masks[c]), grid, order=0).array
            assert np.array_equal(ref_mask, img[1 + c] > 0.5), config.organ_channels[c]
        # the scale is fixed: changing it rescales the channel exactly
        img2, _ = load_cached_image(dataset.paths[i], replace(config, dose_scale_gy=25.0))
        assert np.allclose(img2[0], 2.0 * img[0], rtol=1e-6)


def test_target_centre_lands_at_grid_centre(dataset, config):
    for i, plan in enumerate(dataset.plans):
        _plan = read_plan(plan, _root(dataset))
        dose, structures = _plan.dose, _plan.structures
        idx = np.argwhere(structures["target"])
        centre_mm = dose.index_to_physical((idx.min(0) + idx.max(0)) / 2.0)
        img, origin = load_cached_image(dataset.paths[i], config)
        n_xyz = np.asarray(config.shape[::-1])
        grid_centre = origin + np.asarray(config.spacing_mm) * (n_xyz - 1) / 2.0
        assert np.allclose(grid_centre, centre_mm, atol=1e-6)
        t = np.argwhere(img[1 + config.organ_channels.index("target")] > 0)  # (k, j, i)
        bbox_centre = (t.min(0) + t.max(0)) / 2.0
        assert np.all(np.abs(bbox_centre - (np.asarray(config.shape) - 1) / 2.0) <= 1.0)


def _marker_volume(direction_flip: bool) -> tuple[Volume, StructureSet]:
    """A box body, a target cube at the centre and a hot spot 40 mm to the patient's left."""
    n, s = 40, 4.0
    x = (np.arange(n) - (n - 1) / 2) * s
    zz, yy, xx = np.meshgrid(x, x, x, indexing="ij")
    body = (np.abs(xx) < 70) & (np.abs(yy) < 50) & (np.abs(zz) < 70)
    target = (np.abs(xx) < 10) & (np.abs(yy) < 10) & (np.abs(zz) < 10)
    dose = np.where(body, 1.0, 0.0) + 20.0 * ((np.abs(xx - 40) < 8) & (np.abs(yy) < 8)
                                              & (np.abs(zz) < 8))
    origin = np.array([x[0], x[0], x[0]])
    direction = np.eye(3)
    if direction_flip:  # same physical object stored with i running right, j anterior
        dose, body, target = (a[:, ::-1, ::-1].copy() for a in (dose, body, target))
        origin = np.array([x[-1], x[-1], x[0]])
        direction = np.diag([-1.0, -1.0, 1.0])
    vol = Volume(dose.astype(np.float32), (s, s, s), tuple(origin), direction)
    return vol, StructureSet({"body": body, "target": target}, vol)


def test_orientation_and_known_point():
    cfg = DataConfig(spacing_mm=(8.0, 8.0, 8.0), shape=(16, 16, 16),
                     organ_channels=("body", "target"))
    a, origin_a = image_from_plan(*_marker_volume(False), cfg)
    b, origin_b = image_from_plan(*_marker_volume(True), cfg)
    assert np.allclose(origin_a, origin_b) and np.allclose(origin_a, -7.5 * 8.0)
    assert np.allclose(a, b, atol=1e-4)
    # the hot spot at x = +40 mm (patient's left) lands at W index (40 - origin_x) / 8
    k, j, i = np.unravel_index(np.argmax(a[0]), a[0].shape)
    assert i == pytest.approx((40.0 - origin_a[0]) / 8.0, abs=1.0) and i > 8
    assert j == pytest.approx(7.5, abs=1.0) and k == pytest.approx(7.5, abs=1.0)
    assert a[0].max() == pytest.approx(21.0, rel=0.05)


def test_cache_hit_reads_no_volume(cohort_dir, config, monkeypatch):
    from lymphonet.io import loaders

    calls = []
    real = loaders.read_dose
    monkeypatch.setattr(loaders, "read_dose", lambda *a, **k: calls.append(a) or real(*a, **k))
    ds = PlanDataset(cohort_dir, config)  # the module fixture filled the cache
    assert ds.report.n_cached == N_GOOD and ds.report.n_computed == 0
    assert len(calls) == 1  # only the corrupt plan (never cached) is tried again
    # a changed input file (new mtime) invalidates that plan only
    path = Path(ds.plans[1].dose_path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    calls.clear()
    report = preprocess_cohort(cohort_dir, config, progress=False)
    assert report.n_computed == 1 and report.n_cached == N_GOOD - 1
    assert len(calls) == 2  # the touched plan + the corrupt one


def test_clinical_encoder_fitted_on_training_fold_only(cohort_dir, config, dataset):
    cohort = load_cohort(cohort_dir, errors="collect")
    splits = make_splits(cohort.plans, n_folds=2, seed=0)
    train_idx, val_idx = fold_indices(cohort.plans, splits, 0)
    train = PlanDataset(cohort, config, indices=train_idx)
    val = PlanDataset(cohort, config, indices=val_idx, clinical_encoder=train.clinical_encoder)
    enc = train.clinical_encoder
    assert val.clinical_encoder is enc
    ages = [p.age for p in train.plans if not math.isnan(p.age)]
    assert enc.mean["age"] == pytest.approx(np.mean(ages))
    assert enc.mean["n_fractions"] == pytest.approx(np.mean([p.n_fractions for p in train.plans]))
    x = train._table["clinical"].numpy()
    names = enc.feature_names
    for col in ("log_baseline_alc", "n_fractions", "log_dose_per_fraction_gy"):
        v = x[:, names.index(col)]
        assert abs(v.mean()) < 1e-5 and (v.std() == pytest.approx(1.0, abs=1e-4) or v.std() == 0)
    # the encoder differs from one fitted on all plans (the val fold was not seen)
    full = ClinicalEncoder.fit(cohort.plans)
    assert full.mean["n_fractions"] != pytest.approx(enc.mean["n_fractions"])
    # fixed width, JSON round trip
    assert x.shape[1] == val._table["clinical"].shape[1] == enc.n_features
    back = ClinicalEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert np.array_equal(back.transform(val.plans), val._table["clinical"].numpy())


def test_missing_clinical_values_and_one_hots(dataset):
    enc, names = dataset.clinical_encoder, dataset.clinical_encoder.feature_names
    row = dataset[dataset.plan_ids.index("P3_photon")]["clinical"]
    assert row[names.index("age")] == 0 and row[names.index("age_missing")] == 1
    assert row[names.index("bmi_missing")] == 1 and row[names.index("sex=unknown")] == 1
    assert row[names.index("chemo=unknown")] == 1 and row[names.index("site=lung")] == 1
    full = dataset[dataset.plan_ids.index("P1_photon")]["clinical"]
    assert full[names.index("age_missing")] == 0 and full[names.index("sex=F")] == 1
    assert full[names.index("age")] == pytest.approx((70.0 - enc.mean["age"]) / enc.std["age"],
                                                     rel=1e-5)
    # every one-hot block sums to one
    for prefix in ("sex=", "chemo=", "modality=", "site="):
        cols = [j for j, n in enumerate(names) if n.startswith(prefix)]
        assert float(row[cols].sum()) == 1.0 and float(full[cols].sum()) == 1.0


def test_labs_after_day_zero(dataset):
    for i, plan in enumerate(dataset.plans):
        item = dataset[i]
        n_obs = PATIENTS[plan.patient_id][-1]
        assert int(item["obs_mask"].sum()) == n_obs
        expect_days = 7.0 * np.arange(1, n_obs + 1)
        assert np.allclose(item["obs_days"][:n_obs], expect_days)
        assert np.allclose(item["obs_alc"][:n_obs],
                           np.round(plan.baseline_alc * 0.8 ** np.arange(1, n_obs + 1), 3))
        assert float(item["obs_alc"][n_obs:].abs().sum()) == 0.0


def test_loaders_with_0_and_2_workers_agree(dataset):
    batches = {}
    for workers in (0, 2):
        loader = make_loader(dataset, batch_size=4, shuffle=True, workers=workers, seed=3)
        batches[workers] = [b for b in loader]
    assert len(batches[0]) == math.ceil(N_GOOD / 4)
    for b0, b2 in zip(batches[0], batches[2]):
        assert torch.equal(b0["index"], b2["index"])
        for key in b0:
            assert torch.equal(b0[key], b2[key]), key
    order = torch.cat([b["index"] for b in batches[0]])
    assert sorted(order.tolist()) == list(range(N_GOOD))
    again = torch.cat([b["index"] for b in make_loader(dataset, 4, True, 0, seed=3)])
    assert torch.equal(order, again)


def test_kinetics_inputs_from_batch(dataset):
    batch = next(iter(make_loader(dataset, batch_size=N_GOOD, shuffle=False)))
    inp = kinetics_inputs(batch)
    inp.validate()
    assert inp.batch_size == N_GOOD
    assert torch.equal(inp.blood_dose_q_gy, batch["blood_dose_q_gy"])
    assert torch.equal(inp.chemo, batch["chemo"])
    # blood quantiles are non-decreasing and below the course max dose per fraction
    q = inp.blood_dose_q_gy
    assert (q[:, 1:] >= q[:, :-1] - 1e-6).all()


def test_augmentation_flip_swaps_sides_and_rigid_keeps_masks_binary():
    cfg = DataConfig(shape=(16, 16, 16), organ_channels=("lung_left", "lung_right"),
                     max_rotation_deg=0.0, max_translation_mm=0.0, flip_lr=True)
    rng = np.random.default_rng(0)
    image = torch.zeros(3, 16, 16, 16)
    image[0] = torch.as_tensor(rng.random((16, 16, 16)), dtype=torch.float32)
    image[1, :, :, 10:] = 1.0  # left lung on the patient's left (high W)
    image[2, :, :, :6] = 1.0
    flipped = image.flip(-1)[[0, 2, 1]]
    torch.manual_seed(0)
    seen = set()
    for _ in range(20):
        out = augment_image(image.clone(), np.zeros(3), cfg, [(1, 2)])
        if torch.equal(out, image):
            seen.add("same")
        else:
            assert torch.equal(out, flipped)
            assert out[1, :, :, 10:].sum() == 16 * 16 * 6  # left lung still on the left
            seen.add("flipped")
    assert seen == {"same", "flipped"}
    rigid = replace(cfg, max_rotation_deg=5.0, max_translation_mm=8.0, flip_lr=False)
    out = augment_image(image.clone(), np.zeros(3), rigid, [(1, 2)])
    assert out.shape == image.shape and not torch.equal(out, image)
    assert set(torch.unique(out[1:]).tolist()) <= {0.0, 1.0}
    assert float(out[0].max()) <= float(image[0].max()) + 1e-5


def test_evaluation_is_deterministic_training_augments(cohort_dir, config):
    ds = PlanDataset(cohort_dir, config)
    assert torch.equal(ds[0]["image"], ds[0]["image"])
    aug = PlanDataset(cohort_dir, config, augment=True)
    torch.manual_seed(1)
    images = [aug[0]["image"] for _ in range(3)]
    assert not all(torch.equal(images[0], im) for im in images[1:])
    assert all(im.shape == ds[0]["image"].shape for im in images)


def test_dicom_plan(tmp_path):
    case = SHARED / "dicom" / "breast-boost"
    if not case.is_dir():
        pytest.skip(f"shared data not found at {case}")
    pd.DataFrame([{"patient_id": "123456", "site": "breast", "modality": "photon",
                   "n_fractions": 7, "dose_per_fraction_gy": 2.0, "beam_on_time_s": 60,
                   "baseline_alc": 1.8, "dose_path": str(case / "rtdose.dcm"),
                   "structures_path": str(case / "rtss.dcm")}]).to_csv(tmp_path / "manifest.csv",
                                                                       index=False)
    cfg = DataConfig(spacing_mm=(5.0, 5.0, 5.0), shape=(32, 32, 32), blood_particles=500,
                     n_quantiles=8, cache_dir=str(tmp_path / "cache"))
    ds = PlanDataset(tmp_path, cfg)
    assert not ds.errors and len(ds) == 1
    item = ds[0]
    # README: max 14.68 Gy; the 5 mm output grid samples the hot spot within ~10%
    assert float(item["image"][0].max()) * cfg.dose_scale_gy == pytest.approx(14.68, rel=0.1)
    heart = item["image"][1 + cfg.organ_channels.index("heart")]
    assert 0 < float(heart.sum()) * 0.125 < 1500  # heart volume in cc, sane


def test_config_loads_from_plain_mapping():
    from lymphonet.config import from_dict, to_dict

    cfg = from_dict(DataConfig, {"spacing_mm": [4, 4, 5], "shape": [32, 40, 48],
                                 "organ_channels": ["body", "lung_left", "lung_right"],
                                 "cache_dir": None, "crop_center": "body"})
    assert cfg.spacing_mm == (4.0, 4.0, 5.0) and cfg.n_channels == 4
    assert from_dict(DataConfig, to_dict(cfg)) == cfg
    with pytest.raises(InputError, match="unknown key"):
        from_dict(DataConfig, {"spacing": 8})
    with pytest.raises(InputError):
        from_dict(DataConfig, {"crop_center": "heart"})
