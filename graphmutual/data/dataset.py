"""The two value types every loader returns: :class:`GraphDataset` and :class:`Split`."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

import torch
from torch import Tensor


@dataclass
class Split:
    """One train / validation / test split of a dataset.

    For node tasks the three tensors are boolean masks of shape ``[num_nodes]``; for graph
    tasks they are ``int64`` index tensors into the graph dataset.  ``description`` says in
    words which protocol produced the split (it ends up in result tables).
    """

    train: Tensor
    val: Tensor
    test: Tensor
    description: str

    @property
    def is_mask(self) -> bool:
        """``True`` for boolean node masks, ``False`` for graph index tensors."""
        return self.train.dtype == torch.bool

    def sizes(self) -> tuple[int, int, int]:
        """Number of training, validation and test items."""
        if self.is_mask:
            return (int(self.train.sum()), int(self.val.sum()), int(self.test.sum()))
        return (self.train.numel(), self.val.numel(), self.test.numel())


@dataclass
class GraphDataset:
    """A loaded benchmark dataset plus everything a trainer needs to know about it.

    Attributes:
        name: canonical lower-case name (``"cora"``, ``"ogbg-molbace"``, ``"mutag"``...).
        task: ``"node"`` (one graph, classify its nodes) or ``"graph"`` (classify graphs).
        data: node task: one :class:`torch_geometric.data.Data` with ``x`` (float32),
            ``edge_index`` (int64 ``[2, E]``) and ``y`` (int64 ``[N]``); graph task: a PyG
            :class:`~torch_geometric.data.InMemoryDataset` whose ``y`` is int64
            ``[num_graphs]`` (OGB binary labels are flattened to 0/1).
        num_features: input feature dimension (for ``atom_features`` datasets: the number of
            integer atom-feature columns, 9 for OGB molecules).
        num_classes: number of classes; binary OGB tasks are modelled as 2-class softmax.
        metric: ``"accuracy"`` or ``"rocauc"``.
        ogb_name: the OGB dataset name when the official ``ogb.*.Evaluator`` applies.
        atom_features: ``True`` for ``ogbg-mol*``: ``x`` holds integer atom features (use
            :class:`ogb.graphproppred.mol_encoder.AtomEncoder`) and ``edge_attr`` integer bond
            features (``BondEncoder``).
        root: the directory the dataset was read from (``None`` for the bundled Cora).
        notes: anything a reader of the results should know (e.g. synthesised features).
        input_features: in words, which node features the model sees: ``"raw"`` (the
            dataset's own features, as stored), or what the loader made of them, e.g.
            ``"one-hot degree (0..135), built by graphmutual: the dataset has no node
            features"``.  The CLI prints it and records it in ``results.json``.
        input_transform: when graphmutual *builds or rescales* the features, the transform
            that does it as plain data (the format of an exported student's ``preprocess``
            steps): ``{"name": "OneHotDegree", "kwargs": {"max_degree": 135}}`` on featureless
            datasets, ``{"name": "StandardizeColumns", "kwargs": {"mean": [...], "std":
            [...]}}`` for TU continuous attributes; ``None`` when the features are the
            dataset's own, as stored.
    """

    name: str
    task: str
    data: Any
    num_features: int
    num_classes: int
    metric: str
    ogb_name: Optional[str] = None
    atom_features: bool = False
    root: Optional[str] = None
    notes: str = ""
    input_features: str = "raw"
    input_transform: Optional[Dict[str, Any]] = None
    splitter: Optional[Callable[[int], Split]] = field(default=None, repr=False, compare=False)

    def split(self, seed: int = 0) -> Split:
        """Return the split to use for run ``seed``.

        Fixed public/official splits (Planetoid, OGB) ignore the seed; Amazon/Coauthor draw a
        fresh random per-class split per seed; TU datasets return fold ``seed % 10`` of a
        stratified 10-fold cross-validation with an inner validation split.
        """
        if self.splitter is None:
            raise ValueError(f"dataset {self.name!r} has no split defined")
        try:
            if isinstance(seed, bool):
                raise TypeError
            seed = operator.index(seed)  # accepts int, numpy and 0-dim torch integers
        except TypeError:
            raise ValueError(f"split seed must be a non-negative int, got {seed!r}") from None
        if seed < 0:
            raise ValueError(f"split seed must be a non-negative int, got {seed!r}")
        return self.splitter(seed)

    @property
    def builds_features(self) -> bool:
        """``True`` when graphmutual built or rescaled the node features (``input_transform``)."""
        return self.input_transform is not None

    @property
    def num_graphs(self) -> int:
        """Number of graphs (1 for node tasks)."""
        return 1 if self.task == "node" else len(self.data)

    def __repr__(self) -> str:
        size = (
            f"num_nodes={self.data.num_nodes}"
            if self.task == "node"
            else f"num_graphs={len(self.data)}"
        )
        return (
            f"GraphDataset(name={self.name!r}, task={self.task!r}, {size}, "
            f"num_features={self.num_features}, num_classes={self.num_classes}, "
            f"metric={self.metric!r})"
        )
