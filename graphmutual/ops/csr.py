"""A cached CSR view of a graph, sorted by destination node."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from graphmutual.ops import _validate as V
from graphmutual.ops._custom_ops import transpose_csr


class CSR:
    r"""Compressed sparse rows of a graph with one row per **destination** node.

    Row :math:`i` lists the sources of the edges :math:`j \to i`, so aggregating messages
    into node :math:`i` reads one contiguous slice of ``col``: no atomics, deterministic
    results. The transposed structure (rows = sources), needed by the backward pass, is
    built once on first use and cached.

    Args:
        rowptr (Tensor): ``[num_rows + 1]`` pointers into ``col`` (int32 or int64).
        col (Tensor): ``[E]`` source node of every edge (same dtype as ``rowptr``).
        num_cols (int, optional): number of source nodes (default: ``num_rows``).
        perm (Tensor, optional): ``[E]``; CSR edge ``e`` is edge ``perm[e]`` of the
            ``edge_index`` it was built from (see :meth:`edge_values`).
        validate (bool): check the structure once here (default ``True``), so that the ops
            need not check it again.
    """

    def __init__(self, rowptr: Tensor, col: Tensor, num_cols: Optional[int] = None,
                 perm: Optional[Tensor] = None, *, validate: bool = True) -> None:
        rowptr = V.index_tensor(rowptr, "rowptr")
        col = V.index_tensor(col, "col")
        V.same_device(("rowptr", rowptr), ("col", col))
        rowptr, col = V.unify_index(rowptr, col)
        self.rowptr, self.col = rowptr, col
        self.num_rows = rowptr.numel() - 1
        self.num_cols = self.num_rows if num_cols is None else int(num_cols)
        self.perm = perm
        if validate:
            V.check_ptr(rowptr, col.numel(), "rowptr")
            V.check_range(col, self.num_cols, "col")
        self._t: Optional[tuple[Tensor, Tensor, Tensor]] = None
        self._deg: Optional[Tensor] = None

    @classmethod
    def from_edge_index(cls, edge_index: Tensor, num_nodes: Optional[int] = None,
                        num_dst_nodes: Optional[int] = None,
                        index_dtype: Optional[torch.dtype] = None) -> CSR:
        r"""Build from a PyG ``edge_index`` ``[2, E]`` (messages flow ``edge_index[0] ->
        edge_index[1]``). Edges keep their relative order within a row (stable sort).

        Args:
            num_nodes: number of (source) nodes; default ``edge_index.max() + 1``.
            num_dst_nodes: number of destination nodes (bipartite graphs); default
                ``num_nodes``.
            index_dtype: dtype of ``rowptr``/``col`` (default: that of ``edge_index``).
        """
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or \
                edge_index.size(0) != 2:
            raise ValueError("edge_index must be a [2, E] tensor")
        if edge_index.dtype not in V.INDEX_DTYPES:
            raise TypeError(f"edge_index must be int32 or int64, got {edge_index.dtype}")
        src, dst = edge_index[0], edge_index[1]
        if num_nodes is None:
            num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
        n_dst = num_nodes if num_dst_nodes is None else int(num_dst_nodes)
        V.check_range(src, num_nodes, "edge_index[0]")
        V.check_range(dst, n_dst, "edge_index[1]")
        dtype = index_dtype or edge_index.dtype
        perm = torch.argsort(dst, stable=True)
        col = src.index_select(0, perm).to(dtype)
        bounds = torch.arange(n_dst + 1, device=dst.device, dtype=dst.dtype)
        rowptr = torch.searchsorted(dst.index_select(0, perm), bounds).to(dtype)
        return cls(rowptr, col, num_nodes, perm, validate=False)

    @property
    def num_edges(self) -> int:
        return self.col.numel()

    @property
    def device(self) -> torch.device:
        return self.col.device

    def transpose(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(t_rowptr, t_col, t_perm)`` of the transposed structure (cached)."""
        if self._t is None:
            self._t = transpose_csr(self.rowptr, self.col, self.num_cols)
        return self._t

    def degree(self, dtype: torch.dtype = torch.float) -> Tensor:
        """In-degree of every destination node (``[num_rows]``), cached."""
        if self._deg is None or self._deg.dtype != dtype:
            self._deg = (self.rowptr[1:] - self.rowptr[:-1]).to(dtype)
        return self._deg

    def edge_values(self, values: Tensor) -> Tensor:
        """Reorder per-edge values given in ``edge_index`` order into CSR order."""
        if values.size(0) != self.num_edges:
            raise ValueError(f"expected {self.num_edges} edge values, got {values.size(0)}")
        return values if self.perm is None else values.index_select(0, self.perm)

    def to(self, device: torch.device | str) -> CSR:
        out = CSR.__new__(CSR)
        out.__dict__.update(self.__dict__)
        out.rowptr, out.col = self.rowptr.to(device), self.col.to(device)
        out.perm = None if self.perm is None else self.perm.to(device)
        out._t = None if self._t is None else tuple(t.to(device) for t in self._t)
        out._deg = None if self._deg is None else self._deg.to(device)
        return out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_rows={self.num_rows}, "
                f"num_cols={self.num_cols}, num_edges={self.num_edges}, "
                f"dtype={self.col.dtype})")
