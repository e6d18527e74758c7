r"""Graph-specific pieces of mutual learning: node-level distributions and augmented views.

One soft label per training graph is a sparse signal, and the training graphs are fitted
early, after which peers have little left to teach (MuGSI, arXiv:2406.19832; TGNN, IJCAI
2022). Two remedies used by :class:`~graphmutual.train.GraphBatchTask`:

* **Node-level distributions** (MuGSI-style). A :class:`~graphmutual.nn.GraphStudent`
  computes :math:`z_G = \mathrm{head}(\mathrm{pool}_{v \in G} h_v)`; its head applied to
  each node embedding gives node-level class distributions
  :math:`p_k(v) = \mathrm{softmax}(\mathrm{head}_k(h^{(k)}_v))`, one per node instead of one
  per graph, which the peers mimic like the graph logits
  (:meth:`~graphmutual.mutual.MimicryLoss.peer_terms`). :class:`NodeEmbeddingTap` records
  the :math:`h^{(k)}` of a forward pass and :func:`node_logits` applies the heads.
* **Augmented views** (TGNN-style). :func:`drop_view` gives each student its own view of a
  batch: every (directed) edge is dropped with probability :math:`p`, and on floating node
  features every node's feature row is zeroed with probability :math:`p` (integer atom
  features, read by an embedding, are left as they are). Peers that see different views
  keep disagreeing after the labels are fitted.

A third, BGNN-style (AAAI 2023, arXiv:2210.05920) remedy boosts the graphs the peers get
wrong: :func:`boost_weights` gives student :math:`k`'s cross-entropy on sample :math:`n` the
weight :math:`w_{k,n} = 1 + \beta\,[\arg\max_c q_k(n)_c \ne y_n]`, where :math:`q_k` is its
(detached) peer mixture.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from graphmutual.mutual.mimicry import MimicryLoss
from graphmutual.nn.graph import GraphStudent


def drop_view(
    x: Tensor,
    edge_index: Tensor,
    edge_attr: Optional[Tensor],
    p: float,
    generator: Optional[torch.Generator] = None,
) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """One random view of a batch: edges dropped and (float) node feature rows zeroed, each
    with probability ``p``.

    Returns ``(x, edge_index, edge_attr)``; ``edge_attr`` keeps the rows of the kept edges.
    ``p = 0`` returns the inputs themselves. Random numbers come from ``generator`` (CPU)
    so a resumed run draws the same views.
    """
    if not 0 <= p < 1:
        raise ValueError(f"the view drop probability must lie in [0, 1) (got {p})")
    if p == 0:
        return x, edge_index, edge_attr
    keep = torch.rand(edge_index.size(1), generator=generator) >= p
    keep = keep.to(edge_index.device)
    edge_index = edge_index[:, keep]
    if edge_attr is not None:
        edge_attr = edge_attr[keep]
    if x.is_floating_point():
        rows = (torch.rand(x.size(0), generator=generator) >= p).to(x.device, x.dtype)
        x = x * rows.unsqueeze(-1) if x.dim() > 1 else x * rows
    return x, edge_index, edge_attr


class NodeEmbeddingTap:
    """Record the node embeddings of every graph student during a forward pass.

    A context manager that hooks each :class:`~graphmutual.nn.GraphStudent`'s node model::

        with NodeEmbeddingTap(cohort.students) as tap:
            logits = cohort(x, edge_index, batch=batch)
        h = tap.embeddings            # one [N, H] tensor per student (with gradients)

    Raises ``ValueError`` when a student is not a ``GraphStudent`` (there is no node model
    to read).
    """

    def __init__(self, students: Sequence[nn.Module]) -> None:
        bad = [type(s).__name__ for s in students if not isinstance(s, GraphStudent)]
        if bad:
            raise ValueError(f"node-level mimicry needs GraphStudent students; got {bad}")
        self.students = list(students)
        self.embeddings: List[Optional[Tensor]] = [None] * len(self.students)
        self._handles: list = []

    def __enter__(self) -> NodeEmbeddingTap:
        self.embeddings = [None] * len(self.students)
        for k, s in enumerate(self.students):
            def hook(module, args, output, k=k):
                self.embeddings[k] = output
            self._handles.append(s.node_model.register_forward_hook(hook))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.students)} students)"


def node_logits(students: Sequence[GraphStudent], embeddings: Sequence[Tensor]) -> Tensor:
    r"""Node-level logits ``[K, N, C]``: each student's head (after its dropout) applied to
    its own node embeddings, :math:`\mathrm{head}_k(h^{(k)}_v)`."""
    if any(h is None for h in embeddings):
        raise ValueError("no node embeddings recorded: run the students one by one inside "
                             "the tap (the fused pass does not call their node models)")
    outs = [s.head(s.dropout(h)) for s, h in zip(students, embeddings)]
    shapes = {tuple(o.shape) for o in outs}
    if len(shapes) > 1:
        raise ValueError(f"students' node-level logits differ in shape: {sorted(shapes)}")
    return torch.stack(outs)


@torch.no_grad()
def boost_weights(logits: Tensor, y: Tensor, mimicry: MimicryLoss, beta: float,
                  alw: Optional[nn.Module] = None) -> Tensor:
    r"""Cross-entropy weights ``[K, N]``: :math:`1 + \beta` where student :math:`k`'s peer
    mixture (as :meth:`MimicryLoss.targets` weighs the peers) misclassifies sample :math:`n`,
    else 1. ``y`` entries outside the labelled set may be anything (their weight is unused).
    """
    if beta < 0:
        raise ValueError(f"the boost weight must be >= 0 (got {beta})")
    q = mimicry.targets(logits.detach(), alw).mixture
    wrong = q.argmax(-1) != y.view(1, -1)
    return 1.0 + beta * wrong.to(logits.dtype)
