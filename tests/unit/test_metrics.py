"""Metrics (DESIGN.md §3): unbiased MMD² against a naive reference, its basic properties, mean ± se, NLL."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from jko_cli import metrics as M
from jko_cli.jko.flow import ComposedFlow
from jko_cli.solvers import FixedStepSolver
from jko_cli.solvers.backends import native


def _normal(n: int, d: int = 2, seed: int = 0, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def _naive_mmd2(x: torch.Tensor, y: torch.Tensor, gammas) -> float:
    """O(n²) double loop: Σ_{i≠j} k(x_i,x_j)/(m(m−1)) + Σ_{i≠j} k(y_i,y_j)/(n(n−1)) − 2 Σ k(x_i,y_j)/(mn)."""
    xs, ys = x.tolist(), y.tolist()

    def k(a, b):
        d2 = sum((u - v) ** 2 for u, v in zip(a, b, strict=True))
        return sum(math.exp(-g * d2) for g in gammas)

    m, n = len(xs), len(ys)
    kxx = sum(k(xs[i], xs[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(ys[i], ys[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(k(a, b) for a in xs for b in ys) / (m * n)
    return kxx + kyy - 2 * kxy


@pytest.fixture(params=["native", "torch"])
def kernel_path(request, monkeypatch):
    """Runs a test through each implementation of the kernel sums (the fused C++ one and the torch one)."""
    if request.param == "native" and not native.available():
        pytest.skip("no C++ compiler: the native kernel cannot be built")
    if request.param == "torch":
        monkeypatch.setattr(native, "kernel_sum_supports", lambda *a: False)
    return request.param


@pytest.mark.parametrize("m,n,d,gammas", [(7, 5, 2, (1.0,)), (9, 12, 3, (0.3, 1.7)), (40, 33, 2, (0.5, 1.0, 2.0)),
                                          (300, 257, 1, (0.2, 5.0)), (5, 6, 9, tuple(0.1 * k for k in range(1, 9)))])
def test_mmd_matches_naive_reference(m, n, d, gammas, kernel_path):
    x, y = _normal(m, d, seed=1), _normal(n, d, seed=2, shift=0.4)
    assert M.mmd2_unbiased(x, y, gammas) == pytest.approx(_naive_mmd2(x, y, gammas), rel=1e-10, abs=1e-12)


def test_kernel_sum_paths_agree_at_evaluation_size():
    """The two implementations agree to rounding at the size runs use (6000 × 6000, d=2), with and without
    the diagonal."""
    if not native.available():
        pytest.skip("no C++ compiler: the native kernel cannot be built")
    x, y = _normal(6000, seed=11), _normal(6000, seed=12, shift=0.3)
    for a, b, same in ((x, y, False), (x, x, True)):
        for gammas in ((1.0,), (0.25, 1.0, 4.0)):
            fused, ref = native.gauss_kernel_sum(a, b, gammas, same), M._kernel_sum_torch(a, b, gammas, same)
            assert fused == pytest.approx(ref, rel=1e-12)


def test_kernel_sum_propagates_nan(kernel_path):
    x = _normal(20, seed=13)
    x[4, 1] = float("nan")
    assert math.isnan(M.mmd_paper(x, _normal(20, seed=14)))


def test_mmd_blockwise_diagonal_removal(monkeypatch):
    """Kernel rows are summed in blocks (here of 3 rows); the excluded diagonal must follow the block offset."""
    x, y = _normal(11, seed=3), _normal(8, seed=4, shift=0.2)
    ref = _naive_mmd2(x, y, (1.0,))
    monkeypatch.setattr(native, "kernel_sum_supports", lambda *a: False)  # the torch path works in blocks
    monkeypatch.setattr(M, "BLOCK_ENTRIES", 3 * 8)  # blocks of 2-3 rows
    assert M.mmd_paper(x, y) == pytest.approx(ref, rel=1e-10, abs=1e-12)


def test_mmd_paper_kernel_is_exp_minus_squared_distance():
    x, y = _normal(6, seed=5), _normal(6, seed=6)
    assert M.mmd_paper(x, y) == pytest.approx(_naive_mmd2(x, y, (1.0,)), rel=1e-12)


def test_mmd_near_zero_for_same_distribution_and_grows_with_shift():
    x, y = _normal(800, seed=7), _normal(800, seed=8)
    same = M.mmd_paper(x, y)
    assert abs(same) < 5e-3
    shifts = [0.25, 0.5, 1.0, 2.0]
    values = [M.mmd_paper(x, _normal(800, seed=8, shift=s)) for s in shifts]
    assert values[0] > 5 * abs(same) + 1e-3
    assert all(a < b for a, b in zip(values, values[1:], strict=False))
    med = [M.mmd_median(x, _normal(800, seed=8, shift=s)) for s in [0.0, *shifts]]
    assert abs(med[0]) < 5e-3 and all(a < b for a, b in zip(med, med[1:], strict=False))


def test_mmd_is_symmetric():
    x, y = _normal(50, seed=9), _normal(70, seed=10, shift=0.5)
    assert M.mmd_paper(x, y) == pytest.approx(M.mmd_paper(y, x), rel=1e-12)
    assert M.mmd2_unbiased(x, y, (0.2, 3.0)) == pytest.approx(M.mmd2_unbiased(y, x, (0.2, 3.0)), rel=1e-12)
    # mmd_median takes its bandwidth from the second argument; with the bandwidth fixed it is symmetric
    assert M.mmd_median(x, y, median=1.3) == pytest.approx(M.mmd_median(y, x, median=1.3), rel=1e-12)


def test_mmd_accepts_float32_and_returns_float():
    x, y = _normal(20, seed=11), _normal(20, seed=12)
    v = M.mmd_paper(x.float(), y.float())
    assert isinstance(v, float)
    assert v == pytest.approx(M.mmd_paper(x.float().double(), y.float().double()), rel=1e-12)


def test_median_distance_and_kernel_bandwidths():
    y = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)  # distances 3, 4, 5
    assert M.median_distance(y) == pytest.approx(4.0)
    x = _normal(6, seed=13)
    gammas = tuple(1 / (2 * (f * 4.0) ** 2) for f in (0.5, 1.0, 2.0))
    assert M.mmd_median(x, y) == pytest.approx(_naive_mmd2(x, y, gammas), rel=1e-10)
    assert "2" in M.mmd_kernel_description(4.0) and "8" in M.mmd_kernel_description(4.0)


def test_mean_se():
    mean, se = M.mean_se([1.0, 2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.5)
    assert se == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    mean, se = M.mean_se([0.7])
    assert mean == pytest.approx(0.7) and math.isnan(se)
    assert M.mean_se([2.0, 2.0, 2.0]) == (2.0, 0.0)


def test_nll_and_inverse_error_of_identity_flow(zero_potential):
    flow = ComposedFlow([zero_potential(2), zero_potential(2)], FixedStepSolver("rk4", 4))
    x = _normal(30, seed=14, shift=0.3)
    ref = (math.log(2 * math.pi) + 0.5 * (x**2).sum(1)).mean().item()
    assert M.nll(flow, x) == pytest.approx(ref, rel=1e-14)
    assert M.inverse_error(flow, x) == 0.0


def test_inverse_error_is_mean_norm(make_potential):
    coarse = FixedStepSolver("rk4", 2)  # a visible round-trip error
    flow = ComposedFlow([make_potential(2, seed=1, scale=0.4)], coarse)
    x = _normal(40, seed=15)
    with torch.no_grad():
        ref = (flow.inverse(flow.forward(x)[0]) - x).norm(dim=1).mean().item()
    assert ref > 1e-6
    assert M.inverse_error(flow, x) == pytest.approx(ref, rel=1e-12)


def test_mmd_of_a_single_point_is_nan_not_an_error():
    """A fixed set with a 2- or 3-row test split gives the statistic one reference point: no pairs, no U-statistic."""
    x, one = torch.randn(5, 2, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64)
    assert math.isnan(M.mmd_paper(x, one)) and math.isnan(M.mmd_paper(one, x))
    assert math.isnan(M.median_distance(one)) and math.isnan(M.mmd_median(x, one))
