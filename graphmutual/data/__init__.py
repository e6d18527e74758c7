"""Datasets and splits for graphmutual.

One entry point, :func:`load_dataset`, loads a benchmark dataset by name and returns a
:class:`GraphDataset`; ``dataset.split(seed)`` gives the :class:`Split` for run ``seed``
under the dataset's standard protocol:

===========================================  =========  ==========================================
datasets                                     metric     split
===========================================  =========  ==========================================
cora, citeseer, pubmed (Planetoid)           accuracy   public split (same for every seed)
amazon-photo/-computers, coauthor-cs/-phys   accuracy   20 train / 30 val per class, rest test,
                                                        a fresh random split per seed
mutag, proteins, enzymes, imdb-binary, nci1  accuracy   stratified 10-fold CV, fold seed % 10,
                                                        inner stratified 10% validation
ogbg-molhiv, ogbg-molbace, ogbg-molbbbp      rocauc     OGB scaffold split
ogbn-arxiv, ogbn-products                    accuracy   OGB official split
===========================================  =========  ==========================================

``load_dataset("cora")`` without a root uses the compact Cora shipped in the package (no
download needed).  See :mod:`graphmutual.data.registry` for the root layout.

This layer imports only torch, PyG, OGB, NumPy and scikit-learn, never higher graphmutual
layers.
"""

from graphmutual.data.bundled import load_bundled_cora
from graphmutual.data.dataset import GraphDataset, Split
from graphmutual.data.registry import (
    DATASETS,
    available_datasets,
    canonical_name,
    default_root,
    load_dataset,
)
from graphmutual.data.slice_loader import SliceLoader, can_slice, graph_loader
from graphmutual.data.splits import per_class_random_split, stratified_kfold_split
from graphmutual.data.validate import validate_graph, validate_graph_dataset

__all__ = [
    "GraphDataset",
    "Split",
    "DATASETS",
    "load_dataset",
    "available_datasets",
    "canonical_name",
    "default_root",
    "load_bundled_cora",
    "validate_graph",
    "validate_graph_dataset",
    "per_class_random_split",
    "stratified_kfold_split",
    "SliceLoader",
    "can_slice",
    "graph_loader",
]
