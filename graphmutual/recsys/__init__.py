"""Heterogeneous multi-modal social recommendation with fusion-free mutual learning.

* :mod:`~graphmutual.recsys.data` — :class:`RecData`, ``HeteroData`` building, loaders for
  the MMRec layout, ``lfm2k-multimodal`` and the full HetRec ``lastfm-2k`` set;
* :mod:`~graphmutual.recsys.metrics` — batched full-ranking Recall/NDCG/Precision/Hit@K;
* :mod:`~graphmutual.recsys.model` — LightGCN-style modality branches with a per-item gate,
  and the baselines (BPR-MF, LightGCN, fused);
* :mod:`~graphmutual.recsys.train` — BPR + mutual learning, early stopping, checkpoints;
* :mod:`~graphmutual.recsys.missing` — the missing-modality experiment;
* :mod:`~graphmutual.recsys.cli` — the ``graphmutual recommend`` sub-command.
"""
from graphmutual.recsys.data import (
    RecData,
    load_dataset,
    load_lastfm2k,
    load_lfm2k_multimodal,
    load_mmrec,
    random_split_per_user,
)
from graphmutual.recsys.metrics import evaluate_full_ranking, metrics_from_hits
from graphmutual.recsys.model import MultiBranchRec, build_model, normalized_adjacency
from graphmutual.recsys.train import RecTrainConfig, evaluate, fit

__all__ = [
    "RecData",
    "load_dataset",
    "load_lastfm2k",
    "load_lfm2k_multimodal",
    "load_mmrec",
    "random_split_per_user",
    "evaluate_full_ranking",
    "metrics_from_hits",
    "MultiBranchRec",
    "build_model",
    "normalized_adjacency",
    "RecTrainConfig",
    "evaluate",
    "fit",
]
