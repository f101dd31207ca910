"""The fused CPU kernel (``trainer.fast=native``): flow_kernel.cpp built on first use, called through ctypes.

The C++ source integrates a block of samples through the whole RK scheme, one sample per SIMD lane, and for
training reverses it in the same pass (see the source's header). It is compiled once per machine, source
and compiler into the user cache directory (``JKO_FLOW_NATIVE_DIR`` overrides it) with ``-O3
-march=native -fopenmp`` (each flag dropped in turn if the compiler refuses it); concurrent first builds are
safe (each writes a private file, then renames it). A call splits the batch over ``torch.get_num_threads()``
OpenMP threads: PyTorch's own pool, since the library's libgomp.so.1 resolves to the copy PyTorch loaded.
(Threads of a second pool would compete with PyTorch's, which spin for a while after each parallel op:
measured, that made two threads no faster than one.)

Public functions take a :class:`~jko_cli.models.potential.Potential` and tensors on the CPU (float32 or
float64); :func:`available` says whether the kernel can be built here (a C++ compiler is needed).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from jko_cli.solvers.backends.adjoint.stage import param_list
from jko_cli.solvers.backends.adjoint.stage_vjp import Grads
from jko_cli.solvers.methods import tableau

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SOURCES = [HERE / "flow_kernel.cpp", HERE / "kernel_sum.cpp"]  # one library
HEADERS = [HERE / "simd_math.hpp"]
FLAGS = ["-O3", "-std=c++20", "-shared", "-fPIC", "-fno-math-errno", "-fopenmp-simd"]
ABI_VERSION = 2
MAX_DIM, MAX_STAGES = 64, 16
MAX_GAMMAS = 8  # bandwidths of one kernel sum (kernel_sum.cpp)
TRAIN, EVAL, VELOCITY = 0, 1, 2


class NativeUnavailable(RuntimeError):
    """The kernel cannot be built or loaded here."""


def _compiler() -> str | None:
    for name in (os.environ.get("CXX", ""), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def _cache_dir() -> Path:
    env = os.environ.get("JKO_FLOW_NATIVE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("jko-flow")) / "native"


def _cpu_tag() -> str:
    """What -march=native depends on: the CPU's model and flags (a shared home on mixed nodes stays safe)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
        return "\n".join(lines)
    except OSError:
        return platform.processor() or platform.machine()


def _build(cxx: str) -> Path:
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False).stdout
    source = b"\0".join(p.read_bytes() for p in [*SOURCES, *HEADERS])
    attempts = [[*FLAGS, "-march=native", "-fopenmp"], [*FLAGS, "-fopenmp"], FLAGS]
    for flags in attempts:
        key = hashlib.sha256(b"\0".join([source, version.encode(), " ".join(flags).encode(),
                                        _cpu_tag().encode()])).hexdigest()[:16]
        target = _cache_dir() / f"flow_kernel-{key}.so"
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        proc = subprocess.run([cxx, *flags, "-o", tmp, *map(str, SOURCES)], capture_output=True, text=True,
                              check=False)
        if proc.returncode == 0:
            os.replace(tmp, target)
            log.info("built the native kernel: %s", target)
            return target
        os.unlink(tmp)
        log.debug("native build with %s failed: %s", flags, proc.stderr[-2000:])
    raise NativeUnavailable(f"compiling {', '.join(p.name for p in SOURCES)} with {cxx} failed")


def _declare(fn, ctype) -> None:
    p = ctypes.POINTER(ctype)
    dp = ctypes.POINTER(ctypes.c_double)
    i64, dbl = ctypes.c_int64, ctypes.c_double
    fn.argtypes = [ctypes.c_int, i64, i64, i64, i64, dbl, p, p, p, p, p, p, p, i64, i64, dp, dp, dp,
                   dbl, dbl, dbl, dbl, p, p, p, p, p, dp, dp, ctypes.c_int]
    fn.restype = ctypes.c_int


@functools.cache
def library() -> ctypes.CDLL:
    """The loaded kernel (built on first use); raises :class:`NativeUnavailable`."""
    cxx = _compiler()
    if cxx is None:
        raise NativeUnavailable("no C++ compiler found (set CXX)")
    lib = ctypes.CDLL(str(_build(cxx)))
    if lib.jko_abi_version() != ABI_VERSION:  # pragma: no cover - the cache key includes the source
        raise NativeUnavailable("stale native kernel build")
    _declare(lib.jko_flow_f32, ctypes.c_float)
    _declare(lib.jko_flow_f64, ctypes.c_double)
    i64, dp = ctypes.c_int64, ctypes.POINTER(ctypes.c_double)
    lib.jko_gauss_kernel_sum.argtypes = [i64, i64, i64, dp, dp, dp, i64, ctypes.c_int, ctypes.c_int]
    lib.jko_gauss_kernel_sum.restype = ctypes.c_double
    return lib


@functools.cache
def available() -> bool:
    """Whether the kernel builds and loads here (logs why not, once)."""
    try:
        library()
        return True
    except (NativeUnavailable, OSError) as exc:
        log.warning("native kernel unavailable (%s); using the adjoint path", exc)
        return False


def supports(potential, x: torch.Tensor, method: str) -> bool:
    """Whether this problem fits the kernel: CPU float32/64, d ≤ 64, an explicit tableau of ≤ 16 stages."""
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and potential.w.dtype == x.dtype
            and x.shape[1] <= MAX_DIM and len(tableau(method)[1]) <= MAX_STAGES)


def _ptr(t: torch.Tensor | None, ctype):
    return None if t is None else ctypes.cast(t.data_ptr(), ctypes.POINTER(ctype))


@functools.cache
def _tableau_tensors(method: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The method's Butcher tableau (a (S, S), b (S,), c (S,)) as float64 tensors, built once per method (the
    kernel only reads them)."""
    rows, b, cs = tableau(method)
    S = len(b)
    a = torch.zeros(S, S, dtype=torch.float64)
    for s, row in rows:
        for j, v in row:
            a[s, j] = v
    return a.contiguous(), torch.tensor(b, dtype=torch.float64), torch.tensor(cs, dtype=torch.float64)


class _Call:
    """One kernel invocation over a batch (the kernel splits it over threads).

    Built once per Adam step, so it does only what the kernel needs: the parameters as [K0, b0, Ks, bs, w, AᵀA,
    c] (AᵀA as the adjoint path's :class:`~jko_cli.solvers.backends.adjoint.stage.Weights` computes it).
    """

    def __init__(self, potential, x: torch.Tensor, method: str, n_steps: int, t0: float, t1: float):
        self.dtype = x.dtype
        self.ctype = ctypes.c_float if x.dtype == torch.float32 else ctypes.c_double
        self.fn = library().jko_flow_f32 if x.dtype == torch.float32 else library().jko_flow_f64
        layers = potential.layers
        self.A = potential.A.detach()
        Ks = [layer.weight.detach() for layer in layers]
        bs = [layer.bias.detach() for layer in layers]
        self.weights = [t.contiguous() for t in (potential.opening.weight.detach(), potential.opening.bias.detach(),
                                                 torch.stack(Ks), torch.stack(bs), potential.w.detach(),
                                                 self.A.T @ self.A, potential.c.detach())]
        self.tab = _tableau_tensors(method)
        self.S = self.tab[1].shape[0]
        self.dims = (x.shape[1], self.weights[0].shape[0], len(Ks), potential.h)
        self.n_steps, self.t0, self.t1 = n_steps, t0, t1
        self.x = x.detach().contiguous()
        self.grad_size = sum(t.numel() for t in self.weights)

    def run(self, mode: int, alpha: float = 0.0, alpha_R: float = 0.0, outputs: tuple = ()):
        """Runs the kernel; returns (sums (3,), grads (grad_size,) or (1,)) in float64."""
        sums = torch.zeros(3, dtype=torch.float64)
        grads = torch.zeros(self.grad_size if mode == TRAIN else 1, dtype=torch.float64)
        d, m, nl, h = self.dims
        ct, dp = self.ctype, ctypes.c_double
        outs = [_ptr(o, ct) for o in outputs] + [None] * (4 - len(outputs))
        code = self.fn(mode, self.x.shape[0], d, m, nl, h, *(_ptr(t, ct) for t in self.weights), self.n_steps,
                       self.S, *(_ptr(t, dp) for t in self.tab), self.t0, self.t1, alpha, alpha_R,
                       _ptr(self.x, ct), *outs, _ptr(sums, dp), _ptr(grads, dp), torch.get_num_threads())
        if code:
            raise NativeUnavailable(f"the native kernel refused the problem (d={d}, stages={self.S})")
        return sums, grads

    def unflatten(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Gradient of [K0, b0, Ks, bs, w, AᵀA, c] (flat, float64) → tensors in param_list order (A's from AᵀA's,
        by :meth:`Grads.as_list`, which reads only ``A`` of the weights it is given)."""
        g = flat.to(self.dtype)
        gK0, gb0, gKs, gbs, gw, gAtA, gc = (piece.view(t.shape) for piece, t in
                                            zip(g.split([t.numel() for t in self.weights]), self.weights, strict=True))
        return Grads(gK0, gb0, list(gKs.unbind()), list(gbs.unbind()), gw, gAtA, gc).as_list(self)


def augmented(potential, x: torch.Tensor, n_steps: int, method: str = "rk4"):
    """x (N, d) → (z (N, d), ℓ, L, R (N,)) on [0, 1], without gradient."""
    call = _Call(potential, x, method, n_steps, 0.0, 1.0)
    outs = (torch.empty_like(call.x), *(x.new_empty(x.shape[0]) for _ in range(3)))
    call.run(EVAL, outputs=outs)
    return outs


def velocity(potential, x: torch.Tensor, t0: float, t1: float, n_steps: int, method: str = "rk4") -> torch.Tensor:
    """Integrate ẋ = −∇_xΦ from t0 to t1: x (N, d) → (N, d), without gradient."""
    call = _Call(potential, x, method, n_steps, t0, t1)
    z = torch.empty_like(call.x)
    call.run(VELOCITY, outputs=(z,))
    return z


class _FusedLoss(torch.autograd.Function):
    """params → J = mean L + α C + α_R mean R; the gradient is computed with the loss, in the same pass."""

    @staticmethod
    def forward(ctx, call: _Call, alpha: float, alpha_R: float, *params):
        sums, grads = call.run(TRAIN, alpha, alpha_R)
        n = call.x.shape[0]
        ctx.grads = [g / n for g in call.unflatten(grads)]
        L, C, R = (sums / n).to(call.dtype).unbind()
        ctx.mark_non_differentiable(L, C, R)
        return L + alpha * C + alpha_R * R, L, C, R

    @staticmethod
    def backward(ctx, gloss, *_):
        return (None, None, None, *(gloss * g for g in ctx.grads))


def kernel_sum_supports(x: torch.Tensor, gammas: tuple[float, ...]) -> bool:
    """Whether :func:`gauss_kernel_sum` takes these: 1 to 8 bandwidths, d ≥ 1, and the kernel is built."""
    return 1 <= len(gammas) <= MAX_GAMMAS and x.ndim == 2 and x.shape[1] >= 1 and available()


def gauss_kernel_sum(x: torch.Tensor, y: torch.Tensor, gammas: tuple[float, ...], same: bool) -> float:
    """Σ_{i,j} Σ_γ exp(−γ‖x_i − y_j‖²), i = j left out when ``same`` (x is y): see kernel_sum.cpp."""
    x = x.detach().to("cpu", torch.float64).contiguous()
    y = x if same else y.detach().to("cpu", torch.float64).contiguous()
    g = torch.tensor(gammas, dtype=torch.float64)
    dp = ctypes.c_double
    total = library().jko_gauss_kernel_sum(x.shape[0], y.shape[0], x.shape[1], _ptr(x, dp), _ptr(y, dp),
                                           _ptr(g, dp), len(gammas), int(same), torch.get_num_threads())
    return total  # NaN for NaN points (or arguments outside :func:`kernel_sum_supports`)


def subproblem_loss(potential, x: torch.Tensor, alpha: float, alpha_R: float, n_steps: int, method: str = "rk4"):
    """The JKO subproblem objective (see :func:`jko_cli.jko.objective.subproblem_loss`) by the fused kernel.

    Differentiable with respect to the potential's parameters (not x); the terms are detached.
    """
    call = _Call(potential, x, method, n_steps, 0.0, 1.0)
    params = param_list(potential)
    if torch.is_grad_enabled() and any(p.requires_grad for p in params):
        loss, L, C, R = _FusedLoss.apply(call, alpha, alpha_R, *params)
        return loss, (L, C, R)
    sums, _ = call.run(EVAL)
    L, C, R = (sums / x.shape[0]).to(x.dtype).unbind()
    return L + alpha * C + alpha_R * R, (L, C, R)
