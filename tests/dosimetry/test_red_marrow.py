"""Red marrow by bone site: shares, partial contours, the generic-bone fallback, and its use by the
kinetics features and the blood-dose engine."""

import numpy as np
import pytest

from lymphonet.dosimetry.dose_map_histograms import histograms_from_dose_map
from lymphonet.dosimetry.plan_features import _quantiles, lymphoid_masks, plan_features
from lymphonet.dosimetry.red_marrow import (
    ADULT_MARROW_AGE,
    RED_MARROW_SHARE,
    REFERENCE_SITE_VOLUME_CC,
    age_note,
    marrow_weights,
    with_marrow_union,
)
from lymphonet.io.volume import StructureSet, Volume
from lymphonet.organs import LYMPHOID_ORGANS
from lymphonet.twin.anatomy import Person
from lymphonet.twin.phantoms import _organ_masks, make_phantom


def _slab(n_site_voxels: dict[str, int]) -> dict[str, np.ndarray]:
    """Masks on a row of voxels in the middle of a 3 x 3 x N grid (no contour reaches the grid's
    edge): each site gets its count of voxels, in order."""
    total = sum(n_site_voxels.values()) + 4
    masks, start = {}, 2
    for site, n in n_site_voxels.items():
        m = np.zeros((3, 3, total), bool)
        m[1, 1, start:start + n] = True
        masks[f"bone_marrow_{site}"] = m
        start += n
    masks["body"] = np.ones((3, 3, total), bool)
    return masks


def test_adult_shares_are_a_distribution_and_the_phantom_volumes_are_the_reference():
    assert sum(RED_MARROW_SHARE.values()) == pytest.approx(0.932, abs=1e-9)  # 6.7% not drawn
    sp = 2.0
    x, y, z = np.arange(-250, 251, sp), np.arange(-160, 161, sp), np.arange(-1050, 21, sp)
    masks = _organ_masks(Person.of("M", 176.0, 22.0), (x, y, z), (z.size, y.size, x.size), None)
    for site, ref in REFERENCE_SITE_VOLUME_CC.items():
        vol = masks[f"bone_marrow_{site}"].sum() * sp**3 / 1000
        assert vol == pytest.approx(ref, rel=0.02), site


def _skeleton(sex: str, height_cm: float, sp: float = 4.0):
    """Masks of a whole person on a whole-body grid (every bone site inside)."""
    x, y, z = np.arange(-250, 251, sp), np.arange(-160, 161, sp), np.arange(-1250, 31, sp)
    return _organ_masks(Person.of(sex, height_cm, 22.0), (x, y, z), (z.size, y.size, x.size),
                        None), sp**3 / 1000


@pytest.mark.parametrize("sex, height", [("M", 176.0), ("F", 150.0), ("M", 195.0)])
def test_a_whole_skeleton_holds_all_drawn_red_marrow_whatever_the_body_size(sex, height):
    """Sites inside the grid are whole sites: the drawn skeleton holds the sum of the ICRP-89
    shares of the drawn sites (93.2%) for a small woman as for a tall man."""
    masks, cc = _skeleton(sex, height)
    mask, w, cov, _ = marrow_weights(masks, cc)
    assert cov == pytest.approx(sum(RED_MARROW_SHARE.values()), abs=1e-9)
    assert w.sum() == pytest.approx(cov) and mask.sum() == masks["bone_marrow"].sum()
    # every voxel of one site weighs the same, and a site's voxels sum to its share
    lumbar = masks["bone_marrow_lumbar"][mask]
    assert w[lumbar].sum() == pytest.approx(RED_MARROW_SHARE["lumbar"])
    assert np.ptp(w[lumbar]) < 1e-15


def test_a_site_cut_by_the_grid_holds_the_part_inside():
    """Cut the reference man's grid through the lumbar spine: the lumbar spine holds its share
    times the part of its voxels left (counted here), the other sites are unchanged."""
    masks, cc = _skeleton("M", 176.0)
    lumbar = masks["bone_marrow_lumbar"]
    zs = np.nonzero(lumbar.any(axis=(1, 2)))[0]
    cut = int(zs[len(zs) // 2])
    upper = {n: m[cut:] for n, m in masks.items()}  # z ascending: keep the upper part
    kept = upper["bone_marrow_lumbar"].sum() / lumbar.sum()
    cov = marrow_weights(upper, cc)[2]
    lost = sum(RED_MARROW_SHARE[s] for s in ("sacrum", "os_coxae", "femora")
               if not upper[f"bone_marrow_{s}"].any())
    expect = sum(RED_MARROW_SHARE.values()) - lost - RED_MARROW_SHARE["lumbar"] * (1 - kept)
    # (the 4-mm count of the whole lumbar spine differs from its 2-mm reference volume by ~3%)
    assert 0.2 < kept < 0.8 and cov == pytest.approx(expect, abs=0.05 * RED_MARROW_SHARE["lumbar"])


def test_overlapping_site_contours_add_their_shares():
    masks = _slab({"sternum": 4, "ribs": 4})
    masks["bone_marrow_ribs"][1, 1, 2:6] = True  # the ribs contour also covers the sternum
    cov = marrow_weights(masks, 1.0)[2]
    assert cov == pytest.approx(RED_MARROW_SHARE["sternum"] + RED_MARROW_SHARE["ribs"])


def test_generic_bone_contour_keeps_the_volume_rule_and_says_it_is_an_upper_bound():
    m = np.zeros((1, 1, 600), bool)
    m[0, 0, :585] = True
    _, w, cov, note = marrow_weights({"bone_marrow": m}, 1.0)
    assert cov == pytest.approx(585 / 1170) and w.sum() == pytest.approx(cov)
    assert "upper bound" in note
    assert marrow_weights({"body": m}, 1.0) is None
    # a site name lymphonet does not know is bone without a site, not a whole organ
    _, _, cov, note = marrow_weights({"bone_marrow_pelvis": m}, 1.0)
    assert cov == pytest.approx(585 / 1170) and "without a known site" in note
    grid = Volume(np.zeros(m.shape, np.float32), (10.0, 10.0, 10.0), (0.0, 0.0, 0.0),
                  units="label")
    pelvis = StructureSet({"bone_marrow_pelvis": m, "body": np.ones_like(m)}, grid)
    assert lymphoid_masks(pelvis)["bone_marrow"].sum() == 585


def test_sites_fold_into_one_bone_marrow_mask():
    masks = _slab({"ribs": 3, "sacrum": 2})
    out = with_marrow_union(masks)
    assert "bone_marrow_ribs" not in out and out["bone_marrow"].sum() == 5
    assert out["body"] is not None


def test_weighted_quantiles_follow_the_site_shares():
    # two sites at 1 Gy and 3 Gy: the share of quantile levels at 3 Gy is the 3-Gy site's share
    dose = np.r_[np.full(100, 1.0), np.full(100, 3.0)]
    w = np.r_[np.full(100, 0.2), np.full(100, 0.6)]  # 25% / 75% of the weight
    q = _quantiles(dose, 64, w)
    assert (q == 3.0).mean() == pytest.approx(0.75, abs=1 / 64)
    np.testing.assert_array_equal(_quantiles(dose, 8), np.r_[np.ones(4), np.full(4, 3.0)])


@pytest.fixture(scope="module")
def thorax():
    ph = make_phantom("thorax", sex="M", spacing_mm=(6.0, 6.0, 6.0))
    dose = np.zeros(ph.grid.shape, np.float32)
    dose[ph["bone_marrow_thoracic"]] = 60.0  # only the thoracic spine is dosed
    return ph, Volume(dose, ph.grid.spacing_mm, ph.grid.origin_mm, units="Gy")


def test_thorax_features_hold_only_the_drawn_sites_share_of_red_marrow(thorax):
    ph, dose = thorax
    f = plan_features(dose, ph, n_fractions=30, beam_on_time_s=60.0, particles=2000)
    i = LYMPHOID_ORGANS.index("bone_marrow")
    cov = f.lymphoid_coverage[i]
    # sternum, ribs and thoracic spine lie inside the thorax grid: whole sites; the cervical and
    # lumbar spine are cut by it and add part of their shares
    whole = sum(RED_MARROW_SHARE[s] for s in ("sternum", "ribs", "thoracic"))
    assert whole < cov < whole + RED_MARROW_SHARE["cervical"] + RED_MARROW_SHARE["lumbar"]
    assert cov < 0.6  # not all-bone: the thorax holds ~1.2 L of bone
    # share of marrow dose quantiles above 1 Gy = the thoracic spine's share of the covered marrow
    thor = RED_MARROW_SHARE["thoracic"] / cov
    assert (f.lymphoid_dose_q_gy[i] > 1.0).mean() == pytest.approx(thor, abs=1.5 / 64)
    assert any("red marrow by bone site" in n for n in f.notes)


def test_blood_dose_marrow_compartment_uses_the_site_shares(thorax):
    ph, dose = thorax
    h = histograms_from_dose_map(dose, ph, ("red_marrow", "remainder"), n_fractions=30,
                                 unknown="remainder", composites="spread")
    note = next(n for n in h.notes if n.startswith("red_marrow:"))
    assert "red marrow by bone site" in note
    # the dosed share of the marrow's blood is the thoracic spine's share of all red marrow
    i = h.compartments.index("red_marrow")
    dosed = h.prob[i][h.dose_gy[i] > 1.0].sum() / h.prob[i].sum()
    assert dosed == pytest.approx(RED_MARROW_SHARE["thoracic"], rel=1e-6)  # a whole site


def test_body_site_is_the_body_outside_the_other_sites(thorax):
    ph, _ = thorax
    masks = lymphoid_masks(ph)
    assert {"body", "bone_marrow", "lymph_nodes"} <= set(masks)
    others = np.logical_or.reduce([m for n, m in masks.items() if n != "body"])
    assert not (masks["body"] & others).any()
    assert (masks["body"] | others).sum() == (ph["body"] | others).sum()
    assert masks["lungs"].sum() == (ph["lung_left"] | ph["lung_right"]).sum()


def test_a_child_is_told_the_adult_marrow_reference_was_used():
    assert age_note(float("nan")) is None and age_note(None) is None and age_note(40.0) is None
    assert age_note(ADULT_MARROW_AGE) is None
    by_site, generic = age_note(6.0), age_note(6.0, by_site=False)
    assert by_site.startswith("age 6:") and "skull" in by_site and "overestimated" in by_site
    assert generic.startswith("age 6:") and "1170 g" in generic


def test_scoring_warns_for_a_child_with_bone_contours_only():
    from types import SimpleNamespace

    from lymphonet.scoring.prepare import plan_warnings

    enc = SimpleNamespace(sites=("brain", "other"))
    full, empty = np.ones((2, 2, 2), bool), np.zeros((2, 2, 2), bool)

    def warnings(age, masks):
        record = SimpleNamespace(fraction_days=np.arange(5.0), site="brain", age=age)
        plan = SimpleNamespace(structures=SimpleNamespace(masks=masks), beam_on_assumed=False,
                               notes=())
        return [w for w in plan_warnings(record, plan, enc, 365) if w.startswith("age")]

    site = warnings(6.0, {"body": full, "bone_marrow_cranium": full})
    assert len(site) == 1 and "skull" in site[0]
    generic = warnings(6.0, {"body": full, "bone_marrow": full})
    assert len(generic) == 1 and "1170 g" in generic[0]
    unknown = warnings(6.0, {"body": full, "bone_marrow_humerus": full})  # volume rule
    assert len(unknown) == 1 and "1170 g" in unknown[0]
    mixed = warnings(6.0, {"body": full, "bone_marrow_cranium": full, "bone_marrow": full})
    assert len(mixed) == 2 and "skull" in mixed[0] and "1170 g" in mixed[1]
    assert warnings(6.0, {"body": full}) == []
    assert warnings(6.0, {"body": full, "bone_marrow_cranium": empty}) == []
    assert warnings(50.0, {"body": full, "bone_marrow": full}) == []
