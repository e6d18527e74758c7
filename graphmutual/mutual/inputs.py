"""What a cohort checks about its inputs and its students, at the API boundary.

* :class:`InputGuard` validates node features and graph structure once per graph: the
  check is cached on the identity and in-place version counter of ``x`` and
  ``edge_index`` (as :class:`~graphmutual.nn.FusedCohort` caches the graph), so a training
  loop that feeds the same tensors every epoch pays for it once.
* :func:`is_graph_free` (defined in :mod:`graphmutual.nn.signature`, re-exported here)
  tells students that take no graph (called with ``x`` only).

This module sits below :mod:`graphmutual.data` (``mutual`` must not import it); the index
checks are :mod:`graphmutual.ops`' own.
"""
from __future__ import annotations

import weakref
from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from graphmutual.nn.signature import GRAPH_KWARGS, graph_free_kwargs, is_graph_free
from graphmutual.ops._validate import check_range

#: Keyword arguments that describe the graph; graph-free students never receive them.


def _fail(msg: str) -> None:
    raise ValueError(msg)


def check_features(x: Tensor, dtype: Optional[torch.dtype], name: str = "x") -> None:
    """``x`` is finite and (when floating) in the students' parameter dtype ``dtype``."""
    if not x.is_floating_point():
        return  # integer inputs (e.g. atom types for embedding encoders) are the model's
    if dtype is not None and dtype.is_floating_point and x.dtype != dtype:
        fix = {torch.float32: f"{name}.float()", torch.float64: f"{name}.double()",
               torch.float16: f"{name}.half()", torch.bfloat16: f"{name}.bfloat16()"}
        how = fix.get(dtype, f"{name}.to({dtype})")
        _fail(f"{name} is {x.dtype} but the students' parameters are {dtype}; convert the "
              f"features with {how} (or the cohort with cohort.to({x.dtype}))")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        rows = int((~finite).any(-1).sum()) if x.dim() > 1 else bad
        _fail(f"{name} holds {bad} NaN/inf value(s) in {rows} row(s); the loss and every "
              f"prediction would be NaN. Clean the features first, e.g. "
              f"torch.nan_to_num({name}) or imputation")


def check_edge_index(edge_index: Tensor, num_nodes: int, x: Optional[Tensor] = None) -> None:
    """``edge_index`` is an integer ``[2, E]`` tensor with indices in ``[0, num_nodes)``."""
    if edge_index.is_floating_point() or edge_index.dtype == torch.bool:
        _fail(f"edge_index must hold integer node indices (torch.long), got {edge_index.dtype};"
              f" convert it with edge_index.long()")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        _fail(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}"
              + ("; transpose it with edge_index.t()" if edge_index.dim() == 2
                 and edge_index.size(1) == 2 else ""))
    if x is not None and x.device != edge_index.device:
        _fail(f"x is on {x.device} but edge_index on {edge_index.device}; move both to one "
              f"device, e.g. edge_index.to(x.device)")
    check_range(edge_index.reshape(-1), num_nodes,
                f"edge_index (for x with {num_nodes} nodes)")


def _ref(t: Optional[Tensor]):
    return None if t is None else weakref.ref(t)


class InputGuard:
    """Validate ``(x, edge_index)`` once per graph; a changed or new tensor is checked again.

    Holds weak references only, is emptied when pickled or deep-copied, and is skipped while
    :func:`torch.compile` traces.
    """

    def __init__(self) -> None:
        self._key: Optional[Tuple[Any, ...]] = None

    def _key_of(self, x: Tensor, edge_index: Optional[Tensor], dtype) -> Tuple[Any, ...]:
        return (x._version, None if edge_index is None else edge_index._version, dtype)

    def _matches(self, x: Tensor, edge_index: Optional[Tensor], dtype) -> bool:
        if self._key is None:
            return False
        rx, re, key = self._key
        same_e = (re is None and edge_index is None) or (
            re is not None and edge_index is not None and re() is edge_index)
        return rx() is x and same_e and key == self._key_of(x, edge_index, dtype)

    def __call__(self, x: Any, edge_index: Any, dtype: Optional[torch.dtype]) -> None:
        """Check ``x`` (a tensor) and ``edge_index`` (a ``[2, E]`` tensor, or anything
        else, e.g. a sparse adjacency, which is left to the students)."""
        if not isinstance(x, Tensor) or torch.compiler.is_compiling():
            return
        if not isinstance(edge_index, Tensor) or edge_index.layout != torch.strided:
            edge_index = None
        if self._matches(x, edge_index, dtype):
            return
        check_features(x, dtype)
        if edge_index is not None:
            check_edge_index(edge_index, x.size(0), x)
        self._key = (weakref.ref(x), _ref(edge_index), self._key_of(x, edge_index, dtype))

    def clear(self) -> None:
        """Forget the last checked graph."""
        self._key = None

    def __getstate__(self) -> dict:
        return {"_key": None}  # weak references can be neither pickled nor worth copying

    def __setstate__(self, state: dict) -> None:
        self._key = None

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(cached={self._key is not None})"

__all__ = ["InputGuard", "GRAPH_KWARGS", "graph_free_kwargs", "is_graph_free"]
