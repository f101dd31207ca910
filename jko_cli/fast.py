"""The fast path switch (``trainer.fast``): which implementation integrates the augmented ODE.

    off       the plain eager implementation (:mod:`jko_cli.ode.dynamics`, autograd through every stage)
    adjoint   closed-form stages and the hand-derived discrete adjoint (:mod:`jko_cli.ode.adjoint`), eager
    compile   the same stage functions compiled by ``torch.compile``: elementwise work fused into a few
              kernels per stage; falls back to ``adjoint`` with a logged warning if compilation fails
    auto      ``compile`` where torch.compile can work here (a C++ compiler on CPU, Triton on CUDA),
              else ``adjoint``

All four give the same numbers to round-off (tests/unit/test_fastpath.py). ``compile`` costs a cold start
of seconds per stage function and input shape (cached on disk across runs), so short runs such as
``trainer=smoke`` use ``adjoint``.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil

import torch

from jko_cli.ode.adjoint import EAGER, Kernels, field_eval, field_train, field_vjp, velocity

log = logging.getLogger(__name__)

FAST_MODES = ("off", "adjoint", "compile", "auto")


def compile_supported(device: torch.device | str | None = None) -> bool:
    """Whether torch.compile's default backend can be expected to work for ``device`` here."""
    try:
        import torch._dynamo as dynamo

        if not dynamo.is_dynamo_supported():
            return False
    except Exception:  # noqa: BLE001 - any import problem means "no"
        return False
    if device is not None and torch.device(device).type == "cuda":
        from torch.utils._triton import has_triton

        return has_triton()
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)


def resolve(mode: str, device: torch.device | str | None = None) -> str:
    """'auto' → 'compile' or 'adjoint'; other modes are returned as they are (validated)."""
    if mode not in FAST_MODES:
        raise ValueError(f"unknown fast mode {mode!r}; allowed: {', '.join(FAST_MODES)}")
    if mode == "auto":
        return "compile" if compile_supported(device) else "adjoint"
    return mode


def kernels(mode: str, device: torch.device | str | None = None) -> Kernels | None:
    """The stage kernels of a fast mode; None for 'off' (use the plain implementation)."""
    mode = resolve(mode, device)
    if mode == "off":
        return None
    return EAGER if mode == "adjoint" else compiled_kernels()


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
            except Exception as exc:  # noqa: BLE001 - any compiler failure: fall back, keep training
                self.failed = True
                log.warning("torch.compile of the %s stage failed (%s: %s); using the eager adjoint path",
                            self.name, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return self.eager(*args)


@functools.cache
def compiled_kernels() -> Kernels:
    """One compiled kernel set per process (compiled lazily, on first call of each stage function)."""
    return Kernels("compile", workspace=False, train=_Fallback("training", field_train),
                   eval=_Fallback("evaluation", field_eval), velocity=_Fallback("velocity", velocity),
                   vjp=_Fallback("adjoint", field_vjp))
