"""Input checks with one clear message per problem (instead of a CUDA assert or a NaN loss)."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import Tensor

__all__ = ["validate_graph", "validate_graph_dataset"]


def _fail(msg: str) -> None:
    raise ValueError(msg)


def _check_edge_index(edge_index: Any, num_nodes: Optional[int], where: str = "") -> None:
    if not isinstance(edge_index, Tensor):
        _fail(f"edge_index{where} must be a torch.Tensor, got {type(edge_index).__name__}")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        _fail(f"edge_index{where} must have shape [2, num_edges], got {list(edge_index.shape)}")
    if edge_index.dtype != torch.long:
        _fail(
            f"edge_index{where} must be int64 (torch.long), got {edge_index.dtype}; "
            "use edge_index.long()"
        )
    _check_range(edge_index, f"edge_index{where}", "node index", num_nodes,
                 lambda hi: f"edge_index{where} contains node index {hi} but the graph has "
                            f"only {num_nodes} nodes (valid range 0..{num_nodes - 1})")


def _check_range(t: Tensor, name: str, what: str, limit: Optional[int],
                 too_big: Callable[[int], str]) -> None:
    """Every entry of the integer tensor ``t`` lies in ``0..limit-1`` (``limit=None``: only
    ``>= 0``); ``too_big(max)`` is the message for an entry ``>= limit``."""
    if t.numel() == 0:
        return
    lo, hi = int(t.min()), int(t.max())
    if lo < 0:
        _fail(f"{name} contains negative {what} {lo}")
    if limit is not None and hi >= limit:
        _fail(too_big(hi))


def _check_features(x: Any, num_nodes: Optional[int], name: str = "x") -> None:
    if not isinstance(x, Tensor):
        _fail(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 0:
        _fail(f"{name} must have a node dimension, got a scalar")
    if num_nodes is not None and x.size(0) != num_nodes:
        _fail(f"{name} has {x.size(0)} rows but the graph has {num_nodes} nodes")
    if x.is_floating_point() or x.is_complex():
        finite = torch.isfinite(x)
        if not bool(finite.all()):
            bad = (~finite).nonzero()[0].tolist()
            n_nan = int(torch.isnan(x).sum())
            n_inf = int((~finite).sum()) - n_nan
            _fail(
                f"{name} contains {n_nan} NaN and {n_inf} inf values (first at index {bad}); "
                "clean or impute the features first"
            )


def _check_labels(y: Any, num_classes: Optional[int], expected_len: Optional[int]) -> None:
    if not isinstance(y, Tensor):
        _fail(f"y must be a torch.Tensor, got {type(y).__name__}")
    if y.is_floating_point():
        _fail(f"y must hold integer class labels, got dtype {y.dtype}")
    if expected_len is not None and y.size(0) != expected_len:
        _fail(f"y has {y.size(0)} entries, expected {expected_len}")
    _check_range(y, "y", "label", num_classes,
                 lambda hi: f"y contains label {hi} but num_classes={num_classes} "
                            f"(valid 0..{num_classes - 1})")


def _check_mask(mask: Any, num_nodes: Optional[int], name: str) -> Tensor:
    if not isinstance(mask, Tensor):
        _fail(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        _fail(f"{name} must be a boolean mask, got dtype {mask.dtype}")
    if mask.dim() != 1 or (num_nodes is not None and mask.numel() != num_nodes):
        _fail(f"{name} must have shape [{num_nodes}], got {list(mask.shape)}")
    return mask


def validate_graph(
    data: Any,
    num_classes: Optional[int] = None,
    split: Any = None,
) -> None:
    """Check one graph (a :class:`~torch_geometric.data.Data`) and raise ``ValueError`` if bad.

    Checks: ``edge_index`` is an int64 ``[2, E]`` tensor with indices in ``[0, num_nodes)``;
    float features (``x``, ``edge_attr``) are finite and ``x`` has one row per node; labels
    ``y`` are integers in ``[0, num_classes)`` (labels ``< 0`` are rejected); and the node
    masks — taken from ``split`` (a :class:`~graphmutual.data.Split` with boolean masks) if
    given, else from ``data.train_mask``/``val_mask``/``test_mask`` when present — are boolean,
    of length ``num_nodes``, with a non-empty training mask that does not overlap the test
    mask.

    Args:
        data: the graph.
        num_classes: number of classes, to range-check ``y``; ``None`` skips the upper bound.
        split: optional split whose masks should be checked instead of the ones on ``data``.
    """
    if data is None:
        _fail("data is None")
    edge_index = getattr(data, "edge_index", None)
    if edge_index is None:
        _fail("data has no edge_index")
    num_nodes = getattr(data, "num_nodes", None)
    x = getattr(data, "x", None)
    if x is not None:
        _check_features(x, num_nodes, "x")
    _check_edge_index(edge_index, num_nodes)
    edge_attr = getattr(data, "edge_attr", None)
    if edge_attr is not None:
        _check_features(edge_attr, edge_index.size(1), "edge_attr")
    y = getattr(data, "y", None)
    if y is not None:
        if num_classes is not None and num_classes < 1:
            _fail(f"num_classes must be >= 1, got {num_classes}")
        _check_labels(y, num_classes, None)

    masks: dict[str, Any] = {}
    if split is not None and getattr(split, "train", None) is not None:
        masks = {"train_mask": split.train, "val_mask": split.val, "test_mask": split.test}
    else:
        for key in ("train_mask", "val_mask", "test_mask"):
            if getattr(data, key, None) is not None:
                masks[key] = getattr(data, key)
    checked = {k: _check_mask(v, num_nodes, k) for k, v in masks.items() if v is not None}
    if "train_mask" in checked and not bool(checked["train_mask"].any()):
        _fail("train_mask is empty: no labelled training nodes")
    if "train_mask" in checked and "test_mask" in checked:
        overlap = int((checked["train_mask"] & checked["test_mask"]).sum())
        if overlap:
            _fail(f"train_mask and test_mask overlap in {overlap} nodes")


def validate_graph_dataset(dataset: Any, num_classes: Optional[int] = None) -> None:
    """Vectorised check of a collated PyG :class:`~torch_geometric.data.InMemoryDataset`.

    Verifies, without iterating over graphs, that every graph's ``edge_index`` is int64 and
    only references that graph's own nodes, that float features are finite and that the
    graph labels lie in ``[0, num_classes)``.  Raises ``ValueError`` otherwise.
    """
    data = getattr(dataset, "_data", None)
    slices = getattr(dataset, "slices", None)
    if data is None or slices is None:
        _fail(f"expected a collated InMemoryDataset, got {type(dataset).__name__}")
    if len(dataset) == 0:
        _fail("the graph dataset is empty")
    edge_index = data.edge_index
    _check_edge_index(edge_index, None)
    if data.x is not None:
        _check_features(data.x, None, "x")
    if getattr(data, "edge_attr", None) is not None:
        _check_features(data.edge_attr, edge_index.size(1), "edge_attr")
    if data.y is not None:
        _check_labels(data.y, num_classes, None)
    if "x" in slices and "edge_index" in slices and edge_index.numel():
        nodes_per_graph = slices["x"].diff()
        edges_per_graph = slices["edge_index"].diff()
        limit = nodes_per_graph.repeat_interleave(edges_per_graph)
        bad = edge_index.max(dim=0).values >= limit
        if bool(bad.any()):
            edge = int(bad.nonzero()[0])
            graph = int(torch.searchsorted(slices["edge_index"], edge, right=True)) - 1
            _fail(f"graph {graph}: edge_index references a node outside that graph")
