"""Kernel sets: one class per backend, all with the same five primitives on sorted CSR.

Every primitive works on a CSR structure ``(rowptr [M + 1], col [E])`` whose rows are the
destination nodes; ``x`` is ``[N, K, F]`` (K students / heads, F features).

* ``spmm(rowptr, col, weight, x)``: :math:`y_{i,k} = \\sum_{e \\in r(i)} w_{e,k} x_{col_e,k}`,
  ``weight`` is ``None``, ``[E, 1]`` (shared) or ``[E, K]``.
* ``sddmm(rowptr, col, a, b, sum_k)``:
  :math:`s_{e,k} = \\langle a_{row_e,k}, b_{col_e,k} \\rangle` (summed over k if ``sum_k``).
* ``segment(src, ptr, reduce)``: reduce ``src [E, D]`` over the segments of ``ptr``; returns
  ``(out [M, D], arg)`` where ``arg`` (max/min only) holds the winning row, ``E`` for empty
  segments.
* ``edge_softmax(rowptr, score)`` and ``edge_softmax_backward(rowptr, y, grad)``.

The reference set is plain PyTorch and defines the semantics the others are tested against.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

REDUCE_CODES = {"sum": 0, "mean": 1, "max": 2, "min": 3}


def row_index(rowptr: Tensor, num_edges: int) -> Tensor:
    """Destination row of every edge of a CSR structure (``[E]``, int64)."""
    m = rowptr.numel() - 1
    counts = (rowptr[1:] - rowptr[:-1]).long()
    return torch.repeat_interleave(
        torch.arange(m, device=rowptr.device), counts, output_size=num_edges
    )


class ReferenceKernels:
    """Pure PyTorch (gather -> multiply -> ``index_add_``): slow but obviously right."""

    name = "reference"

    def spmm(self, rowptr: Tensor, col: Tensor, weight: Optional[Tensor], x: Tensor) -> Tensor:
        row = row_index(rowptr, col.numel())
        msg = x.index_select(0, col.long())
        if weight is not None:
            msg = msg * weight.unsqueeze(-1)
        out = x.new_zeros((rowptr.numel() - 1,) + tuple(x.shape[1:]))
        return out.index_add_(0, row, msg)

    def sddmm(self, rowptr: Tensor, col: Tensor, a: Tensor, b: Tensor, sum_k: bool) -> Tensor:
        row = row_index(rowptr, col.numel())
        s = (a.index_select(0, row) * b.index_select(0, col.long())).sum(-1)
        return s.sum(-1, keepdim=True) if sum_k else s

    def segment(self, src: Tensor, ptr: Tensor, reduce: str) -> tuple[Tensor, Tensor]:
        e, m = src.size(0), ptr.numel() - 1
        row = row_index(ptr, e)
        idx = row.unsqueeze(-1).expand_as(src)
        out = src.new_zeros((m, src.size(1)))
        arg = torch.empty(0, dtype=torch.long, device=src.device)
        if reduce in ("sum", "mean"):
            out.scatter_add_(0, idx, src)
            if reduce == "mean":
                cnt = (ptr[1:] - ptr[:-1]).clamp(min=1).to(src.dtype).unsqueeze(-1)
                out = out / cnt
            return out, arg
        red = "amax" if reduce == "max" else "amin"
        out = out.scatter_reduce(0, idx, src, red, include_self=False)
        # first edge of each segment that attains the extreme value
        hit = src == out.index_select(0, row)
        pos = torch.arange(e, device=src.device).unsqueeze(-1).expand_as(src)
        cand = torch.where(hit, pos, torch.full_like(pos, e))
        arg = torch.full((m, src.size(1)), e, dtype=torch.long, device=src.device)
        arg = arg.scatter_reduce(0, idx, cand, "amin", include_self=True)
        return out, arg

    def edge_softmax(self, rowptr: Tensor, score: Tensor) -> Tensor:
        m = rowptr.numel() - 1
        row = row_index(rowptr, score.size(0))
        idx = row.unsqueeze(-1).expand_as(score)
        mx = score.new_full((m, score.size(1)), float("-inf"))
        mx = mx.scatter_reduce(0, idx, score, "amax", include_self=True)
        mx = torch.where(torch.isinf(mx) & (mx < 0), torch.zeros_like(mx), mx)
        ex = (score - mx.index_select(0, row)).exp()
        den = score.new_zeros((m, score.size(1))).scatter_add_(0, idx, ex)
        return ex / den.index_select(0, row)

    def edge_softmax_backward(self, rowptr: Tensor, y: Tensor, grad: Tensor) -> Tensor:
        m = rowptr.numel() - 1
        row = row_index(rowptr, y.size(0))
        idx = row.unsqueeze(-1).expand_as(y)
        dot = y.new_zeros((m, y.size(1))).scatter_add_(0, idx, y * grad)
        return y * (grad - dot.index_select(0, row))


class CppKernels:
    """Our C++ CPU extension (``graphmutual/csrc/ops_cpu.cpp``)."""

    name = "cpp"

    def __init__(self) -> None:
        self.ops = torch.ops.graphmutual_cpu

    def spmm(self, rowptr, col, weight, x):
        return self.ops.spmm(rowptr, col, weight, x)

    def sddmm(self, rowptr, col, a, b, sum_k):
        return self.ops.sddmm(rowptr, col, a, b, sum_k)

    def segment(self, src, ptr, reduce):
        return self.ops.segment(src, ptr, REDUCE_CODES[reduce])

    def edge_softmax(self, rowptr, score):
        return self.ops.edge_softmax(rowptr, score)

    def edge_softmax_backward(self, rowptr, y, grad):
        return self.ops.edge_softmax_backward(rowptr, y, grad)


class CudaKernels:
    """Our CUDA extension (``graphmutual/csrc/ops_cuda.cu``)."""

    name = "cuda"

    def __init__(self) -> None:
        self.ops = torch.ops.graphmutual_cuda

    @staticmethod
    def _stream(t: Tensor) -> int:
        return torch.cuda.current_stream(t.device).cuda_stream

    def spmm(self, rowptr, col, weight, x):
        with torch.cuda.device(x.device):
            return self.ops.spmm(rowptr, col, weight, x, self._stream(x))

    def sddmm(self, rowptr, col, a, b, sum_k):
        with torch.cuda.device(a.device):
            return self.ops.sddmm(rowptr, col, a, b, sum_k, self._stream(a))

    def segment(self, src, ptr, reduce):
        with torch.cuda.device(src.device):
            return self.ops.segment(src, ptr, REDUCE_CODES[reduce], self._stream(src))

    def edge_softmax(self, rowptr, score):
        with torch.cuda.device(score.device):
            return self.ops.edge_softmax(rowptr, score, self._stream(score))

    def edge_softmax_backward(self, rowptr, y, grad):
        with torch.cuda.device(y.device):
            return self.ops.edge_softmax_backward(rowptr, y, grad, self._stream(y))


class TorchScatterKernels(ReferenceKernels):
    """torch-scatter's ``segment_*_csr`` kernels (gather -> multiply -> segment reduce)."""

    name = "torch_scatter"

    def __init__(self) -> None:
        import torch_scatter  # noqa: F401  (registers torch.ops.torch_scatter)

        self.ops = torch.ops.torch_scatter

    def spmm(self, rowptr, col, weight, x):
        msg = x.index_select(0, col.long())
        if weight is not None:
            msg = msg * weight.unsqueeze(-1)
        return self.ops.segment_sum_csr(msg, rowptr.long(), None)

    def segment(self, src, ptr, reduce):
        ptr = ptr.long()
        arg = torch.empty(0, dtype=torch.long, device=src.device)
        if reduce == "sum":
            return self.ops.segment_sum_csr(src, ptr, None), arg
        if reduce == "mean":
            return self.ops.segment_mean_csr(src, ptr, None), arg
        fn = self.ops.segment_max_csr if reduce == "max" else self.ops.segment_min_csr
        out, arg = fn(src, ptr, None)
        return out, arg

    def edge_softmax(self, rowptr, score):
        ptr = rowptr.long()
        mx, _ = self.ops.segment_max_csr(score, ptr, None)
        ex = (score - self.ops.gather_csr(mx, ptr, None)).exp()
        den = self.ops.segment_sum_csr(ex, ptr, None)
        return ex / self.ops.gather_csr(den, ptr, None)

    def edge_softmax_backward(self, rowptr, y, grad):
        ptr = rowptr.long()
        dot = self.ops.segment_sum_csr(y * grad, ptr, None)
        return y * (grad - self.ops.gather_csr(dot, ptr, None))
