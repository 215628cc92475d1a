"""The physiological recirculation core (lymphonet.kinetics.recirculation)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from lymphonet.kinetics import KineticsInputs
from lymphonet.kinetics.recirculation import (
    RECIRCULATION_NAMES,
    RECIRCULATION_SPECS,
    TISSUES,
    RecirculationKinetics,
    recirculation_params,
)
from lymphonet.organs import LYMPHOID_ORGANS

N_SITES = len(LYMPHOID_ORGANS)  # resident sites (lymphoid organs, bowel, body)

F64 = torch.float64
ZERO = torch.zeros(len(RECIRCULATION_SPECS), dtype=F64)
NODES, MARROW = LYMPHOID_ORGANS.index("lymph_nodes"), LYMPHOID_ORGANS.index("bone_marrow")


def _inputs(n_fx, blood_gy=0.0, nodes_gy=0.0, marrow_gy=0.0, coverage=(0.2, 0.2), chemo="none",
            days=None):
    lym = torch.zeros(N_SITES, 8, dtype=F64)
    lym[NODES], lym[MARROW] = nodes_gy, marrow_gy
    x = KineticsInputs.single(n_fx, torch.full((8,), blood_gy, dtype=F64), 2.0,
                              lymphoid_dose_q_gy=lym, chemo=chemo, fraction_days=days)
    cov = torch.zeros(1, N_SITES, dtype=F64)
    cov[0, NODES], cov[0, MARROW] = coverage
    return replace(x, lymphoid_coverage=cov)


def test_theta_zero_gives_the_priors_and_every_theta_stays_physiological():
    p = recirculation_params(ZERO)
    for spec in RECIRCULATION_SPECS:
        assert float(p[spec.name][0]) == pytest.approx(spec.prior)
    wild = recirculation_params(torch.full((2, len(RECIRCULATION_SPECS)), 40.0, dtype=F64) *
                                torch.tensor([[1.0], [-1.0]], dtype=F64))
    share = wild["blood_share"]
    assert float(share.min()) >= 0.01 and float(share.max()) <= 0.05
    alpha = wild["alpha_per_gy"]
    assert float(alpha.min()) >= 0.2 and float(alpha.max()) <= 1.0


def test_without_dose_the_pools_stay_at_their_physiological_shares():
    out = RecirculationKinetics(n_days=60)(_inputs(1), ZERO)
    torch.testing.assert_close(out.alc, torch.full_like(out.alc, 2.0))
    f_b = RECIRCULATION_SPECS[RECIRCULATION_NAMES.index("blood_share")].prior
    total = 2.0 / f_b
    shares = np.array([t.share for t in TISSUES])
    expected = (1 - f_b) * shares / shares.sum() * total
    np.testing.assert_allclose(out.tissues[0, -1].numpy(), expected, rtol=1e-9)
    assert torch.allclose(out.production, torch.ones_like(out.production))


def test_propagation_is_exact_against_an_ode_solver():
    """Generator of the model vs Radau on the same ODE, chemo switched on for days 3-10."""
    model = RecirculationKinetics(n_days=15)
    inputs = _inputs(1, chemo="concurrent")
    inputs = replace(inputs, chemo_start_day=torch.tensor([3.0], dtype=F64),
                     chemo_end_day=torch.tensor([10.0], dtype=F64))
    out = model(inputs, ZERO)
    p = recirculation_params(ZERO)
    A, A_chemo = model.generator(p, inputs.baseline_alc)
    x0 = torch.cat([inputs.baseline_alc, out.tissues[0, 0], torch.ones(2, dtype=F64)]).numpy()
    x0[1:len(TISSUES) + 1] *= 0.9  # start off equilibrium so the solver has work to do
    survival = (torch.ones(1, 1, dtype=F64), torch.ones(1, 1, len(TISSUES), dtype=F64),
                torch.ones(1, 1, 8, dtype=F64))
    out = model._walk(inputs, p, inputs.baseline_alc, torch.zeros(1, dtype=F64),
                      (torch.linalg.matrix_exp(A), torch.linalg.matrix_exp(A_chemo)), survival,
                      x0=torch.tensor(x0)[None, :, None])

    def rhs(t, x):
        a = A_chemo[0] if 3.0 <= t < 10.0 else A[0]
        return a.numpy() @ x

    ref = solve_ivp(rhs, (0, 14), x0, method="Radau", t_eval=np.arange(15), rtol=1e-10,
                    atol=1e-12, max_step=0.25)
    np.testing.assert_allclose(out.alc[0].numpy(), ref.y[0], rtol=2e-6)


def test_many_small_fractions_kill_more_than_few_large_ones_through_refill():
    """24 Gy to in-field nodes and marrow in 5 vs 20 fractions (MacLennan's design): the tissue
    is refilled between fractions, so kill does not saturate and 20 fractions deplete more. Blood
    alone (linear kill per passage) is nearly blind to fractionation."""
    model = RecirculationKinetics(n_days=130)

    def month3(n_fx, **dose):
        out = model(_inputs(n_fx, **{k: v / n_fx for k, v in dose.items()}), ZERO)
        last = int(weekday_last(n_fx))
        return float(out.alc[0, last + 84])

    tissue = month3(20, nodes_gy=24.0, marrow_gy=24.0) / month3(5, nodes_gy=24.0, marrow_gy=24.0)
    blood = month3(20, blood_gy=2.4) / month3(5, blood_gy=2.4)
    assert tissue < 0.97 and tissue < blood - 0.02
    assert abs(blood - 1.0) < 0.02


def weekday_last(n_fx: int) -> float:
    from lymphonet.schema import weekday_fraction_days

    return float(weekday_fraction_days(n_fx)[-1])


def test_lung_liver_bowel_and_body_doses_hit_their_own_pools_only():
    """One fraction of 1.5 Gy to the lungs, 3 Gy to the liver, 2 Gy to the bowel (coverage 0.5)
    and 1 Gy to the rest of the body (0.25): the lung, liver, gut and other pools carry exactly the kill of their own dose and
    coverage (a per-compartment check, independent of the propagation), the other tissues none."""
    model = RecirculationKinetics(n_days=3, steps_per_day=24)
    lym = torch.zeros(N_SITES, 8, dtype=F64)
    site = LYMPHOID_ORGANS.index
    lym[site("lungs")], lym[site("bowel")], lym[site("body")] = 1.5, 2.0, 1.0
    lym[site("liver")] = 3.0
    cov = torch.zeros(1, N_SITES, dtype=F64)
    cov[0, site("lungs")], cov[0, site("bowel")], cov[0, site("body")] = 1.0, 0.5, 0.25
    cov[0, site("liver")] = 1.0
    x = replace(KineticsInputs.single(1, torch.zeros(8, dtype=F64), 2.0, lymphoid_dose_q_gy=lym,
                                      fraction_days=[0.0]), lymphoid_coverage=cov)
    p = recirculation_params(ZERO[None])
    s_blood, s_tis, _ = model.fraction_survival(x, p)
    a, b = float(p["alpha_per_gy"]), float(p["beta_per_gy2"])
    names = [t.name for t in TISSUES]
    assert float(s_blood[0, 0]) == 1.0
    for name, d, c in (("lung", 1.5, 1.0), ("liver", 3.0, 1.0), ("gut", 2.0, 0.5),
                       ("other", 1.0, 0.25)):
        expect = 1 - c * (1 - math.exp(-a * d - b * d * d))
        assert float(s_tis[0, 0, names.index(name)]) == pytest.approx(expect, rel=1e-12)
    untouched = [j for j, n in enumerate(names) if n not in ("lung", "liver", "gut", "other")]
    assert torch.all(s_tis[0, 0, untouched] == 1.0)
    # and the count falls: blood refills the dosed tissue from the circulating pool
    assert float(model(x, ZERO).alc[0, -1]) < 2.0 - 1e-3


def test_marrow_dose_lowers_production_which_recovers_with_its_time_constant():
    model = RecirculationKinetics(n_days=200)
    out = model(_inputs(1, marrow_gy=10.0, coverage=(0.0, 0.3)), ZERO)
    tau = RECIRCULATION_SPECS[RECIRCULATION_NAMES.index("marrow_recovery_days")].prior
    alpha_s = RECIRCULATION_SPECS[RECIRCULATION_NAMES.index("stem_alpha_per_gy")].prior
    p0 = 0.7 + 0.3 * math.exp(-alpha_s * 10.0)
    t = np.arange(1, 200)
    expected = 1 - (1 - p0) * np.exp(-t / tau)
    np.testing.assert_allclose(out.production[0, 1:].numpy(), expected, rtol=1e-9)
    assert float(out.alc[0, -1]) < 2.0  # lowered production keeps the count down for months


def test_gradients_flow_to_every_parameter():
    model = RecirculationKinetics(n_days=20)
    inputs = _inputs(5, blood_gy=0.3, nodes_gy=1.0, marrow_gy=2.0, chemo="concurrent")
    theta = (0.1 * torch.randn(1, len(RECIRCULATION_SPECS), dtype=F64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda th: model(inputs, th).alc[:, -5:], (theta,),
                                    eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("text, cls", [
    ("temozolomide", "temozolomide"), ("Temodar 75 mg/m2", "temozolomide"),
    ("cisplatin weekly", "platinum"), ("carboplatin_paclitaxel", "platinum"),
    ("FOLFOX (5-FU + oxaliplatin)", "platinum"), ("FOLFIRINOX", "platinum"), ("CAPOX", "platinum"),
    ("CDDP", "platinum"), ("carbo/taxol", "platinum"), ("nedaplatin", "platinum"),
    ("pemetrexed/carboplatin", "platinum"), ("capecitabine", "antimetabolite"),
    ("Xeloda", "antimetabolite"), ("5 FU", "antimetabolite"), ("S-1", "antimetabolite"),
    ("fluoropyrimidine_or_gemcitabine", "antimetabolite"), ("gemcitabine", "antimetabolite"),
    ("tegafur/uracil (UFT)", "antimetabolite"), ("docetaxel days-1,8", "unspecified"),
    ("cetuximab cycles-1", "unspecified"), ("no TMZ (declined)", "unspecified"),
    ("mixed", "unspecified"), (None, "unspecified"), ("", "unspecified"),
])
def test_regimen_words_class_free_text_regimens(text, cls):
    from lymphonet.kinetics.schedule import CHEMO_REGIMENS, regimen_code

    assert CHEMO_REGIMENS[regimen_code(text)] == cls


def test_each_regimen_class_uses_its_own_chemotherapy_rate():
    """Four concurrent-chemo patients, one per regimen class, no dose: raising only the
    temozolomide rate lowers only the temozolomide patient's count. With every compartment under
    the same death rate d + delta and production d N_i, the pool keeps its shares, so ALC / ALC0
    follows the closed form of one pool: (d + delta exp(-(d + delta) T)) / (d + delta) at the end
    of a window of T days, relaxing as 1 - (1 - f) exp(-d t) after it."""
    from lymphonet.kinetics.schedule import CHEMO_REGIMENS, concat_inputs

    x = concat_inputs([_inputs(10, chemo="concurrent") for _ in CHEMO_REGIMENS])
    x = replace(x, chemo_regimen=torch.arange(len(CHEMO_REGIMENS)))
    model = RecirculationKinetics(n_days=15)
    theta = ZERO.clone()
    theta[RECIRCULATION_NAMES.index("chemo_temozolomide_per_day")] = 1.0
    base, more = model(x, ZERO).alc[:, 14], model(x, theta).alc[:, 14]
    tmz = CHEMO_REGIMENS.index("temozolomide")
    others = [i for i in range(len(CHEMO_REGIMENS)) if i != tmz]
    torch.testing.assert_close(more[others], base[others])
    p = recirculation_params(theta[None])
    d, delta = float(p["turnover_per_day"]), float(p["chemo_temozolomide_per_day"])
    window = weekday_last(10) + 1.0                    # [first fraction, last fraction + 1 day)
    f = (d + delta * math.exp(-(d + delta) * window)) / (d + delta)
    expect = 2.0 * (1 - (1 - f) * math.exp(-d * (14 - window)))
    assert float(more[tmz]) == pytest.approx(expect, rel=1e-6)


def test_pool_summaries_ignore_padded_fractions():
    """A 5-fraction patient batched with a 40-fraction one: the padded slots neither dilute its
    pool mean dose nor kill anything."""
    from lymphonet.kinetics.exposure import (
        pool_dose_parts_gy,
        pool_fraction_survival,
        pool_mean_dose_gy,
    )
    from lymphonet.kinetics.schedule import concat_inputs

    short, long = _inputs(5, blood_gy=1.0, nodes_gy=2.0), _inputs(40, blood_gy=1.0, nodes_gy=2.0)
    core = RecirculationKinetics()
    p = recirculation_params(torch.zeros(2, len(RECIRCULATION_SPECS), dtype=F64))
    both = concat_inputs([short, long])
    dose, surv = pool_mean_dose_gy(core, both, p), pool_fraction_survival(core, both, p)
    alone = pool_mean_dose_gy(core, short, recirculation_params(ZERO))
    parts = pool_dose_parts_gy(core, short, recirculation_params(ZERO))
    torch.testing.assert_close(parts.sum(-1), alone)
    torch.testing.assert_close(dose[0, :5], alone[0])
    assert (dose[0, 5:] == 0).all() and (surv[0, 5:] == 1).all() and (surv[0, :5] < 1).all()
    # blood at its share f_B and the nodes' pool at 40% of the rest, covered 20%, both dosed
    f_b = float(p["blood_share"][0])
    nodes = next(t.share for t in TISSUES if t.name == "lymph_nodes") / sum(t.share for t in TISSUES)
    assert float(alone[0, 0]) == pytest.approx(f_b * 1.0 + (1 - f_b) * nodes * 0.2 * 2.0)
