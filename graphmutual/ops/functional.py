r"""The functional API of :mod:`graphmutual.ops`.

All ops aggregate along dimension 0 on a CSR structure sorted by destination
(:class:`~graphmutual.ops.CSR`, or raw ``(rowptr, col[, value])`` tensors). They accept
int32 or int64 indices and float16/bfloat16/float32/float64 features, are differentiable,
and are ``torch.library`` custom ops underneath, so they also run under
:func:`torch.compile`.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import Tensor

from graphmutual.ops import _validate as V
from graphmutual.ops._custom_ops import edge_softmax_op, segment_op, spmm_op
from graphmutual.ops.csr import CSR

Adj = Union[CSR, tuple[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]
Transposed = tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]


def _structure(adj: Adj, num_cols: int) -> tuple[Tensor, Tensor, Optional[Tensor], Transposed]:
    """``(rowptr, col, value, transposed)`` of ``adj``, validated against ``num_cols``."""
    if isinstance(adj, CSR):
        if adj.num_cols != num_cols:
            raise ValueError(f"the CSR has {adj.num_cols} columns (source nodes) but x has "
                             f"{num_cols} rows")
        return adj.rowptr, adj.col, None, adj._t or (None, None, None)
    if not isinstance(adj, (tuple, list)) or len(adj) not in (2, 3):
        raise TypeError("adj must be a graphmutual.ops.CSR or a (rowptr, col[, value]) tuple")
    rowptr = V.index_tensor(adj[0], "rowptr")
    col = V.index_tensor(adj[1], "col")
    rowptr, col = V.unify_index(rowptr, col)
    V.check_ptr(rowptr, col.numel(), "rowptr")
    V.check_range(col, num_cols, "col")
    value = adj[2] if len(adj) == 3 else None
    return rowptr, col, value, (None, None, None)


def _edge_weight(w: Optional[Tensor], x: Tensor, num_edges: int, k: int, name: str
                 ) -> Optional[Tensor]:
    """Edge weights as a contiguous ``[E, 1]`` or ``[E, K]`` tensor."""
    if w is None:
        return None
    V.float_tensor(w, name)
    V.same_dtype(x, w, name)
    if w.dim() == 1:
        w = w.unsqueeze(-1)
    if w.dim() != 2 or w.size(0) != num_edges or w.size(1) not in (1, k):
        raise ValueError(f"{name} must have shape [E], [E, 1] or [E, K] with E={num_edges}, "
                         f"K={k}; got {tuple(w.shape)}")
    return w.contiguous()


def _flat(x: Tensor) -> Tensor:
    """``x`` as ``[x.size(0), prod(rest)]`` (also for zero-sized tensors)."""
    return x.reshape(x.size(0), math.prod(x.shape[1:]))


def _mean(out: Tensor, rowptr: Tensor) -> Tensor:
    deg = (rowptr[1:] - rowptr[:-1]).clamp(min=1).to(out.dtype)
    return out / deg.view((-1,) + (1,) * (out.dim() - 1))


def spmm(adj: Adj, x: Tensor, reduce: str = "sum", value: Optional[Tensor] = None) -> Tensor:
    r"""Weighted sparse-dense aggregation over in-edges:

    .. math::
        \mathbf{y}_i = \bigoplus_{j \to i} w_{ji}\, \mathbf{x}_j, \qquad
        \oplus \in \{\textstyle\sum, \mathrm{mean}\}

    (``mean`` divides the weighted sum by the in-degree; empty rows give zeros).

    Args:
        adj: :class:`CSR` or ``(rowptr, col[, value])`` with ``M + 1`` pointers.
        x: ``[N, *]`` node features (N = number of source nodes).
        reduce: ``"sum"`` or ``"mean"``.
        value: ``[E]`` edge weights in CSR order (alternative to the tuple's third entry).

    Returns:
        ``[M, *]``.
    """
    reduce = V.check_reduce(reduce, ("sum", "mean"))
    V.float_tensor(x, "x")
    if x.dim() < 1:
        raise ValueError("x must have at least one dimension")
    rowptr, col, tvalue, t = _structure(adj, x.size(0))
    if value is None:
        value = tvalue
    elif tvalue is not None:
        raise ValueError("edge weights given twice (adj[2] and value=)")
    w = _edge_weight(value, x, col.numel(), 1, "value")
    if w is not None and w.size(1) != 1:
        raise ValueError("spmm takes one weight per edge; use multi_spmm for [E, K] weights")
    V.same_device(("rowptr", rowptr), ("col", col), ("x", x), ("value", w))
    x3 = _flat(x).unsqueeze(1).contiguous()
    out = spmm_op(rowptr, col, w, x3, *t)
    out = out.reshape((out.size(0),) + tuple(x.shape[1:]))
    return _mean(out, rowptr) if reduce == "mean" else out


def multi_spmm(adj: Adj, x: Tensor, weight: Optional[Tensor] = None,
               num_students: Optional[int] = None, reduce: str = "sum") -> Tensor:
    r"""Aggregation for K students (or K·H attention heads) in one pass over the edges:

    .. math::
        \mathbf{y}_{i,k} = \sum_{j \to i} w_{ji,k}\, \mathbf{x}_{j,k}

    with shared weights :math:`w_{ji,k} = w_{ji}` or one weight per student/head.

    Args:
        adj: :class:`CSR` or ``(rowptr, col)``.
        x: ``[N, K, F]``, or ``[N, K * F]`` together with ``num_students=K``.
        weight: ``None`` (all ones), ``[E]`` / ``[E, 1]`` shared, or ``[E, K]``; CSR order.
        num_students: K when ``x`` is 2-D.
        reduce: ``"sum"`` or ``"mean"`` (divide by in-degree).

    Returns:
        A tensor with the layout of ``x``: ``[M, K, F]`` or ``[M, K * F]``.
    """
    reduce = V.check_reduce(reduce, ("sum", "mean"))
    V.float_tensor(x, "x")
    if x.dim() == 3:
        if num_students is not None and num_students != x.size(1):
            raise ValueError(f"num_students={num_students} but x has K={x.size(1)}")
        x3 = x
    elif x.dim() == 2:
        if num_students is None or num_students < 1 or x.size(1) % num_students:
            raise ValueError("2-D x needs num_students=K dividing x.size(1) "
                             f"(got x {tuple(x.shape)}, num_students={num_students})")
        x3 = x.reshape(x.size(0), num_students, x.size(1) // num_students)
    else:
        raise ValueError(f"x must be [N, K, F] or [N, K * F], got {tuple(x.shape)}")
    rowptr, col, tvalue, t = _structure(adj, x.size(0))
    if weight is None:
        weight = tvalue
    w = _edge_weight(weight, x, col.numel(), x3.size(1), "weight")
    V.same_device(("rowptr", rowptr), ("col", col), ("x", x), ("weight", w))
    out = spmm_op(rowptr, col, w, x3.contiguous(), *t)
    if reduce == "mean":
        out = _mean(out, rowptr)
    return out if x.dim() == 3 else _flat(out)


def segment(src: Tensor, ptr: Tensor, reduce: str = "sum") -> Tensor:
    r"""Reduce consecutive slices of ``src`` (dim 0) given by CSR pointers ``ptr``:

    .. math::
        \mathbf{y}_i = \bigoplus_{e = \mathrm{ptr}_i}^{\mathrm{ptr}_{i+1} - 1} \mathbf{x}_e

    Empty segments give zeros (also for ``max``/``min``). The gradient of ``max``/``min``
    goes to the first element attaining the extreme value.

    Args:
        src: ``[E, *]``.
        ptr: ``[M + 1]`` non-decreasing, from 0 to E.
        reduce: ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``.

    Returns:
        ``[M, *]``.
    """
    reduce = V.check_reduce(reduce, ("sum", "mean", "max", "min"))
    V.float_tensor(src, "src")
    ptr = V.index_tensor(ptr, "ptr")
    if src.dim() < 1:
        raise ValueError("src must have at least one dimension")
    V.same_device(("src", src), ("ptr", ptr))
    V.check_ptr(ptr, src.size(0), "ptr")
    src2 = _flat(src).contiguous()
    out, _ = segment_op(src2, ptr, reduce)
    return out.reshape((out.size(0),) + tuple(src.shape[1:]))


def _sort_index(index: Tensor, dim_size: int) -> tuple[Optional[Tensor], Tensor]:
    """``(perm or None if already sorted, ptr)`` grouping ``index`` into CSR segments."""
    perm = None
    if torch.compiler.is_compiling() or bool((index[1:] < index[:-1]).any()):
        perm = torch.argsort(index, stable=True)
        index = index.index_select(0, perm)
    bounds = torch.arange(dim_size + 1, device=index.device, dtype=index.dtype)
    return perm, torch.searchsorted(index, bounds)


def scatter(src: Tensor, index: Tensor, dim: int = 0, dim_size: Optional[int] = None,
            reduce: str = "sum") -> Tensor:
    r"""Reduce the slices of ``src`` along ``dim`` that share an index:

    .. math::
        \mathbf{y}_i = \bigoplus_{e \,:\, \mathrm{index}_e = i} \mathbf{x}_e

    Same semantics as :func:`torch_geometric.utils.scatter` for sum/mean/max/min (empty
    outputs are zero). ``index`` is sorted (skipped when already sorted) and reduced with
    :func:`segment`, so the result is deterministic and no backend needs atomics.

    Args:
        src: source tensor.
        index: ``[src.size(dim)]`` target indices (int32/int64).
        dim: the dimension to reduce.
        dim_size: size of the output along ``dim`` (default ``index.max() + 1``).
        reduce: ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``.
    """
    reduce = V.check_reduce(reduce, ("sum", "mean", "max", "min"))
    V.float_tensor(src, "src")
    index = V.index_tensor(index, "index")
    V.same_device(("src", src), ("index", index))
    if src.dim() == 0:
        raise ValueError("src must have at least one dimension")
    if not -src.dim() <= dim < src.dim():
        raise ValueError(f"dim={dim} is out of range for src of shape {tuple(src.shape)}")
    dim = dim % src.dim()
    if index.numel() != src.size(dim):
        raise ValueError(f"index has {index.numel()} entries but src.size({dim}) is "
                         f"{src.size(dim)}")
    if dim_size is None:
        dim_size = int(index.max()) + 1 if index.numel() else 0
    V.check_range(index, dim_size, "index")
    x = src.movedim(dim, 0)
    perm, ptr = _sort_index(index, dim_size)
    x2 = _flat(x)
    if perm is not None:
        x2 = x2.index_select(0, perm)
    out, _ = segment_op(x2.contiguous(), ptr, reduce)
    return out.reshape((dim_size,) + tuple(x.shape[1:])).movedim(0, dim)


def edge_softmax(score: Tensor, adj: Union[CSR, Tensor, None] = None, *,
                 index: Optional[Tensor] = None, num_nodes: Optional[int] = None) -> Tensor:
    r"""Softmax of edge scores over the in-edges of every node (per head):

    .. math::
        \alpha_{e,h} = \frac{\exp(s_{e,h})}{\sum_{e' \to \mathrm{dst}(e)} \exp(s_{e',h})}

    Args:
        score: ``[E]`` or ``[E, H]``.
        adj: a :class:`CSR` or its ``rowptr``: ``score`` is then in CSR order.
        index: alternatively, the destination node of every edge (any order).
        num_nodes: number of destination nodes when ``index`` is given.
    """
    V.float_tensor(score, "score")
    if score.dim() not in (1, 2):
        raise ValueError(f"score must be [E] or [E, H], got {tuple(score.shape)}")
    s2 = score.unsqueeze(-1) if score.dim() == 1 else score
    if (adj is None) == (index is None):
        raise ValueError("give exactly one of adj (CSR or rowptr) and index")
    if index is None:
        rowptr = adj.rowptr if isinstance(adj, CSR) else V.index_tensor(adj, "rowptr")
        if not isinstance(adj, CSR):
            V.check_ptr(rowptr, s2.size(0), "rowptr")
        elif adj.num_edges != s2.size(0):
            raise ValueError(f"score has {s2.size(0)} rows but the CSR has {adj.num_edges} "
                             "edges")
        V.same_device(("score", score), ("rowptr", rowptr))
        out = edge_softmax_op(rowptr, s2.contiguous())
    else:
        index = V.index_tensor(index, "index")
        V.same_device(("score", score), ("index", index))
        if index.numel() != s2.size(0):
            raise ValueError(f"index has {index.numel()} entries, score has {s2.size(0)}")
        if num_nodes is None:
            num_nodes = int(index.max()) + 1 if index.numel() else 0
        V.check_range(index, num_nodes, "index")
        perm, ptr = _sort_index(index, num_nodes)
        if perm is None:
            out = edge_softmax_op(ptr, s2.contiguous())
        else:
            y = edge_softmax_op(ptr, s2.index_select(0, perm).contiguous())
            out = torch.empty_like(y).index_copy(0, perm, y)
    return out.squeeze(-1) if score.dim() == 1 else out
