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

    def sample_neighbors(self, rowptr: Tensor, col: Tensor, seeds: Tensor, fanouts: list[int],
                         seed: int, replace: bool) -> tuple[Tensor, ...]:
        """Multi-hop uniform neighbour sampling (see :mod:`graphmutual.ops.sampler`).

        Same output contract as the C++ kernel (node order, edge order, sorted picks within
        a row), drawn from a :class:`torch.Generator` seeded with ``seed`` -- so the same
        seed gives the same sample here, but not the same sample as the C++ kernel.
        """
        return _reference_sample(rowptr, col, seeds, fanouts, seed, replace)


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

    def sample_neighbors(self, rowptr, col, seeds, fanouts, seed, replace):
        return self.ops.sample_neighbors(rowptr, col, seeds, list(fanouts), seed, replace)


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


def _reference_sample(rowptr: Tensor, col: Tensor, seeds: Tensor, fanouts: list[int],
                      seed: int, replace: bool) -> tuple[Tensor, ...]:
    """Vectorised reference sampler: per hop, rank every candidate edge of a frontier row by
    a uniform random key and keep the ``k`` smallest (= ``k`` distinct picks)."""
    long = torch.long
    n = rowptr.numel() - 1
    rowptr, col = rowptr.long(), col.long()
    gen = torch.Generator().manual_seed(int(seed) % (2**63))
    local = torch.full((n,), -1, dtype=long)
    local[seeds] = torch.arange(seeds.numel())
    nodes, rows, cols, edges = [seeds], [], [], []
    n_nodes, n_edges = [seeds.numel()], []
    frontier, begin, count = seeds, 0, seeds.numel()
    for k in fanouts:
        start = rowptr[frontier]
        deg = rowptr[frontier + 1] - start
        f = frontier.numel()
        if k < 0 or not replace:
            cnt = deg if k < 0 else deg.clamp(max=k)
            total = int(deg.sum())
            owner = torch.repeat_interleave(torch.arange(f), deg, output_size=total)
            first = torch.repeat_interleave(torch.cumsum(deg, 0) - deg, deg, output_size=total)
            pos = torch.arange(total) - first  # offset of the candidate within its row
            key = torch.rand(total, generator=gen)
            order = torch.argsort(key)
            order = order[torch.argsort(owner[order], stable=True)]  # by row, then by key
            keep = order[pos < cnt[owner]]  # rank within row (pos after grouping) < count
            keep = keep.sort().values  # back to (row, position) order
            owner, picked = owner[keep], start[owner[keep]] + pos[keep]
        else:
            cnt = torch.where(deg > 0, torch.full_like(deg, k), torch.zeros_like(deg))
            total = int(cnt.sum())
            owner = torch.repeat_interleave(torch.arange(f), cnt, output_size=total)
            r = (torch.rand(total, generator=gen, dtype=torch.float64) * deg[owner]).long()
            r = torch.minimum(r, deg[owner] - 1)
            width = int(deg.max()) + 1 if f else 1
            order = torch.argsort(owner * width + r)
            owner, picked = owner[order], start[owner[order]] + r[order]
        src = col[picked]
        new = src[local[src] < 0]
        if new.numel():
            uniq, inv = torch.unique(new, return_inverse=True)
            first_seen = torch.full((uniq.numel(),), new.numel(), dtype=long)
            first_seen = first_seen.scatter_reduce(0, inv, torch.arange(new.numel()), "amin")
            fresh = uniq[torch.argsort(first_seen)]
            local[fresh] = torch.arange(count, count + fresh.numel())
        else:
            fresh = new
        rows.append(local[src])
        cols.append(owner + begin)
        edges.append(picked)
        nodes.append(fresh)
        n_edges.append(picked.numel())
        n_nodes.append(fresh.numel())
        begin, count, frontier = count, count + fresh.numel(), fresh
    def cat(ts: list[Tensor]) -> Tensor:
        return torch.cat(ts) if ts else torch.empty(0, dtype=long)

    return (torch.cat(nodes), cat(rows), cat(cols), cat(edges),
            torch.tensor(n_nodes, dtype=long), torch.tensor(n_edges, dtype=long))
