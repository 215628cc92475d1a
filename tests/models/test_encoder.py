"""3D CNN encoder: shapes, parameter budget, input checks, gradients."""

import pytest
import torch

from lymphonet.errors import InputError
from lymphonet.models.encoder import DoseEncoder, count_parameters


@pytest.mark.parametrize("size", [16, 32])
def test_output_shape(size):
    enc = DoseEncoder(in_channels=3, width=4, depth=3, embed_dim=10)
    out = enc(torch.randn(2, 3, size, size, size))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_default_parameter_budget_about_one_million_or_fewer():
    enc = DoseEncoder(in_channels=10)  # dose + 9 organ channels, default width/depth
    n = count_parameters(enc)
    assert 1e5 < n <= 1.0e6


def test_width_and_depth_change_size():
    small = count_parameters(DoseEncoder(4, width=4, depth=2))
    big = count_parameters(DoseEncoder(4, width=8, depth=3))
    assert big > small


def test_wrong_channel_count_is_a_clear_error():
    enc = DoseEncoder(in_channels=3, width=4, depth=2)
    with pytest.raises(InputError, match="image"):
        enc(torch.randn(1, 2, 8, 8, 8))


def test_gradients_reach_first_layer_and_depend_on_dose():
    torch.manual_seed(0)
    enc = DoseEncoder(2, width=4, depth=2, embed_dim=4)
    x = torch.randn(2, 2, 8, 8, 8, requires_grad=True)
    enc(x).sum().backward()
    first = enc.blocks[0].body[0].weight
    assert first.grad is not None and first.grad.abs().sum() > 0
    assert x.grad[:, 0].abs().sum() > 0


def test_norms_behave_the_same_in_train_and_eval_for_group_norm():
    torch.manual_seed(0)
    enc = DoseEncoder(2, width=4, depth=2, embed_dim=4, norm="group")
    x = torch.randn(3, 2, 8, 8, 8)
    a = enc.train()(x)
    b = enc.eval()(x)
    assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(InputError):
        DoseEncoder(2, norm="layer")
