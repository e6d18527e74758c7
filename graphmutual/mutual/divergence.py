r"""Divergences between a (detached) peer target distribution and a student.

Every function here compares a target distribution :math:`q` (rows of probabilities,
treated as a constant) with the student's tempered distribution
:math:`p = \mathrm{softmax}(z / T)` and returns

.. math::
    T^2 \cdot \frac{1}{\sum_i w_i} \sum_i w_i \, D(q_i \,\|\, p_i)

(``reduction="batchmean"``: sum over classes, weighted mean over samples; with unit weights
this is :func:`torch.nn.functional.kl_div`'s ``batchmean``). The :math:`T^2` factor keeps
the gradient magnitude independent of the temperature (Hinton et al., 2015).

The family:

* ``"kl"``: :math:`\mathrm{KL}(q\|p) = \sum_c q_c (\log q_c - \log p_c)`, the DML default.
* ``"reverse_kl"``: :math:`\mathrm{KL}(p\|q)`, mode seeking.
* ``"js"``: Jensen–Shannon, :math:`\tfrac12\mathrm{KL}(q\|m) + \tfrac12\mathrm{KL}(p\|m)`,
  :math:`m = \tfrac12(p + q)`; symmetric and bounded by :math:`\log 2`.
* ``"renyi"``: Rényi-:math:`\alpha`,
  :math:`\frac{1}{\alpha - 1}\log\sum_c q_c^{\alpha} p_c^{1-\alpha}` (RDML,
  arXiv:2209.05732); :math:`\alpha \to 1` recovers KL.
* ``"balanced"``: :math:`\lambda\,\mathrm{KL}(q\|p) + (1-\lambda)\,\mathrm{KL}(p\|q)`
  (the forward/reverse mix of BD-KD).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

_EPS = 1e-12


def _kl(log_q: Tensor, q: Tensor, log_p: Tensor) -> Tensor:
    """Row-wise :math:`\\mathrm{KL}(q \\| p)` (0 log 0 = 0)."""
    return (torch.xlogy(q, q) - q * log_p).sum(-1)


def kl(q: Tensor, log_p: Tensor, **_) -> Tensor:
    r"""Row-wise :math:`\mathrm{KL}(q\|p)`."""
    return _kl(None, q, log_p)


def reverse_kl(q: Tensor, log_p: Tensor, **_) -> Tensor:
    r"""Row-wise :math:`\mathrm{KL}(p\|q)`; zero target entries are clamped to ``1e-12``."""
    p = log_p.exp()
    return (p * (log_p - q.clamp_min(_EPS).log())).sum(-1)


def js(q: Tensor, log_p: Tensor, **_) -> Tensor:
    r"""Row-wise Jensen–Shannon divergence between :math:`q` and :math:`p`."""
    p = log_p.exp()
    log_m = (0.5 * (p + q)).clamp_min(_EPS).log()
    return 0.5 * ((torch.xlogy(q, q) - q * log_m).sum(-1) + (p * (log_p - log_m)).sum(-1))


def renyi(q: Tensor, log_p: Tensor, alpha: float = 0.5, **_) -> Tensor:
    r"""Row-wise Rényi divergence of order :math:`\alpha` (``alpha == 1`` gives KL)."""
    if alpha <= 0:
        raise ValueError(f"Rényi order alpha must be > 0 (got {alpha})")
    if abs(alpha - 1.0) < 1e-6:
        return kl(q, log_p)
    log_q = q.clamp_min(_EPS).log()
    # log sum_c q^a p^(1-a), masking classes with q_c = 0 (their term is 0 for a > 0)
    terms = alpha * log_q + (1.0 - alpha) * log_p
    terms = terms.masked_fill(q <= 0, float("-inf"))
    return torch.logsumexp(terms, dim=-1) / (alpha - 1.0)


def balanced(q: Tensor, log_p: Tensor, balance: float = 0.5, **_) -> Tensor:
    r"""Row-wise :math:`\lambda\,\mathrm{KL}(q\|p) + (1-\lambda)\,\mathrm{KL}(p\|q)`."""
    if not 0.0 <= balance <= 1.0:
        raise ValueError(f"balance must lie in [0, 1] (got {balance})")
    return balance * kl(q, log_p) + (1.0 - balance) * reverse_kl(q, log_p)


DIVERGENCES: Dict[str, Callable[..., Tensor]] = {
    "kl": kl,
    "reverse_kl": reverse_kl,
    "js": js,
    "renyi": renyi,
    "balanced": balanced,
}


def check_divergence(kind: str) -> str:
    """Return ``kind`` normalised, or raise a :class:`ValueError` naming the choices."""
    name = kind.lower().replace("-", "_")
    if name not in DIVERGENCES:
        raise ValueError(f"unknown divergence '{kind}'; choose one of {sorted(DIVERGENCES)}")
    return name


def divergence(
    student_logits: Tensor,
    target: Tensor,
    kind: str = "kl",
    temperature: float = 1.0,
    sample_weight: Optional[Tensor] = None,
    reduction: str = "batchmean",
    alpha: float = 0.5,
    balance: float = 0.5,
) -> Tensor:
    r"""Mimicry loss :math:`T^2 D(q \| \mathrm{softmax}(z/T))`.

    Args:
        student_logits: student logits :math:`z` of shape ``[N, C]``.
        target: target probabilities :math:`q` of shape ``[N, C]``; detached here, so no
            gradient ever reaches the peers that produced it.
        kind: one of :data:`DIVERGENCES`.
        temperature: the student's temperature :math:`T > 0`.
        sample_weight: optional non-negative weights ``[N]`` for the mean over samples.
        reduction: ``"batchmean"`` (default), ``"sum"`` or ``"none"`` (per-sample ``[N]``).
        alpha: order of the Rényi divergence.
        balance: weight :math:`\lambda` of the forward KL in ``"balanced"``.
    """
    fn = DIVERGENCES[check_divergence(kind)]
    if student_logits.shape != target.shape or student_logits.dim() != 2:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and target "
            f"{tuple(target.shape)} must both be [N, C]"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (got {temperature})")
    log_p = F.log_softmax(student_logits / temperature, dim=-1)
    rows = fn(target.detach().to(log_p.dtype), log_p, alpha=alpha, balance=balance)
    rows = rows * temperature**2
    if reduction == "none":
        return rows
    if sample_weight is not None:
        rows = rows * sample_weight
    if reduction == "sum":
        return rows.sum()
    if reduction != "batchmean":
        raise ValueError(f"unknown reduction '{reduction}'")
    if sample_weight is not None:
        return rows.sum() / sample_weight.sum().clamp_min(_EPS)
    return rows.sum() / max(rows.numel(), 1)
