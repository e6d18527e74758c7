"""Evaluation metrics: accuracy, and ROC-AUC through the official OGB ``Evaluator``."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

METRICS = ("accuracy", "rocauc")


def accuracy(probs: Tensor, y: Tensor) -> float:
    """Fraction of rows whose arg-max equals the label."""
    if y.numel() == 0:
        return float("nan")
    return (probs.argmax(-1) == y).float().mean().item()


def rocauc(probs: Tensor, y: Tensor, ogb_name: Optional[str] = None) -> float:
    """Binary ROC-AUC of ``probs[:, 1]``: the OGB Evaluator for OGB datasets, else sklearn."""
    score = probs[:, 1:2] if probs.dim() == 2 and probs.size(1) == 2 else probs.reshape(-1, 1)
    y_true = y.reshape(-1, 1)
    if ogb_name is not None:
        from ogb.graphproppred import Evaluator

        ev = Evaluator(ogb_name)
        try:
            return float(ev.eval({"y_true": y_true.cpu(), "y_pred": score.cpu()})["rocauc"])
        except RuntimeError:  # OGB raises when a split has one class only
            return float("nan")
    from sklearn.metrics import roc_auc_score

    if torch.unique(y_true).numel() < 2:
        return float("nan")
    return float(roc_auc_score(y_true.cpu().numpy(), score.cpu().numpy()))


def evaluate(probs: Tensor, y: Tensor, metric: str, ogb_name: Optional[str] = None) -> float:
    """Compute ``metric`` (``"accuracy"`` or ``"rocauc"``) of class probabilities ``[N, C]``."""
    if metric == "accuracy":
        return accuracy(probs, y)
    if metric == "rocauc":
        return rocauc(probs, y, ogb_name)
    raise ValueError(f"unknown metric '{metric}'; choose one of {METRICS}")
