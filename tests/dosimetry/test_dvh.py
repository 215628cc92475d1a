"""DVH statistics: closed-form volumes, defining properties (hypothesis), errors, real OpenKBP data."""

from __future__ import annotations

import itertools
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lymphonet.dosimetry.dvh import (
    cumulative_dvh,
    dose_histogram,
    dvh_stats,
    dvh_table,
    mean_body_dose_gy,
    stat_names,
)
from lymphonet.errors import GeometryError, InputError
from lymphonet.io.volume import StructureSet, Volume

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def ramp(n: int = 100, step_gy: float = 0.5, shape_yz: tuple[int, int] = (4, 5)) -> np.ndarray:
    """Dose ``i * step_gy`` along the last axis (i = 0..n-1), constant across the other two."""
    return np.broadcast_to(np.arange(n) * step_gy, (*shape_yz, n)).copy()


# ---------------------------------------------------------------- golden constructed volumes


def test_uniform_dose_gives_step_dvh_and_equal_stats():
    dose_gy, voxel_cc = 3.705, 0.125  # mid-bin dose; 5 mm voxels
    dose = np.full((10, 10, 10), dose_gy)
    total_cc = 1000 * voxel_cc
    dvh = cumulative_dvh(dose, None, voxel_cc, bin_width_gy=0.01)
    # Full volume at every edge <= 3.705 Gy (edges 0.00..3.70: 371 of them), nothing above.
    n_full = math.floor(dose_gy / 0.01) + 1
    assert np.all(dvh.volume_cc[:n_full] == total_cc)
    assert np.all(dvh.volume_cc[n_full:] == 0)
    assert dvh.volume_cc.size > n_full  # the histogram reaches 0 cc
    assert dvh.total_volume_cc == total_cc
    np.testing.assert_array_equal(dvh.relative[:n_full], 1.0)

    s = dvh_stats(dose, None, voxel_cc, v_gy=(3, 5))
    assert s["n_voxels"] == 1000 and s["volume_cc"] == total_cc
    assert s["mean_gy"] == pytest.approx(dose_gy, rel=1e-12)
    assert s["min_gy"] == s["max_gy"] == s["d95_gy"] == s["d2_gy"] == s["d2cc_gy"] == dose_gy
    assert s["v3gy_cc"] == total_cc and s["v3gy_pct"] == 100.0
    assert s["v5gy_cc"] == 0.0 and s["v5gy_pct"] == 0.0


def test_dose_exactly_on_an_edge_counts_as_receiving_it():
    # 0.25 Gy edges are exact in binary: 1.5 Gy is edge 6 and must be included (>=).
    dvh = cumulative_dvh(np.full((2, 2, 2), 1.5), None, 1.0, bin_width_gy=0.25)
    np.testing.assert_array_equal(dvh.volume_cc[:7], 8.0)
    np.testing.assert_array_equal(dvh.volume_cc[7:], 0.0)


@pytest.mark.parametrize("dose_gy", [0.29, 0.35, 0.41, 0.58, 0.69])
def test_decimal_doses_on_centigray_edges_are_binned_exactly(dose_gy):
    # i * 0.01 and dose / 0.01 both round the wrong way for these values; the edges are i / 100.
    dvh = cumulative_dvh(np.full((1, 1, 3), dose_gy), None, 1.0)
    i = round(dose_gy * 100)
    assert dvh.dose_edges_gy[i] == dose_gy
    assert dvh.volume_at_cc(dose_gy) == 3.0
    np.testing.assert_array_equal(dvh.volume_cc[: i + 1], 3.0)
    np.testing.assert_array_equal(dvh.volume_cc[i + 1:], 0.0)


@pytest.mark.parametrize("bin_width_gy", [0.07, 0.3])
def test_doses_on_and_just_below_edges_of_odd_bin_widths(bin_width_gy):
    edges = cumulative_dvh(np.full((1, 1, 1), 30.0), None, 1.0,
                           bin_width_gy=bin_width_gy).dose_edges_gy
    on = edges[1:60]
    below = np.nextafter(on, 0.0)  # dose / width rounds up to the edge index for many of these
    values = np.concatenate([on, below]).reshape(1, 2, -1)
    dvh = cumulative_dvh(values, None, 1.0, bin_width_gy=bin_width_gy)
    brute = (values.ravel()[None, :] >= dvh.dose_edges_gy[:, None]).sum(axis=1)
    np.testing.assert_array_equal(dvh.volume_cc, brute)


def test_linear_ramp_closed_forms():
    n, step = 100, 0.5
    dose = ramp(n, step)  # 20 voxels at each of 0, 0.5, ..., 49.5 Gy
    voxel_cc = 0.2
    s = dvh_stats(dose, None, voxel_cc, d_percent=(95, 50, 5), v_gy=(15, 15.25))
    assert s["mean_gy"] == pytest.approx(step * (n - 1) / 2, abs=1e-12)  # midpoint, 24.75 Gy
    assert (s["min_gy"], s["max_gy"]) == (0.0, step * (n - 1))
    # D95 of a ramp over [0, n*step) is its 5th percentile, 0.05 * n * step, to within one dose step;
    # the nearest-rank rule lands exactly on the voxel i = 5.
    assert abs(s["d95_gy"] - 0.05 * n * step) <= step
    assert s["d95_gy"] == 5 * step
    assert s["d50_gy"] == 50 * step and s["d5_gy"] == 95 * step
    # V15Gy: voxels i >= 30 (70 %); V15.25Gy: i >= 31 (69 %).
    assert s["v15gy_pct"] == pytest.approx(70.0) and s["v15gy_cc"] == pytest.approx(70 * 20 * 0.2)
    assert s["v15p25gy_pct"] == pytest.approx(69.0)
    assert s["integral_dose_gy_l"] == pytest.approx(24.75 * 2000 * 0.2 / 1000)


def test_two_value_volume_d50_boundary():
    dose = np.zeros((1, 1, 100))
    dose[..., :50] = 6.0
    dose[..., 50:] = 2.0
    s = dvh_stats(dose, None, 1.0, d_percent=(49, 50, 50.5, 51, 100))
    # Exactly half the volume receives >= 6 Gy: D50 = 6; asking for any more volume drops to 2 Gy.
    assert s["d49_gy"] == s["d50_gy"] == 6.0
    assert s["d50p5_gy"] == s["d51_gy"] == 2.0
    assert s["d100_gy"] == 2.0


def test_dcc_of_structure_smaller_than_x_is_zero_like_dicompyler():
    dose = ramp(10, 1.0, (1, 1)) + 1.0  # 1..10 Gy, one voxel each
    small = dvh_stats(dose, None, 0.15, d_cc=(2.0, 0.3, 1.5))  # 1.5 cc in all
    assert small["d2cc_gy"] == 0.0
    assert small["d0p3cc_gy"] == 9.0  # the 2 hottest voxels (0.3 cc) get >= 9 Gy
    assert small["d1p5cc_gy"] == 1.0  # the whole structure: its minimum
    assert dvh_stats(dose, None, 0.2)["d2cc_gy"] == 1.0  # exactly 2 cc


def test_integral_dose_closed_form():
    dose = np.full((10, 10, 10), 2.0)  # 1000 cc at 2 Gy
    assert dvh_stats(dose, None, 1.0)["integral_dose_gy_l"] == pytest.approx(2.0)
    mask = np.zeros_like(dose, dtype=bool)
    mask[:5] = True  # half
    assert dvh_stats(dose, mask, 1.0)["integral_dose_gy_l"] == pytest.approx(1.0)


def test_cumulative_dvh_agrees_with_vx_and_clips_at_max_dose():
    dose = ramp(100, 0.5)
    full = cumulative_dvh(dose, None, 0.2, bin_width_gy=0.5)
    s = dvh_stats(dose, None, 0.2, v_gy=(10, 20, 30))
    for x in (10, 20, 30):
        assert full.volume_at_cc(x) == pytest.approx(s[f"v{x}gy_cc"])
    short = cumulative_dvh(dose, None, 0.2, bin_width_gy=0.5, max_dose_gy=20)
    assert short.dose_edges_gy[-1] == 20.0
    # Voxels above the last edge are still counted there: 60 % of 400 cc get >= 20 Gy.
    assert short.volume_cc[-1] == pytest.approx(0.6 * 400)
    np.testing.assert_allclose(short.volume_cc, full.volume_cc[: short.volume_cc.size])
    assert full.differential_cc.sum() == pytest.approx(full.total_volume_cc)


def test_dose_histogram_fractions():
    dose = np.zeros((1, 1, 10))
    dose[..., :3] = 1.0
    dose[..., 3:] = 5.0
    frac = dose_histogram(dose, None, [0.0, 2.0, 4.0])
    # 5 Gy is above the last edge: counted in the last bin, so fractions sum to 1.
    np.testing.assert_allclose(frac, [0.3, 0.7])
    with pytest.raises(InputError, match="mask"):
        dose_histogram(dose, np.zeros(dose.shape, bool), [0.0, 1.0])
    with pytest.raises(InputError, match="bin_edges_gy"):
        dose_histogram(dose, None, [1.0, 1.0])


# ---------------------------------------------------------------- properties

doses = hnp.arrays(np.float64, hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=6),
                   elements=st.floats(0, 80, allow_nan=False, allow_subnormal=False))


@st.composite
def dose_and_mask(draw):
    d = draw(doses)
    m = draw(hnp.arrays(np.bool_, d.shape))
    m.flat[draw(st.integers(0, d.size - 1))] = True  # at least one voxel
    return d, m


@settings(max_examples=60, deadline=None)
@given(dose_and_mask(), st.floats(0.01, 3.0))
def test_properties(dm, voxel_cc):
    dose, mask = dm
    values = dose[mask]
    dvh = cumulative_dvh(dose, mask, voxel_cc, bin_width_gy=0.5)
    assert np.all(np.diff(dvh.volume_cc) <= 0)
    # Exact at every edge against brute force.
    brute = (values[None, :] >= dvh.dose_edges_gy[:, None]).sum(axis=1) * voxel_cc
    np.testing.assert_allclose(dvh.volume_cc, brute, rtol=1e-12)

    on_grid = np.round(dose, 2)  # doses on the 0.01 Gy edges: the worst case for rounding
    fine = cumulative_dvh(on_grid, mask, voxel_cc)
    brute = (on_grid[mask][None, :] >= fine.dose_edges_gy[:, None]).sum(axis=1) * voxel_cc
    np.testing.assert_allclose(fine.volume_cc, brute, rtol=1e-12)

    xs = (0, 1, 2, 5, 25, 50, 75, 95, 98, 100)
    s = dvh_stats(dose, mask, voxel_cc, d_percent=xs, v_gy=(0, 10))
    assert s["volume_cc"] == pytest.approx(values.size * voxel_cc)
    assert s["v0gy_cc"] == pytest.approx(s["volume_cc"]) and s["v0gy_pct"] == 100.0
    assert s["min_gy"] - 1e-9 <= s["mean_gy"] <= s["max_gy"] + 1e-9
    dx = [s[f"d{x}_gy"] for x in xs]
    assert all(a >= b for a, b in itertools.pairwise(dx))
    assert dx[0] == s["max_gy"] and dx[-1] == s["min_gy"]
    for x, d in zip(xs, dx):  # defining property of Dx%
        assert np.mean(values >= d) * 100 >= x - 1e-9
        if x > 0:
            assert np.mean(values > d) * 100 < x


# ---------------------------------------------------------------- tables and errors


def _grid(shape=(4, 5, 6), spacing=(2.0, 2.0, 2.5)) -> Volume:
    return Volume(np.zeros(shape), spacing)


def test_dvh_table_rows_columns_and_empty_structures():
    dose = ramp(6, 1.0, (4, 5))
    vol = Volume(dose, (2.0, 2.0, 2.5))
    left = np.zeros(dose.shape, bool)
    left[..., :3] = True
    masks = {"body": np.ones(dose.shape, bool), "left": left, "hole": np.zeros(dose.shape, bool)}
    table = dvh_table(vol, StructureSet(masks, vol, empty=("areola",)), v_gy=(2,))
    assert list(table.columns) == ["structure", *stat_names(v_gy=(2,)), "empty"]
    assert list(table["structure"]) == ["body", "left", "hole", "areola"]
    assert list(table["empty"]) == [False, False, True, True]
    assert table.loc[1, "mean_gy"] == pytest.approx(1.0)  # doses 0, 1, 2
    assert table.loc[1, "volume_cc"] == pytest.approx(60 * 0.01)
    assert table.loc[0, "v2gy_pct"] == pytest.approx(4 / 6 * 100)
    empty_rows = table[table["empty"]]
    assert (empty_rows["volume_cc"] == 0).all() and (empty_rows["n_voxels"] == 0).all()
    assert empty_rows["mean_gy"].isna().all() and empty_rows["d2cc_gy"].isna().all()


def test_structures_on_another_grid_raise_geometry_error_naming_file():
    dose = Volume(np.ones((4, 5, 6)), (2.0, 2.0, 2.5))
    other = Volume(np.zeros((4, 5, 6)), (2.0, 2.0, 3.0))
    ss = StructureSet({"body": np.ones((4, 5, 6), bool)}, other, source="rtss.dcm")
    with pytest.raises(GeometryError, match="rtss.dcm"):
        dvh_table(dose, ss, patient="p1")


def test_shape_mismatch_nan_negative_and_label_mask_are_refused():
    dose = np.ones((4, 5, 6))
    with pytest.raises(GeometryError, match="shape"):
        dvh_stats(dose, np.ones((4, 5, 5), bool), 1.0)
    with pytest.raises(GeometryError):
        cumulative_dvh(dose, np.ones((6, 5, 4), bool), 1.0)
    with pytest.raises(InputError, match="mask must be boolean"):
        dvh_stats(dose, np.ones((4, 5, 6), np.uint8), 1.0)
    bad = dose.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        dvh_stats(bad, None, 1.0)
    with pytest.raises(InputError, match="dose"):
        dvh_table(Volume(bad, (1, 1, 1)), StructureSet({"b": dose > 0}, Volume(bad, (1, 1, 1))),
                  patient="p7")
    with pytest.raises(InputError, match=">= 0"):
        dvh_stats(-dose, None, 1.0)
    with pytest.raises(InputError, match="voxel_cc"):
        dvh_stats(dose, None, 0.0)


def test_mean_body_dose_requires_body_unless_allowed():
    dose = ramp(6, 1.0, (4, 5))
    vol = Volume(dose, (1.0, 1.0, 1.0))
    body = np.zeros(dose.shape, bool)
    body[..., 4:] = True
    assert mean_body_dose_gy(vol, StructureSet({"body": body}, vol)) == pytest.approx(4.5)
    no_body = StructureSet({"heart": body}, vol, source="labels.nii.gz")
    with pytest.raises(InputError, match="body") as err:
        mean_body_dose_gy(vol, no_body, patient="p3")
    assert err.value.patient == "p3" and err.value.field == "body"
    assert mean_body_dose_gy(vol, no_body, allow_no_body=True) == pytest.approx(2.5)
    assert mean_body_dose_gy(vol, None, allow_no_body=True) == pytest.approx(2.5)


# ---------------------------------------------------------------- real data


def test_openkbp_dvh_table_matches_numpy_means():
    case = DATA / "openkbp" / "pt_1"
    if not case.is_dir():
        pytest.skip(f"shared data not found at {case}")
    sitk = pytest.importorskip("SimpleITK")
    dose_img = sitk.ReadImage(str(case / "dose.nii.gz"))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "labels.nii.gz")))
    dose_arr = sitk.GetArrayFromImage(dose_img)
    names = json.loads((case / "labels.json").read_text())
    vol = Volume(dose_arr, dose_img.GetSpacing(), dose_img.GetOrigin(),
                 np.asarray(dose_img.GetDirection()).reshape(3, 3))
    ss = StructureSet({n: labels == v for n, v in names.items()}, vol)
    dvh_table(vol, ss)  # warm-up (pandas import)
    t0 = time.perf_counter()
    table = dvh_table(vol, ss).set_index("structure")
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0, f"dvh_table took {elapsed:.2f} s on a 128^3 grid"
    voxel_cc = float(np.prod(dose_img.GetSpacing())) / 1000
    for name, value in names.items():
        m = labels == value
        assert table.loc[name, "mean_gy"] == pytest.approx(dose_arr[m].mean(dtype=np.float64),
                                                           rel=1e-9)
        assert table.loc[name, "volume_cc"] == pytest.approx(m.sum() * voxel_cc, rel=1e-12)
        assert table.loc[name, "max_gy"] == pytest.approx(float(dose_arr[m].max()))
    # PTV70 is prescribed 70 Gy: its D95 should be near, and its D2 above, the prescription.
    assert 60 < table.loc["PTV70", "d95_gy"] <= table.loc["PTV70", "d2_gy"]
    assert mean_body_dose_gy(vol, ss.rename({"Body": "body"})) == pytest.approx(
        table.loc["Body", "mean_gy"])
