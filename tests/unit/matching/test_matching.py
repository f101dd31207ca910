"""Conditional flow matching (method=cfm, jko_cli/matching/): the coupling and the loss, in float64 against
independent computations (brute force over permutations; ∇ₓΦ by autograd of Φ itself)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from jko_cli.matching import coupling, loss
from jko_cli.models.potential import Potential


def _potential(seed: int = 0, dim: int = 2) -> Potential:
    torch.manual_seed(seed)
    pot = Potential(dim, width=8, depth=3).double()
    with torch.no_grad():
        for p in pot.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return pot


def _cost(x0: torch.Tensor, x1: torch.Tensor, perm) -> float:
    return float(((x0 - x1[list(perm)]) ** 2).sum())


def test_ot_pairing_minimises_the_batch_cost_by_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(5):
        x0, x1 = (torch.as_tensor(rng.normal(size=(6, 2))) for _ in range(2))
        perm = coupling.ot_permutation(x0, x1)
        assert sorted(perm.tolist()) == list(range(6))
        best = min(_cost(x0, x1, p) for p in itertools.permutations(range(6)))
        assert _cost(x0, x1, perm.tolist()) == pytest.approx(best, rel=1e-12)


def test_independent_coupling_keeps_the_draws_and_ot_shortens_the_paths():
    g = torch.Generator().manual_seed(0)
    x0 = 3 + torch.randn(200, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(200, 2, generator=g, dtype=torch.float64)
    assert torch.equal(coupling.pair(x0, x1, "independent"), x1)
    ot = coupling.pair(x0, x1, "ot")
    assert sorted(map(tuple, ot.tolist())) == sorted(map(tuple, x1.tolist()))  # the same points, reordered
    assert ((x0 - ot) ** 2).sum() < ((x0 - x1) ** 2).sum()
    with pytest.raises(ValueError, match="allowed: ot, independent"):
        coupling.pair(x0, x1, "sinkhorn")


def _direct_loss(pot: Potential, xt, t, u) -> torch.Tensor:
    """mean ‖−∇ₓΦ − u‖² with ∇ₓΦ by autograd of the plain forward pass Φ (not the closed-form gradient)."""
    x = xt.detach().requires_grad_(True)
    (gx,) = torch.autograd.grad(pot(x, t).sum(), x, create_graph=True)
    return ((-gx - u) ** 2).sum(dim=1).mean()


@pytest.mark.parametrize("cpl,sigma", [("ot", 0.0), ("independent", 0.0), ("ot", 0.1)])
def test_the_loss_and_its_gradient_equal_a_direct_autograd_implementation(cpl, sigma):
    pot = _potential()
    x0 = 1.5 + torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    xt, t, u = loss.path_targets(x0, torch.Generator().manual_seed(2), cpl, sigma)
    params = [p for n, p in pot.named_parameters() if n != "b"]  # Φ's constant does not enter ∇Φ
    reference = _direct_loss(pot, xt, t, u)
    ref_grads = torch.autograd.grad(reference, params)
    for fn in (loss.regression_autograd, loss.regression):
        value = fn(pot, xt, t, u)
        assert value.item() == pytest.approx(reference.item(), rel=1e-12)
        for g, r in zip(torch.autograd.grad(value, params), ref_grads, strict=True):
            assert torch.allclose(g, r, rtol=1e-10, atol=1e-12)


def test_path_targets_are_the_straight_path_and_its_velocity():
    x0 = torch.randn(300, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64) + 2
    gen = torch.Generator().manual_seed(5)
    xt, t, u = loss.path_targets(x0, gen, "independent", 0.0)
    x1 = u + x0
    assert torch.allclose(xt, (1 - t) * x0 + t * x1) and t.min() >= 0 and t.max() <= 1
    assert abs(x1.mean().item()) < 0.2 and abs(x1.std().item() - 1) < 0.1  # x1 ~ N(0, I)


def test_the_loop_terms_are_the_paired_kinetic_energy_and_the_loss():
    pot = _potential()
    x0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    value, (kinetic, C, R) = loss.flow_matching_loss(pot, x0, torch.Generator().manual_seed(7), "ot", 0.0)
    xt, t, u = loss.path_targets(x0, torch.Generator().manual_seed(7), "ot", 0.0)
    assert kinetic.item() == pytest.approx(0.5 * (u**2).sum(1).mean().item()) and C.item() == value.item()
    assert R.item() == 0.0


def test_cfm_with_ot_pairing_reaches_the_true_nll_of_a_gaussian(tmp_path, monkeypatch):
    """N(μ, Σ) in d = 2: the OT map to N(0, I) is affine, so its straight-path velocity is a simple field the
    network fits quickly; a short OT-CFM run's test NLL lands within a few standard errors (plus a small fit
    error) of the true entropy. An untrained flow is 1.2 nats off."""
    import math

    from helpers.engine_runs import tiny_config, train

    from jko_cli.config import CFMConfig, JKOConfig
    from jko_cli.data.registry import DataSplits
    from jko_cli.engine import training as engine

    mu, cov = np.array([1.0, -0.5]), np.array([[2.0, 0.8], [0.8, 0.6]])
    chol = np.linalg.cholesky(cov)

    def load(cfg, seed):
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
        draw = lambda n, r: mu + r.standard_normal((n, 2)) @ chol.T  # noqa: E731
        sizes = (cfg.n_train, cfg.n_val, cfg.n_test)
        return DataSplits("gauss", *(draw(n, r) for n, r in zip(sizes, rngs, strict=False)), draw, rngs[3])

    monkeypatch.setattr(engine, "load_dataset_cfg", load)
    cfg = tiny_config(JKOConfig(schedule="single", n_steps=1), epochs_per_step=300, lr=0.02)
    cfg.method, cfg.cfm = "cfm", CFMConfig(coupling="ot")
    m = train(cfg, tmp_path / "run")
    entropy = 0.5 * 2 * math.log(2 * math.pi * math.e) + 0.5 * math.log(np.linalg.det(cov))
    assert m["n_jko_steps"] == 1 and m["adam_steps_total"] == 300 * 2
    assert abs(m["nll_test"] - entropy) < 3 * m["nll_test_se"] + 0.02, (m["nll_test"], entropy, m["nll_test_se"])


def test_cfm_batch_size_pairs_and_regresses_the_first_points_of_each_batch():
    """cfm.batch_size = m: one Adam step's loss is the flow-matching loss of the batch's first m points (a uniform
    subset: the batch is a slice of a fresh permutation); null keeps the whole batch."""
    from jko_cli.config import CFMConfig, JKOConfig, TrainConfig
    from jko_cli.engine.training import method_loss

    pot, x = _potential(), torch.randn(40, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    for size, rows in ((None, 40), (16, 16)):
        cfg = TrainConfig(method="cfm", cfm=CFMConfig(batch_size=size), jko=JKOConfig(schedule="single", n_steps=1))
        got, _ = method_loss(cfg)(pot, x, torch.Generator().manual_seed(9))
        want, _ = loss.flow_matching_loss(pot, x[:rows], torch.Generator().manual_seed(9), "ot", 0.0)
        assert got.item() == pytest.approx(want.item(), rel=1e-12)
    other, _ = loss.flow_matching_loss(pot, x[:17], torch.Generator().manual_seed(9), "ot", 0.0)
    assert other.item() != pytest.approx(got.item(), rel=1e-6)


def test_every_method_makes_the_same_adam_steps_whatever_cfm_batch_size(tmp_path):
    """The trainer's batches set the steps per epoch for every objective: a flow-matching run on a quarter of each
    batch makes exactly the Adam steps of a JKO run with the same trainer (epochs × batches × K)."""
    from helpers.engine_runs import tiny_config, train

    from jko_cli.config import CFMConfig, JKOConfig

    jko = train(tiny_config(JKOConfig(schedule="constant", n_steps=2), epochs_per_step=3), tmp_path / "jko")
    cfg = tiny_config(JKOConfig(schedule="single", n_steps=1, epochs_scale=2), epochs_per_step=3)
    cfg.method, cfg.cfm = "cfm", CFMConfig(batch_size=cfg.trainer.batch_size // 4)
    cfm = train(cfg, tmp_path / "cfm")
    assert cfm["adam_steps_total"] == jko["adam_steps_total"] == 2 * 3 * 2
