"""Hybrid model: shapes, ablation switches, zero adjustment = mechanistic model, gradients,
bounded parameters, noise model closed forms."""

import math

import pytest
import torch
from torch.utils.data import DataLoader

from lymphonet.data.batch import kinetics_inputs
from lymphonet.data.synthetic import SyntheticCohort
from lymphonet.errors import InputError
from lymphonet.kinetics import PARAM_NAMES, PARAM_SPECS, LymphocyteKinetics, theta_to_tensor
from lymphonet.models.hybrid import EncoderConfig, HybridModel, ModelConfig
from lymphonet.models.noise import ResidualNoise

N_DAYS = 40


@pytest.fixture(scope="module")
def batch():
    ds = SyntheticCohort(8, image_size=12, n_days=N_DAYS, seed=1)
    return next(iter(DataLoader(ds, batch_size=8)))


def small(**kw):
    base = {"n_days": N_DAYS, "encoder": EncoderConfig(width=4, depth=2, embed_dim=8),
            "mlp_hidden": 8, "n_output_knots": 5}
    base.update(kw)
    return ModelConfig(**base)


def make(cfg):
    torch.manual_seed(0)
    return HybridModel(3, 6, 2, cfg)


def test_shapes(batch):
    out = make(small())(batch)
    assert out.alc.shape == (8, N_DAYS) and out.days.shape == (N_DAYS,)
    assert out.theta.shape == (8, len(PARAM_NAMES))
    assert out.adjustment.shape == (8, len(small().adjusted_params))
    assert (out.alc > 0).all() and out.alc.dtype == torch.float32


def test_untrained_hybrid_equals_population_mechanistic_model(batch):
    out = make(small())(batch)  # zero-initialised head and shift -> theta = 0
    ref = LymphocyteKinetics(N_DAYS)(kinetics_inputs(batch), torch.zeros(8, len(PARAM_NAMES)))
    assert torch.equal(out.theta, torch.zeros_like(out.theta))
    torch.testing.assert_close(out.alc, ref.alc, rtol=0, atol=0)


def test_zero_adjustment_with_random_trunk_equals_mechanistic(batch):
    model = make(small())
    with torch.no_grad():  # perturb everything except the output head: still the prior
        for name, p in model.named_parameters():
            if not name.startswith("head") and name != "population_shift":
                p.add_(torch.randn_like(p))
    out = model(batch)
    ref = LymphocyteKinetics(N_DAYS)(kinetics_inputs(batch), torch.zeros(8, len(PARAM_NAMES)))
    torch.testing.assert_close(out.alc, ref.alc, rtol=0, atol=0)


def test_adjustments_are_bounded_and_parameters_stay_physical(batch):
    model = make(small(max_adjustment=2.0))
    with torch.no_grad():
        model.head.weight.normal_(0, 50.0)
        model.head.bias.fill_(100.0)
    out = model(batch)
    assert out.adjustment.abs().max() <= 2.0 + 1e-6
    phys = theta_to_tensor(out.theta)
    lo = torch.tensor([s.lower for s in PARAM_SPECS])
    hi = torch.tensor([s.upper for s in PARAM_SPECS])
    assert ((phys >= lo) & (phys <= hi)).all()
    assert not torch.allclose(out.alc, make(small())(batch).alc)


def test_gradient_flows_to_cnn_mlp_and_population_shift(batch):
    model = make(small())
    with torch.no_grad():
        model.head.weight.normal_(0, 0.1)  # zero init would block gradients to earlier layers
    out = model(batch)
    loss = out.alc.log().mean()
    loss.backward()
    assert model.encoder.blocks[0].body[0].weight.grad.abs().sum() > 0
    assert model.trunk[0].weight.grad.abs().sum() > 0
    assert model.head.weight.grad.abs().sum() > 0
    # the kinetic parameters reached through theta: alpha's shift has a non-zero gradient
    i = model.cfg.adjusted_params.index("alpha_per_gy")
    assert model.population_shift.grad[i] != 0


def test_switches(batch):
    cnn_only = make(small(use_kinetics=False))
    out = cnn_only(batch)
    assert out.theta is None and out.alc.shape == (8, N_DAYS)
    torch.testing.assert_close(out.alc, batch["baseline_alc"][:, None].expand(-1, N_DAYS))
    mech_clin = make(small(use_cnn=False))
    assert mech_clin.encoder is None and mech_clin(batch).alc.shape == (8, N_DAYS)
    pure = make(small(use_cnn=False, use_clinical=False, learn_population_shift=False))
    assert [n for n, _ in pure.named_parameters()] == [
        "noise.log_sigma_knots", "noise.log_sigma_nadir", "noise.nadir_shift"]
    with pytest.raises(InputError, match="adjusted_params"):
        make(small(adjusted_params=("alpha",)))


def test_noise_model_closed_forms():
    noise = ResidualNoise(100.0, n_knots=3, init_sigma=0.25, init_sigma_nadir=0.5)
    with torch.no_grad():
        noise.log_sigma_knots.copy_(torch.log(torch.tensor([0.1, 0.3, 0.5])))
    s = noise.sigma(torch.tensor([0.0, 50.0, 100.0, 25.0]))
    # piecewise-linear in log sigma: midpoint of knots 0 and 1 is the geometric mean
    torch.testing.assert_close(s[:3], torch.tensor([0.1, 0.3, 0.5]) + 1e-3)
    torch.testing.assert_close(s[3], torch.tensor(math.sqrt(0.1 * 0.3) + 1e-3))
    # log-likelihood is the normal log-density of log values
    ll = noise.log_likelihood(torch.tensor([[1.0]]), torch.tensor([[math.e]]), torch.tensor([[0.0]]))
    sd = 0.1 + 1e-3
    assert ll.item() == pytest.approx(-0.5 / sd**2 - math.log(sd) - 0.5 * math.log(2 * math.pi), rel=1e-5)
    # P(nadir < c) = Phi((log c - log n) / sigma_nadir): at n = c it is 1/2
    p = noise.grade_probabilities(torch.tensor([0.2, 0.5, 5.0]))
    assert p[4][0].item() == pytest.approx(0.5, abs=1e-6)
    assert p[3][1].item() == pytest.approx(0.5, abs=1e-6)
    assert p[4][2].item() < 1e-6
    assert (p[1] >= p[2]).all() and (p[2] >= p[3]).all() and (p[3] >= p[4]).all()
    lo, hi = noise.interval(torch.ones(1, 101), torch.arange(101.0), level=0.9)
    assert hi[0, 0].item() == pytest.approx(math.exp(1.6448536 * (0.1 + 1e-3)), rel=1e-5)
    assert (lo < 1).all() and (hi > 1).all()


def test_the_recirculation_core_wears_the_same_face(batch):
    """kinetics_core = recirculation: theta has the core's columns, the untrained hybrid is the
    core at its priors, gradients reach the population shift, and the other core's names are
    refused."""
    from lymphonet.kinetics.cores import DEFAULT_ADJUSTED
    from lymphonet.kinetics.recirculation import RECIRCULATION_NAMES, RecirculationKinetics

    cfg = small(kinetics_core="recirculation", adjusted_params=DEFAULT_ADJUSTED["recirculation"])
    model = make(cfg)
    out = model(batch)
    assert out.theta.shape == (8, len(RECIRCULATION_NAMES))
    ref = RecirculationKinetics(N_DAYS)(kinetics_inputs(batch),
                                        torch.zeros(8, len(RECIRCULATION_NAMES)))
    torch.testing.assert_close(out.alc, ref.alc, rtol=0, atol=0)
    out.alc.log().mean().backward()
    assert model.population_shift.grad is not None and model.population_shift.grad.abs().sum() > 0
    with pytest.raises(InputError, match="fast_fraction"):
        make(small(kinetics_core="recirculation"))  # two-population names
    with pytest.raises(InputError, match="kinetics core"):
        make(small(kinetics_core="one_population"))
