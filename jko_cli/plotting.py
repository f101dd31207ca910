"""Figures of a run (matplotlib Agg; every figure is closed after saving)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


@contextmanager
def figure(path, ncols: int = 1, nrows: int = 1, size: float = 3.2):
    """A figure saved to ``path`` (a file path, or a binary file object that receives a PNG) and closed."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    try:
        yield fig, axes
        fig.tight_layout()
        if isinstance(path, (str, Path)):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def _scatter(ax, pts: np.ndarray, title: str, lim: float) -> None:
    ax.scatter(pts[:, 0], pts[:, 1], s=1.0, alpha=0.4, rasterized=True)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)


def plot_limit(*arrays: np.ndarray) -> float:
    """Half-width of a square window holding 99.5 % of the points' first two coordinates."""
    allpts = np.concatenate([a[:, :2] for a in arrays])
    return float(np.quantile(np.abs(allpts), 0.995)) * 1.1 + 1e-6


def samples_vs_data(path: Path, data: np.ndarray, generated: np.ndarray, title: str = "",
                    pairs: list[tuple[int, int]] = ((0, 1),)) -> None:
    """Held-out data beside generated samples; one row per coordinate pair (i, j), a 2-D slice each."""
    with figure(path, ncols=2, nrows=len(pairs)) as (fig, ax):
        for row, (i, j) in enumerate(pairs):
            lim = plot_limit(data[:, [i, j]])
            suffix = "" if (i, j) == (0, 1) and len(pairs) == 1 else f", x{i}–x{j}"
            _scatter(ax[row, 0], data[:, [i, j]], f"data (held out){suffix}", lim)
            _scatter(ax[row, 1], generated[:, [i, j]], f"generated{suffix}", lim)
        if title:
            fig.suptitle(title, fontsize=9)


def step_panel(path: Path, stages: list[np.ndarray], titles: list[str], lim: float) -> None:
    """Gaussian → T_K⁻¹ → … → generated: one panel per stage, all in the window [−lim, lim]²."""
    with figure(path, ncols=len(stages), size=2.6) as (_, ax):
        for i, (pts, title) in enumerate(zip(stages, titles, strict=False)):
            _scatter(ax[0, i], pts, title, lim)


def density_grid(path: Path, xs: np.ndarray, ys: np.ndarray, logp: np.ndarray, title: str) -> None:
    """Heat map of the density exp(log p̂) on a grid (logp has shape (len(ys), len(xs)))."""
    with figure(path, ncols=2, size=3.4) as (_, ax):
        extent = [xs[0], xs[-1], ys[0], ys[-1]]
        ax[0, 0].imshow(np.exp(logp), origin="lower", extent=extent, cmap="viridis")
        ax[0, 0].set_title(f"{title}: density", fontsize=9)
        im = ax[0, 1].imshow(np.maximum(logp, logp.max() - 15), origin="lower", extent=extent, cmap="magma")
        ax[0, 1].set_title("log-density", fontsize=9)
        plt.colorbar(im, ax=ax[0, 1], fraction=0.046)


def loss_curves(path: Path, records: list[dict]) -> None:
    """Per-epoch L, C, R and total loss, concatenated over JKO steps (vertical lines mark steps)."""
    keys = ("loss", "L", "C", "R")
    with figure(path, ncols=len(keys), size=2.8) as (_, ax):
        steps = np.array([r["adam_steps_total"] for r in records])
        bounds = [r["adam_steps_total"] for r, nxt in zip(records, records[1:], strict=False)
                  if nxt["jko_step"] != r["jko_step"]]
        for i, key in enumerate(keys):
            ax[0, i].plot(steps, [r[key] for r in records], lw=0.8)
            for b in bounds:
                ax[0, i].axvline(b, color="grey", lw=0.5, ls="--")
            ax[0, i].set_title(key, fontsize=9)
            ax[0, i].set_xlabel("Adam steps", fontsize=8)
            ax[0, i].tick_params(labelsize=7)
        if all(r["C"] > 0 for r in records):
            ax[0, 2].set_yscale("log")


def step_curves(path: Path, steps: list[dict]) -> None:
    """Metrics after each JKO step: L, C, R on validation data, mmd and nll_test."""
    keys = [k for k in ("L", "C", "R", "mmd", "nll_test") if k in steps[0]]
    ks = [s["jko_step"] for s in steps]
    with figure(path, ncols=len(keys), size=2.6) as (_, ax):
        for i, key in enumerate(keys):
            ax[0, i].plot(ks, [s[key] for s in steps], "o-", ms=3)
            ax[0, i].set_title(key, fontsize=9)
            ax[0, i].set_xlabel("JKO step k", fontsize=8)
            ax[0, i].tick_params(labelsize=7)
