"""The ``compile`` backend: the adjoint path's step functions compiled by ``torch.compile``.

One graph per step function (h enters as a tensor, so one graph serves every step size). Compilation
costs a cold start of seconds per function and input shape (cached on disk across runs); if it fails,
the eager adjoint functions take over with one logged warning.
"""

from __future__ import annotations

import functools
import logging

import torch

from jko_cli.solvers.backends.adjoint.integrate import Kernels
from jko_cli.solvers.backends.adjoint.steps import eval_step, train_step, velocity_step, vjp_step

log = logging.getLogger(__name__)


class _Fallback:
    """Call the compiled function; on any failure log one warning and use the eager function from then on."""

    def __init__(self, name: str, eager):
        self.name, self.eager = name, eager
        self.compiled = torch.compile(eager, dynamic=None)
        self.failed = False

    def __call__(self, *args):
        if not self.failed:
            try:
                return self.compiled(*args)
            except Exception as exc:  # any compiler failure: fall back, keep training
                self.failed = True
                log.warning("torch.compile of the %s step failed (%s: %s); using the eager adjoint path",
                            self.name, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return self.eager(*args)


@functools.cache
def compiled_kernels() -> Kernels:
    """One compiled kernel set per process (compiled lazily, on first call of each stage function)."""
    return Kernels("compile", workspace=False, train=_Fallback("training", train_step),
                   eval=_Fallback("evaluation", eval_step), velocity=_Fallback("velocity", velocity_step),
                   vjp=_Fallback("adjoint", vjp_step))
