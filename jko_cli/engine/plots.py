"""The figures of a finished training run (plots/*.png), from its composed flow and its records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from jko_cli import plotting
from jko_cli.data.registry import DataSplits
from jko_cli.jko.flow import ComposedFlow

PANEL_POINTS = 2000


def make_plots(flow: ComposedFlow, epochs: list[dict], steps: list[dict], data: DataSplits, samples: np.ndarray,
               where: Path, seed: int, pairs: list[tuple[int, int]] = ((0, 1),)) -> None:
    """Data vs generated (one row per coordinate pair); the per-step panel; the composed log-density on a grid;
    loss and step curves."""
    title = f"{data.name}: K={len(flow)}"
    plotting.samples_vs_data(where / "samples.png", data.to_data(data.test), data.to_data(samples), title, pairs)
    ref = next(flow.blocks[0].parameters())
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(PANEL_POINTS, data.dim, generator=gen, dtype=ref.dtype).to(ref.device)
    stages, titles = [y.cpu().numpy()], ["N(0, I)"]
    with torch.inference_mode():
        for k in range(len(flow), 0, -1):
            y = flow.inverse_block(k - 1, y)
            stages.append(y.cpu().numpy())
            titles.append(f"T_{k}^-1" + (" = generated" if k == 1 else ""))
    lim = max(plotting.plot_limit(data.test), 3.5)  # the data and the bulk of N(0, I)
    plotting.step_panel(where / "steps_panel.png", stages, titles, lim)
    if data.dim == 2:  # on a grid in the data's units (log p_x = log p_z − Σ log sd for a standardised file)
        test = data.to_data(data.test)
        lo, hi = test.min(axis=0), test.max(axis=0)
        pad = 0.1 * (hi - lo)
        lim = plotting.plot_limit(data.test)
        xs, ys = ((np.linspace(-lim, lim, 160),) * 2 if data.transform is None else
                  (np.linspace(lo[0] - pad[0], hi[0] + pad[0], 160), np.linspace(lo[1] - pad[1], hi[1] + pad[1], 160)))
        grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
        model = grid if data.transform is None else data.transform.to_model(grid)
        with torch.inference_mode():
            logp = flow.log_prob(torch.as_tensor(model, dtype=ref.dtype, device=ref.device)).cpu().numpy()
        plotting.density_grid(where / "density.png", xs, ys, logp.reshape(len(ys), len(xs)) - data.log_scale,
                              data.name)
    plotting.loss_curves(where / "loss.png", epochs)
    plotting.step_curves(where / "jko_steps.png", steps)

