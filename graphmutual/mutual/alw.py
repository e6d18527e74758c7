r"""Adaptive logit weighting (ALW): per-sample peer weights and temperatures.

For every sample :math:`i` and student :math:`j`, ALW reads cheap, detached statistics of
the student's prediction :math:`\phi_{ij}` — normalised entropy, maximum probability,
top-2 margin — and maps them through a small MLP :math:`g` (shared by all students, plus a
learned per-student bias :math:`b_j`) to a trust score and a bounded temperature:

.. math::
    (s_{ij}, t_{ij}) = g(\phi_{ij}) + b_j, \qquad
    \tau_{ij} = T_{\min} + (T_{\max} - T_{\min})\,\sigma(t_{ij}),

    \alpha_{i,k\leftarrow j} = \frac{\exp s_{ij}}{\sum_{l \ne k} \exp s_{il}}
    \quad (j \ne k), \qquad
    q_{ik} = \sum_{j \ne k} \alpha_{i,k\leftarrow j}\,\mathrm{softmax}(z_{ij} / \tau_{ij}).

ALW is never trained by the mimicry loss (that would let it collapse the target onto the
student). Its own loss asks the weighted peer mixture to predict the true label on the
labelled samples, as the gated teachers of ONE / KDCL do:

.. math::
    \mathcal{L}_{\mathrm{ALW}} = \frac{1}{K}\sum_k \mathrm{CE}\big(\log q_k[\mathcal{L}], y\big),

computed from detached logits, so its gradient reaches the ALW parameters only.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphmutual.mutual.entropy import normalized_entropy

NUM_FEATURES = 3
#: Default lower temperature bound. ALW's label-trained temperatures settle at their lower
#: bound, so this sets how much peer targets are sharpened. Chosen on *validation*
#: accuracy from {0.5, 0.75, 1.0} (GML, Cora and CiteSeer, seeds 0-4): 0.5 sharpens so much
#: that some CiteSeer cohorts collapse, 1.0 gives up most of the gain on Cora; see
#: ``benchmarks/results/bench/tuning-tmin.md``.
DEFAULT_T_MIN = 0.75
#: Default upper temperature bound (peer logits softened at most 4x); the one place it is
#: defined -- the cohort, the recommender and the training configuration read it here.
DEFAULT_T_MAX = 4.0


def prediction_features(logits: Tensor) -> Tensor:
    """Detached per-sample features of logits ``[K, N, C]`` → ``[K, N, 3]``.

    Normalised entropy, maximum probability and the top-2 probability margin.
    """
    probs = logits.detach().softmax(-1)
    top = probs.topk(min(2, probs.size(-1)), dim=-1).values
    margin = top[..., 0] - top[..., 1] if top.size(-1) > 1 else top[..., 0]
    return torch.stack([normalized_entropy(probs), top[..., 0], margin], dim=-1)


class AdaptiveLogitWeighting(nn.Module):
    r"""Learned per-sample peer weights :math:`\alpha` and temperatures :math:`\tau`.

    Args:
        num_students: cohort size :math:`K \ge 2`.
        t_min: lower temperature bound :math:`T_{\min} > 0`.
        t_max: upper temperature bound :math:`T_{\max} \ge T_{\min}`.
        hidden: width of the scoring MLP.
        init_temperature: temperature at initialisation (inside the bounds); ``None`` uses
            the midpoint.
    """

    def __init__(
        self,
        num_students: int,
        t_min: float = DEFAULT_T_MIN,
        t_max: float = DEFAULT_T_MAX,
        hidden: int = 16,
        init_temperature: Optional[float] = None,
    ) -> None:
        super().__init__()
        if num_students < 2:
            raise ValueError(f"ALW needs at least 2 students (got {num_students})")
        if not 0 < t_min <= t_max:
            raise ValueError(f"need 0 < t_min <= t_max (got {t_min}, {t_max})")
        self.num_students = num_students
        self.t_min, self.t_max = float(t_min), float(t_max)
        self.init_temperature = init_temperature
        self.mlp = nn.Sequential(
            nn.Linear(NUM_FEATURES, hidden), nn.Tanh(), nn.Linear(hidden, 2)
        )
        self.student_bias = nn.Parameter(torch.zeros(num_students, 2))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Start from uniform peer weights and the initial temperature."""
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        t0 = self.init_temperature
        if t0 is None or self.t_max == self.t_min:
            frac = 0.5
        else:
            frac = min(max((t0 - self.t_min) / (self.t_max - self.t_min), 1e-3), 1 - 1e-3)
        with torch.no_grad():
            self.student_bias.zero_()
            self.student_bias[:, 1] = torch.logit(torch.tensor(frac))

    def forward(self, logits: Tensor) -> Tuple[Tensor, Tensor]:
        """Compute peer weights and temperatures from logits ``[K, N, C]``.

        Returns:
            ``(alpha, tau)``: ``alpha[i, k, j]`` of shape ``[N, K, K]`` (zero diagonal,
            rows summing to one over peers :math:`j \\ne k`) and ``tau`` of shape ``[K, N]``
            in ``[t_min, t_max]``.
        """
        k = logits.size(0)
        if k != self.num_students:
            raise ValueError(f"ALW was built for {self.num_students} students, got {k}")
        out = self.mlp(prediction_features(logits)) + self.student_bias[:, None, :]
        score, t_raw = out[..., 0], out[..., 1]  # [K, N]
        tau = self.t_min + (self.t_max - self.t_min) * torch.sigmoid(t_raw)
        eye = torch.eye(k, dtype=torch.bool, device=logits.device)
        s = score.t()[:, None, :].expand(-1, k, -1)  # [N, K(target k), K(peer j)]
        alpha = s.masked_fill(eye, float("-inf")).softmax(-1)
        return alpha, tau

    def scores(self, logits: Tensor) -> Tensor:
        """Per-sample trust score of every student, ``[K, N]`` (for weighted ensembles)."""
        out = self.mlp(prediction_features(logits)) + self.student_bias[:, None, :]
        return out[..., 0]

    def extra_repr(self) -> str:
        return f"num_students={self.num_students}, t_min={self.t_min}, t_max={self.t_max}"


def peer_targets(logits: Tensor, alpha: Tensor, tau: Tensor) -> Tensor:
    r"""Peer targets :math:`q_k = \sum_{j\ne k}\alpha_{k\leftarrow j}\,\sigma(z_j/\tau_j)`.

    Args:
        logits: ``[K, N, C]`` (detached here).
        alpha: ``[N, K, K]`` peer weights, or ``[K, K]`` shared by all samples.
        tau: ``[K, N]`` per-sample temperatures, or a scalar.

    Returns:
        ``[K, N, C]`` target distributions. Gradients flow into ``alpha`` and ``tau`` but
        never into ``logits``.
    """
    z = logits.detach()
    if not torch.is_tensor(tau) or tau.dim() == 0:
        soft = (z / tau).softmax(-1)
    else:
        soft = (z / tau[..., None]).softmax(-1)  # [K(peer j), N, C]
    if alpha.dim() == 2:
        return torch.einsum("kj,jnc->knc", alpha, soft)
    return torch.einsum("nkj,jnc->knc", alpha, soft)


def uniform_peer_weights(k: int, device=None, dtype=None) -> Tensor:
    """DML's uniform peer weights ``[K, K]``: :math:`1/(K-1)` off the diagonal."""
    if k < 2:
        raise ValueError("mutual learning needs at least 2 students")
    w = torch.full((k, k), 1.0 / (k - 1), device=device, dtype=dtype)
    return w.fill_diagonal_(0.0)


def alw_loss(targets: Tensor, y: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """ALW's training signal: CE of each peer mixture ``targets [K, N, C]`` on the labels."""
    if mask is not None:
        targets, y = targets[:, mask], y[mask]
    if y.numel() == 0:
        return targets.sum() * 0.0
    log_q = targets.clamp_min(1e-12).log()
    return torch.stack([F.nll_loss(lq, y) for lq in log_q]).mean()
