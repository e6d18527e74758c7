r"""The mimicry loss shared by :class:`~graphmutual.MutualEnsemble` and the recommender.

Given logits :math:`z \in \mathbb{R}^{K \times N \times C}` of :math:`K` students (or
recommender branches, whose "classes" are the ranked candidates), :class:`MimicryLoss`
computes, for every student :math:`k`,

.. math::
    \mathcal{M}_k = \lambda(t)\, T^2\, D\big(q_k \,\|\, \mathrm{softmax}(z_k / T)\big),
    \qquad
    q_k = \sum_{j \ne k} \alpha_{k \leftarrow j}\, \mathrm{softmax}(z_j / \tau_j),

from **detached** peer logits (:func:`~graphmutual.mutual.peer_targets`), with

* the peer weights :math:`\alpha` and temperatures :math:`\tau`: DML's uniform
  :math:`1/(K-1)` and the constant :math:`T` (``weighting="uniform"``), or ALW's per-sample
  ones (``weighting="adaptive"``, :class:`~graphmutual.mutual.AdaptiveLogitWeighting`);
* a divergence :math:`D` of :mod:`graphmutual.mutual.divergence`;
* the sigmoid warm-up ramp :func:`warmup_ramp`,
  :math:`\lambda(t) = \lambda\,\exp(-5(1 - \min(t / t_w, 1))^2)`;
* entropy enhancement (:mod:`graphmutual.mutual.entropy`): the confidence penalty
  :math:`-\beta\,\overline{H(\mathrm{softmax}(z_k))}` or targets smoothed towards uniform;
* ALW's own label loss :math:`\mathcal{L}_{\mathrm{ALW}}` (:func:`~graphmutual.mutual.alw_loss`).

ALW learns from the labelled samples, or from ``alw_rows`` when given: a held-out slice
of labelled samples that the students do not fit (their peers' mixtures there are not yet
pulled towards the labels by the students' own cross-entropy).

:meth:`MimicryLoss.peer_terms` applies the same targets, divergence and warm-up to any
other ``[K, M, C]`` distributions of the students -- e.g. node-level distributions of
graph students (:mod:`graphmutual.mutual.graphviews`) -- without ALW's loss or entropy.

An optional ``peer_mask`` ``[N, K]`` says which peers may teach on which sample (the
recommender: a branch whose modality is missing for a row's item does not teach on it).
Absent peers get :math:`\alpha = 0` and the others are renormalised; a student with no
teacher on a row skips that row (its divergence is a weighted mean over the rows that have
one).

Reduction over students: ``"sum"`` (:class:`~graphmutual.MutualEnsemble`, which also sums
the students' cross-entropies) or ``"mean"`` (the recommender, which averages its
branches' BPR losses). Either way the balance of each student's supervised and mimicry
terms is :math:`1 : \lambda(t)`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from graphmutual.mutual.alw import (
    AdaptiveLogitWeighting,
    alw_loss,
    peer_targets,
    uniform_peer_weights,
)
from graphmutual.mutual.divergence import check_divergence, divergence
from graphmutual.mutual.entropy import ENTROPY_MODES, confidence_penalty, smooth_target

WEIGHTINGS = ("none", "uniform", "adaptive")
REDUCTIONS = ("sum", "mean")

#: The defaults of each preset of :class:`~graphmutual.MutualEnsemble` (``method=``);
#: keyword arguments given to it win. The recommender takes its entropy weight from the
#: preset of its peer weighting (``uniform``: ``"dml"``, ``adaptive``: ``"gml"``).
PRESETS: Dict[str, Dict[str, object]] = {
    "independent": dict(weighting="none", entropy=0.0),
    "dml": dict(weighting="uniform", entropy=0.0),
    "gml": dict(weighting="adaptive", entropy=0.1),
}

#: The preset whose entropy default goes with each peer weighting.
WEIGHTING_PRESET = {"none": "independent", "uniform": "dml", "adaptive": "gml"}


def warmup_ramp(epoch: float, warmup: int) -> float:
    r"""The sigmoid ramp :math:`\exp(-5(1 - \min(t / t_w, 1))^2)` in :math:`(0, 1]`.

    ``warmup <= 0`` gives 1 at every epoch; negative epochs count as 0 (ramp
    :math:`e^{-5} \approx 0.0067`).
    """
    if warmup <= 0:
        return 1.0
    r = min(max(epoch, 0) / warmup, 1.0)
    return math.exp(-5.0 * (1.0 - r) ** 2)


@dataclass
class PeerTargets:
    """What :meth:`MimicryLoss.targets` returns.

    Attributes:
        mixture: ``[K, N, C]`` raw peer mixtures (ALW's training signal).
        target: ``[K, N, C]`` the mimicry targets (``mixture`` after target smoothing).
        has_teacher: ``[N, K]`` whether student ``k`` has a teacher on sample ``n``
            (``None`` without a ``peer_mask``: every student always has one).
    """

    mixture: Tensor
    target: Tensor
    has_teacher: Optional[Tensor] = None


@dataclass
class MimicryTerms:
    """The peer terms of one step, as :meth:`MimicryLoss.__call__` returns them.

    Attributes:
        mimic: per-student mimicry terms, already scaled by :math:`\\lambda(t)`.
        mimic_total: ``mimic`` reduced over students (sum or mean).
        entropy: the entropy-enhancement term, reduced over students the same way.
        alw: ALW's label loss (zero without ALW).
        scale: :math:`\\lambda(t)`.
    """

    mimic: List[Tensor]
    mimic_total: Tensor
    entropy: Tensor
    alw: Tensor
    scale: float

    @property
    def total(self) -> Tensor:
        """``mimic_total + entropy + alw``."""
        return self.mimic_total + self.entropy + self.alw


class MimicryLoss:
    r"""The peer terms of mutual learning, for logits ``[K, N, C]`` (see the module docs).

    A plain object holding settings only: the ALW module, when used, belongs to the caller
    (it is a submodule of the cohort, so its parameters are saved and optimised with it)
    and is passed to each call.

    Args:
        weighting: ``"none"`` (no mimicry), ``"uniform"`` (DML) or ``"adaptive"`` (ALW).
        divergence: the mimicry divergence (``"kl"``, ``"reverse_kl"``, ``"js"``,
            ``"renyi"``, ``"balanced"``).
        temperature: the student temperature :math:`T` (and the uniform peers' one).
        mimic_weight: :math:`\lambda`, the weight after warm-up.
        warmup: epochs :math:`t_w` of the sigmoid ramp (:func:`warmup_ramp`).
        entropy: entropy-enhancement weight :math:`\beta` (0: off).
        entropy_mode: ``"penalty"`` or ``"target"``.
        renyi_alpha, balance: parameters of the Rényi and balanced divergences.
        reduction: ``"sum"`` or ``"mean"`` over students.
    """

    def __init__(
        self,
        weighting: str = "uniform",
        divergence: str = "kl",
        temperature: float = 1.0,
        mimic_weight: float = 1.0,
        warmup: int = 0,
        entropy: float = 0.0,
        entropy_mode: str = "penalty",
        renyi_alpha: float = 0.5,
        balance: float = 0.5,
        reduction: str = "sum",
    ) -> None:
        weighting = weighting.lower()
        if weighting not in WEIGHTINGS:
            raise ValueError(
                f"unknown weighting '{weighting}'; choose 'none', 'uniform' or 'adaptive'"
            )
        if entropy_mode not in ENTROPY_MODES:
            raise ValueError(f"unknown entropy_mode '{entropy_mode}'; choose {ENTROPY_MODES}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 (got {temperature})")
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction '{reduction}'; choose one of {REDUCTIONS}")
        self.weighting = weighting
        self.divergence = check_divergence(divergence)
        self.temperature = float(temperature)
        self.mimic_weight = float(mimic_weight)
        self.warmup = int(warmup)
        self.entropy = float(entropy)
        self.entropy_mode = entropy_mode
        self.renyi_alpha = float(renyi_alpha)
        self.balance = float(balance)
        self.reduction = reduction

    # ------------------------------------------------------------------ pieces
    def scale(self, epoch: float) -> float:
        r""":math:`\lambda(t)`: ``mimic_weight`` times the warm-up ramp (0 without mimicry)."""
        if self.weighting == "none":
            return 0.0
        if self.warmup <= 0:
            return self.mimic_weight
        return self.mimic_weight * warmup_ramp(epoch, self.warmup)

    def peer_weights(
        self, logits: Tensor, alw: Optional[AdaptiveLogitWeighting] = None
    ) -> Tuple[Tensor, object]:
        """``(alpha, tau)``: ALW's per-sample ones, or DML's uniform ``[K, K]`` and ``T``."""
        if self.weighting == "adaptive":
            if alw is None:
                raise ValueError("weighting='adaptive' needs the ALW module (alw=...)")
            return alw(logits)
        k = logits.size(0)
        return uniform_peer_weights(k, logits.device, logits.dtype), self.temperature

    def targets(
        self,
        logits: Tensor,
        alw: Optional[AdaptiveLogitWeighting] = None,
        peer_mask: Optional[Tensor] = None,
    ) -> PeerTargets:
        """Peer targets from detached ``logits`` ``[K, N, C]``.

        ``peer_mask`` (``[N, K]`` bool, optional): peer ``j`` teaches on sample ``n`` only
        where it is true; the remaining peers' weights are renormalised.
        """
        alpha, tau = self.peer_weights(logits, alw)
        has_teacher = None
        if peer_mask is not None:
            k, n = logits.shape[:2]
            if peer_mask.shape != (n, k):
                raise ValueError(
                    f"peer_mask must be [N={n}, K={k}], got {tuple(peer_mask.shape)}"
                )
            if alpha.dim() == 2:
                alpha = alpha.expand(n, k, k)
            alpha = alpha * peer_mask[:, None, :].to(alpha.dtype)
            norm = alpha.sum(-1, keepdim=True)
            has_teacher = norm.squeeze(-1) > 0  # [N, K]
            alpha = alpha / norm.clamp_min(1e-12)
        q = peer_targets(logits, alpha, tau)
        if self.entropy_mode == "target" and self.entropy > 0:
            return PeerTargets(q, smooth_target(q, self.entropy), has_teacher)
        return PeerTargets(q, q, has_teacher)

    # -------------------------------------------------------------------- loss
    def __call__(
        self,
        logits: Tensor,
        y: Tensor,
        labeled: Tensor,
        mimic_mask: Optional[Tensor] = None,
        epoch: float = 0,
        alw: Optional[AdaptiveLogitWeighting] = None,
        peer_mask: Optional[Tensor] = None,
        alw_rows: Optional[Tensor] = None,
    ) -> MimicryTerms:
        """The peer terms for logits ``[K, N, C]``.

        Args:
            logits: the students' logits (peers are detached inside).
            y: labels ``[N]`` (read on ``labeled`` only, for ALW's loss).
            labeled: the labelled samples (boolean ``[N]`` or an index; may be empty).
            mimic_mask: the samples that take part in mimicry (``None``: all).
            epoch: the epoch :math:`t` of the warm-up ramp.
            alw: the ALW module (``weighting="adaptive"`` only).
            peer_mask: optional ``[N, K]`` which peers may teach on which sample.
            alw_rows: the labelled samples ALW learns from (``None``: ``labeled``), e.g. a
                held-out slice of the training graphs that the students do not fit.
        """
        k = logits.size(0)
        zero = logits.sum() * 0.0
        mimic: List[Tensor] = [zero] * k
        scale = self.scale(epoch)
        alw_term = zero
        if self.weighting != "none":
            pt = self.targets(logits, alw, peer_mask)
            if self.weighting == "adaptive":
                rows = labeled if alw_rows is None else alw_rows
                if pt.has_teacher is not None:  # ALW learns where every peer can teach
                    full = pt.has_teacher.all(1)
                    rows = rows & full if rows.dtype == torch.bool else \
                        rows[full[rows]]
                alw_term = alw_loss(pt.mixture, y, rows)
            mm = slice(None) if mimic_mask is None else mimic_mask
            if scale > 0:
                mimic = [
                    scale * divergence(
                        logits[j][mm], pt.target[j][mm], self.divergence, self.temperature,
                        sample_weight=None if pt.has_teacher is None
                        else pt.has_teacher[:, j][mm].to(logits.dtype),
                        alpha=self.renyi_alpha, balance=self.balance,
                    )
                    for j in range(k)
                ]
        ent = zero
        if self.entropy_mode == "penalty" and self.entropy > 0:
            ent = confidence_penalty(logits, self.entropy)
            if self.reduction == "sum":
                ent = ent * k
        stacked = torch.stack(mimic)
        total = stacked.sum() if self.reduction == "sum" else stacked.mean()
        return MimicryTerms(mimic, total, ent, alw_term, scale)

    def peer_terms(
        self,
        logits: Tensor,
        epoch: float = 0,
        alw: Optional[AdaptiveLogitWeighting] = None,
    ) -> List[Tensor]:
        r"""Per-student mimicry terms :math:`\lambda(t)\,T^2 D(q_k \| \mathrm{softmax}(z_k/T))`
        on any distributions ``logits`` ``[K, M, C]`` of the students (targets from their
        detached peers, weighted as in :meth:`targets`), without ALW's loss or entropy.

        Used for mimicry at a second level, e.g. the node-level distributions of graph
        students; all zeros without mimicry or during a zero warm-up.
        """
        k = logits.size(0)
        scale = self.scale(epoch)
        if self.weighting == "none" or scale <= 0 or logits.size(1) == 0:
            return [logits.sum() * 0.0] * k
        target = self.targets(logits, alw).target
        return [
            scale * divergence(logits[j], target[j], self.divergence, self.temperature,
                               alpha=self.renyi_alpha, balance=self.balance)
            for j in range(k)
        ]

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(weighting={self.weighting}, "
            f"divergence={self.divergence}, T={self.temperature}, "
            f"lambda={self.mimic_weight}, warmup={self.warmup}, "
            f"entropy={self.entropy} ({self.entropy_mode}), reduction={self.reduction})"
        )
