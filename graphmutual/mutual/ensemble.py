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
:math:`\sum_k \mathcal{L}_k + \mathcal{L}_{\mathrm{ALW}}`. Everything but the
cross-entropy is :class:`~graphmutual.mutual.MimicryLoss` (:mod:`graphmutual.mutual.mimicry`),
shared with the recommender.

Presets (``method=``):

* ``"independent"``: no mimicry, no entropy term — K students trained side by side.
* ``"dml"``: Deep Mutual Learning (Zhang et al. 2018): uniform peer weights, constant
  temperature :math:`T`, KL.
* ``"gml"``: graph mutual learning: adaptive logit weighting + entropy enhancement.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn.models.basic_gnn import BasicGNN

from graphmutual.mutual.alw import DEFAULT_T_MAX, DEFAULT_T_MIN, AdaptiveLogitWeighting
from graphmutual.mutual.inputs import InputGuard, graph_free_kwargs, is_graph_free
from graphmutual.mutual.mimicry import PRESETS, MimicryLoss
from graphmutual.nn.fused import FusedCohort

METHODS = ("independent", "dml", "gml")
SCHEDULES = ("simultaneous", "alternating")


def _student_name(module: nn.Module) -> str:
    return getattr(module, "name", None) or module.__class__.__name__


class MutualEnsemble(nn.Module):
    r"""A cohort of students trained by mutual learning.

    Use it inside your own PyG loop::

        cohort = MutualEnsemble([GCN(1433, 64, 2, 7), GAT(1433, 8, 2, 7, heads=8)])
        logits = cohort(data.x, data.edge_index)                  # [K, N, C]
        losses = cohort.loss(logits, data.y, data.train_mask)      # dict of named terms
        losses["total"].backward()

    The peer terms (targets, divergence, ALW, entropy enhancement, warm-up) are computed by
    :class:`~graphmutual.mutual.MimicryLoss` (:attr:`mimicry`), the module the recommender
    uses as well; the settings below are forwarded to it and readable on the cohort.

    **Inputs are validated** once per graph at the API boundary: ``x`` must be finite and,
    when floating, of the students' parameter dtype (fix: ``x.float()``); ``edge_index`` an
    integer ``[2, E]`` tensor with indices in ``[0, N)``. A ``ValueError`` says what is
    wrong and how to fix it. The check is cached on the identity and in-place version of
    the tensors, so passing the same graph every epoch costs nothing after the first call.

    **Feature-only (graph-free) students**, such as PyG's
    :class:`~torch_geometric.nn.models.MLP`, are called as ``student(x)`` (plus the keyword
    arguments their ``forward`` accepts, e.g. ``batch``, never the graph's): PyG's ``MLP``
    would otherwise take ``edge_index`` as its ``batch`` argument, which breaks
    ``norm="layer_norm"`` and ``"graph_norm"``. Detected for ``MLP`` and any module whose
    ``forward`` has no ``edge_index`` parameter and no second required argument (see
    :func:`~graphmutual.mutual.inputs.is_graph_free`); set ``graph_free=`` (one flag per
    student) or a ``graph_free`` attribute on a student to decide yourself.

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
        graph_free: optional flags, one per student: ``True`` calls that student with
            ``x`` only, ``False`` always passes the graph, ``None`` detects it.
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
        t_max: float = DEFAULT_T_MAX,
        schedule: str = "simultaneous",
        renyi_alpha: float = 0.5,
        balance: float = 0.5,
        names: Optional[Sequence[str]] = None,
        fused: Union[str, bool] = "auto",
        graph_free: Optional[Sequence[Optional[bool]]] = None,
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
        self.mimicry = MimicryLoss(
            weighting=weighting if weighting is not None else str(preset["weighting"]),
            divergence=divergence,
            temperature=temperature,
            mimic_weight=mimic_weight,
            warmup=warmup,
            entropy=float(entropy if entropy is not None else preset["entropy"]),
            entropy_mode=entropy_mode,
            renyi_alpha=renyi_alpha,
            balance=balance,
            reduction="sum",
        )
        if len(students) < 2 and self.weighting != "none":
            raise ValueError(
                f"method '{method}' needs at least 2 students to learn from each other "
                f"(got {len(students)}); use method='independent' for a single model"
            )
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule '{schedule}'; choose one of {SCHEDULES}")

        self.students = nn.ModuleList(students)
        self.names: List[str] = list(names) if names else [_student_name(s) for s in students]
        if len(self.names) != len(students):
            raise ValueError("names must have one entry per student")
        if graph_free is not None and len(graph_free) != len(students):
            raise ValueError(f"graph_free must have one entry per student "
                             f"(got {len(graph_free)} for {len(students)})")
        self.graph_free: List[bool] = [
            is_graph_free(s) if graph_free is None or graph_free[i] is None
            else bool(graph_free[i])
            for i, s in enumerate(students)
        ]
        self.method = method
        self.schedule = schedule
        self.alw = (
            AdaptiveLogitWeighting(len(students), t_min=t_min, t_max=t_max,
                                   init_temperature=temperature)
            if self.weighting == "adaptive" else None
        )
        self.epoch = 0
        self._guard = InputGuard()
        if fused not in ("auto", True, False):
            raise ValueError(f"fused must be 'auto', True or False (got {fused!r})")
        self.fused = fused
        # a GNN marked graph-free must get x only, which the fused path cannot do
        forced = [n for n, s, g in zip(self.names, students, self.graph_free)
                  if g and isinstance(s, BasicGNN)]
        if forced and fused is True:
            raise ValueError(f"fused=True cannot call the GNN students {forced} without "
                             "the graph (graph_free); use fused='auto' or False")
        # a plain object (not a submodule): it holds references to the students only
        self._fused: Optional[FusedCohort] = (
            FusedCohort(students) if fused is True
            else FusedCohort.try_build(students) if fused == "auto" and not forced else None
        )

    # ------------------------------------------------------------------ basics
    @property
    def fused_cohort(self) -> Optional[FusedCohort]:
        """The fused cohort :meth:`forward` uses when it can (``None`` if not built)."""
        return self._fused

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
        return self.mimicry.scale(self.epoch if epoch is None else epoch)

    # ----------------------------------------------------------------- forward
    def forward(self, *args, **kwargs) -> Tensor:
        """Run every student on the same inputs and stack their logits to ``[K, N, C]``.

        Calls the fused cohort accepts (node level ``(x, edge_index)``, graph level also
        ``batch=`` / ``edge_attr=``, see :meth:`FusedCohort.accepts`) take the fused path when
        it was built (see ``fused``) and the student list is unchanged; anything else runs
        student by student (graph-free students with ``x`` only). ``x`` and ``edge_index``
        are validated first (once per graph, see the class docs).

        ``num_sampled_nodes=[n_0, n_1, ...]`` (a hop-ordered sampled subgraph, seeds first)
        returns the seeds' logits only, ``[K, n_0, C]``: the fused cohort then trims each
        layer to the rows the next one needs (:meth:`FusedCohort.forward`); the students one
        by one compute the whole subgraph and the result is cut to the seeds (the same
        numbers).
        """
        self.check_inputs(*args, **kwargs)
        f = self._fused
        if f is not None and f.serves(self.students) and f.accepts(*args, **kwargs):
            return self.stack(f(*args, **kwargs))
        hops = kwargs.pop("num_sampled_nodes", None)
        outs = [self.call_student(k, *args, **kwargs) for k in range(self.num_students)]
        out = self.stack(outs)
        return out if hops is None else out[:, :int(hops[0])]

    def call_student(self, k: int, *args, **kwargs) -> Tensor:
        """Student ``k`` on the cohort's inputs: ``x`` only if it is graph-free."""
        s = self.students[k]
        if k < len(self.graph_free) and self.graph_free[k] and args:
            return s(args[0], **graph_free_kwargs(s, kwargs))
        if k < len(self.graph_free) and self.graph_free[k] and "x" in kwargs:
            return s(**graph_free_kwargs(s, kwargs), x=kwargs["x"])
        return s(*args, **kwargs)

    def check_inputs(self, *args, **kwargs) -> None:
        """Validate the ``x`` and ``edge_index`` of a forward call (cached per graph)."""
        x = args[0] if args else kwargs.get("x")
        edge_index = args[1] if len(args) > 1 else kwargs.get("edge_index")
        dtype = None  # under autocast any float input is fine
        if isinstance(x, Tensor) and not torch.is_autocast_enabled(x.device.type):
            dtype = next((p.dtype for p in self.students.parameters()
                          if p.is_floating_point()), None)
        self._guard(x, edge_index, dtype)

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
        if self.alw is not None:
            return self.alw(logits)
        return self.mimicry.peer_weights(logits)

    def targets(self, logits: Tensor) -> Tensor:
        """Peer targets ``[K, N, C]`` from detached logits (with entropy smoothing)."""
        return self._targets(logits)[1]

    def _targets(self, logits: Tensor):
        """``(q, q_mimic)``: the raw peer mixture (ALW's signal) and the mimicry target."""
        pt = self.mimicry.targets(logits, self.alw)
        return pt.mixture, pt.target

    # --------------------------------------------------------------------- loss
    def loss(
        self,
        logits: Tensor,
        y: Tensor,
        mask: Optional[Tensor] = None,
        mimic_mask: Optional[Tensor] = None,
        epoch: Optional[int] = None,
        alw_mask: Optional[Tensor] = None,
        ce_weight: Optional[Tensor] = None,
    ) -> Dict[str, Tensor]:
        r"""Named loss terms for logits ``[K, N, C]``.

        .. math::
            \mathcal{L} = \sum_k \Big[\mathrm{CE}(z_k[\mathcal{L}], y)
              + \lambda(t)\, T^2 D(q_k \| \mathrm{softmax}(z_k / T))
              - \beta\, \overline{H(\mathrm{softmax}(z_k))}\Big] + \mathcal{L}_{\mathrm{ALW}}

        **Mimicry-only steps.** A batch without any labelled sample (common with
        neighbour sampling on sparsely labelled graphs) takes a step on the peer terms
        only: the cross-entropy and ALW terms are zero and the students learn from each
        other on the ``mimic_mask`` samples (plus the entropy term). A batch with neither
        labelled samples nor mimicry (no ``mimic_mask`` sample, or a cohort without
        mimicry) raises a ``ValueError``: there is nothing to learn from.

        Args:
            logits: the cohort's output.
            y: integer labels ``[N]`` (entries outside ``mask`` are ignored).
            mask: which samples are labelled (boolean ``[N]`` or an index); ``None`` = all.
            mimic_mask: which samples take part in mimicry; ``None`` = all samples (in
                transductive node classification the unlabelled nodes are where peers
                teach the most).
            epoch: overrides :attr:`epoch` for the warm-up.
            alw_mask: the labelled samples ALW learns from (boolean ``[N]`` or an index;
                ``None``: ``mask``), e.g. a held-out slice of the training graphs that is
                left out of ``mask`` so the students do not fit it. Ignored without ALW.
            ce_weight: optional per-student sample weights ``[K, N]`` of the
                cross-entropy, :math:`\frac{1}{|\mathcal{L}|}\sum_{n \in \mathcal{L}}
                w_{k,n}\,\mathrm{CE}_{k,n}` (e.g. boosting the samples a student's peers
                misclassify); ``None``: the plain mean.

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
        # every sample labelled: views of y and the logits (no gathers, no scatter back)
        lab = slice(None) if mask is None else mask
        if mask is not None and mask.dtype == torch.bool and mask.numel() != n:
            raise ValueError(f"mask has {mask.numel()} entries for {n} samples")
        if mimic_mask is not None and mimic_mask.dtype == torch.bool \
                and mimic_mask.numel() != n:
            raise ValueError(f"mimic_mask has {mimic_mask.numel()} entries for {n} samples")
        if alw_mask is not None and self.alw is not None:
            if alw_mask.dtype == torch.bool and alw_mask.numel() != n:
                raise ValueError(f"alw_mask has {alw_mask.numel()} entries for {n} samples")
            y_alw = y[alw_mask]
            if y_alw.numel() and (int(y_alw.min()) < 0 or int(y_alw.max()) >= c):
                raise ValueError(
                    f"labels under alw_mask must lie in [0, {c - 1}] for {c} classes; "
                    f"found {int(y_alw.min())}..{int(y_alw.max())}"
                )
        y_lab = y[lab]
        t = self.epoch if epoch is None else epoch
        labelled = y_lab.numel() > 0
        if not labelled and not self._mimics(n, mimic_mask, t):
            raise ValueError(
                "the label mask selects no sample and there is no mimicry to learn from "
                "(no mimic_mask sample, or a cohort without mimicry): nothing to learn from"
            )
        if labelled:
            lo, hi = (int(v) for v in torch.aminmax(y_lab))  # one pass, one sync
            if lo < 0 or hi >= c:
                raise ValueError(f"labels must lie in [0, {c - 1}] for {c} classes; "
                                 f"found {lo}..{hi}")

        out: Dict[str, Tensor] = {}
        if ce_weight is not None and ce_weight.shape != (self.num_students, n):
            raise ValueError(f"ce_weight must be [K={self.num_students}, N={n}], "
                             f"got {tuple(ce_weight.shape)}")
        if labelled and ce_weight is not None:
            ce = [(F.cross_entropy(z[lab], y_lab, reduction="none") * w[lab]).mean()
                  for z, w in zip(logits, ce_weight)]
        elif labelled:
            ce = [F.cross_entropy(z[lab], y_lab) for z in logits]
        else:  # a mimicry-only step
            ce = [logits.sum() * 0.0] * self.num_students
        peer = self.mimicry(logits, y, lab, mimic_mask, t, alw=self.alw,
                            alw_rows=alw_mask if self.alw is not None else None)

        out["ce"] = torch.stack(ce).sum()
        out["mimic"] = peer.mimic_total
        out["entropy"] = peer.entropy
        out["alw"] = peer.alw
        out["total"] = out["ce"] + out["mimic"] + out["entropy"] + out["alw"]
        for name, c_k, m_k in zip(self.names, ce, peer.mimic):
            out[f"ce/{name}"] = c_k.detach()
            out[f"mimic/{name}"] = m_k.detach()
        out["mimic_scale"] = torch.tensor(peer.scale)
        return out

    def _mimics(self, n: int, mimic_mask: Optional[Tensor], epoch: int) -> bool:
        """Whether a step has any mimicry: peers, a positive weight and a sample."""
        if self.mimicry.scale(epoch) <= 0:
            return False
        if mimic_mask is None:
            return n > 0
        if mimic_mask.dtype == torch.bool:
            return bool(mimic_mask.any())
        return mimic_mask.numel() > 0

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
                outs = [self.call_student(j, *inputs, **kwargs)
                        for j in range(self.num_students)]
            outs[k] = self.call_student(k, *inputs, **kwargs)
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
        free = [n for n, g in zip(self.names, self.graph_free) if g]
        free_repr = f", graph_free={free}" if free else ""
        return (
            f"method={self.method}, weighting={self.weighting}, divergence={self.divergence}, "
            f"T={self.temperature}, entropy={self.entropy} ({self.entropy_mode}), "
            f"warmup={self.warmup}, schedule={self.schedule}{free_repr}"
        )


def _mimicry_setting(name: str, doc: str) -> property:
    """A cohort attribute read from (and written to) its :class:`MimicryLoss`."""
    def get(self):
        return getattr(self.mimicry, name)

    def set_(self, value) -> None:
        setattr(self.mimicry, name, value)

    return property(get, set_, doc=doc)


for _name, _doc in [
    ("weighting", "Peer weighting: ``none``, ``uniform`` (DML) or ``adaptive`` (ALW)."),
    ("divergence", "The mimicry divergence."),
    ("temperature", "The student temperature :math:`T`."),
    ("mimic_weight", r"The mimicry weight :math:`\lambda` after warm-up."),
    ("warmup", "Epochs of the sigmoid warm-up ramp."),
    ("entropy", r"The entropy-enhancement weight :math:`\beta`."),
    ("entropy_mode", "``penalty`` or ``target``."),
    ("renyi_alpha", "Order of the Rényi divergence."),
    ("balance", "Forward-KL weight of the balanced divergence."),
]:
    setattr(MutualEnsemble, _name, _mimicry_setting(_name, _doc))
del _name, _doc
