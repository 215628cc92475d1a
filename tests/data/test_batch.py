"""The batch contract: one declaration (keys, dtypes, shapes, units) that every producer meets."""

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
