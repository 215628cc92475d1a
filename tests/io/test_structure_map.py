"""Tests for lymphonet.io.structure_map: matching, combining, deriving, reporting, user files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lymphonet.errors import InputError
from lymphonet.io.structure_map import StructureMap, normalise_name
from lymphonet.io.volume import StructureSet, Volume
from lymphonet.organs import CANONICAL_ORGANS

OPENKBP = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "openkbp"

# Structure names of the breast-boost RTSTRUCT (shared/data/dicom/breast-boost/README.md).
BREAST_NAMES = ["BODY", "Areola", "Borders", "Breast", "Heart", "Lt Lung", "Nodes", "Scar",
                "Tumor Bed", "Tumor Bed Block"]


def _set(names, empty=(), shape=(4, 5, 6)) -> StructureSet:
    """One distinct voxel block per name so OR-combinations can be checked voxel by voxel."""
    grid = Volume(np.zeros(shape, np.float32), (1.0, 1.0, 1.0))
    masks = {}
    for i, name in enumerate(names):
        mask = np.zeros(shape, bool)
        mask.flat[i * 3:(i + 1) * 3] = True
        masks[name] = mask
    return StructureSet(masks, grid, tuple(empty))


@pytest.mark.parametrize("name", ["Lt Lung", "Lung_L", "LUNG_LT", "L Lung", "Left Lung",
                                  "Lung Left", "lung_left", " lung-l "])
def test_left_lung_aliases(name):
    assert StructureMap.default().match(name) == "lung_left"


def test_normalisation_and_self_alias():
    assert normalise_name(" Lung_L ") == normalise_name("LUNG-L") == "lungl"
    smap = StructureMap.default()
    for organ in CANONICAL_ORGANS:
        assert smap.match(organ) == organ


def test_breast_boost_names():
    structures = _set([n for n in BREAST_NAMES if n != "Areola"], empty=("Areola",))
    mapped, report = StructureMap.default().apply(structures)
    assert report.matched == {"BODY": "body", "Heart": "heart", "Lt Lung": "lung_left",
                              "Nodes": "lymph_nodes", "Tumor Bed": "target",
                              "Tumor Bed Block": "target"}
    assert set(report.unmatched) == {"Areola", "Borders", "Breast", "Scar"}
    assert report.combined == {"target": ("Tumor Bed", "Tumor Bed Block")}
    np.testing.assert_array_equal(mapped["target"], structures["Tumor Bed"]
                                  | structures["Tumor Bed Block"])
    # target sources are kept under their names, unmatched ones too, nothing is lost
    for name in ["Tumor Bed", "Tumor Bed Block", "Borders", "Breast", "Scar"]:
        np.testing.assert_array_equal(mapped[name], structures[name])
    assert "Areola" in mapped.empty and "Areola" in report.empty
    np.testing.assert_array_equal(mapped["lung_left"], structures["Lt Lung"])
    # only the left lung: "lungs" is not derived by default, the report says why
    assert "lungs" not in mapped and any("lung_right missing" in n for n in report.notes)
    partial, report2 = StructureMap.default().apply(structures, partial_pairs=True)
    np.testing.assert_array_equal(partial["lungs"], structures["Lt Lung"])
    assert report2.derived == {"lungs": ("lung_left",)}
    dropped, report3 = StructureMap.default().apply(structures, keep_unmatched=False)
    assert "Scar" not in dropped and "Scar" in report3.unmatched


def test_both_lungs_derive_lungs():
    structures = _set(["Lung_L", "Lung_R", "Kidney_L"])
    mapped, report = StructureMap.default().apply(structures)
    np.testing.assert_array_equal(mapped["lungs"], structures["Lung_L"] | structures["Lung_R"])
    assert report.derived == {"lungs": ("lung_left", "lung_right")} and "kidneys" not in mapped
    # an existing combined structure is never overwritten by a derived one
    structures = _set(["Lung_L", "Lung_R", "Lungs"])
    mapped, report = StructureMap.default().apply(structures)
    np.testing.assert_array_equal(mapped["lungs"], structures["Lungs"])
    assert report.derived == {}


def test_openkbp_names():
    names = ["Body", "Brainstem", "SpinalCord", "RightParotid", "LeftParotid", "Esophagus",
             "Larynx", "Mandible", "PTV56", "PTV63", "PTV70"]
    structures = _set(names)
    mapped, report = StructureMap.default().apply(structures)
    assert {k: report.matched[k] for k in ["Body", "Brainstem", "SpinalCord", "Esophagus"]} == {
        "Body": "body", "Brainstem": "brainstem", "SpinalCord": "spinal_cord",
        "Esophagus": "esophagus"}
    assert report.combined["parotids"] == ("RightParotid", "LeftParotid")
    assert report.combined["target"] == ("PTV56", "PTV63", "PTV70")
    assert set(report.unmatched) == {"Larynx", "Mandible"}
    np.testing.assert_array_equal(
        mapped["target"], structures["PTV56"] | structures["PTV63"] | structures["PTV70"])
    assert "RightParotid" not in mapped and mapped["parotids"].sum() == 6
    assert {"PTV56", "PTV63", "PTV70", "Larynx", "Mandible"} <= set(mapped.names)


def test_openkbp_real_label_map():
    case = OPENKBP / "pt_1"
    if not (case / "labels.nii.gz").is_file():
        pytest.skip(f"openkbp data not found at {case}")
    from lymphonet.io.nifti import read_label_map

    structures = read_label_map(case / "labels.nii.gz")
    mapped, report = StructureMap.default().apply(structures)
    assert {"body", "brainstem", "spinal_cord", "parotids", "target"} <= set(mapped.names)
    assert mapped["target"].sum() == sum(structures[n].sum() for n in ("PTV56", "PTV63", "PTV70"))
    assert report.unmatched == ("Mandible",)


def test_user_file_extends_and_replaces(tmp_path):
    path = tmp_path / "clinic.yaml"
    path.write_text(
        "extends: default\n"
        "extra_names: [larynx]\n"
        "replace: [heart]\n"
        "organs:\n"
        "  heart: [Heart_Whole]\n"
        "  larynx: [Larynx, 're:larynx.*']\n"
        "  lung_left: [LLung]\n"
    )
    smap = StructureMap.from_yaml(path)
    assert smap.match("LLung") == "lung_left" and smap.match("Lt Lung") == "lung_left"
    assert smap.match("Heart_Whole") == "heart" and smap.match("Cor") is None
    assert smap.match("heart") == "heart"  # canonical name stays its own alias
    assert smap.match("Larynx_sup") == "larynx"
    assert smap.keep_sources == ("target",)
    standalone = tmp_path / "alone.yaml"
    standalone.write_text("organs:\n  body: [Aussenkontur]\n")
    alone = StructureMap.from_yaml(standalone)
    assert alone.match("Aussenkontur") == "body" and alone.match("Heart") is None


@pytest.mark.parametrize("content, field", [
    ("organs:\n  lung_lef: [x]\n", "lung_lef"),
    ("organz:\n  body: [x]\n", "organz"),
    ("organs:\n  body: [x]\n  heart: [X]\n", "heart"),
    ("organs:\n  body: ['re:(']\n", "body"),
    ("organs:\n  body: Body\n", "body"),
])
def test_bad_user_files(tmp_path, content, field):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        StructureMap.from_yaml(path)
    assert info.value.field == field and "bad.yaml" in str(info.value)


def test_bones_map_to_their_red_marrow_sites_and_sides_combine():
    import numpy as np

    from lymphonet.io.structure_map import StructureMap
    from lymphonet.io.volume import StructureSet, Volume

    m = StructureMap.default()
    cases = {"Femur_L": "bone_marrow_femora", "Femoral Head R": "bone_marrow_femora",
             "PelvicBones": "bone_marrow_os_coxae", "Sacrum": "bone_marrow_sacrum",
             "L5_VB": "bone_marrow_lumbar", "Ribs_L": "bone_marrow_ribs", "Skull": "bone_marrow_cranium",
             "Sternum": "bone_marrow_sternum", "Pelvic_Bone_Marrow": "bone_marrow"}
    assert {n: m.match(n) for n in cases} == cases
    grid = Volume(np.zeros((2, 2, 2), np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), units="label")
    left, right = np.zeros((2, 2, 2), bool), np.zeros((2, 2, 2), bool)
    left[0, 0, 0], right[1, 1, 1] = True, True
    mapped, report = m.apply(StructureSet({"Femur_L": left, "Femur_R": right}, grid))
    assert mapped["bone_marrow_femora"].sum() == 2
    assert report.combined == {"bone_marrow_femora": ("Femur_L", "Femur_R")}
