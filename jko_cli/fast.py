"""The fast path switch (``trainer.fast``): which implementation integrates the augmented ODE.

    off       the plain eager implementation (:mod:`jko_cli.ode.dynamics`, autograd through every stage)
    adjoint   closed-form stages and the hand-derived discrete adjoint (:mod:`jko_cli.ode.adjoint`), eager
    compile   the same stage functions compiled by ``torch.compile``: elementwise work fused into a few
              kernels per stage; falls back to ``adjoint`` with a logged warning if compilation fails
    native    CPU only: the fused C++ kernel of :mod:`jko_cli.native` (the whole integration of a block of
              samples, and for training its reverse, in one cache-resident pass, one sample per SIMD lane);
              built once per machine on first use. Where it does not apply (a GPU, gradients with respect
              to the input points, d > 64) the ``adjoint`` path runs; if it cannot be built (no C++
              compiler), ``adjoint`` with a logged warning
    auto      on CPU, narrow networks (width < 128, whose cost is kernel launches and elementwise work):
              ``native`` in low dimension (d ≤ 16) where it builds, else ``compile`` where torch.compile
              works (a C++ compiler); from d ≈ 32 the Laplacian's O(m²d) products are large enough for
              the GEMM-based paths to win. Wide networks are GEMM-bound and the eager ``adjoint`` path
              reuses its large buffers. On CUDA: ``compile`` where Triton is present. Else ``adjoint``.

All five give the same numbers to round-off (tests/unit/test_fastpath.py, tests/unit/test_native.py).
``compile`` costs a cold start of seconds per stage function and input shape (cached on disk across runs).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil

import torch

from jko_cli.config import FAST_MODES
from jko_cli.ode.adjoint import EAGER, Kernels
from jko_cli.ode.steps import eval_step, train_step, velocity_step, vjp_step

log = logging.getLogger(__name__)

__all__ = ["FAST_MODES", "compile_supported", "compiled_kernels", "kernels", "native_supported", "resolve"]


@functools.cache
def compile_supported(device: torch.device | str | None = None) -> bool:
    """Whether torch.compile's default backend can be expected to work for ``device`` here."""
    try:
        import torch._dynamo as dynamo

        if not dynamo.is_dynamo_supported():
            return False
    except Exception:  # any import problem means "no"
        return False
    if device is not None and torch.device(device).type == "cuda":
        from torch.utils._triton import has_triton

        return has_triton()
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)


WIDE = 128  # on CPU, networks at least this wide run the eager adjoint under 'auto'
NATIVE_MAX_DIM = 16  # 'auto' uses the fused kernel up to this dimension (measured: it wins 1.5x at d=8, m=32;
                     # the adjoint path wins 1.3x at d=32, m=32)


def native_supported(device: torch.device | str | None = None) -> bool:
    """Whether the fused C++ kernel runs for ``device`` here (CPU, and it builds)."""
    if device is not None and torch.device(device).type != "cpu":
        return False
    from jko_cli import native

    return native.available()


def resolve(mode: str, device: torch.device | str | None = None, width: int = 0, dim: int = 0) -> str:
    """'auto' → 'native', 'compile' or 'adjoint' (see the module docstring); 'native' → 'adjoint' where it
    cannot run; other modes are returned validated."""
    if mode not in FAST_MODES:
        raise ValueError(f"unknown fast mode {mode!r}; allowed: {', '.join(FAST_MODES)}")
    on_cpu = device is None or torch.device(device).type == "cpu"
    if mode == "native":
        return "native" if native_supported(device) else "adjoint"
    if mode == "auto":
        if on_cpu and width >= WIDE:
            return "adjoint"
        if on_cpu and dim <= NATIVE_MAX_DIM and native_supported(device):
            return "native"
        return "compile" if compile_supported(device) else "adjoint"
    return mode


def kernels(mode: str, device: torch.device | str | None = None, width: int = 0) -> Kernels | None:
    """The step kernels of a fast mode for a network of ``width``; None for 'off' (the plain path)."""
    mode = resolve(mode, device, width)
    if mode == "off":
        return None
    return compiled_kernels() if mode == "compile" else EAGER  # native: the adjoint kernels where it does not apply


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
