"""Red marrow by bone site: shares, partial contours, the generic-bone fallback, and its use by the
kinetics features and the blood-dose engine."""

import numpy as np
import pytest

from lymphonet.dosimetry.dose_map_histograms import histograms_from_dose_map
from lymphonet.dosimetry.plan_features import _quantiles, lymphoid_masks, plan_features
from lymphonet.dosimetry.red_marrow import (
    RED_MARROW_SHARE,
    REFERENCE_SITE_VOLUME_CC,
    marrow_weights,
    with_marrow_union,
)
from lymphonet.io.volume import Volume
from lymphonet.organs import LYMPHOID_ORGANS
from lymphonet.twin.anatomy import Person
from lymphonet.twin.phantoms import _organ_masks, make_phantom


def _slab(n_site_voxels: dict[str, int]) -> dict[str, np.ndarray]:
    """Masks on a 1-voxel-thick row: each site gets its count of voxels, in order."""
    total = sum(n_site_voxels.values()) + 4
    masks, start = {}, 2
    for site, n in n_site_voxels.items():
        m = np.zeros((1, 1, total), bool)
        m[0, 0, start:start + n] = True
        masks[f"bone_marrow_{site}"] = m
        start += n
    masks["body"] = np.ones((1, 1, total), bool)
    return masks


def test_adult_shares_are_a_distribution_and_the_phantom_volumes_are_the_reference():
    assert sum(RED_MARROW_SHARE.values()) == pytest.approx(0.932, abs=1e-9)  # 6.7% not drawn
    sp = 2.0
    x, y, z = np.arange(-250, 251, sp), np.arange(-160, 161, sp), np.arange(-1050, 21, sp)
    masks = _organ_masks(Person.of("M", 176.0, 22.0), (x, y, z), (z.size, y.size, x.size), None)
    for site, ref in REFERENCE_SITE_VOLUME_CC.items():
        vol = masks[f"bone_marrow_{site}"].sum() * sp**3 / 1000
        assert vol == pytest.approx(ref, rel=0.02), site


def test_whole_half_and_oversized_site_contours():
    ref = REFERENCE_SITE_VOLUME_CC
    whole = {"sternum": int(ref["sternum"]), "lumbar": int(ref["lumbar"] / 2)}
    masks = _slab(whole)
    mask, w, cov, note = marrow_weights(masks, 1.0)  # 1 cc voxels
    expect = (RED_MARROW_SHARE["sternum"] * int(ref["sternum"]) / ref["sternum"]
              + RED_MARROW_SHARE["lumbar"] * int(ref["lumbar"] / 2) / ref["lumbar"])
    assert cov == pytest.approx(expect, rel=1e-9) and w.sum() == pytest.approx(cov)
    assert mask.sum() == sum(whole.values()) and "lumbar" in note and "sternum" in note
    # a lumbar voxel weighs its site's density, a sternum voxel its own
    assert w[-1] / w[0] == pytest.approx((RED_MARROW_SHARE["lumbar"] / ref["lumbar"])
                                         / (RED_MARROW_SHARE["sternum"] / ref["sternum"]))
    big = _slab({"sternum": 3 * int(ref["sternum"])})
    assert marrow_weights(big, 1.0)[2] == pytest.approx(RED_MARROW_SHARE["sternum"])


def test_generic_bone_contour_keeps_the_volume_rule_and_says_it_is_an_upper_bound():
    m = np.zeros((1, 1, 600), bool)
    m[0, 0, :585] = True
    _, w, cov, note = marrow_weights({"bone_marrow": m}, 1.0)
    assert cov == pytest.approx(585 / 1170) and w.sum() == pytest.approx(cov)
    assert "upper bound" in note
    assert marrow_weights({"body": m}, 1.0) is None


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
    cc = ph.grid.voxel_volume_cc
    sites = {s: ph[f"bone_marrow_{s}"].sum() * cc for s in RED_MARROW_SHARE
             if f"bone_marrow_{s}" in ph}
    expect = sum(RED_MARROW_SHARE[s] * min(1, v / REFERENCE_SITE_VOLUME_CC[s])
                 for s, v in sites.items())
    assert f.lymphoid_coverage[i] == pytest.approx(expect, rel=1e-5)
    assert f.lymphoid_coverage[i] < 0.6  # not all-bone: the thorax holds ~1.2 L of bone
    # share of marrow dose quantiles at 2 Gy = thoracic spine's share of the covered marrow
    thor = RED_MARROW_SHARE["thoracic"] * min(1, sites["thoracic"] / 251.0) / expect
    assert (f.lymphoid_dose_q_gy[i] > 1.0).mean() == pytest.approx(thor, abs=2 / 64)
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
    cc = ph.grid.voxel_volume_cc
    thor = RED_MARROW_SHARE["thoracic"] * min(1, ph["bone_marrow_thoracic"].sum() * cc / 251.0)
    assert dosed == pytest.approx(thor, rel=1e-6)


def test_body_site_is_the_body_outside_the_other_sites(thorax):
    ph, _ = thorax
    masks = lymphoid_masks(ph)
    assert {"body", "bone_marrow", "lymph_nodes"} <= set(masks)
    others = np.logical_or.reduce([m for n, m in masks.items() if n != "body"])
    assert not (masks["body"] & others).any()
    assert (masks["body"] | others).sum() == (ph["body"] | others).sum()
    assert masks["lungs"].sum() == (ph["lung_left"] | ph["lung_right"]).sum()
