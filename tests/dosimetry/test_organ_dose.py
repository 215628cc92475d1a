"""Organ -> compartment mapping: the one table, composites, tumour, blood weighting, beam maps."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from lymphonet.dosimetry.blood_dose import blood_dose_for_plan, blood_dose_from_organ_doses
from lymphonet.dosimetry.circulation import Circulation
from lymphonet.dosimetry.dose_map_histograms import (
    REFERENCE_TISSUE_CC,
    histograms_from_dose_map,
    tumour_share,
)
from lymphonet.dosimetry.organ_dose import histograms_from_organ_doses
from lymphonet.dosimetry.organ_map import COMPOSITES, ORGAN_RULES, compartments_of
from lymphonet.errors import InputError

MALE = Circulation.reference("M")
WITH_TUMOUR = MALE.with_tumor("lung", 0.05)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "blood_dose.md"


@pytest.mark.parametrize("organ", sorted(ORGAN_RULES))
def test_each_organ_reaches_exactly_its_documented_compartments(organ):
    hist = histograms_from_organ_doses({organ: 1.0}, WITH_TUMOUR.names)
    dosed = {c for c, m in zip(WITH_TUMOUR.names, hist.mean_gy()) if m > 0}
    assert dosed == set(ORGAN_RULES[organ].compartments)


def test_heart_never_doses_the_coronary_bed_and_composites_need_their_parts():
    hist = histograms_from_organ_doses({"heart": 2.0}, MALE.names)
    assert hist.mean_gy()[MALE.index("coronary")] == 0.0
    for composite, parts in COMPOSITES.items():
        with pytest.raises(InputError, match="contour the parts"):
            histograms_from_organ_doses({composite: 1.0}, MALE.names)
        spread = histograms_from_organ_doses({composite: 1.0}, MALE.names, composites="spread")
        dosed = {c for c, m in zip(MALE.names, spread.mean_gy()) if m > 0}
        assert dosed == set(compartments_of(composite)) and spread.notes
        # with a part given, the composite is ignored: only the part's compartments are dosed
        with_part = histograms_from_organ_doses({composite: 1.0, parts[0]: 2.0}, MALE.names)
        dosed = {c for c, m in zip(MALE.names, with_part.mean_gy()) if m > 0}
        assert dosed == set(ORGAN_RULES[parts[0]].compartments)


def test_the_mapping_tables_in_the_docs_are_the_code_tables():
    text = DOCS.read_text()
    rows = re.findall(r"^\| `([a-z_]+)` \| ([a-z_, ]+) \| (.+) \|$", text, flags=re.MULTILINE)
    documented = {organ: tuple(c.strip() for c in comps.split(",")) for organ, comps, _ in rows}
    assert documented == {o: r.compartments for o, r in ORGAN_RULES.items()}
    rows = re.findall(r"^  \| `([a-z_]+)` \| ([a-z_, ]+) \|$", text, flags=re.MULTILINE)
    assert {c: tuple(p.strip() for p in parts.split(",")) for c, parts in rows} == COMPOSITES


def test_tumour_compartment_is_parallel_to_its_host():
    t, h = WITH_TUMOUR.index("tumor"), WITH_TUMOUR.index("lung")
    v0 = MALE.volume_fraction[MALE.index("lung")]
    assert WITH_TUMOUR.volume_fraction[t] == pytest.approx(0.05 * v0)
    assert WITH_TUMOUR.volume_fraction[h] == pytest.approx(0.95 * v0)
    assert WITH_TUMOUR.volume_fraction.sum() == pytest.approx(1.0)
    assert WITH_TUMOUR.mtt_s[t] == pytest.approx(WITH_TUMOUR.mtt_s[h])
    flows = WITH_TUMOUR.edge_flow_fraction
    np.testing.assert_allclose(flows.sum(0), flows.sum(1), atol=1e-12)  # balanced
    np.testing.assert_allclose(WITH_TUMOUR.split[t], WITH_TUMOUR.split[h])  # drains like host
    with pytest.raises(InputError, match="tumor_fraction"):
        MALE.with_tumor("lung", 1.5)
    with pytest.raises(InputError, match="host"):
        blood_dose_from_organ_doses({"tumor": 2.0}, beam_on_time_s=10, particles=10)


def test_tumour_dose_adds_its_blood_share_times_its_dose():
    res = blood_dose_from_organ_doses({"tumor": 2.0}, beam_on_time_s=10, tumor_host="lung",
                                      tumor_fraction=0.05, particles=50_000, seed=0)
    expected = 2.0 * 0.05 * MALE.volume_fraction[MALE.index("lung")]
    assert res.expected_mean_gy == pytest.approx(expected)
    assert res.mean_gy == pytest.approx(expected, rel=0.05)
    assert set(res.contributions()) == {"tumor"}


def test_dose_map_route_maps_organs_remainder_and_the_gtv(make_phantom):
    dose, structs = make_phantom(("body", "lungs", "heart", "ptv", "gtv"))
    per_fx = dose.array / 10
    hist = histograms_from_dose_map(dose, structs, MALE.names, n_fractions=10)
    mean = dict(zip(MALE.names, hist.mean_gy()))
    assert mean["lung"] == pytest.approx(per_fx[structs["lungs"]].mean())
    for comp in ("right_heart", "left_heart"):
        assert mean[comp] == pytest.approx(per_fx[structs["heart"]].mean())
    rest = structs["body"] & ~structs["lungs"] & ~structs["heart"]  # targets overlap, ignored
    assert mean["coronary"] == pytest.approx(per_fx[rest].mean())  # no coronary contour
    assert mean["skeletal_muscle"] == pytest.approx(per_fx[rest].mean())
    assert hist.sources[MALE.index("fat")] == "remainder"
    # Out-of-scan correction: body mask 1 L of a 73 L body -> 72 L more remainder at 0 Gy.
    corr = histograms_from_dose_map(dose, structs, MALE.names, n_fractions=10,
                                    whole_body_volume_l=73.0)
    rest_cc = rest.sum() * dose.voxel_volume_cc
    assert corr.mean_gy()[MALE.index("fat")] == pytest.approx(
        per_fx[rest].mean() * rest_cc / (rest_cc + 72_000.0))
    # With a tumour compartment the GTV voxels leave the lung and feed the tumour.
    res = blood_dose_for_plan(dose, structs, n_fractions=10, beam_on_time_s=30,
                              tumor_host="lungs", particles=1000, whole_body_volume_l=None)
    gtv, lung = structs["gtv"], structs["lungs"] & ~structs["gtv"]
    share = gtv.sum() / (structs["lungs"] | gtv).sum()
    circ = MALE.with_tumor("lung", share)
    assert tumour_share(structs, "lung") == pytest.approx(share)
    tumour_hist = histograms_from_dose_map(dose, structs, circ.names, n_fractions=10,
                                           tumor_host="lung")
    tm = dict(zip(circ.names, tumour_hist.mean_gy()))
    assert tm["tumor"] == pytest.approx(per_fx[gtv].mean())
    assert tm["lung"] == pytest.approx(per_fx[lung].mean())
    # the split changes who carries the dose, not the total: same mean blood dose
    assert res.expected_mean_gy == pytest.approx(
        histograms_from_dose_map(dose, structs, MALE.names, n_fractions=10)
        .expected_blood_mean_gy(MALE.volume_fraction))


def test_vessel_parts_win_over_the_composite_and_a_lone_composite_is_refused(make_phantom):
    dose, structs = make_phantom(("body", "great_vessels", "aorta", "superior_vena_cava",
                                  "inferior_vena_cava"))
    hist = histograms_from_dose_map(dose, structs, MALE.names, n_fractions=1)
    mean = dict(zip(MALE.names, hist.mean_gy()))
    for part in ("aorta", "superior_vena_cava", "inferior_vena_cava"):
        assert mean[part] == pytest.approx(dose.array[structs[part]].mean())
    dose, structs = make_phantom(("body", "great_vessels"))
    with pytest.raises(InputError, match="great_vessels"):
        histograms_from_dose_map(dose, structs, MALE.names, n_fractions=1)
    spread = histograms_from_dose_map(dose, structs, MALE.names, n_fractions=1,
                                      composites="spread")
    assert spread.notes and "overstated" in spread.notes[0]


def test_blood_fraction_map_weights_voxels(make_phantom):
    dose, structs = make_phantom(("body", "lungs"))
    weight = np.where(np.arange(20) < 10, 1.0, 3.0)[None, None, :] * np.ones((20, 20, 20))
    hist = histograms_from_dose_map(dose, structs, MALE.names, n_fractions=1,
                                    blood_fraction=dose.with_array(weight, "fraction"))
    m = structs["lungs"]
    expected = float((dose.array[m] * weight[m]).sum() / weight[m].sum())
    assert hist.mean_gy()[MALE.index("lung")] == pytest.approx(expected)
    assert expected > dose.array[m].mean()  # the hot half holds more blood here
    with pytest.raises(InputError, match="blood-fraction"):
        histograms_from_dose_map(dose, structs, MALE.names, n_fractions=1,
                                 blood_fraction=dose.with_array(-weight, "fraction"))


def test_per_beam_dose_maps_keep_each_beams_mean(make_phantom):
    dose, structs = make_phantom(("body", "lungs", "heart"))
    left = dose.with_array(np.where(np.arange(20) < 10, 1.0, 0.0) * dose.array, "Gy")
    right = dose.with_array(dose.array - left.array, "Gy")
    hist = histograms_from_dose_map(dose, structs, MALE.names, n_fractions=2,
                                    beam_doses=[left, right])
    assert hist.n_beams == 2
    lung = MALE.index("lung")
    beams = hist.beam_dose_gy[lung]
    assert hist.prob[lung] @ beams[:, 0] == pytest.approx(left.array[structs["lungs"]].mean() / 2)
    assert hist.prob[lung] @ beams[:, 1] == pytest.approx(right.array[structs["lungs"]].mean() / 2)
    np.testing.assert_allclose(beams.sum(1), hist.dose_gy[lung])


def test_organ_dose_table_rules():
    with pytest.raises(InputError, match="volume"):
        histograms_from_organ_doses({"stomach": 1.0, "esophagus": 2.0}, MALE.names)
    hist = histograms_from_organ_doses(
        {"stomach": ([1.0], [300.0]), "oesophagus": ([2.0], [100.0])}, MALE.names)
    assert hist.mean_gy()[MALE.index("stomach_oesophagus")] == pytest.approx(1.25)
    with pytest.raises(InputError, match="appendix"):
        histograms_from_organ_doses({"appendix": 1.0}, MALE.names)
    with pytest.raises(InputError, match=">= 0"):
        histograms_from_organ_doses({"lung": -1.0}, MALE.names)


def test_one_sided_lung_takes_half_the_remainder_and_unknown_names_raise(make_phantom):
    dose, structs = make_phantom(("body", "lung_left", "heart"))
    per_fx = dose.array
    hist = histograms_from_dose_map(dose, structs, MALE.names, n_fractions=1)
    rest = structs["body"] & ~structs["lung_left"] & ~structs["heart"]
    expected = 0.5 * per_fx[structs["lung_left"]].mean() + 0.5 * per_fx[rest].mean()
    assert hist.mean_gy()[MALE.index("lung")] == pytest.approx(expected)
    assert any("lung_left" in n for n in hist.notes)
    dose, structs = make_phantom(("body", "lungs", "optic_nerve"))
    with pytest.raises(InputError, match="optic_nerve"):
        histograms_from_dose_map(dose, structs, MALE.names, n_fractions=1, patient="p1")
    ok = histograms_from_dose_map(dose, structs, MALE.names, n_fractions=1, unknown="remainder")
    assert ok.sources[MALE.index("lung")] == "lungs"


def test_only_the_gtv_inside_its_host_feeds_the_tumour(make_phantom):
    """A GTV straddling lung and heart: the heart part stays in the heart (noted); a GTV wholly
    outside the host is refused; one contoured lung halves the share."""
    dose, structs = make_phantom(("body", "lungs", "heart", "gtv_straddling"))
    inside = structs["gtv_straddling"] & structs["lungs"]
    share = tumour_share(structs, "lung")
    assert share == pytest.approx(inside.sum() / structs["lungs"].sum())
    circ = MALE.with_tumor("lung", share)
    hist = histograms_from_dose_map(dose, structs, circ.names, n_fractions=1, tumor_host="lung")
    mean = dict(zip(circ.names, hist.mean_gy()))
    assert mean["tumor"] == pytest.approx(dose.array[inside].mean())
    assert mean["right_heart"] == pytest.approx(dose.array[structs["heart"]].mean())
    assert any("outside lung" in n for n in hist.notes)
    dose, structs = make_phantom(("body", "lungs", "heart", "gtv"))
    structs.masks["gtv"] = structs["heart"].copy()
    with pytest.raises(InputError, match="does not overlap"):
        tumour_share(structs, "lung")
    dose, structs = make_phantom(("body", "lung_left", "gtv"))
    structs.masks["gtv"] = np.zeros_like(structs["gtv"])
    structs.masks["gtv"][4:6, 4:6, 2:6] = True  # inside the left lung
    one_side = tumour_share(structs, "lung")
    inside = structs["gtv"] & structs["lung_left"]
    assert one_side == pytest.approx(0.5 * inside.sum() / structs["lung_left"].sum())


def test_blood_fraction_maps_count_by_relative_value_only(make_phantom):
    dose, structs = make_phantom(("body", "lungs"))
    ramp = np.linspace(0.5, 1.5, 20)[None, None, :] * np.ones((20, 20, 20))
    kw = {"n_fractions": 1, "whole_body_volume_l": 73.0}
    a = histograms_from_dose_map(dose, structs, MALE.names,
                                 blood_fraction=dose.with_array(ramp, "fraction"), **kw)
    b = histograms_from_dose_map(dose, structs, MALE.names,
                                 blood_fraction=dose.with_array(100 * ramp, "percent"), **kw)
    np.testing.assert_allclose(a.mean_gy(), b.mean_gy(), rtol=1e-12)
    assert any("normalised" in n for n in a.notes)


def test_a_partial_marrow_contour_doses_only_its_share_of_the_marrow(make_phantom):
    dose, structs = make_phantom(("body", "bone_marrow"))
    hist = histograms_from_dose_map(dose, structs, MALE.names, n_fractions=1)
    m = structs["bone_marrow"]
    share = m.sum() * dose.voxel_volume_cc / REFERENCE_TISSUE_CC["bone_marrow"]
    rest = structs["body"] & ~m
    expected = share * dose.array[m].mean() + (1 - share) * dose.array[rest].mean()
    assert 0 < share < 1
    assert hist.mean_gy()[MALE.index("red_marrow")] == pytest.approx(expected)
    assert any("bone_marrow" in n and "%" in n for n in hist.notes)


def test_joint_bins_match_numpy_unique_rows():
    """The fast binning gives np.unique(axis=0)'s rows, order and inverse, for 1 to 6 beams and
    for keys that would overflow int64 (the slow path)."""
    from lymphonet.dosimetry.organ_dose import _joint_bins

    rng = np.random.default_rng(3)
    for groups, top in ((1, 300), (2, 40), (3, 17), (6, 9), (4, 2 ** 20)):
        level = rng.integers(0, top, (4000, groups))
        n, idx = _joint_bins(level)
        rows, inverse = np.unique(level, axis=0, return_inverse=True)
        assert n == rows.shape[0]
        np.testing.assert_array_equal(idx, inverse.ravel())
