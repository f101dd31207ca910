"""Choosing K (jko.n_steps=auto, jko_cli/jko/autostop.py) and the geometric schedule (jko_cli/jko/schedule.py).

The numerics of the statistic are checked in float64 against the composed flow's own log-density; the outer
loop is run in-process on tiny samples (tests/helpers/engine_runs.py, a second or two per JKO step).
"""

from __future__ import annotations

import math
import signal

import pytest
import torch
from helpers.cli_runs import without_timing as _plain
from helpers.engine_runs import gaussian_splits, tiny_config, train

from jko_cli.config import JKOConfig
from jko_cli.engine import training as engine
from jko_cli.jko import autostop, schedule
from jko_cli.jko.flow import ComposedFlow
from jko_cli.run.checkpoint import load_checkpoint
from jko_cli.run.signals import StopRequested
from jko_cli.solvers import FixedStepSolver

# --- the statistic and the rule ---------------------------------------------------------------------------------

def test_validation_fit_is_the_composed_flows_nll(make_potential):
    """Two blocks in turn: nll_val is −mean log p̂ of the composed flow so far (ComposedFlow.log_prob, computed
    independently), val_gain the drop of that mean from k−1 to k blocks, val_gain_se the paired standard error
    sd(nll_{k−1} − nll_k) / √n, nll_val_se the level's sd(nll_k) / √n."""
    blocks = [make_potential(2, width=6, seed=s, scale=0.3) for s in (1, 2)]
    x0 = torch.randn(300, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    solver = FixedStepSolver("rk4", 4)
    x, logdet, previous = x0, torch.zeros(300, dtype=torch.float64), -ComposedFlow([], solver).log_prob(x0)
    for k in (1, 2):
        fit, logdet = autostop.validation_fit(blocks[k - 1], x, logdet, FixedStepSolver("rk4", 4))
        nll = -ComposedFlow(blocks[:k], FixedStepSolver("rk4", 4)).log_prob(x0)
        assert fit["nll_val"] == pytest.approx(nll.mean().item(), rel=1e-12)
        assert fit["val_gain"] == pytest.approx((previous - nll).mean().item(), abs=1e-12)
        assert fit["nll_val_se"] == pytest.approx(nll.std().item() / math.sqrt(300), rel=1e-10)
        assert fit["val_gain_se"] == pytest.approx((previous - nll).std().item() / math.sqrt(300), rel=1e-10)
        x, previous = ComposedFlow([blocks[k - 1]], FixedStepSolver("rk4", 4)).forward(x)[0], nll


def test_an_identity_block_gains_exactly_nothing(zero_potential):
    """Φ ≡ 0 moves nothing and has ℓ = 0: the gain is 0, so even auto_tol = 0 stops."""
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    fit, logdet = autostop.validation_fit(zero_potential(3), x, torch.zeros(50, dtype=torch.float64),
                                          FixedStepSolver("rk4", 4))
    assert fit["val_gain"] == 0.0 and torch.equal(logdet, torch.zeros(50, dtype=torch.float64))
    assert fit["val_gain_se"] == 0.0
    assert autostop.decide(fit["val_gain"], fit["val_gain_se"], 0.0, 1, 20) == autostop.STOP_GAIN


def _paired_nlls(n: int = 4000, gain: float = 0.002, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-point NLLs before and after a step with a known paired structure: a point's level b_i (sd 1) is
    common to both, the step changes it by gain + e_i (sd 0.05). The level's se is sd(b)/√n ≈ 0.016, the
    paired one sd(e)/√n ≈ 0.0008: twenty times smaller."""
    g = torch.Generator().manual_seed(seed)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    return b, b - gain - 0.05 * torch.randn(n, generator=g, dtype=torch.float64)


def test_the_rules_standard_error_is_the_paired_one():
    before, after = _paired_nlls()
    gain, se = autostop.paired_gain(before, after)
    d = (before - after).numpy()
    assert gain == pytest.approx(d.mean(), rel=1e-12)
    assert se == pytest.approx(d.std(ddof=1) / math.sqrt(len(d)), rel=1e-12)
    assert after.std().item() / math.sqrt(len(d)) > 15 * se  # the level's se, which the old rule divided by
    assert autostop.paired_gain(before[:1], after[:1])[1] == math.inf


def test_a_gain_of_three_paired_standard_errors_goes_on():
    """With the default threshold a step that gained 3 paired se takes another; one that gained 1 se stops. The
    level's se (what the rule divided by before) would have stopped both."""
    tol = JKOConfig().auto_tol
    before, after = _paired_nlls()
    _, se = autostop.paired_gain(before, after)
    level_se = after.std().item() / math.sqrt(len(after))
    assert autostop.decide(3 * se, se, tol, 1, 20) is None
    assert autostop.decide(1 * se, se, tol, 1, 20) == autostop.STOP_GAIN
    assert autostop.decide(3 * se, level_se, 1.0, 1, 20) == autostop.STOP_GAIN


@pytest.mark.parametrize("gain,se,tol,k,expected", [
    (0.10, 0.01, 1.0, 1, None),  # gain of 10 standard errors: take another step
    (0.01, 0.01, 1.0, 3, autostop.STOP_GAIN),  # exactly at the threshold: stop
    (0.015, 0.01, 2.0, 3, autostop.STOP_GAIN),  # the threshold scales with auto_tol
    (-0.2, 0.01, 1.0, 1, autostop.STOP_GAIN),  # the step made the fit worse
    (float("nan"), 0.01, 1.0, 2, autostop.STOP_GAIN),  # a diverged step
    (0.10, 0.01, 1.0, 20, autostop.STOP_MAX),  # still gaining, but jko.max_steps reached
])
def test_decide(gain, se, tol, k, expected):
    assert autostop.decide(gain, se, tol, k, 20) == expected


def test_geometric_step_sizes():
    geo = JKOConfig(schedule="geometric", growth=1.4)
    assert [schedule.step_alpha(geo, 2.0, k) for k in (1, 2, 3, 4)] == pytest.approx([2.0, 2.8, 3.92, 5.488])
    assert [schedule.step_alpha(JKOConfig(), 2.0, k) for k in (1, 2, 3)] == [2.0, 2.0, 2.0]
    assert schedule.max_steps(JKOConfig(n_steps="auto", max_steps=7)) == 7 and schedule.max_steps(geo) == 5


# --- the outer loop ---------------------------------------------------------------------------------------------

def test_auto_stops_after_one_step_on_gaussian_data(tmp_path, monkeypatch):
    """Data already N(0, I): no map can improve the held-out NLL, so auto takes exactly one step."""
    monkeypatch.setattr(engine, "load_dataset_cfg", gaussian_splits())
    m = train(tiny_config(JKOConfig(n_steps="auto", max_steps=5)), tmp_path / "run")
    assert m["n_jko_steps"] == m["K"] == 1 and m["jko_stop_reason"] == autostop.STOP_GAIN
    step = m["steps"][0]
    assert step["stop"] == autostop.STOP_GAIN and step["val_gain"] <= JKOConfig().auto_tol * step["val_gain_se"]
    assert (tmp_path / "run/checkpoints/jko_001.pt").is_file()
    assert not (tmp_path / "run/checkpoints/jko_002.pt").exists()


def test_auto_is_fixed_k_cut_where_the_gain_fades(tmp_path, monkeypatch):
    """Data N(0, 9 I) at alpha = 50: step 1 removes nearly all of the KL (a gain of many standard errors, so the
    loop goes on), step 2 gains within noise and the loop stops. Up to the chosen K, every step record equals a
    fixed-K run's: choosing K changes nothing but where the loop ends."""
    monkeypatch.setattr(engine, "load_dataset_cfg", gaussian_splits(scale=3.0))
    auto = train(tiny_config(JKOConfig(n_steps="auto", max_steps=5), alpha=50.0), tmp_path / "auto")
    assert auto["n_jko_steps"] == 2 and auto["jko_stop_reason"] == autostop.STOP_GAIN
    first, second = auto["steps"]
    tol = JKOConfig().auto_tol
    assert first["val_gain"] > 10 * first["val_gain_se"] and first["stop"] is None
    assert second["val_gain"] <= tol * second["val_gain_se"] and second["stop"] == autostop.STOP_GAIN
    assert second["val_gain"] >= 0 and "dropped" not in second  # a gain, if within noise: block 2 is kept
    fixed = train(tiny_config(JKOConfig(n_steps=2), alpha=50.0), tmp_path / "fixed")
    assert [{k: v for k, v in s.items() if k != "stop"} for s in _plain(auto["steps"])] == _plain(fixed["steps"])
    assert auto["adam_steps_total"] == fixed["adam_steps_total"] == 2 * 30 * 2
    assert auto["nll_test"] == fixed["nll_test"]


def test_measuring_the_gain_does_not_change_the_trajectory(tmp_path, monkeypatch):
    """The validation statistic only observes: with it replaced by a constant, a fixed-K run's every other number
    (losses, per-step metrics, final metrics) is bit-identical, so plain configurations train exactly as before."""
    cfg = tiny_config(JKOConfig(n_steps=2), epochs_per_step=3)
    measured = train(cfg, tmp_path / "measured")
    stat = {"nll_val": 0.0, "nll_val_se": 0.0, "val_gain": 0.0, "val_gain_se": 0.0}
    monkeypatch.setattr(autostop, "validation_fit", lambda block, x, logdet, *a: (stat, logdet))
    blind = train(cfg, tmp_path / "blind")
    assert [{**s, **stat} for s in _plain(measured["steps"])] == _plain(blind["steps"])
    assert {k: v for k, v in _plain(measured).items() if k != "steps"} == {
        k: v for k, v in _plain(blind).items() if k != "steps"}
    epochs = [[e for e in _plain(_jsonl(tmp_path / run)) if e["event"] == "epoch"] for run in ("blind", "measured")]
    assert epochs[0] == epochs[1] and len(epochs[0]) == 2 * 3


def test_geometric_steps_reach_the_subproblems_and_the_checkpoints(tmp_path):
    """jko=geometric, K = 3, alpha 2, growth 1.5: alpha_k = 2, 3, 4.5 in metrics.json, in each jko_00k.pt (its
    first k), in the step records; and each step's training loss is L + alpha_k C + alpha_R R with that alpha_k."""
    cfg = tiny_config(JKOConfig(schedule="geometric", n_steps=3, growth=1.5), alpha=2.0, epochs_per_step=3)
    m = train(cfg, tmp_path / "run")
    expected = [2.0, 3.0, 4.5]
    assert m["alphas"] == expected and [s["alpha"] for s in m["steps"]] == expected
    for k in (1, 2, 3):
        payload = load_checkpoint(tmp_path / f"run/checkpoints/jko_{k:03d}.pt")
        assert payload["alphas"] == expected[:k] and [s["alpha"] for s in payload["steps"]] == expected[:k]
    epochs = [e for e in _jsonl(tmp_path / "run") if e["event"] == "epoch"]
    assert {e["jko_step"] for e in epochs} == {1, 2, 3}
    for e in epochs:
        alpha_k = expected[e["jko_step"] - 1]
        assert e["loss"] == pytest.approx(e["L"] + alpha_k * e["C"] + cfg.model.alpha_R * e["R"], rel=1e-10)


def test_geometric_auto_with_early_stopping_resumes_exactly(tmp_path, monkeypatch):
    """geometric + auto + early stopping, interrupted mid JKO step 2 (after its first validation checks) and resumed:
    metrics.json and every metrics.jsonl line equal an uninterrupted run's, so the new state (the validation
    log-determinants, the stop decisions, the plateau counters) is checkpointed and restored."""
    monkeypatch.setattr(engine, "load_dataset_cfg", gaussian_splits(scale=3.0))
    cfg = tiny_config(JKOConfig(schedule="geometric", n_steps="auto", max_steps=4), alpha=1.0, epochs_per_step=12,
                      early_stop_every=2, early_stop_patience=2, early_stop_min_delta=0.05, checkpoint_every=5)
    reference = train(cfg, tmp_path / "reference")
    assert reference["n_jko_steps"] >= 2 and "early_stop_epochs" in reference
    assert reference["adam_steps_total"] == sum(s["adam_steps"] for s in reference["steps"])

    original = engine.Trainer.after_step
    stop_at = reference["steps"][0]["adam_steps"] + 11  # inside JKO step 2, after its checks at epochs 2 and 4

    def interrupt(self, p):
        if self.state.adam_steps + p.adam_steps == stop_at:
            self.stop.signum = signal.SIGTERM  # what graceful_stop's handler does
        original(self, p)

    monkeypatch.setattr(engine.Trainer, "after_step", interrupt)
    with pytest.raises(StopRequested):
        train(cfg, tmp_path / "resumed")
    monkeypatch.setattr(engine.Trainer, "after_step", original)
    assert _plain(train(cfg, tmp_path / "resumed")) == _plain(reference)
    assert _plain(_jsonl(tmp_path / "resumed")) == _plain(_jsonl(tmp_path / "reference"))


def _jsonl(run_dir) -> list[dict]:
    import json

    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_the_threshold_replay_script_cuts_where_the_rule_would(tmp_path):
    """scripts/choose_auto_tol.py on recorded steps: gains of 10, 3 and 1 paired se stop at step 3 for τ = 2,
    at step 2 for τ = 4, not within K for τ = 0.5; the cost is that step's nll_test minus the last one's."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("tol", Path(__file__).resolve().parents[3] / "scripts" /
                                                  "choose_auto_tol.py")
    tol = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tol)
    steps = [{"val_gain": g, "val_gain_se": 0.01, "nll_val_se": 0.05, "nll_test": n}
             for g, n in ((0.10, 2.9), (0.03, 2.8), (0.01, 2.79))]
    assert tol.cut(steps, 2.0, "val_gain_se") == (3, True) and tol.cut(steps, 4.0, "val_gain_se") == (2, True)
    assert tol.cut(steps, 0.5, "val_gain_se") == (3, False)
    rows = {r["tol"]: r for r in tol.replay([steps], [2.0, 4.0])}
    assert rows[tol.OLD]["mean_k"] == 2 and rows[tol.OLD]["cost"] == pytest.approx(2.8 - 2.79)  # 0.03 ≤ 0.05
    assert rows[4.0]["cost"] == pytest.approx(0.01) and rows[2.0]["cost"] == 0.0 and rows[2.0]["censored"] == 0
    steps[2]["val_gain"] = -0.01  # step 3 raised the validation NLL: the rule stops there and keeps 2 blocks
    assert tol.cut(steps, 2.0, "val_gain_se") == (2, True)
    assert tol.cut(steps, 2.0, "val_gain_se", drop=False) == (3, True)


def test_a_block_that_raises_the_validation_nll_is_dropped(tmp_path, monkeypatch):
    """A stopping step whose validation gain is negative made the held-out fit worse: its block is dropped, so the
    run's flow is blocks 1..k−1. Step 2's gain forced negative: K = 1, the final nll_test is step 1's (to
    round-off: the final evaluation pushes the test points through the flow again), the checkpoints hold one block
    and the samples as they were after it; step 2's record stays (marked dropped) and its Adam steps count.
    Without the drop, the final nll_test would be step 2's."""
    monkeypatch.setattr(engine, "load_dataset_cfg", gaussian_splits(scale=3.0))
    real = autostop.paired_gain
    calls = []

    def second_gain_negative(nll_prev, nll):
        gain, se = real(nll_prev, nll)
        calls.append(gain)
        return (-abs(gain) - 1e-3, se) if len(calls) == 2 else (gain, se)

    monkeypatch.setattr(autostop, "paired_gain", second_gain_negative)
    m = train(tiny_config(JKOConfig(n_steps="auto", max_steps=5), alpha=50.0), tmp_path / "run")
    first, second = m["steps"]
    assert first["stop"] is None and second["stop"] == autostop.STOP_GAIN and second["dropped"] is True
    assert m["K"] == m["n_jko_steps"] == 1 and m["jko_dropped_step"] == 2 and m["alphas"] == [50.0]
    assert m["nll_test"] == pytest.approx(first["nll_test"], rel=1e-12) and second["nll_test"] != first["nll_test"]
    assert m["adam_steps_total"] == first["adam_steps"] + second["adam_steps"]
    one = load_checkpoint(tmp_path / "run/checkpoints/jko_001.pt")
    for name in ("jko_002.pt", "last.pt"):
        payload = load_checkpoint(tmp_path / f"run/checkpoints/{name}")
        assert len(payload["blocks"]) == 1 and payload["jko_step"] == 1
        for key in ("x_train", "x_val", "x_test", "test_logdet", "val_logdet"):
            assert torch.equal(payload[key], one[key])
    (tmp_path / "run/metrics.json").unlink()  # as if stopped in the final evaluation: resumes from last.pt
    again = train(tiny_config(JKOConfig(n_steps="auto", max_steps=5), alpha=50.0), tmp_path / "run")
    assert _plain(again) == _plain(m)


@pytest.mark.parametrize("gain, k, dropped", [(-1e-9, 2, True), (math.nan, 3, True), (math.inf, 2, True),
                                              (0.0, 2, False), (1e-3, 4, False), (-5.0, 1, False)])
def test_drops_block(gain, k, dropped):
    assert autostop.drops_block(gain, k) is dropped
