r"""The cohort: K students trained together, each from the labels and from its peers.

For student :math:`k` with logits :math:`z_k` the loss is

.. math::
    \mathcal{L}_k = \mathrm{CE}(z_k[\mathcal{L}], y)
        + \lambda(t)\, T^2\, D\big(q_k \,\|\, \mathrm{softmax}(z_k/T)\big)
        - \beta\, H(\mathrm{softmax}(z_k)),

with peer targets :math:`q_k` built from detached peer logits (see
:mod:`graphmutual.mutual.alw`), a divergence :math:`D` from
:mod:`graphmutual.mutual.divergence` and the warm-up ramp
:math:`\lambda(t) = \lambda\,\exp(-5(1 - \min(t / t_w, 1))^2)`. The cohort's total is
:math:`\sum_k \mathcal{L}_k + \mathcal{L}_{\mathrm{ALW}}`.

Presets (``method=``):

* ``"independent"``: no mimicry, no entropy term — K students trained side by side.
* ``"dml"``: Deep Mutual Learning (Zhang et al. 2018): uniform peer weights, constant
  temperature :math:`T`, KL.
* ``"gml"``: graph mutual learning: adaptive logit weighting + entropy enhancement.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphmutual.mutual.alw import (
    DEFAULT_T_MIN,
    AdaptiveLogitWeighting,
    alw_loss,
    peer_targets,
    uniform_peer_weights,
)
from graphmutual.mutual.divergence import check_divergence, divergence
from graphmutual.mutual.entropy import ENTROPY_MODES, confidence_penalty, smooth_target
from graphmutual.nn.fused import FusedCohort

METHODS = ("independent", "dml", "gml")
SCHEDULES = ("simultaneous", "alternating")

#: The defaults of each preset; keyword arguments given to :class:`MutualEnsemble` win.
PRESETS: Dict[str, Dict[str, object]] = {
    "independent": dict(weighting="none", entropy=0.0),
    "dml": dict(weighting="uniform", entropy=0.0),
    "gml": dict(weighting="adaptive", entropy=0.1),
}


def _student_name(module: nn.Module) -> str:
    return getattr(module, "name", None) or module.__class__.__name__


class MutualEnsemble(nn.Module):
    r"""A cohort of students trained by mutual learning.

    Use it inside your own PyG loop::

        cohort = MutualEnsemble([GCN(1433, 64, 2, 7), GAT(1433, 8, 2, 7, heads=8)])
        logits = cohort(data.x, data.edge_index)                  # [K, N, C]
        losses = cohort.loss(logits, data.y, data.train_mask)      # dict of named terms
        losses["total"].backward()

    Args:
        students: the K student modules; each maps the same inputs to logits ``[N, C]``.
        method: ``"independent"``, ``"dml"`` or ``"gml"`` (sets the defaults below).
        weighting: peer weighting, ``"none"`` (no mimicry), ``"uniform"`` (DML) or
            ``"adaptive"`` (ALW). ``None`` takes the preset's.
        entropy: entropy-enhancement weight :math:`\beta` (``None``: the preset's).
        entropy_mode: ``"penalty"`` (confidence penalty on each student) or ``"target"``
            (smooth the peer targets towards uniform).
        divergence: the mimicry divergence (``"kl"``, ``"reverse_kl"``, ``"js"``,
            ``"renyi"``, ``"balanced"``).
        temperature: the student temperature :math:`T` (and DML's peer temperature).
        mimic_weight: :math:`\lambda`, the weight of the mimicry term after warm-up.
        warmup: number of epochs :math:`t_w` over which :math:`\lambda(t)` ramps up.
        t_min, t_max: ALW temperature bounds.
        schedule: ``"simultaneous"`` (one forward, one backward) or ``"alternating"``
            (the original DML schedule, see :meth:`alternating_step`).
        renyi_alpha, balance: parameters of the Rényi and balanced divergences.
        names: optional display names of the students.
        fused: ``"auto"`` (default) runs calls ``cohort(x, edge_index)`` (graph level: with
            ``batch=``) through :class:`graphmutual.nn.FusedCohort` (one aggregation pass
            per layer for all students) when every student supports it, else student by
            student; ``True`` requires it (``ValueError`` otherwise); ``False`` never uses it.
    """

    def __init__(
        self,
        students: Sequence[nn.Module],
        method: str = "gml",
        weighting: Optional[str] = None,
        entropy: Optional[float] = None,
        entropy_mode: str = "penalty",
        divergence: str = "kl",
        temperature: float = 1.0,
        mimic_weight: float = 1.0,
        warmup: int = 0,
        t_min: float = DEFAULT_T_MIN,
        t_max: float = 4.0,
        schedule: str = "simultaneous",
        renyi_alpha: float = 0.5,
        balance: float = 0.5,
        names: Optional[Sequence[str]] = None,
        fused: Union[str, bool] = "auto",
    ) -> None:
        super().__init__()
        students = list(students)
        if len(students) < 1:
            raise ValueError("a cohort needs at least one student")
        for i, s in enumerate(students):
            if not isinstance(s, nn.Module):
                raise TypeError(f"student {i} is a {type(s).__name__}, not a torch.nn.Module")
        method = method.lower()
        if method not in METHODS:
            raise ValueError(f"unknown method '{method}'; choose one of {list(METHODS)}")
        preset = PRESETS[method]
        weighting = (weighting if weighting is not None else preset["weighting"]).lower()
        if weighting not in ("none", "uniform", "adaptive"):
            raise ValueError(
                f"unknown weighting '{weighting}'; choose 'none', 'uniform' or 'adaptive'"
            )
        if len(students) < 2 and weighting != "none":
            raise ValueError(
                f"method '{method}' needs at least 2 students to learn from each other "
                f"(got {len(students)}); use method='independent' for a single model"
            )
        if entropy_mode not in ENTROPY_MODES:
            raise ValueError(f"unknown entropy_mode '{entropy_mode}'; choose {ENTROPY_MODES}")
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule '{schedule}'; choose one of {SCHEDULES}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 (got {temperature})")

        self.students = nn.ModuleList(students)
        self.names: List[str] = list(names) if names else [_student_name(s) for s in students]
        if len(self.names) != len(students):
            raise ValueError("names must have one entry per student")
        self.method = method
        self.weighting = weighting
        self.entropy = float(entropy if entropy is not None else preset["entropy"])
        self.entropy_mode = entropy_mode
        self.divergence = check_divergence(divergence)
        self.temperature = float(temperature)
        self.mimic_weight = float(mimic_weight)
        self.warmup = int(warmup)
        self.schedule = schedule
        self.renyi_alpha = float(renyi_alpha)
        self.balance = float(balance)
        self.alw = (
            AdaptiveLogitWeighting(len(students), t_min=t_min, t_max=t_max,
                                   init_temperature=temperature)
            if weighting == "adaptive" else None
        )
        self.epoch = 0
        if fused not in ("auto", True, False):
            raise ValueError(f"fused must be 'auto', True or False (got {fused!r})")
        self.fused = fused
        # a plain object (not a submodule): it holds references to the students only
        self._fused: Optional[FusedCohort] = (
            FusedCohort(students) if fused is True
            else FusedCohort.try_build(students) if fused == "auto" else None
        )

    # ------------------------------------------------------------------ basics
    @property
    def num_students(self) -> int:
        return len(self.students)

    def reset_parameters(self) -> None:
        """Re-initialise every student and ALW."""
        for s in self.students:
            if hasattr(s, "reset_parameters"):
                s.reset_parameters()
        if self.alw is not None:
            self.alw.reset_parameters()
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Tell the cohort the current epoch (drives the mimicry warm-up)."""
        self.epoch = int(epoch)

    def mimic_scale(self, epoch: Optional[int] = None) -> float:
        r""":math:`\lambda(t)`: the mimicry weight at ``epoch`` after the sigmoid warm-up."""
        if self.weighting == "none":
            return 0.0
        t = self.epoch if epoch is None else epoch
        if self.warmup <= 0:
            return self.mimic_weight
        r = min(max(t, 0) / self.warmup, 1.0)
        return self.mimic_weight * math.exp(-5.0 * (1.0 - r) ** 2)

    # ----------------------------------------------------------------- forward
    def forward(self, *args, **kwargs) -> Tensor:
        """Run every student on the same inputs and stack their logits to ``[K, N, C]``.

        Calls the fused cohort accepts (node level ``(x, edge_index)``, graph level also
        ``batch=`` / ``edge_attr=``, see :meth:`FusedCohort.accepts`) take the fused path when
        it was built (see ``fused``) and the student list is unchanged; anything else runs
        student by student.
        """
        f = self._fused
        if f is not None and f.serves(self.students) and f.accepts(*args, **kwargs):
            return self.stack(f(*args, **kwargs))
        outs = [s(*args, **kwargs) for s in self.students]
        return self.stack(outs)

    def stack(self, outs: Sequence[Tensor]) -> Tensor:
        """Stack per-student logits, raising a clear error if their shapes differ."""
        shapes = [tuple(o.shape) for o in outs]
        for name, o, shape in zip(self.names, outs, shapes):
            if o.dim() != 2:
                raise ValueError(f"student '{name}' returned shape {shape}; expected [N, C]")
        if len(set(shapes)) > 1:
            detail = ", ".join(f"{n}: {s}" for n, s in zip(self.names, shapes))
            raise ValueError(
                f"students disagree on the output shape ({detail}); every student must "
                "produce logits [N, C] with the same number of classes C"
            )
        return torch.stack(list(outs), dim=0)

    # ------------------------------------------------------------------ targets
    def peer_weights(self, logits: Tensor):
        """``(alpha, tau)`` used for the peer targets: ALW's, or DML's uniform/constant."""
        k = logits.size(0)
        if self.alw is not None:
            return self.alw(logits)
        return uniform_peer_weights(k, logits.device, logits.dtype), self.temperature

    def targets(self, logits: Tensor) -> Tensor:
        """Peer targets ``[K, N, C]`` from detached logits (with entropy smoothing)."""
        return self._targets(logits)[1]

    def _targets(self, logits: Tensor):
        """``(q, q_mimic)``: the raw peer mixture (ALW's signal) and the mimicry target."""
        alpha, tau = self.peer_weights(logits)
        q = peer_targets(logits, alpha, tau)
        if self.entropy_mode == "target" and self.entropy > 0:
            return q, smooth_target(q, self.entropy)
        return q, q

    # --------------------------------------------------------------------- loss
    def loss(
        self,
        logits: Tensor,
        y: Tensor,
        mask: Optional[Tensor] = None,
        mimic_mask: Optional[Tensor] = None,
        epoch: Optional[int] = None,
    ) -> Dict[str, Tensor]:
        r"""Named loss terms for logits ``[K, N, C]``.

        Args:
            logits: the cohort's output.
            y: integer labels ``[N]`` (entries outside ``mask`` are ignored).
            mask: which samples are labelled (boolean ``[N]`` or an index); ``None`` = all.
            mimic_mask: which samples take part in mimicry; ``None`` = all samples (in
                transductive node classification the unlabelled nodes are where peers
                teach the most).
            epoch: overrides :attr:`epoch` for the warm-up.

        Returns:
            ``total`` (to backpropagate), ``ce``, ``mimic``, ``entropy``, ``alw`` (sums over
            students), per-student ``ce/<name>`` and ``mimic/<name>``, and ``mimic_scale``.
        """
        if logits.dim() != 3 or logits.size(0) != self.num_students:
            raise ValueError(
                f"expected logits [K={self.num_students}, N, C], got {tuple(logits.shape)}"
            )
        n, c = logits.shape[1:]
        if y.dim() != 1 or y.size(0) != n:
            raise ValueError(f"labels must have shape [{n}], got {tuple(y.shape)}")
        lab = torch.arange(n, device=logits.device) if mask is None else mask
        if lab.dtype == torch.bool and lab.numel() != n:
            raise ValueError(f"mask has {lab.numel()} entries for {n} samples")
        y_lab = y[lab]
        if y_lab.numel() == 0:
            raise ValueError("the label mask selects no sample: nothing to learn from")
        if int(y_lab.min()) < 0 or int(y_lab.max()) >= c:
            raise ValueError(
                f"labels must lie in [0, {c - 1}] for {c} classes; "
                f"found {int(y_lab.min())}..{int(y_lab.max())}"
            )

        out: Dict[str, Tensor] = {}
        ce = [F.cross_entropy(z[lab], y_lab) for z in logits]
        zero = logits.sum() * 0.0
        mimic = [zero] * self.num_students
        scale = self.mimic_scale(epoch)
        alw_term = zero
        if self.weighting != "none":
            q_mix, q = self._targets(logits)
            if self.alw is not None:
                alw_term = alw_loss(q_mix, y, lab)
            mm = slice(None) if mimic_mask is None else mimic_mask
            if scale > 0:
                mimic = [
                    scale * divergence(
                        logits[k][mm], q[k][mm], self.divergence, self.temperature,
                        alpha=self.renyi_alpha, balance=self.balance,
                    )
                    for k in range(self.num_students)
                ]
        ent = zero
        if self.entropy_mode == "penalty" and self.entropy > 0:
            ent = confidence_penalty(logits, self.entropy) * self.num_students

        out["ce"] = torch.stack(ce).sum()
        out["mimic"] = torch.stack(mimic).sum()
        out["entropy"] = ent
        out["alw"] = alw_term
        out["total"] = out["ce"] + out["mimic"] + out["entropy"] + out["alw"]
        for name, c_k, m_k in zip(self.names, ce, mimic):
            out[f"ce/{name}"] = c_k.detach()
            out[f"mimic/{name}"] = m_k.detach()
        out["mimic_scale"] = torch.tensor(scale)
        return out

    # -------------------------------------------------------------- schedules
    def alternating_step(
        self,
        inputs: Sequence,
        y: Tensor,
        mask: Optional[Tensor],
        optimizer: torch.optim.Optimizer,
        mimic_mask: Optional[Tensor] = None,
        kwargs: Optional[dict] = None,
    ) -> Dict[str, Tensor]:
        """One step of the original DML schedule: update the students one after another.

        Student ``k`` is updated against the *current* predictions of its peers (which
        already include the updates of students ``< k`` in this step). Gradients of the
        other students are cleared so ``optimizer`` (over all cohort parameters) only moves
        student ``k`` and ALW.
        """
        kwargs = kwargs or {}
        last: Dict[str, Tensor] = {}
        for k in range(self.num_students):
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                outs = [s(*inputs, **kwargs) for s in self.students]
            outs[k] = self.students[k](*inputs, **kwargs)
            logits = self.stack(outs)
            last = self.loss(logits, y, mask, mimic_mask)
            # only student k's terms carry gradient into student k; peers are detached
            last["total"].backward()
            optimizer.step()
        return last

    # --------------------------------------------------------------- inference
    @torch.no_grad()
    def predict(self, logits: Tensor, how: str = "mean") -> Tensor:
        """Ensemble class probabilities ``[N, C]``.

        ``how="mean"`` averages the students' probabilities; ``how="alw"`` weights each
        student per sample by ALW's softmax-normalised trust score (falls back to the mean
        when the cohort has no ALW).
        """
        probs = logits.softmax(-1)
        if how == "mean" or self.alw is None:
            if how not in ("mean", "alw"):
                raise ValueError(f"unknown ensemble '{how}'; choose 'mean' or 'alw'")
            return probs.mean(0)
        if how != "alw":
            raise ValueError(f"unknown ensemble '{how}'; choose 'mean' or 'alw'")
        w = self.alw.scores(logits).softmax(0)  # [K, N]
        return (w[..., None] * probs).sum(0)

    def extra_repr(self) -> str:
        return (
            f"method={self.method}, weighting={self.weighting}, divergence={self.divergence}, "
            f"T={self.temperature}, entropy={self.entropy} ({self.entropy_mode}), "
            f"warmup={self.warmup}, schedule={self.schedule}"
        )
