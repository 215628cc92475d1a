"""Parametric phantoms: organ volumes against reference adult ranges, containment, anatomy, rng."""

from __future__ import annotations

import time

import numpy as np
import pytest

from lymphonet.errors import InputError
from lymphonet.twin.phantoms import REGIONS, make_phantom, organ_volumes_cc, thorax_phantom

# Reference adult volumes (cc): ICRP-89 masses (ICRP 2002, Table 2.8) at ~1 g/cc and typical CT
# volumes (lungs at free breathing, heart including chambers, bladder moderately filled).
RANGES_CC = {
    "thorax": {"lungs": (2500, 4500), "heart": (400, 900), "thyroid": (10, 30)},
    "abdomen": {"liver": (1200, 2000), "spleen": (100, 350), "kidneys": (200, 400),
                "pancreas": (40, 150), "stomach": (150, 600)},
    "brain": {"brain": (1100, 1500)},
    "pelvis": {"bladder": (100, 500)},
}
PEOPLE = [("M", 176, 22), ("F", 163, 22), ("M", 182, 28), ("F", 160, 25), ("M", 170, 26)]


@pytest.mark.parametrize("sex,height,bmi", PEOPLE)
@pytest.mark.parametrize("region", sorted(RANGES_CC))
def test_organ_volumes_in_reference_ranges(region, sex, height, bmi):
    ph = make_phantom(region, sex=sex, height_cm=height, bmi=bmi, rng=np.random.default_rng(3))
    cc = organ_volumes_cc(ph)
    for organ, (lo, hi) in RANGES_CC[region].items():
        assert lo <= cc[organ] <= hi, (organ, cc[organ])


def test_female_organs_smaller_like_icrp89():
    male = organ_volumes_cc(make_phantom("thorax", sex="M"))
    female = organ_volumes_cc(make_phantom("thorax", sex="F"))
    # ICRP-89 female/male mass ratios: lungs 0.79, heart 0.76 (5 mm voxels: +-7%).
    assert female["lungs"] / male["lungs"] == pytest.approx(950 / 1200, abs=0.07)
    assert female["heart"] / male["heart"] == pytest.approx(250 / 330, abs=0.07)


@pytest.mark.parametrize("region", sorted(REGIONS))
@pytest.mark.parametrize("sex,height,bmi,seed", [("M", 176, 22, None), ("F", 150, 16, 1),
                                                 ("M", 200, 40, 2), ("F", 185, 35, 3),
                                                 ("M", 160, 17, 4)])
def test_every_organ_inside_body(region, sex, height, bmi, seed):
    rng = None if seed is None else np.random.default_rng(seed)
    ph = make_phantom(region, sex=sex, height_cm=height, bmi=bmi, rng=rng)
    body = ph["body"]
    for name in ph.names:
        assert not (ph[name] & ~body).any(), name
    # The scan covers the body: no body voxel on the in-plane border of the grid.
    assert not body[:, [0, -1], :].any() and not body[:, :, [0, -1]].any()
    assert max(ph.grid.shape) <= 120  # extreme bodies; reference adults: see below


@pytest.mark.parametrize("sex", ["M", "F"])
def test_reference_grids_are_small(sex):
    for region in REGIONS:
        assert max(make_phantom(region, sex=sex).grid.shape) <= 100


def test_canonical_organs_and_composites_per_region():
    need = {"thorax": ["lungs", "lung_left", "lung_right", "heart", "great_vessels", "aorta",
                       "vena_cava", "pulmonary_artery", "esophagus", "liver", "spleen",
                       "bone_marrow", "lymph_nodes", "lymph_nodes_mediastinal", "thyroid"],
            "abdomen": ["liver", "spleen", "kidneys", "stomach", "pancreas", "bowel",
                        "small_bowel", "large_bowel", "lymph_nodes_para_aortic"],
            "pelvis": ["bladder", "bowel", "bone_marrow", "lymph_nodes_pelvic", "prostate"],
            "brain": ["brain", "brainstem", "bone_marrow"],
            "head_neck": ["thyroid", "parotids", "lymph_nodes_cervical", "spinal_cord"]}
    for region, organs in need.items():
        ph = make_phantom(region)
        for organ in organs + ["body"]:
            assert organ in ph and ph[organ].any(), (region, organ)
        if "lungs" in ph:
            assert np.array_equal(ph["lungs"], ph["lung_left"] | ph["lung_right"])
        stations = [n for n in ph.names if n.startswith("lymph_nodes_")]
        assert np.array_equal(ph["lymph_nodes"], np.logical_or.reduce([ph[s] for s in stations]))


def _centroid_mm(ph, name):
    k, j, i = np.nonzero(ph[name])
    return ph.grid.index_to_physical(np.stack([k, j, i], -1).mean(0))


def test_anatomical_layout():
    ph = make_phantom("abdomen")
    x = {n: _centroid_mm(ph, n) for n in ("liver", "spleen", "stomach", "kidney_left",
                                          "kidney_right", "heart")}
    assert x["liver"][0] < -20 and x["spleen"][0] > 40 and x["stomach"][0] > 20   # LPS: +x left
    assert x["kidney_left"][1] > x["stomach"][1]  # kidneys posterior (+y) to the stomach
    th = make_phantom("thorax")
    heart, lungs = _centroid_mm(th, "heart"), _centroid_mm(th, "lungs")
    assert heart[0] > 0 and heart[1] < lungs[1]  # heart left of midline and anterior
    assert _centroid_mm(th, "lung_left")[0] > 0 > _centroid_mm(th, "lung_right")[0]
    assert not (th["heart"] & th["lungs"]).any()  # organs are exclusive


def test_girth_follows_bmi_and_length_follows_height():
    lean = make_phantom("abdomen", bmi=19)
    obese = make_phantom("abdomen", bmi=35)
    v_lean, v_obese = organ_volumes_cc(lean), organ_volumes_cc(obese)
    assert v_obese["body"] > 1.5 * v_lean["body"]
    assert abs(v_obese["liver"] / v_lean["liver"] - 1) < 0.15  # organs barely follow fat
    short, tall = make_phantom("thorax", height_cm=155), make_phantom("thorax", height_cm=195)
    assert tall.grid.shape[0] > short.grid.shape[0]
    assert organ_volumes_cc(tall)["lungs"] > 1.2 * organ_volumes_cc(short)["lungs"]


def test_sex_specific_organs():
    m, f = make_phantom("pelvis", sex="M"), make_phantom("pelvis", sex="F")
    assert "prostate" in m and "prostate" not in f
    assert "uterus" in f and "cervix" in f and "uterus" not in m
    bm, bf = make_phantom("thorax", sex="M"), make_phantom("thorax", sex="F")
    assert organ_volumes_cc(bf)["breast_left"] > 3 * organ_volumes_cc(bm)["breast_left"]


def test_rng_reproducible_and_varies():
    a = make_phantom("thorax", rng=np.random.default_rng(7))
    b = make_phantom("thorax", rng=np.random.default_rng(7))
    c = make_phantom("thorax", rng=np.random.default_rng(8))
    assert a.names == b.names
    assert all(np.array_equal(a[n], b[n]) for n in a.names)
    assert not np.array_equal(a["heart"], c["heart"])
    # Without an rng the phantom is the deterministic reference.
    assert np.array_equal(make_phantom("thorax")["heart"], make_phantom("thorax")["heart"])


def test_target_from_shapes_and_thorax_shortcut():
    ph = thorax_phantom()
    assert ph["target"].any() and not (ph["target"] & ~ph["body"]).any()
    assert 150 < organ_volumes_cc(ph)["target"] < 600
    assert ph.grid.metadata["simulated"] is True


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_generation_is_fast(region):
    best = min(_timed(region) for _ in range(3))
    assert best < 0.3


def _timed(region):
    t0 = time.perf_counter()
    make_phantom(region, rng=np.random.default_rng(0))
    return time.perf_counter() - t0


@pytest.mark.parametrize("kwargs,field", [({"region": "knee"}, "region"),
                                          ({"region": "thorax", "sex": "X"}, "sex"),
                                          ({"region": "thorax", "bmi": 80}, "bmi"),
                                          ({"region": "thorax", "height_cm": 90}, "height_cm")])
def test_bad_input_names_field(kwargs, field):
    region = kwargs.pop("region")
    with pytest.raises(InputError) as err:
        make_phantom(region, **kwargs)
    assert err.value.field == field


def test_reactive_nodes_sit_beside_the_target_inside_the_body():
    from lymphonet.twin.phantoms import add_reactive_nodes
    from lymphonet.twin.sites import site_phantom

    ph = site_phantom("pancreas", spacing_mm=(8.0,) * 3)
    places = []
    for seed in range(6):
        out = add_reactive_nodes(ph, np.random.default_rng(seed))
        node = out["lymph_nodes_reactive"]
        assert node.any() and not (node & ph["target"]).any()
        assert not (node & ~ph["body"]).any()
        assert (out["lymph_nodes"] == (ph["lymph_nodes"] | node)).all()
        assert 3.0 < node.sum() * ph.grid.voxel_volume_cc < 15.0
        places.append(np.argwhere(node).mean(0))
    assert np.ptp(np.array(places)[:, 0]) * 8.0 > 60.0, "its level varies by patient"
    assert "lymph_nodes_reactive" not in ph.masks, "the input phantom is not changed"
