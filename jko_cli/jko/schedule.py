"""Step sizes of the outer loop and how many steps it may take (``jko.schedule``, ``jko.n_steps``).

constant   alpha_k = alpha for every k (JKO-Flow, DESIGN.md §2)
geometric  alpha_k = alpha · growth^(k−1), k = 1, 2, … (JKO-iFlow's growing steps; growth 1.4 there).
           The exact JKO iterates contract towards N(0, I) by (1 + alpha_k)^−1 per step, so growing steps
           reach the fixed point in fewer steps; the first step is the same as constant's.
single     one step of size alpha (plain OT-Flow)
"""

from __future__ import annotations

from jko_cli.config import JKOConfig


def step_alpha(cfg: JKOConfig, alpha: float, k: int) -> float:
    """alpha_k of JKO step k (1-based)."""
    if k < 1:
        raise ValueError(f"JKO steps count from 1, got k={k}")
    if cfg.schedule == "geometric":
        return alpha * cfg.growth ** (k - 1)
    return alpha


def max_steps(cfg: JKOConfig) -> int:
    """The most steps the loop may take: K, or jko.max_steps under n_steps=auto."""
    return cfg.max_steps if cfg.auto else int(cfg.n_steps)


def describe(cfg: JKOConfig) -> str:
    """'K=5' or 'K=auto (<= 20)' for logs and progress bars."""
    return f"K=auto (<= {cfg.max_steps})" if cfg.auto else f"K={cfg.n_steps}"
