r"""Entropy enhancement: keep the exchanged distributions informative.

Two forms are provided:

* ``"penalty"`` (confidence penalty, Pereyra et al. 2017): add
  :math:`-\beta\,\overline{H(p_k)}` to every student's loss, discouraging collapse of the
  student's own distribution onto one class so that it keeps teaching its peers.
* ``"target"``: smooth each peer target towards the uniform distribution,
  :math:`q_k \leftarrow (1-\beta) q_k + \beta / C`, which raises the entropy of what is
  exchanged without touching the student's own cross-entropy.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

ENTROPY_MODES = ("penalty", "target")


def entropy(logits: Tensor, dim: int = -1) -> Tensor:
    r"""Shannon entropy :math:`H(\mathrm{softmax}(z)) = -\sum_c p_c \log p_c` per row."""
    log_p = F.log_softmax(logits, dim=dim)
    return -(log_p.exp() * log_p).sum(dim)


def confidence_penalty(logits: Tensor, beta: float) -> Tensor:
    r"""Return :math:`-\beta \cdot \mathrm{mean}_i H(p_i)` for logits ``[..., N, C]``."""
    if logits.numel() == 0:
        return logits.sum() * 0.0
    return -beta * entropy(logits).mean()


def smooth_target(target: Tensor, beta: float) -> Tensor:
    r"""Mix a target distribution with the uniform one: :math:`(1-\beta) q + \beta / C`."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"target smoothing beta must lie in [0, 1] (got {beta})")
    return (1.0 - beta) * target + beta / target.size(-1)


def normalized_entropy(probs: Tensor) -> Tensor:
    """Entropy of probability rows divided by :math:`\\log C` (in ``[0, 1]``)."""
    c = probs.size(-1)
    h = -torch.xlogy(probs, probs).sum(-1)
    return h / max(torch.log(torch.tensor(float(c))).item(), 1e-12)
