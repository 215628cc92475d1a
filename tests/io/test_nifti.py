"""Tests for lymphonet.io.nifti: geometry conventions, dose checks, label maps, round trips."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lymphonet.errors import GeometryError, InputError
from lymphonet.io.nifti import (
    read_label_map,
    read_volume,
    resample_structures,
    resample_to,
    sidecar_json,
    to_sitk_image,
    write_label_map,
    write_volume,
)
from lymphonet.io.volume import StructureSet, Volume

OPENKBP = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "openkbp"


def _rotation(angle_rad: float) -> np.ndarray:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _volume(shape=(4, 5, 6), direction=None, dtype=np.float32, seed=0) -> Volume:
    rng = np.random.default_rng(seed)
    return Volume(
        (rng.random(shape) * 70).astype(dtype),
        spacing_mm=(1.5, 2.0, 3.0),
        origin_mm=(-10.0, 20.5, 7.25),
        direction=np.eye(3) if direction is None else direction,
    )


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_index_to_physical_matches_simpleitk(tmp_path, suffix):
    volume = _volume(direction=_rotation(0.3))
    path = write_volume(volume, tmp_path / f"dose{suffix}")
    image = sitk.ReadImage(str(path))
    read = read_volume(path)
    for kji in [(0, 0, 0), (1, 2, 3), (3, 4, 5), (2, 0, 5)]:
        expected = image.TransformIndexToPhysicalPoint(tuple(int(v) for v in kji[::-1]))
        np.testing.assert_allclose(read.index_to_physical(np.array(kji)), expected, atol=1e-4)
        np.testing.assert_allclose(volume.index_to_physical(np.array(kji)), expected, atol=1e-4)
    # array order (nz, ny, nx) = SimpleITK (x, y, z) size reversed
    assert read.shape == tuple(image.GetSize()[::-1])


def test_volume_round_trip_exact_values(tmp_path):
    volume = _volume(direction=_rotation(-0.7))
    read = read_volume(write_volume(volume, tmp_path / "d.nii.gz"))
    assert read.array.dtype == np.float32
    np.testing.assert_array_equal(read.array, volume.array)
    np.testing.assert_allclose(read.spacing_mm, volume.spacing_mm, rtol=1e-6)
    np.testing.assert_allclose(read.origin_mm, volume.origin_mm, atol=1e-4)
    np.testing.assert_allclose(read.direction, volume.direction, atol=1e-6)
    assert read.units == "Gy"


def test_cgy_converted_to_gy(tmp_path):
    volume = _volume()
    path = write_volume(volume.with_array(volume.array * 100), tmp_path / "d.mha")
    np.testing.assert_allclose(read_volume(path, units="cGy").array, volume.array, rtol=1e-6)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha"])
def test_nan_dose_is_input_error(tmp_path, suffix):
    # ITK's NIfTI reader would turn NaN into 0 silently; the reader must still see it
    volume = _volume()
    array = volume.array.copy()
    array[1, 1, 1] = np.nan
    path = write_volume(volume.with_array(array), tmp_path / f"nan{suffix}")
    with pytest.raises(InputError) as info:
        read_volume(path, patient="p7")
    assert info.value.field == "dose" and info.value.patient == "p7"
    assert f"nan{suffix}" in str(info.value)


def test_negative_dose_noise_clipped_and_real_negative_refused(tmp_path):
    volume = _volume()
    array = volume.array.copy()
    array[0, 0, 0] = -5e-4
    read = read_volume(write_volume(volume.with_array(array), tmp_path / "noise.nii.gz"))
    assert read.array[0, 0, 0] == 0.0
    array[0, 0, 0] = -0.5
    with pytest.raises(InputError, match="negative dose"):
        read_volume(write_volume(volume.with_array(array), tmp_path / "neg.nii.gz"))


def test_unreadable_missing_and_4d_files(tmp_path):
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"this is not a volume")
    with pytest.raises(InputError) as info:
        read_volume(junk, patient="p1")
    assert info.value.file == str(junk) and info.value.patient == "p1"
    with pytest.raises(InputError, match="not found"):
        read_volume(tmp_path / "absent.nii.gz")
    four_d = sitk.GetImageFromArray(np.zeros((2, 3, 4, 5), np.float32), isVector=False)
    sitk.WriteImage(four_d, str(tmp_path / "4d.nii.gz"))
    with pytest.raises(InputError, match="3D"):
        read_volume(tmp_path / "4d.nii.gz")


def _structures() -> StructureSet:
    grid = _volume(shape=(6, 7, 8))
    z, y, x = np.indices(grid.shape)
    return StructureSet(
        {"Body": np.ones(grid.shape, bool), "Heart": (x < 3) & (y < 4), "PTV": z == 5},
        grid,
        empty=("Areola",),
    )


def test_label_map_round_trip(tmp_path, caplog):
    structures = _structures()
    with caplog.at_level(logging.WARNING):
        path, json_path = write_label_map(structures, tmp_path / "labels.nii.gz")
    assert json_path == sidecar_json(path) == tmp_path / "labels.json"
    assert "overlap" in caplog.text  # Body overlaps Heart and PTV: later names win
    read = read_label_map(path)
    assert read.names == ["Body", "Heart", "PTV"] and read.empty == ("Areola",)
    np.testing.assert_array_equal(read["PTV"], structures["PTV"])
    # Heart voxels on slice 5 were taken by PTV (the later name), the rest survive exactly
    np.testing.assert_array_equal(read["Heart"], structures["Heart"] & ~structures["PTV"])
    np.testing.assert_array_equal(read["Body"], ~(read["Heart"] | read["PTV"]))
    assert read.grid.same_grid(structures.grid)


def test_label_map_names_unnamed_labels_and_grid_check(tmp_path, caplog):
    grid = _volume(shape=(3, 4, 5))
    labels = np.zeros(grid.shape, np.uint8)
    labels[0] = 1
    labels[2, 0, 0] = 9
    path = write_volume(grid.with_array(labels, units="label"), tmp_path / "seg.nrrd")
    with caplog.at_level(logging.WARNING):
        read = read_label_map(path, {"Body": 1, "Heart": 2}, grid=grid)
    assert read.names == ["Body", "label_9"] and read.empty == ("Heart",)
    assert "label_<value>" in caplog.text and read["label_9"].sum() == 1
    names_file = tmp_path / "names.json"
    names_file.write_text(json.dumps({"Body": 1, "Nine": 9}))
    assert read_label_map(path, names_file).names == ["Body", "Nine"]
    other = Volume(grid.array, (1.0, 1.0, 1.0))
    with pytest.raises(GeometryError) as info:
        read_label_map(path, {"Body": 1}, grid=other, patient="p2")
    assert "seg.nrrd" in str(info.value) and info.value.patient == "p2"
    with pytest.raises(InputError, match="JSON"):
        read_label_map(path)  # no seg.json beside it
    with pytest.raises(InputError, match="share one label"):
        read_label_map(path, {"A": 1, "B": 1})


def test_resample_linear_dose_and_nearest_masks():
    # dose linear in x: trilinear interpolation reproduces it exactly inside the source grid
    src_grid = Volume(np.zeros((5, 6, 11), np.float32), (1.0, 1.0, 1.0))
    x_mm = np.arange(11, dtype=np.float32)
    dose = src_grid.with_array(np.broadcast_to(2.0 * x_mm, src_grid.shape).copy())
    target = Volume(np.zeros((3, 4, 8)), (1.25, 1.0, 1.0), origin_mm=(0.5, 1.0, 1.0))
    out = resample_to(dose, target, order=1)
    assert out.shape == target.shape and out.units == "Gy" and out.array.dtype == np.float32
    expected_x = 0.5 + 1.25 * np.arange(8)
    np.testing.assert_allclose(out.array[1, 2], 2.0 * expected_x, atol=1e-5)
    mask = np.zeros(src_grid.shape, bool)
    mask[:, :, :5] = True  # x in [0, 4] mm
    structures = StructureSet({"m": mask}, src_grid)
    res = resample_structures(structures, target)
    assert res["m"].dtype == bool
    np.testing.assert_array_equal(res["m"][0, 0], expected_x <= 4.5)


def test_to_sitk_direction_is_column_major_axes():
    volume = _volume(direction=_rotation(np.pi / 2))
    image = to_sitk_image(volume)
    # moving one voxel along i moves 1.5 mm along the first column of the direction matrix
    p0 = np.array(image.TransformIndexToPhysicalPoint((0, 0, 0)))
    p1 = np.array(image.TransformIndexToPhysicalPoint((1, 0, 0)))
    np.testing.assert_allclose(p1 - p0, 1.5 * volume.direction[:, 0], atol=1e-9)


def test_openkbp_case_reads_with_plausible_dose():
    case = OPENKBP / "pt_1"
    if not (case / "dose.nii.gz").is_file():
        pytest.skip(f"openkbp data not found at {case}")
    import nibabel as nib

    dose = read_volume(case / "dose.nii.gz", patient="pt_1")
    structures = read_label_map(case / "labels.nii.gz", grid=dose, patient="pt_1")
    assert dose.shape == (128, 128, 128) and dose.array.dtype == np.float32
    np.testing.assert_array_equal(dose.array,
                                  sitk.GetArrayFromImage(sitk.ReadImage(str(case / "dose.nii.gz"))))
    affine = nib.load(str(case / "dose.nii.gz")).affine
    np.testing.assert_allclose(dose.spacing_mm, np.abs(np.diag(affine)[:3]), rtol=1e-6)
    assert 65.0 < float(dose.array.max()) < 85.0
    labels = json.loads((case / "labels.json").read_text())
    assert set(structures.names) | set(structures.empty) == set(labels)
    ptv70_mean_gy = float(dose.array[structures["PTV70"]].mean())
    assert abs(ptv70_mean_gy - 70.0) / 70.0 < 0.05
