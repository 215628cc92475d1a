"""The batch contract: one declaration (keys, dtypes, shapes, units) that every producer meets."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lymphonet.data.batch import BATCH_KEYS, check_batch, kinetics_inputs
from lymphonet.data.synthetic import SyntheticCohort
from lymphonet.errors import InputError


@pytest.fixture(scope="module")
def batch():
    return next(iter(DataLoader(SyntheticCohort(6, image_size=8), batch_size=4)))


def test_synthetic_items_meet_the_contract(batch):
    check_batch(batch)
    assert {k for k, spec in BATCH_KEYS.items() if spec.required} <= set(batch)


@pytest.mark.parametrize("change, message", [
    (lambda b: b.pop("baseline_alc"), "missing \\['baseline_alc'\\]"),
    (lambda b: b.update(extra=torch.zeros(4)), "unknown \\['extra'\\]"),
    (lambda b: b.update(chemo=b["chemo"].float()), "chemo has dtype"),
    (lambda b: b.update(beam_on_s=b["beam_on_s"][:, :-1]), "size of K"),
    (lambda b: b.update(clinical=b["clinical"][:3]), "size of B"),
    (lambda b: b.update(lymphoid_dose_q_gy=b["lymphoid_dose_q_gy"][:, 0]), "expected \\[B, L, Q\\]"),
])
def test_broken_batches_are_refused(batch, change, message):
    broken = dict(batch)
    change(broken)
    with pytest.raises(InputError, match=message):
        check_batch(broken)


def test_kinetics_inputs_keep_values_and_device(batch):
    inputs = kinetics_inputs(batch)
    assert torch.equal(inputs.fraction_days, batch["fraction_days"])
    assert inputs.chemo.dtype == torch.long and inputs.fraction_mask.dtype == torch.bool
    assert inputs.blood_dose_q_gy.shape == batch["blood_dose_q_gy"].shape


def test_the_regimen_class_reaches_the_kinetics_inputs():
    import dataclasses
    from pathlib import Path

    from lymphonet.data.batch import kinetics_inputs, schedule_arrays
    from lymphonet.kinetics.schedule import CHEMO_REGIMENS
    from lymphonet.schema import plan_from_row

    row = {"patient_id": "p", "modality": "photon", "n_fractions": "3",
           "dose_per_fraction_gy": "2", "baseline_alc": "1.5", "dose_path": "d.nii.gz",
           "chemo": "concurrent", "chemo_regimen": "Temodar"}
    rec, _ = plan_from_row(row, root=Path("."), file="m.csv")
    arr = schedule_arrays(rec, 60.0, 5)
    assert CHEMO_REGIMENS[int(arr["chemo_regimen"])] == "temozolomide"
    none = schedule_arrays(dataclasses.replace(rec, chemo_regimen=None), 60.0, 5)
    assert int(none["chemo_regimen"]) == 0
    no_chemo = schedule_arrays(dataclasses.replace(rec, chemo="none"), 60.0, 5)
    assert int(no_chemo["chemo_regimen"]) == 0  # a regimen without chemotherapy is not given
    batch = {k: torch.as_tensor(np.asarray(v))[None] for k, v in arr.items()}
    batch.update(blood_dose_q_gy=torch.zeros(1, 4), lymphoid_dose_q_gy=torch.zeros(1, 8, 4),
                 lymphoid_coverage=torch.zeros(1, 8))
    assert kinetics_inputs(batch).chemo_regimen.tolist() == [CHEMO_REGIMENS.index("temozolomide")]
