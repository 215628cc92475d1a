"""Small DICOM export trees built on the fly for the ingestion tests.

``export_tree`` (session scope) copies the breast-boost case and pydicom's RT test files into a
messy folder tree, with fresh UIDs and made-up identifiers that the tests later search for:

* patient A (folder named after the patient): plan 1 with a plan dose, a structure set and a CT
  slice; plan 2 (a re-plan with beams 1 and 2 only) whose dose is split into two BEAM doses
  (weights 0.3 and 0.7 of the original dose, so their sum is the original);
* patient B: a plan whose dose file is cut short (conversion must fail, the batch must not);
* patient C: pydicom's rtplan.dcm with its BEAM dose (DoseUnits RELATIVE) re-linked to it, no
  structure set;
* a stray text file and a corrupted file with a DICOM prefix.

``small_tree`` builds only patient C (fast, for incremental runs that modify files).
"""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

BREAST = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dicom" / "breast-boost"
SECRET = "0123456789abcdef0123456789abcdef-test-secret"


@dataclass(frozen=True)
class Person:
    patient_id: str
    name: str
    birth_date: str

    @property
    def tokens(self) -> list[str]:
        """Strings that must never appear in the cohort."""
        return [self.patient_id, self.birth_date, *self.name.split("^")]


PATIENT_A = Person("MRN-ZX81-4471", "Doeberitz^Janelle", "19510317")
PATIENT_B = Person("MRN-RK55-2290", "Roekamp^Richardine", "19480822")
PATIENT_C = Person("MRN-PX19-0042", "Poestel^Edgarson", "19630105")


@dataclass
class Tree:
    root: Path
    people: dict[str, Person]
    plan_uids: dict[str, str] = field(default_factory=dict)  # label -> SOPInstanceUID
    files: dict[str, Path] = field(default_factory=dict)
    beam_weights: tuple[float, float] = (0.3, 0.7)


def _need_breast() -> None:
    if not (BREAST / "rtdose.dcm").is_file():
        pytest.skip(f"breast-boost DICOM case not found at {BREAST}")


def _relabel(ds: Dataset, person: Person, uid_map: dict[str, str]) -> Dataset:
    """Replace identifiers and remap every instance UID (SOP class / syntax UIDs kept)."""
    ds.PatientID, ds.PatientName, ds.PatientBirthDate = (person.patient_id, person.name,
                                                         person.birth_date)
    ds.PatientSex = "F"

    def remap(dataset, elem):
        if elem.VR == "UI" and isinstance(elem.value, str) and elem.value:
            value = elem.value.strip()
            if not value.startswith("1.2.840.10008"):
                elem.value = uid_map.setdefault(value, generate_uid())

    ds.walk(remap)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=False)
    return path


def _new_uid(ds: Dataset) -> Dataset:
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _beam_dose(dose: Dataset, plan_uid: str, beam: int, weight: float) -> Dataset:
    out = _new_uid(copy.deepcopy(dose))
    out.DoseSummationType = "BEAM"
    out.DoseGridScaling = f"{float(dose.DoseGridScaling) * weight:.6e}"
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.5"
    ref.ReferencedSOPInstanceUID = plan_uid
    beam_ref, group = Dataset(), Dataset()
    beam_ref.ReferencedBeamNumber = beam
    group.ReferencedFractionGroupNumber = 1
    group.ReferencedBeamSequence = Sequence([beam_ref])
    ref.ReferencedFractionGroupSequence = Sequence([group])
    out.ReferencedRTPlanSequence = Sequence([ref])
    return out


def build_patient_c(root: Path, tree: Tree, folder: str = "pyd") -> None:
    """pydicom's RT plan + its BEAM dose (RELATIVE units), re-linked to the plan."""
    uid_map: dict[str, str] = {}
    plan = _relabel(pydicom.dcmread(get_testdata_file("rtplan.dcm")), PATIENT_C, uid_map)
    dose = _relabel(pydicom.dcmread(get_testdata_file("rtdose.dcm")), PATIENT_C, uid_map)
    dose.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = plan.SOPInstanceUID
    tree.plan_uids["C"] = plan.SOPInstanceUID
    tree.files["C_plan"] = _save(plan, root / folder / "p.dcm")
    tree.files["C_dose"] = _save(dose, root / folder / "d.dcm")


def _build_breast_patients(root: Path, tree: Tree) -> None:
    uid_map: dict[str, str] = {}
    read = {n: pydicom.dcmread(BREAST / f"{n}.dcm") for n in ("rtplan", "rtdose", "rtss", "ct.0")}
    a = {n: _relabel(copy.deepcopy(ds), PATIENT_A, uid_map) for n, ds in read.items()}
    folder = root / "Doeberitz_Janelle_MRN-ZX81-4471"
    tree.plan_uids["A1"] = a["rtplan"].SOPInstanceUID
    tree.files["A1_plan"] = _save(a["rtplan"], folder / "rt" / "RP.dcm")
    tree.files["A1_dose"] = _save(a["rtdose"], folder / "rt" / "RD.dcm")
    tree.files["A_struct"] = _save(a["rtss"], folder / "rt" / "RS.dcm")
    tree.files["A_ct"] = _save(a["ct.0"], folder / "ct" / "img0001.dcm")
    plan2 = _new_uid(copy.deepcopy(a["rtplan"]))
    plan2.BeamSequence = Sequence(list(plan2.BeamSequence)[:2])
    group = plan2.FractionGroupSequence[0]
    group.ReferencedBeamSequence = Sequence(list(group.ReferencedBeamSequence)[:2])
    group.NumberOfBeams = 2
    plan2.RTPlanDate = "20090610"
    tree.plan_uids["A2"] = plan2.SOPInstanceUID
    tree.files["A2_plan"] = _save(plan2, folder / "replan" / "a")
    for i, weight in enumerate(tree.beam_weights, start=1):
        beam = _beam_dose(a["rtdose"], plan2.SOPInstanceUID, i, weight)
        tree.files[f"A2_beam{i}"] = _save(beam, folder / "replan" / f"b{i}")
    b_map: dict[str, str] = {}
    b = {n: _relabel(copy.deepcopy(read[n]), PATIENT_B, b_map) for n in ("rtplan", "rtdose")}
    tree.plan_uids["B"] = b["rtplan"].SOPInstanceUID
    tree.files["B_plan"] = _save(b["rtplan"], root / "misc" / "Roekamp" / "x1")
    dose_path = _save(b["rtdose"], root / "misc" / "Roekamp" / "x2")
    data = dose_path.read_bytes()
    dose_path.write_bytes(data[: int(len(data) * 0.6)])  # pixel data cut short
    tree.files["B_dose"] = dose_path


@pytest.fixture(scope="session")
def export_tree(tmp_path_factory) -> Tree:
    """The full messy export (needs ../shared/data)."""
    _need_breast()
    root = tmp_path_factory.mktemp("export")
    tree = Tree(root, {"A": PATIENT_A, "B": PATIENT_B, "C": PATIENT_C})
    _build_breast_patients(root, tree)
    build_patient_c(root, tree)
    (root / "misc" / "notes.txt").write_text("export of 2024-05-01, see ticket 42\n")
    tree.files["stray"] = root / "misc" / "notes.txt"
    broken = root / "misc" / "broken.dcm"
    broken.write_bytes(b"\0" * 128 + b"DICM" + bytes(range(256)) * 4)
    tree.files["broken"] = broken
    return tree


@pytest.fixture()
def small_tree(tmp_path) -> Tree:
    """Patient C only (tiny files)."""
    root = tmp_path / "export"
    tree = Tree(root, {"C": PATIENT_C})
    build_patient_c(root, tree)
    return tree


@pytest.fixture()
def secret_file(tmp_path) -> Path:
    path = tmp_path / "keys" / "secret.key"
    path.parent.mkdir()
    path.write_text(SECRET)
    return path


def copy_tree(tree: Tree, dest: Path) -> Path:
    shutil.copytree(tree.root, dest)
    return dest
