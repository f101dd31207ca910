"""Scratch memory for the fast path: reused buffers and row-stacked GEMM operands.

Two reasons. A fresh (N, d, m) temporary per stage costs page faults (the CPU allocator hands large blocks
back to the OS), several times its arithmetic; and several products that share a weight matrix are cheaper
as one GEMM over stacked rows than as separate small GEMMs (the toy problem's products are tiny).
Without a workspace (under torch.compile, which plans its own memory) blocks are concatenated instead.
"""

from __future__ import annotations

import torch


class Workspace:
    """Named buffers, reallocated only when shape, dtype or device change."""

    def __init__(self):
        self._bufs: dict = {}

    def get(self, name: str, shape: tuple, like: torch.Tensor) -> torch.Tensor:
        buf = self._bufs.get(name)
        if buf is None or buf.shape != shape or buf.dtype != like.dtype or buf.device != like.device:
            buf = self._bufs[name] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return buf


def scratch(ws: Workspace | None, name: str, shape: tuple, like: torch.Tensor) -> torch.Tensor | None:
    """A reusable buffer to pass as ``out=``, or None (allocate) without a workspace."""
    return None if ws is None else ws.get(name, shape, like)


class Rows:
    """Blocks of rows (r_k, m) stacked into one (Σ r_k, m) operand.

    Producers write block k with ``out=rows.out(k, shape)`` (a view of the buffer, or None), then hand the
    result to ``rows.put(k, tensor)`` (a copy only if it was not written in place); ``rows.stack(i, j)``
    gives blocks i..j−1 as one contiguous (rows, m) tensor.
    """

    def __init__(self, ws: Workspace | None, name: str, sizes: list, like: torch.Tensor, width: int):
        self.sizes, self.width = sizes, width
        self.starts = [sum(sizes[:k]) for k in range(len(sizes) + 1)]
        self.buf = scratch(ws, name, (self.starts[-1], width), like)
        self.parts = [None] * len(sizes)

    def out(self, k: int, shape: tuple | None = None) -> torch.Tensor | None:
        if self.buf is None:
            return None
        view = self.buf[self.starts[k] : self.starts[k + 1]]
        return view if shape is None else view.view(shape)

    def put(self, k: int, tensor: torch.Tensor) -> torch.Tensor:
        if self.buf is not None:
            view = self.out(k)
            if tensor.data_ptr() != view.data_ptr():
                view.copy_(tensor.reshape(view.shape))
        self.parts[k] = tensor
        return tensor

    def stack(self, i: int = 0, j: int | None = None) -> torch.Tensor:
        j = len(self.sizes) if j is None else j
        if self.buf is not None:
            return self.buf[self.starts[i] : self.starts[j]]
        return torch.cat([p.reshape(-1, self.width) for p in self.parts[i:j]])
