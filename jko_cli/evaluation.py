"""Metrics of a composed flow against held-out data, as DESIGN.md §3 defines them."""

from __future__ import annotations

import logging

import numpy as np
import torch

from jko_cli import metrics as M
from jko_cli.data.registry import DataSplits
from jko_cli.jko.flow import ComposedFlow
from jko_cli.runtime import Runtime

log = logging.getLogger(__name__)
INVERSE_POINTS = 2000


def final_metrics(flow: ComposedFlow, data: DataSplits, rt: Runtime, n_samples: int, draws: int,
                  generator: torch.Generator) -> tuple[dict, np.ndarray]:
    """nll_test (+ at 2× steps), mmd_paper mean ± se over draws with its floor, mmd, inverse_error.

    Returns (metrics, generated samples of the first draw).
    """
    test = rt.tensor(data.test)
    finer = ComposedFlow(flow.blocks, 2 * flow.n_steps, flow.method)
    out = {"nll_test": M.nll(flow, test), "nll_test_2x": M.nll(finer, test), "n_test": len(data.test),
           "n_steps_eval": flow.n_steps}
    paper, floor, first = [], [], None
    for _i in range(draws):
        with torch.inference_mode():
            gen = flow.sample(n_samples, generator).cpu()
        ref = torch.as_tensor(data.fresh(n_samples))
        paper.append(M.mmd_paper(gen, ref))
        floor.append(M.mmd_paper(torch.as_tensor(data.fresh(n_samples)), torch.as_tensor(data.fresh(n_samples))))
        if first is None:
            first, first_ref = gen, ref
    out["mmd_paper"], out["mmd_paper_se"] = M.mean_se(paper)
    out["mmd_paper_floor"], out["mmd_paper_floor_se"] = M.mean_se(floor)
    out["mmd_paper_draws"] = draws
    out["mmd_paper_samples"] = n_samples
    median = M.median_distance(first_ref)
    out["mmd"] = M.mmd_median(first, first_ref, median)
    out["mmd_kernel"] = M.mmd_kernel_description(median)
    out["inverse_error"] = M.inverse_error(flow, test[:INVERSE_POINTS])
    if data.dim > 8:
        out["mmd_paper_note"] = "exp(-|x-y|^2) is near-degenerate in high dimension; read `mmd` instead"
    return out, first.numpy()
