"""EDIC (Jin et al.): the formula by hand, vectorisation, validation, and from structures."""

from __future__ import annotations

import numpy as np
import pytest

from lymphonet.dosimetry.edic import edic_body_coefficient, edic_from_structures, edic_gy
from lymphonet.errors import GeometryError, InputError
from lymphonet.io.volume import StructureSet, Volume


def test_formula_by_hand():
    # 0.12*10 + 0.08*5 + (0.45 + 0.2975*sqrt(30/45))*3 = 1.2 + 0.4 + (0.45 + 0.242907733)*3
    assert edic_gy(10.0, 5.0, 3.0, 30) == pytest.approx(3.678723199, abs=1e-8)
    # n = 5: sqrt(5/45) = 1/3 exactly -> body coefficient 0.45 + 0.2975/3.
    assert edic_gy(0.0, 0.0, 3.0, 5) == pytest.approx(3 * 0.45 + 0.2975, rel=1e-12)
    assert edic_gy(1.0, 0.0, 0.0, 30) == pytest.approx(0.12)
    assert edic_gy(0.0, 1.0, 0.0, 30) == pytest.approx(0.08)


def test_body_coefficient_at_45_fractions():
    assert edic_body_coefficient(45) == pytest.approx(0.45 + 0.2975, rel=1e-15)
    assert edic_gy(0.0, 0.0, 1.0, 45) == pytest.approx(0.7475, rel=1e-15)
    # n = 20: sqrt(20/45) = 2/3.
    assert edic_body_coefficient(20) == pytest.approx(0.45 + 0.2975 * 2 / 3, rel=1e-15)


def test_more_fractions_raise_edic_at_fixed_doses():
    values = edic_gy(18.0, 10.0, 5.0, np.arange(1, 46))
    assert np.all(np.diff(values) > 0)


def test_vectorised_matches_scalar_loop_and_broadcasts():
    rng = np.random.default_rng(1)
    mld, mhd, mbd = rng.uniform(0, 25, (3, 50))
    n = rng.integers(1, 40, 50)
    vec = edic_gy(mld, mhd, mbd, n)
    assert vec.shape == (50,)
    loop = [edic_gy(float(a), float(b), float(c), int(k)) for a, b, c, k in zip(mld, mhd, mbd, n)]
    np.testing.assert_allclose(vec, loop, rtol=1e-14)
    # Fraction counts as a column against dose rows: (3, 1) x (4,) -> (3, 4).
    grid = edic_gy(mld[:4], mhd[:4], mbd[:4], np.array([[5], [30], [45]]))
    assert grid.shape == (3, 4)
    np.testing.assert_allclose(grid[2], edic_gy(mld[:4], mhd[:4], mbd[:4], 45))
    with pytest.raises(InputError, match="broadcast"):
        edic_gy(np.ones(3), np.ones(4), 1.0, 30)


def test_rtog0617_like_plan_formula_identity():
    # Plausible stage III NSCLC numbers (MLD 18 Gy, MHD 10 Gy, MBD 7 Gy, 60 Gy in 30 fractions).
    # We cannot justify the body dose from a published table, so only the formula is asserted:
    # it gives about 7.8 Gy, above the 5.6-6.3 Gy RTOG 0617 medians quoted in DESIGN.md.
    expected = 0.12 * 18 + 0.08 * 10 + (0.45 + 0.35 * 0.85 * np.sqrt(30 / 45)) * 7
    assert edic_gy(18.0, 10.0, 7.0, 30) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("field, args", [
    ("mean_lung_gy", (np.nan, 1.0, 1.0, 30)),
    ("mean_heart_gy", (1.0, -0.5, 1.0, 30)),
    ("mean_body_gy", (1.0, 1.0, np.array([1.0, np.inf]), 30)),
    ("n_fractions", (1.0, 1.0, 1.0, 0)),
    ("n_fractions", (1.0, 1.0, 1.0, 2.5)),
    ("n_fractions", (1.0, 1.0, 1.0, np.nan)),
])
def test_bad_inputs_name_their_field(field, args):
    with pytest.raises(InputError) as err:
        edic_gy(*args)
    assert err.value.field == field


# ---------------------------------------------------------------- from structures


def _phantom():
    """A 10x10x10 grid (1 cc voxels): body = the whole grid, organs in slabs of known dose."""
    dose = np.zeros((10, 10, 10))
    masks = {name: np.zeros(dose.shape, bool) for name in
             ("lung_left", "lung_right", "heart", "body")}
    masks["body"][:] = True
    masks["lung_left"][0:2] = True    # 200 voxels at 20 Gy
    dose[0:2] = 20.0
    masks["lung_right"][2:3] = True   # 100 voxels at 5 Gy
    dose[2:3] = 5.0
    masks["heart"][3:4] = True        # 100 voxels at 8 Gy
    dose[3:4] = 8.0
    vol = Volume(dose, (10.0, 10.0, 10.0))
    return vol, masks


def test_edic_from_structures_matches_hand_calculation():
    vol, masks = _phantom()
    mld = (200 * 20 + 100 * 5) / 300  # voxel-weighted over both lungs: 15 Gy, not (20 + 5) / 2
    mhd = 8.0
    mbd = (200 * 20 + 100 * 5 + 100 * 8) / 1000  # 5.3 Gy
    expected = edic_gy(mld, mhd, mbd, 25)
    assert edic_from_structures(vol, StructureSet(masks, vol), 25) == pytest.approx(expected)
    # A combined "lungs" structure wins over the sides.
    combined = dict(masks, lungs=masks["lung_left"])
    assert edic_from_structures(vol, StructureSet(combined, vol), 25) == pytest.approx(
        edic_gy(20.0, mhd, mbd, 25))


def test_missing_organs():
    vol, masks = _phantom()
    no_heart = {k: v for k, v in masks.items() if k != "heart"}
    ss = StructureSet(no_heart, vol, source="rtss.dcm")
    with pytest.raises(InputError, match="heart") as err:
        edic_from_structures(vol, ss, 30, patient="p9")
    assert (err.value.field, err.value.patient, err.value.file) == ("heart", "p9", "rtss.dcm")
    assert edic_from_structures(vol, ss, 30, missing="zero") == pytest.approx(
        edic_gy(15.0, 0.0, 5.3, 30))

    one_lung = {k: v for k, v in masks.items() if k != "lung_right"}
    with pytest.raises(InputError, match="both sides") as err:
        edic_from_structures(vol, StructureSet(one_lung, vol), 30, missing="zero")
    assert err.value.field == "lungs"

    no_body = {k: v for k, v in masks.items() if k != "body"}
    with pytest.raises(InputError, match="body"):
        edic_from_structures(vol, StructureSet(no_body, vol), 30, missing="zero")
    with pytest.raises(InputError, match="missing"):
        edic_from_structures(vol, StructureSet(masks, vol), 30, missing="ignore")


def test_structures_on_another_grid_and_nan_dose():
    vol, masks = _phantom()
    shifted = Volume(np.zeros(vol.shape), vol.spacing_mm, origin_mm=(5.0, 0.0, 0.0))
    with pytest.raises(GeometryError):
        edic_from_structures(vol, StructureSet(masks, shifted), 30)
    bad = vol.array.copy()
    bad[5, 5, 5] = np.nan
    bad_vol = vol.with_array(bad)
    with pytest.raises(InputError, match="non-finite"):
        edic_from_structures(bad_vol, StructureSet(masks, bad_vol), 30)
