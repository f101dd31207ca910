"""Integration backends (``trainer.fast``): which implementation integrates a fixed-step solver's ODE.

    off       plain PyTorch, autograd through every stage (:mod:`.eager`): the reference
    adjoint   closed-form stages and the hand-derived discrete adjoint (:mod:`.adjoint`), eager
    compile   the same stage functions compiled by ``torch.compile`` (:mod:`.compiled`): elementwise work
              fused into a few kernels per stage; falls back to ``adjoint`` with a logged warning if
              compilation fails
    native    CPU only: the fused C++ kernel of :mod:`.native` (the whole integration of a block of
              samples, and for training its reverse, in one cache-resident pass, one sample per SIMD lane);
              built once per machine on first use. Where it does not apply (a GPU, gradients with respect
              to the input points, d > 64) the ``adjoint`` path runs; if it cannot be built (no C++
              compiler), ``adjoint`` with a logged warning
    auto      on CPU, narrow networks (width < 128, whose cost is kernel launches and elementwise work):
              ``native`` in low dimension (d ≤ 16) where it builds, else ``compile`` where torch.compile
              works (a C++ compiler); from d ≈ 32 the Laplacian's O(m²d) products are large enough for
              the GEMM-based paths to win. Wide networks are GEMM-bound and the eager ``adjoint`` path
              reuses its large buffers. On CUDA: ``compile`` where Triton is present. Else ``adjoint``.

All five give the same numbers to round-off (tests/unit/solvers/test_backends.py, tests/unit/solvers/test_native.py).
Callers never pick a backend function themselves: :class:`jko_cli.solvers.FixedStepSolver` calls
:func:`resolve` / :func:`kernels` and then the backend's integration.
"""

from __future__ import annotations

import functools
import os
import shutil

import torch

from jko_cli.solvers.backends.adjoint.integrate import EAGER, Kernels

BACKENDS = ("off", "adjoint", "compile", "native", "auto")  # trainer.fast
WIDE = 128  # on CPU, networks at least this wide run the eager adjoint under 'auto'
NATIVE_MAX_DIM = 16  # 'auto' uses the fused kernel up to this dimension (measured: it wins 1.5x at d=8, m=32;
                     # the adjoint path wins 1.3x at d=32, m=32)

__all__ = ["BACKENDS", "compile_supported", "kernels", "native_supported", "resolve"]


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


def native_supported(device: torch.device | str | None = None) -> bool:
    """Whether the fused C++ kernel runs for ``device`` here (CPU, and it builds)."""
    if device is not None and torch.device(device).type != "cpu":
        return False
    from jko_cli.solvers.backends import native

    return native.available()


def resolve(mode: str, device: torch.device | str | None = None, width: int = 0, dim: int = 0) -> str:
    """'auto' → 'native', 'compile' or 'adjoint' (see the module docstring); 'native' → 'adjoint' where it
    cannot run; other modes are returned validated."""
    if mode not in BACKENDS:
        raise ValueError(f"unknown backend {mode!r}; allowed: {', '.join(BACKENDS)}")
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
    """The adjoint path's step kernels for a backend and a network of ``width``; None for 'off' (eager).
    ('native' gets the adjoint kernels too, for the calls the fused kernel does not take.)"""
    mode = resolve(mode, device, width)
    if mode == "off":
        return None
    if mode == "compile":
        from jko_cli.solvers.backends.compiled import compiled_kernels

        return compiled_kernels()
    return EAGER
