"""The flow-matching step by autograd against the adjoint path (jko_cli/matching/loss.py) across batch sizes:
one I-CFM Adam step on the toy shape (d = 2, m = 16), one thread; median ms of 7 rounds of 100 steps after 50
warm-up steps. Run it alone on the machine, and more than once: a step of about 1 ms is mostly Python.

    python scripts/cfm_crossover.py [--sizes 64 128 256 512 1000 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from jko_cli.matching.loss import flow_matching_loss
from jko_cli.models.potential import Potential


def step_ms(n: int, autograd: bool) -> float:
    torch.manual_seed(0)
    model = Potential(2, 16, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, gen = torch.randn(n, 2) * 2 + 1, torch.Generator().manual_seed(0)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss, _ = flow_matching_loss(model, x, gen, "independent", 0.0, autograd=autograd)
        loss.backward()
        optimizer.step()

    for _ in range(50):
        step()
    rounds = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(100):
            step()
        rounds.append((time.perf_counter() - t0) / 100 * 1e3)
    return statistics.median(rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1000, 2000])
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("| points | autograd ms | adjoint ms | autograd / adjoint |\n|---|---|---|---|")
    for n in args.sizes:
        a, b = step_ms(n, True), step_ms(n, False)
        print(f"| {n} | {a:.3f} | {b:.3f} | {a / b:.2f} |")


if __name__ == "__main__":
    main()
