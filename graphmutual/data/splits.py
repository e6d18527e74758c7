"""Split protocols: fixed public splits, random per-class splits, stratified k-fold CV."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import Tensor

from graphmutual.data.dataset import Split

__all__ = [
    "TU_NUM_FOLDS",
    "TU_FOLD_SEED",
    "TU_INNER_VAL_FRACTION",
    "mask_split",
    "index_split",
    "per_class_random_split",
    "stratified_kfold_split",
]

#: Number of cross-validation folds for TU datasets.
TU_NUM_FOLDS = 10
#: Shuffle seed of :class:`sklearn.model_selection.StratifiedKFold`; fixed so that fold ``k``
#: is the same test set in every run and every method (only the inner split follows the seed).
TU_FOLD_SEED = 0
#: Fraction of each training fold held out (stratified) for model selection.
TU_INNER_VAL_FRACTION = 0.1


def _to_mask(index: Tensor, num_nodes: int) -> Tensor:
    mask = torch.zeros(num_nodes, dtype=torch.bool)
    mask[index] = True
    return mask


def mask_split(train: Tensor, val: Tensor, test: Tensor, description: str) -> Split:
    """A node split from three boolean masks (copied, so callers cannot mutate the source)."""
    return Split(train.clone(), val.clone(), test.clone(), description)


def index_split(idx: Mapping[str, Tensor], description: str, num_nodes: int | None = None) -> Split:
    """A split from an OGB-style ``{"train", "valid", "test"}`` index dict.

    With ``num_nodes`` the indices are turned into boolean node masks (node tasks); otherwise
    they are returned as int64 index tensors (graph tasks).
    """
    parts = [torch.as_tensor(idx[k]).long().view(-1) for k in ("train", "valid", "test")]
    if num_nodes is not None:
        parts = [_to_mask(p, num_nodes) for p in parts]
    return Split(parts[0], parts[1], parts[2], description)


def per_class_random_split(
    y: Tensor, seed: int, num_train_per_class: int = 20, num_val_per_class: int = 30
) -> Split:
    """Random split with a fixed number of training/validation nodes per class.

    The protocol of Shchur et al., *Pitfalls of GNN Evaluation* (2018): ``num_train_per_class``
    training and ``num_val_per_class`` validation nodes drawn uniformly at random from every
    class, all remaining nodes for testing.  Deterministic for a given ``seed`` (a private
    :class:`torch.Generator`, so the global RNG is untouched).

    Raises:
        ValueError: if a class has too few nodes to leave at least one test node.
    """
    y = y.view(-1)
    gen = torch.Generator().manual_seed(int(seed))
    n = y.numel()
    train = torch.zeros(n, dtype=torch.bool)
    val = torch.zeros(n, dtype=torch.bool)
    need = num_train_per_class + num_val_per_class
    for c in torch.unique(y).tolist():
        members = (y == c).nonzero().view(-1)
        if members.numel() <= need:
            raise ValueError(
                f"class {c} has only {members.numel()} nodes; a per-class split with "
                f"{num_train_per_class} train + {num_val_per_class} val nodes needs more "
                f"than {need}"
            )
        perm = members[torch.randperm(members.numel(), generator=gen)]
        train[perm[:num_train_per_class]] = True
        val[perm[num_train_per_class:need]] = True
    test = ~(train | val)
    desc = (
        f"random per-class split (seed {seed}): {num_train_per_class} train / "
        f"{num_val_per_class} val per class, rest test (Shchur et al. 2018)"
    )
    return Split(train, val, test, desc)


def stratified_kfold_split(
    y: Tensor,
    seed: int,
    num_folds: int = TU_NUM_FOLDS,
    fold_seed: int = TU_FOLD_SEED,
    val_fraction: float = TU_INNER_VAL_FRACTION,
) -> Split:
    """Fold ``seed % num_folds`` of stratified k-fold CV, with a stratified inner validation set.

    The folds come from :class:`sklearn.model_selection.StratifiedKFold` (``shuffle=True``,
    ``random_state=fold_seed``), so fold ``k`` always has the same test graphs.  The training
    part of the fold is split again with
    :func:`sklearn.model_selection.train_test_split` (stratified, ``test_size=val_fraction``,
    ``random_state=seed``) into training and validation graphs: model selection uses the
    validation graphs and never looks at the test fold.

    Returns index tensors (int64, sorted) into the graph dataset.
    """
    from sklearn.model_selection import StratifiedKFold, train_test_split

    labels = y.view(-1).cpu().numpy()
    fold = seed % num_folds
    skf = StratifiedKFold(n_splits=num_folds, shuffle=True, random_state=fold_seed)
    train_idx, test_idx = list(skf.split(np.zeros(len(labels)), labels))[fold]
    inner_train, inner_val = train_test_split(
        train_idx, test_size=val_fraction, stratify=labels[train_idx], random_state=seed
    )
    parts = [torch.from_numpy(np.sort(a)).long() for a in (inner_train, inner_val, test_idx)]
    desc = (
        f"stratified {num_folds}-fold CV, fold {fold + 1}/{num_folds} "
        f"(fold shuffle seed {fold_seed}), inner stratified val {val_fraction:.0%} (seed {seed})"
    )
    return Split(parts[0], parts[1], parts[2], desc)
