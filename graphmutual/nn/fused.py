r"""A fused cohort: K students that share one graph, run in one pass per layer.

:class:`FusedCohort` runs the students of a cohort in lock-step, layer by layer, with **the
students' own modules and parameters** (nothing is copied, so state dicts, optimisers and
export keep working). Only the message passing is replaced: every layer aggregates all
students at once with :func:`graphmutual.ops.multi_spmm` on one cached CSR.

**One adapter per convolution type.** Each supported convolution class has a small
:class:`ConvAdapter` in the registry :data:`CONV_ADAPTERS` (in the spirit of PyG's
``BasicGNN.init_conv``): ``begin`` does the convolution's work before message passing and
requests its aggregations from the layer's :class:`LayerPlan`; the plan runs every
request of the layer at once; ``end`` finishes the convolution. Adapters only call the
convolution's own submodules and never modify a student (thread-safe, nothing swapped
during ``forward``). :func:`register_conv_adapter` adds a convolution type.

**One structure for every student.** For a graph with edges :math:`\mathcal{E}` (duplicates
allowed) the cached CSR holds the non-loop edges plus exactly one self-loop per node (sorted
by destination; transposed once for the backward, only when gradients are enabled). Every
supported convolution is a weighted sum over this structure, with its own weight per edge:

* GCN (:class:`~torch_geometric.nn.conv.GCNConv`, as in PyG's ``gcn_norm``, which replaces
  existing self-loops by one loop of weight 1):

  .. math::
      \hat A_{ij} = \hat d_i^{-1/2} \hat d_j^{-1/2}, \qquad
      \hat d_i = 1 + |\{(j, i) \in \mathcal{E} : j \ne i\}|,
      \qquad \mathbf{X}' = \hat A \mathbf{X} \Theta + \mathbf{b}.

  :math:`\hat A(\mathbf{X}\Theta) = (\hat A\mathbf{X})\Theta`: the fused path aggregates
  on the narrower side (before the linear map when ``in <= out``).

* GIN (:class:`~torch_geometric.nn.conv.GINConv`, which keeps existing self-loops):
  :math:`\mathbf{x}'_i = h_\Theta\big((1 + \epsilon)\mathbf{x}_i + \sum_{(j,i)\in\mathcal{E}}
  \mathbf{x}_j\big)`, i.e. weight 1 on non-loop edges and :math:`1 + \epsilon + m_i` on the
  loop of node :math:`i`, where :math:`m_i` counts the self-loops of :math:`i` in
  :math:`\mathcal{E}`.

* GAT (:class:`~torch_geometric.nn.conv.GATConv`, which also replaces self-loops by one loop
  per node): with :math:`\mathbf{z} = \mathbf{x}\Theta` split into heads,

  .. math::
      \alpha_{ij}^h = \mathrm{softmax}_j\Big(\mathrm{LeakyReLU}_{s}\big(
          \mathbf{a}^{h\top}_{\mathrm{src}} \mathbf{z}^h_j
          + \mathbf{a}^{h\top}_{\mathrm{dst}} \mathbf{z}^h_i\big)\Big), \qquad
      \mathbf{x}'^h_i = \sum_j \alpha^h_{ij} \mathbf{z}^h_j

  (attention dropout in training, heads concatenated or averaged, optional residual, bias).
  The heads of *all* GAT students go through one :func:`~graphmutual.ops.edge_softmax` and
  are aggregated as extra "students" of the same :func:`~graphmutual.ops.multi_spmm`.

Within a layer, all aggregations with the same per-student width :math:`F` (e.g. GCN and
GIN hidden layers, or the GCN output and the averaged GAT output heads) are one
``multi_spmm`` call over ``[N, K', F]`` features with ``[E, K']`` edge weights. (Separate
calls per student, which save the concatenation of the features and the split of the
result, measured the same on molhiv batches and on a 3,000-node graph:
``benchmarks/results/graph_cohort_cpu.md``.)

**The constant input.** BasicGNN applies no dropout to its input, so the first-layer
aggregations of the GCN/GIN students only depend on ``x`` and the graph:
:math:`\hat A\mathbf{X}` and :math:`\mathbf{A}\mathbf{X}` (raw sum, the GIN term is then
:math:`\mathbf{A}\mathbf{X} + (1 + \epsilon)\mathbf{X}`) are computed once and cached as
long as ``x`` and ``edge_index`` are the same, unmodified tensors (identity and
``_version``); a new or in-place modified tensor invalidates the cache. When ``x`` requires
gradients nothing is cached.

**Sparse input features.** Bag-of-words features (Cora, CiteSeer, Coauthor CS: about 1 %
non-zero) make the first layer's dense :math:`N \times F_{\mathrm{in}}` products the bulk of
an epoch. When at most :data:`SPARSE_INPUT_MAX_DENSITY` of the (constant, gradient-free)
input is non-zero, a sparse CSR copy of :math:`\mathbf{X}` is cached and every student's
first linear map is applied to it with :func:`torch.sparse.mm` *before* aggregating:
:math:`\hat A(\mathbf{X}\Theta)` for GCN, :math:`\mathbf{X}\Theta` for GAT, and for GIN
whose ``nn`` is a PyG :class:`~torch_geometric.nn.models.MLP` the first linear map is
moved in front of the sum, :math:`h_\Theta\big(\tilde A\mathbf{X}\big) =
h'_\Theta\big(\tilde A(\mathbf{X}W_1) + b_1\big)` (:math:`h'` is the rest of the MLP).

**Supported students** (:meth:`FusedCohort.try_build` returns ``None`` otherwise, and
:class:`~graphmutual.MutualEnsemble` falls back to running the students one by one):

* :class:`torch_geometric.nn.models.GCN`, ``GAT`` and ``GIN`` (and subclasses such as
  :class:`graphmutual.nn.GCN`) whose convolutions are exactly ``GCNConv`` (``normalize``
  and ``add_self_loops`` on), ``GATConv`` (v1, integer ``in_channels``, self-loops on, no
  ``edge_dim``) or ``GINConv`` (any ``nn``, fixed or trainable ``eps``), with sum
  aggregation and ``source_to_target`` flow, initialised (not lazy) parameters; any
  activation, ``act_first``, normalisation layer (called like BasicGNN calls it) and
  jumping knowledge mode -- the students' own modules are called for all of these;
* :class:`graphmutual.nn.MLP` (graph-free; called as it is);
* :class:`graphmutual.nn.GraphStudent` over any of these node models, without edge
  features (a cohort is all node-level or all graph-level).

**Graph-level students** (``cohort(x, edge_index, batch=batch)`` on a mini-batch of
graphs): the batch's structure is built once for all students; OGB ``AtomEncoder`` inputs
of all students are one ``embedding_bag`` over their tables side by side, with a faster
backward (one ``index_add_`` per atom feature; other encoders are called one by one); the
node models run fused as above; readout (pooling, with the number of graphs found once),
dropout and head are each student's own modules.

**Sampled subgraphs: exact per-layer trimming.** On a neighbour-sampled subgraph whose
nodes are ordered by hop (seeds first, then the nodes first reached at hop 1, 2, ...: the
layout of :class:`~graphmutual.data.sampling.NeighborSampler` and PyG's
``NeighborLoader``), ``cohort(x, edge_index, num_sampled_nodes=[n_0, n_1, ...])`` returns the
seeds' logits only. With :math:`c_h = n_0 + \dots + n_h` the nodes within :math:`h` hops,
layer :math:`l` of an :math:`L`-layer student maps the :math:`c_{L-l}` rows of its input to
the :math:`c_{L-1-l}` rows later layers read (the last layer: the seeds), as a bipartite
aggregation over a **prefix of the cached CSR**: the CSR is sorted by destination, so the
first :math:`c_{L-1-l}` rows keep *all* their in-edges, and their sources are all within
:math:`c_{L-l}` (checked; a subgraph not ordered by hop raises ``ValueError``). The edge
weights are those of the whole subgraph, computed once: GCN's :math:`\hat d` counts every
in-edge of a node, also of a source whose own row the layer drops; GAT's softmax and GIN's
sum run over all in-edges of a kept row. So the seeds' logits and gradients equal the
untrimmed ones (PyG's ``trim_to_layer`` instead normalises the trimmed edges, which changes
GCN's degrees). A student whose layers mix rows -- batch norm in training mode (also inside
GIN's MLPs) or PyG's graph-wise norms -- computes every layer on the whole subgraph (exact
too; :meth:`FusedCohort.trim_support` names such students); the other students of the same
cohort are still trimmed.

Not supported: GraphSAGE and other convolutions, ``GATv2``, edge weights / edge features
(``GINEConv``, GAT with ``edge_dim``, graph students with an edge encoder), bipartite
``(x_src, x_dst)`` inputs (sampled subgraphs go through ``num_sampled_nodes`` above),
``torch.jit``-scripted students.

Dropout: the fused path applies dropout in the same places as the students (after each
hidden layer's activation, and GAT's attention dropout), using each module's ``training``
flag; the masks are drawn differently (two 15-bit random integers per 32-bit draw, about
four times faster than ``bernoulli_`` on CPU, also for the students' own ``nn.Dropout``
modules; the drop probability is ``p`` rounded to a multiple of :math:`2^{-15}`, see
:func:`_dropout`), so training-mode outputs only agree in distribution. GAT's two
attention vectors are folded into its linear map: the scores are
:math:`\mathbf{x}(\Theta^h\mathbf{a}^h)`, two thin matrix products next to
:math:`\mathbf{z} = \mathbf{x}\Theta`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Type

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm
from torch_geometric.nn.conv import GATConv, GCNConv, GINConv, MessagePassing
from torch_geometric.nn.models import MLP as PyGMLP
from torch_geometric.nn.models.basic_gnn import BasicGNN
from torch_geometric.nn.norm import BatchNorm as PyGBatchNorm
from torch_geometric.nn.norm import LayerNorm as PyGLayerNorm

from graphmutual.nn.graph import GraphStudent
from graphmutual.nn.students import MLP as GraphFreeMLP
from graphmutual.ops import CSR, edge_softmax, multi_spmm

__all__ = ["CONV_ADAPTERS", "ConvAdapter", "FusedCohort", "GATAdapter", "GCNAdapter",
           "GINAdapter", "LayerPlan", "fused_support", "register_conv_adapter"]

#: Largest fraction of non-zero input features for which the first layer runs on a sparse
#: copy of ``x`` (see the module docs); denser inputs stay dense.
SPARSE_INPUT_MAX_DENSITY = 0.1


def _is_lazy(module: nn.Module) -> bool:
    return any(isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters())


# ------------------------------------------------------------------------ graph structure
@dataclass
class _Graph:
    """Per-graph cache: the CSR with one self-loop per node and the constant edge weights."""

    edge_index: Tensor
    version: int
    num_nodes: int
    csr: CSR
    row: Tensor  # destination of every CSR edge
    loop: Tensor  # [E] float: 1 on the self-loop edges of the CSR
    gcn: Tensor  # [E] GCN symmetric normalisation (CSR order)
    gin: Tensor  # [E] GIN weights for eps = -1: 1 on edges, m_i on loops
    x_cache: Dict[str, Optional[Tensor]] = field(default_factory=dict)
    x_key: Optional[Tuple[Tensor, int]] = None

    views: Dict[Tuple[int, int], _Graph] = field(default_factory=dict)

    def matches(self, edge_index: Tensor, num_nodes: int) -> bool:
        return (self.edge_index is edge_index and self.version == edge_index._version
                and self.num_nodes == num_nodes)

    def trimmed(self, num_dst: int, num_src: int) -> _Graph:
        r"""The first ``num_dst`` destination rows with **all** their in-edges, as a
        bipartite ``num_dst x num_src`` structure (cached per size).

        The CSR is sorted by destination, so this is a prefix of every per-edge tensor: the
        edge weights (GCN's normalisation, GIN's loop weights) stay those of the whole
        graph. It raises ``ValueError`` when an edge into a kept row comes from a source
        ``>= num_src`` (the node order is then not the hop order the sizes assume).
        """
        if num_dst == self.num_nodes and num_src == self.csr.num_cols:
            return self
        key = (num_dst, num_src)
        view = self.views.get(key)
        if view is None:
            if not 0 <= num_dst <= num_src <= self.csr.num_cols:
                raise ValueError(f"cannot trim {self.num_nodes} nodes to {num_dst} "
                                 f"destinations of {num_src} sources")
            e = int(self.csr.rowptr[num_dst])
            col = self.csr.col[:e]
            if e and int(col.max()) >= num_src:
                raise ValueError(
                    f"an edge into one of the first {num_dst} nodes comes from a node "
                    f">= {num_src}: the subgraph's nodes are not ordered by hop as "
                    "num_sampled_nodes says (seeds first, then each hop's new nodes)")
            csr = CSR(self.csr.rowptr[:num_dst + 1], col, num_src, validate=False)
            view = _Graph(self.edge_index, self.version, num_dst, csr, self.row[:e],
                          self.loop[:e], self.gcn[:e], self.gin[:e])
            self.views[key] = view
        return view


def _build_graph(edge_index: Tensor, num_nodes: int, dtype: torch.dtype) -> _Graph:
    with torch.no_grad():
        src, dst = edge_index[0], edge_index[1]
        is_loop = src == dst
        has_loops = bool(is_loop.any())  # batches of molecules have none: skip the work
        n_raw_loops = torch.bincount(src[is_loop], minlength=num_nodes) if has_loops else None
        keep = edge_index[:, ~is_loop] if has_loops else edge_index
        loops = torch.arange(num_nodes, device=edge_index.device, dtype=edge_index.dtype)
        ei = torch.cat([keep, loops.unsqueeze(0).expand(2, -1)], dim=1)
        csr = CSR.from_edge_index(ei, num_nodes)
        deg = csr.rowptr[1:] - csr.rowptr[:-1]
        row = torch.repeat_interleave(torch.arange(num_nodes, device=ei.device), deg)
        col = csr.col.long()
        loop = (col == row).to(dtype)
        dis = deg.to(dtype).pow(-0.5)  # every node has its loop: deg >= 1
        gcn = dis[row] * dis[col]
        gin = 1.0 - loop
        if n_raw_loops is not None:
            gin = gin + loop * n_raw_loops.to(dtype)[row]
    return _Graph(edge_index, edge_index._version, num_nodes, csr, row, loop, gcn, gin)


#: Dropout masks compare 15-bit random integers with ``round(p * DROPOUT_LEVELS)``.
DROPOUT_LEVELS = 1 << 15


def _dropout(x: Tensor, p: float, training: bool) -> Tensor:
    r"""Dropout with a cheap mask: two 15-bit random integers from every 32-bit draw.

    An entry is dropped when its integer :math:`r \in [0, 2^{15})` is below
    :math:`t = \mathrm{round}(p\,2^{15})`, i.e. with probability :math:`\hat p = t / 2^{15}`
    (:math:`|\hat p - p| \le 2^{-16}`; exact for ``p = 0.5``), and kept entries are scaled
    by :math:`1 / (1 - \hat p)`, so the expectation is exactly ``x``.  Half the random
    draws of ``torch.rand`` and about half the time of a ``torch.rand`` mask on the CPU
    (``bernoulli_``, which :func:`F.dropout` uses, is slower still).
    """
    if not training or p == 0.0:
        return x
    t = round(p * DROPOUT_LEVELS)
    if p >= 1.0 or t >= DROPOUT_LEVELS:
        return x * 0.0
    n = x.numel()
    r = torch.empty((n + 1) // 2, dtype=torch.int32, device=x.device).random_()  # 31 bits
    r = r.view(torch.int16)[:n].view(x.shape).bitwise_and_(DROPOUT_LEVELS - 1)
    return x * r.ge_(t).to(x.dtype).mul_(DROPOUT_LEVELS / (DROPOUT_LEVELS - t))


def _module_dropout(module: nn.Module, x: Tensor) -> Tensor:
    """``module(x)``; a plain :class:`~torch.nn.Dropout` is applied with :func:`_dropout`
    (its own ``p`` and ``training`` flag)."""
    if type(module) is nn.Dropout:
        return _dropout(x, module.p, module.training)
    return module(x)


# ------------------------------------------------------------------- one layer's requests
class _Handle:
    """The (deferred) result of an aggregation request: ``value`` is set by ``run``."""

    __slots__ = ("value", "squeeze")

    def __init__(self, value: Optional[Tensor] = None, squeeze: bool = False) -> None:
        self.value = value
        self.squeeze = squeeze  # the request was [N, F] / [E]: return [N, F]


class LayerPlan:
    r"""The aggregation requests of one layer of every student, run together.

    An adapter's :meth:`ConvAdapter.begin` asks for

    * :meth:`aggregate`: :math:`\sum_j w_{ij} \mathbf{x}_j` over the cached structure, for
      features ``[N, F]`` (or ``[N, H, F]``: one weight column per head) and per-edge weights
      ``[E]`` (or ``[E, H]``);
    * :meth:`attend`: GAT attention, :math:`\mathrm{softmax}_j(\mathrm{LeakyReLU}(s_j +
      d_i))` per head, then the aggregation of ``z`` with it;

    and gets a handle whose ``value`` is set after :meth:`run`: all attention heads of the
    layer go through one edge softmax, all aggregations of the same width through one
    :func:`~graphmutual.ops.multi_spmm`. It also serves the per-input caches of the first
    layer (:meth:`input_aggregate`, :meth:`sparse_input`).
    """

    def __init__(self, cohort: FusedCohort, g: _Graph, x0: Optional[Tensor],
                 first: bool, trimmed: bool = False) -> None:
        self.cohort, self.graph, self.x0, self.first = cohort, g, x0, first
        #: whether ``graph`` is a trimmed (bipartite) view of a sampled subgraph
        self.trimmed = trimmed
        self._aggs: List[Tuple[Tensor, Tensor, _Handle]] = []  # ([N, K', F], [E, K'], out)
        self._atts: List[Tuple[Tensor, Tensor, Tensor, float, float, bool, _Handle]] = []

    @property
    def num_dst(self) -> int:
        """Number of destination rows this layer computes."""
        return self.graph.csr.num_rows

    @property
    def num_src(self) -> int:
        """Number of source rows (the rows of the layer's input)."""
        return self.graph.csr.num_cols

    @property
    def num_edges(self) -> int:
        return self.graph.csr.num_edges

    # ------------------------------------------------------------------ requests
    def is_input(self, x: Tensor) -> bool:
        """Whether ``x`` is the cohort's shared, unmodified first-layer input."""
        return self.first and self.x0 is not None and x is self.x0

    def aggregate(self, x: Tensor, w: Tensor) -> _Handle:
        """Request :math:`\\sum_j w_{ij} x_j`; ``[N, F]``/``[E]`` or ``[N, H, F]``/``[E, H]``."""
        h = _Handle(squeeze=x.dim() == 2)
        if h.squeeze:
            x, w = x.unsqueeze(1), w.unsqueeze(1)
        self._aggs.append((x, w, h))
        return h

    def attend(self, z: Tensor, a_src: Tensor, a_dst: Tensor, negative_slope: float,
               dropout: float, training: bool) -> _Handle:
        """Request GAT's attention-weighted sum of ``z [N, H, C]`` (scores ``[N, H]``)."""
        h = _Handle()
        self._atts.append((z, a_src, a_dst, float(negative_slope), float(dropout), training,
                           h))
        return h

    def input_aggregate(self, kind: str) -> Optional[Tensor]:
        r"""Cached :math:`\hat A X` (``"gcn"``) or raw :math:`A X` (``"sum"``) of the input
        (``None`` on a trimmed layer: a sampled batch's input is never seen twice)."""
        if self.trimmed:
            return None
        return self.cohort._input_aggregate(self.graph, self.x0, kind)

    def sparse_input(self) -> Optional[Tensor]:
        """Cached sparse CSR copy of a sparse, constant input (else ``None``)."""
        return self.cohort._sparse_input(self.graph, self.x0)

    # ----------------------------------------------------------------------- run
    def run(self) -> None:
        g = self.graph
        if self._atts:
            self._attention()
        groups: Dict[int, List[int]] = {}
        for i, (x, _, _) in enumerate(self._aggs):
            groups.setdefault(x.size(-1), []).append(i)
        for idx in groups.values():
            xs = [self._aggs[i][0] for i in idx]
            ws = [self._aggs[i][1] for i in idx]
            x = xs[0] if len(xs) == 1 else torch.cat(xs, dim=1)
            w = ws[0] if len(ws) == 1 else torch.cat(ws, dim=1)
            y = multi_spmm(g.csr, x.contiguous(), w)
            parts = [y] if len(idx) == 1 else y.split([t.size(1) for t in xs], dim=1)
            for i, part in zip(idx, parts):
                h = self._aggs[i][2]
                h.value = part.squeeze(1) if h.squeeze else part

    def _attention(self) -> None:
        """Attention weights of all GAT heads with one gather and one edge softmax."""
        g = self.graph
        atts = self._atts
        heads = [a[1].size(1) for a in atts]
        src = atts[0][1] if len(atts) == 1 else torch.cat([a[1] for a in atts], dim=1)
        dst = atts[0][2] if len(atts) == 1 else torch.cat([a[2] for a in atts], dim=1)
        score = src.index_select(0, g.csr.col) + dst.index_select(0, g.row)  # [E, sum H]
        slopes = {a[3] for a in atts}
        if len(slopes) == 1:
            score = F.leaky_relu(score, slopes.pop())
        else:
            score = torch.cat([F.leaky_relu(part, a[3]) for part, a
                               in zip(score.split(heads, dim=1), atts)], dim=1)
        alpha = edge_softmax(score, g.csr)
        parts = [alpha] if len(atts) == 1 else alpha.split(heads, dim=1)
        for part, (z, _, _, _, p, training, h) in zip(parts, atts):
            self._aggs.append((z, _dropout(part, p, training), h))


# ----------------------------------------------------------------------- conv adapters
class ConvAdapter:
    r"""How one convolution type runs inside a :class:`FusedCohort` (one per type).

    In the spirit of PyG's ``BasicGNN.init_conv``: a small object per convolution class,
    registered in :data:`CONV_ADAPTERS` with :func:`register_conv_adapter`. A layer of the
    cohort calls :meth:`begin` for every student's convolution (which computes what the
    convolution needs before message passing and requests the aggregations from the
    :class:`LayerPlan`), runs the plan once, then calls :meth:`end` (which finishes the
    convolution from the aggregated values). Adapters only *call* the convolution's own
    submodules and parameters; they never modify the module.
    """

    #: The convolution class served (matched exactly, not by ``isinstance``: a subclass
    #: may change the maths).
    conv_type: ClassVar[Type[MessagePassing]]

    def unsupported(self, conv: MessagePassing) -> Optional[str]:
        """Why ``conv`` cannot be fused (``None`` if it can)."""
        if getattr(conv, "aggr", None) != "add" or conv.flow != "source_to_target":
            return "only sum aggregation with source_to_target flow is supported"
        if conv.node_dim not in (0, -2) or conv.decomposed_layers != 1:
            return "unsupported MessagePassing options"
        return None

    def begin(self, conv: MessagePassing, x: Tensor, plan: LayerPlan) -> Any:
        """Pre-aggregation work for input ``x [N, F]``; returns a state for :meth:`end`."""
        raise NotImplementedError

    def end(self, conv: MessagePassing, state: Any) -> Tensor:
        """The convolution's output ``[N, F']`` once the plan has run."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.conv_type.__name__})"


#: Convolution class -> its adapter. Register new ones with :func:`register_conv_adapter`.
CONV_ADAPTERS: Dict[Type[MessagePassing], ConvAdapter] = {}


def register_conv_adapter(adapter: ConvAdapter) -> ConvAdapter:
    """Register ``adapter`` for ``adapter.conv_type`` (replacing any earlier one)."""
    if not isinstance(adapter, ConvAdapter):
        raise TypeError(f"expected a ConvAdapter instance, got {type(adapter).__name__}")
    CONV_ADAPTERS[adapter.conv_type] = adapter
    return adapter


def _sparse_linear(xs: Tensor, lin: nn.Module, bias: bool = True) -> Tensor:
    r""":math:`\mathbf{X}W^\top (+ b)` for a sparse CSR ``xs`` and a linear layer."""
    out = torch.sparse.mm(xs, lin.weight.t())
    return out + lin.bias if bias and lin.bias is not None else out


def _add_bias(out: Tensor, bias: Optional[Tensor]) -> Tensor:
    return out if bias is None else out + bias


class GCNAdapter(ConvAdapter):
    r""":class:`~torch_geometric.nn.conv.GCNConv`: :math:`\hat A \mathbf{X}\Theta + b`,
    aggregated on the narrower side of the linear map (or on the cached / sparse input)."""

    conv_type = GCNConv

    def unsupported(self, conv: GCNConv) -> Optional[str]:
        if not (conv.normalize and conv.add_self_loops):
            return "GCNConv needs normalize=True and add_self_loops=True"
        return super().unsupported(conv)

    def begin(self, conv: GCNConv, x: Tensor, plan: LayerPlan) -> Any:
        g = plan.graph
        if plan.is_input(x):
            xs = plan.sparse_input()
            if xs is not None:  # A (X W) with a sparse X W
                return False, plan.aggregate(_sparse_linear(xs, conv.lin, False), g.gcn)
            cached = plan.input_aggregate("gcn")
            if cached is not None:
                return True, _Handle(cached)
        # (A X) W costs E F_in + M F_in F_out, A (X W) costs N F_in F_out + E F_out (M rows
        # of N on a trimmed layer, M = N otherwise, where this is F_in <= F_out)
        fin, fout = conv.in_channels, conv.out_channels
        e, m, n = plan.num_edges, plan.num_dst, plan.num_src
        if e * fin + m * fin * fout <= n * fin * fout + e * fout:
            return True, plan.aggregate(x, g.gcn)  # (A X) W
        return False, plan.aggregate(conv.lin(x), g.gcn)  # A (X W)

    def end(self, conv: GCNConv, state: Any) -> Tensor:
        linear_after, h = state
        out = conv.lin(h.value) if linear_after else h.value
        return _add_bias(out, conv.bias)


def _mlp_first_linear_movable(mlp: nn.Module) -> bool:
    """Whether ``mlp`` is a plain PyG MLP whose first linear map can be applied first."""
    return (isinstance(mlp, PyGMLP) and type(mlp).forward is PyGMLP.forward
            and len(mlp.lins) > 0 and hasattr(mlp.lins[0], "weight"))


def _mlp_after_first(mlp: PyGMLP, x: Tensor) -> Tensor:
    """PyG ``MLP.forward`` of ``mlp`` for ``x`` = the output of its first linear layer.

    The same steps as :meth:`torch_geometric.nn.models.MLP.forward` (``batch=None``), with
    the first linear map skipped; every module called is the MLP's own.
    """
    for i, (lin, norm) in enumerate(zip(mlp.lins, mlp.norms)):
        if i > 0:
            x = lin(x)
        if mlp.act is not None and mlp.act_first:
            x = mlp.act(x)
        x = norm(x, None, None) if mlp.supports_norm_batch else norm(x)
        if mlp.act is not None and not mlp.act_first:
            x = mlp.act(x)
        x = F.dropout(x, p=mlp.dropout[i], training=mlp.training)
    if mlp.plain_last:
        if len(mlp.lins) > 1:
            x = mlp.lins[-1](x)
        x = F.dropout(x, p=mlp.dropout[-1], training=mlp.training)
    return x


class GINAdapter(ConvAdapter):
    r""":class:`~torch_geometric.nn.conv.GINConv`: :math:`h_\Theta((1+\epsilon)\mathbf{x}_i
    + \sum_j \mathbf{x}_j)` as one weighted sum (loop weight :math:`1 + \epsilon + m_i`)."""

    conv_type = GINConv

    def begin(self, conv: GINConv, x: Tensor, plan: LayerPlan) -> Any:
        g = plan.graph
        if plan.is_input(x):
            xs = plan.sparse_input()
            if xs is not None and _mlp_first_linear_movable(conv.nn):
                lin0 = conv.nn.lins[0]  # h(A X) = h'(A (X W1) + b1)
                w = g.gin + g.loop * (1 + conv.eps)
                return True, lin0.bias, plan.aggregate(_sparse_linear(xs, lin0, False), w)
            cached = plan.input_aggregate("sum")
            if cached is not None:
                return False, None, _Handle(cached + (1 + conv.eps) * x[:plan.num_dst])
        return False, None, plan.aggregate(x, g.gin + g.loop * (1 + conv.eps))

    def end(self, conv: GINConv, state: Any) -> Tensor:
        moved, bias, h = state
        if moved:  # the MLP's first linear map was applied before aggregating
            return _mlp_after_first(conv.nn, _add_bias(h.value, bias))
        return conv.nn(h.value)


class GATAdapter(ConvAdapter):
    r""":class:`~torch_geometric.nn.conv.GATConv` (v1): the attention of all GAT students'
    heads in one edge softmax, aggregated as extra columns of the same ``multi_spmm``."""

    conv_type = GATConv

    def unsupported(self, conv: GATConv) -> Optional[str]:
        if conv.lin is None or not conv.add_self_loops or conv.edge_dim is not None:
            return "GATConv needs integer in_channels, add_self_loops=True, edge_dim=None"
        return super().unsupported(conv)

    def begin(self, conv: GATConv, x: Tensor, plan: LayerPlan) -> Any:
        h, c = conv.heads, conv.out_channels
        xs = plan.sparse_input() if plan.is_input(x) else None
        w = conv.lin.weight  # [H * C, F]
        if conv.lin.bias is None:
            # the scores a_src = <z^h, att_src^h> are linear in x, x (W^h att_src^h): two
            # thin products [N, F] x [F, H] instead of reading z again (and no
            # concatenation of weights, nor of gradients in the backward)
            wh = w.view(h, c, -1)
            w_src = (conv.att_src.view(h, c, 1) * wh).sum(1)  # [H, F]
            w_dst = (conv.att_dst.view(h, c, 1) * wh).sum(1)
            if xs is not None:
                z, a_src, a_dst = (torch.sparse.mm(xs, t.t()) for t in (w, w_src, w_dst))
            else:
                z, a_src, a_dst = F.linear(x, w), F.linear(x, w_src), F.linear(x, w_dst)
            z = z.view(-1, h, c)
        else:
            z = _sparse_linear(xs, conv.lin) if xs is not None else conv.lin(x)
            z = z.view(-1, h, c)
            a_src, a_dst = (z * conv.att_src).sum(-1), (z * conv.att_dst).sum(-1)
        res = conv.res(x[:plan.num_dst]) if conv.res is not None else None
        handle = plan.attend(z, a_src, a_dst, conv.negative_slope, conv.dropout,
                             conv.training)
        return handle, res

    def end(self, conv: GATConv, state: Any) -> Tensor:
        h, res = state
        agg = h.value  # [N, H, C]
        out = agg.reshape(agg.size(0), -1) if conv.concat else agg.mean(dim=1)
        if res is not None:
            out = out + res
        return _add_bias(out, conv.bias)


for _adapter in (GCNAdapter(), GINAdapter(), GATAdapter()):
    register_conv_adapter(_adapter)


def _conv_adapter(conv: nn.Module) -> Optional[ConvAdapter]:
    return CONV_ADAPTERS.get(type(conv))


# ------------------------------------------------------------------------------ support
def _node_model_support(model: nn.Module) -> Optional[str]:
    if isinstance(model, GraphFreeMLP):
        return None
    if isinstance(model, torch.jit.ScriptModule):
        return "scripted modules are not supported"
    if not isinstance(model, BasicGNN):
        return (f"{type(model).__name__} is not a PyG BasicGNN with a fused convolution "
                f"({', '.join(c.__name__ for c in CONV_ADAPTERS)}) or the MLP")
    if _is_lazy(model):
        return "lazy (uninitialised) parameters"
    if type(model).forward is not BasicGNN.forward:
        return f"{type(model).__name__} overrides forward()"
    if len(model.convs) != model.num_layers or len(model.norms) != model.num_layers:
        return "unexpected number of layers"
    for conv in model.convs:
        adapter = _conv_adapter(conv)
        if adapter is None:
            return f"convolution {type(conv).__name__} has no fused adapter"
        why = adapter.unsupported(conv)
        if why is not None:
            return why
    return None


def fused_support(student: nn.Module) -> Optional[str]:
    """Why ``student`` cannot run in a :class:`FusedCohort` (``None`` if it can)."""
    if isinstance(student, GraphStudent):
        if type(student).forward is not GraphStudent.forward:
            return f"{type(student).__name__} overrides forward()"
        if student.edge_encoder is not None:
            return "graph students with edge features are not supported"
        if isinstance(student.node_model, GraphStudent):
            return "nested graph students are not supported"
        why = _node_model_support(student.node_model)
        return None if why is None else f"node model: {why}"
    return _node_model_support(student)


def _embedding_sum_tables(encoder: Optional[nn.Module]) -> Optional[List[nn.Embedding]]:
    """The tables of an OGB ``AtomEncoder``/``BondEncoder``-style encoder (sum of one
    embedding per input column, plain ``nn.Embedding`` options), else ``None``."""
    if encoder is None or type(encoder).__module__ != "ogb.graphproppred.mol_encoder":
        return None
    tables = getattr(encoder, "atom_embedding_list", None)
    if tables is None or type(encoder).__name__ != "AtomEncoder":
        return None
    for t in tables:
        if type(t) is not nn.Embedding or t.padding_idx is not None or t.max_norm is not None \
                or t.scale_grad_by_freq or t.sparse:
            return None
    return list(tables)


class _FusedEmbeddingSum:
    r"""The OGB ``AtomEncoder`` of every graph student as one ``embedding_bag``.

    Each student's encoder is :math:`\mathrm{enc}_k(\mathbf{x})_v = \sum_c
    E^{(k)}_c[x_{vc}]`. With the tables of all students side by side (columns) and the
    columns' tables one after the other (rows, ``offsets`` shift each column's indices),
    every student's encoding is one slice of ``embedding_bag(x + offsets, W, mode="sum")``.
    ``W`` is concatenated from the students' own parameters at every call, so gradients
    flow to them.
    """

    def __init__(self, encoders: List[List[nn.Embedding]]) -> None:
        self.encoders = encoders
        sizes = [t.num_embeddings for t in encoders[0]]
        self.sizes = torch.tensor(sizes)
        self.offsets = torch.tensor([0] + sizes[:-1]).cumsum(0)
        self.widths = [enc[0].embedding_dim for enc in encoders]

    @staticmethod
    def compatible(encoders: List[List[nn.Embedding]]) -> bool:
        sizes = [[t.num_embeddings for t in enc] for enc in encoders]
        return len(encoders) > 1 and all(s == sizes[0] for s in sizes) and all(
            len({t.embedding_dim for t in enc}) == 1 for enc in encoders)

    def __call__(self, x: Tensor) -> List[Tensor]:
        c = x.size(1)
        if x.dim() != 2 or not 0 < c <= len(self.encoders[0]) or x.is_floating_point():
            raise ValueError(f"the atom encoders need integer features [N, 1..."
                             f"{len(self.encoders[0])}], got {x.dtype} {tuple(x.shape)}")
        if self.sizes.device != x.device:  # moved once, then kept on the input's device
            self.sizes, self.offsets = self.sizes.to(x.device), self.offsets.to(x.device)
        sizes, offsets = self.sizes[:c], self.offsets[:c]
        # one reduction per column and one host sync (cheaper than comparing every entry)
        if x.numel() and bool(((x.amax(0) >= sizes) | (x.amin(0) < 0)).any()):
            raise ValueError("atom feature index out of range of the encoders' tables "
                             f"(sizes {sizes.tolist()})")
        # each student's tables one after the other, then the students side by side
        w = torch.cat([torch.cat([t.weight for t in enc[:c]], dim=0) for enc in self.encoders],
                      dim=1)
        out = _EmbeddingColumnSum.apply(x + offsets, w)
        return list(out.split(self.widths, dim=1))


class _EmbeddingColumnSum(torch.autograd.Function):
    r""":math:`\mathbf{y}_v = \sum_c W[i_{vc}]` (``embedding_bag`` with ``mode="sum"``) with
    a faster backward on the CPU: :math:`\partial W = \sum_c \mathrm{onehot}(i_{:,c})^\top
    \partial\mathbf{y}`, one ``index_add_`` of the output gradient per input column (no
    sort, no copy of the gradient per index; PyTorch's dense ``embedding_bag`` backward
    sorts the indices and is three times slower on a molhiv batch). Same sums, in another
    order (rounding-level differences).
    """

    @staticmethod
    def forward(ctx: Any, index: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        ctx.num_rows = weight.size(0)
        return F.embedding_bag(index, weight, mode="sum")

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tuple[None, Optional[Tensor]]:
        if not ctx.needs_input_grad[1]:
            return None, None
        (index,) = ctx.saved_tensors
        grad = grad.contiguous()
        out = grad.new_zeros(ctx.num_rows, grad.size(1))
        for c in range(index.size(1)):
            out.index_add_(0, index[:, c], grad)
        return None, out


# ----------------------------------------------------------------------- layer trimming
def _row_independent(module: nn.Module) -> bool:
    """Whether ``module``'s output row ``i`` depends on input row ``i`` only (no statistics
    over the rows, as batch norm in training or PyG's graph-wise norms take): then running
    it on fewer rows gives the same rows."""
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            if m.training or m.running_mean is None:
                return False
        elif isinstance(m, _InstanceNorm):
            return False
        elif type(m).__module__.startswith("torch_geometric.nn.norm"):
            if isinstance(m, PyGBatchNorm):
                continue  # its inner BatchNorm1d decides
            if isinstance(m, PyGLayerNorm) and m.mode == "node":
                continue
            return False
    return True


def _check_hops(num_sampled_nodes: Any, num_nodes: int) -> List[int]:
    """``num_sampled_nodes`` as a list of ints that adds up to ``num_nodes``."""
    if isinstance(num_sampled_nodes, Tensor):
        if num_sampled_nodes.dim() != 1 or num_sampled_nodes.is_floating_point():
            raise ValueError("num_sampled_nodes must be a 1-D integer tensor or a list of "
                             f"ints, got {num_sampled_nodes.dtype} "
                             f"{tuple(num_sampled_nodes.shape)}")
        num_sampled_nodes = num_sampled_nodes.tolist()
    if not isinstance(num_sampled_nodes, (list, tuple)) or not num_sampled_nodes or any(
            isinstance(c, bool) or not isinstance(c, int) or c < 0
            for c in num_sampled_nodes):
        raise ValueError("num_sampled_nodes must be a non-empty list of node counts per hop "
                         f"(seeds first), got {num_sampled_nodes!r}")
    hops = [int(c) for c in num_sampled_nodes]
    if sum(hops) != num_nodes:
        raise ValueError(f"num_sampled_nodes adds up to {sum(hops)} nodes, but x has "
                         f"{num_nodes} rows")
    return hops


def _layer_sizes(hops: Sequence[int], depth: int) -> List[Tuple[int, int]]:
    r"""``(destinations, sources)`` of every layer of a ``depth``-layer model on a subgraph
    with ``hops[h]`` nodes first reached at hop ``h`` (nodes ordered by hop).

    Layer :math:`l` (0-based) only needs the nodes within :math:`L - 1 - l` hops of the
    seeds, from their inputs within :math:`L - l` hops: with :math:`c_h` the number of
    nodes within :math:`h` hops, layer :math:`l` maps :math:`c_{L-l}` rows to
    :math:`c_{L-1-l}` (hop indices capped at the sampled depth).
    """
    c = [0]
    for n in hops:
        c.append(c[-1] + n)
    c = c[1:]  # c[h]: nodes within h hops
    top = len(hops) - 1
    return [(c[min(depth - 1 - i, top)], c[min(depth - i, top)]) for i in range(depth)]


def _rows(t: Tensor, n: int) -> Tensor:
    return t if t.size(0) == n else t[:n]


# ------------------------------------------------------------------------------- cohort
class FusedCohort:
    """Run GCN/GAT/GIN/MLP students together with one aggregation pass per layer.

    Node-level students (PyG ``BasicGNN`` models and the graph-free MLP) are called as
    ``cohort(x, edge_index)``; graph-level students (:class:`~graphmutual.nn.GraphStudent`
    over such node models, without edge features) as ``cohort(x, edge_index, batch=batch)``
    (``edge_attr`` is accepted and ignored, as the students ignore it). A cohort holds one
    kind or the other.

    Not an :class:`~torch.nn.Module`: it holds no parameters, only references to the
    students (whose ``training`` flags it follows) and a cache of the last graph.

    Args:
        students: the student modules, all supported (see :func:`fused_support`); use
            :meth:`try_build` to get ``None`` instead of an error.

    Returns the list of the students' logits.
    """

    def __init__(self, students: Sequence[nn.Module]) -> None:
        students = list(students)
        for i, s in enumerate(students):
            why = fused_support(s)
            if why is not None:
                raise ValueError(f"student {i} ({type(s).__name__}) cannot be fused: {why}")
        graph = [isinstance(s, GraphStudent) for s in students]
        if any(graph) and not all(graph):
            raise ValueError("cannot fuse node-level students with graph-level "
                             "(GraphStudent) students in one cohort")
        self.students: List[nn.Module] = students
        self.graph_level = bool(students) and all(graph)
        self._graph: Optional[_Graph] = None
        self._encoder: Optional[_FusedEmbeddingSum] = None
        if self.graph_level:
            tables = [_embedding_sum_tables(s.encoder) for s in students]
            if all(t is not None for t in tables) and _FusedEmbeddingSum.compatible(tables):
                self._encoder = _FusedEmbeddingSum(tables)  # type: ignore[arg-type]

    @classmethod
    def try_build(cls, students: Sequence[nn.Module]) -> Optional[FusedCohort]:
        """A :class:`FusedCohort`, or ``None`` when any student is not supported."""
        students = list(students)
        if not students or any(fused_support(s) is not None for s in students):
            return None
        try:
            return cls(students)
        except ValueError:  # node and graph students mixed
            return None

    def serves(self, students: Sequence[nn.Module]) -> bool:
        """Whether this cohort runs exactly ``students`` (the same modules, in order)."""
        return len(self.students) == len(students) and all(
            a is b for a, b in zip(self.students, students))

    def accepts(self, *args: Any, **kwargs: Any) -> bool:
        """Whether a call with these arguments can take the fused path.

        Node level: exactly ``(x [N, F], edge_index [2, E])``, optionally with the keyword
        ``num_sampled_nodes``. Graph level: ``(x, edge_index)`` and optionally ``batch`` and
        ``edge_attr`` (keywords or positions).
        """
        if len(args) < 2 or not isinstance(args[0], Tensor) or args[0].dim() != 2:
            return False
        ei = args[1]
        if not isinstance(ei, Tensor) or ei.dim() != 2 or ei.size(0) != 2:
            return False
        if not self.graph_level:
            return len(args) == 2 and set(kwargs) <= {"num_sampled_nodes"}
        if len(args) > 4 or set(kwargs) - {"batch", "edge_attr"}:
            return False
        if len(args) > 2 and "batch" in kwargs or len(args) > 3 and "edge_attr" in kwargs:
            return False
        batch = args[2] if len(args) > 2 else kwargs.get("batch")
        return batch is None or isinstance(batch, Tensor)

    # ------------------------------------------------------------------ caches
    def clear_cache(self) -> None:
        """Forget the cached graph structure and first-layer aggregations."""
        self._graph = None

    def graph(self, edge_index: Tensor, num_nodes: int, dtype: torch.dtype,
              transpose: bool = True) -> _Graph:
        """The cached structure of ``edge_index`` (rebuilt when the tensor changes); its
        transpose is built too when gradients are enabled and ``transpose`` is set."""
        g = self._graph
        if g is None or not g.matches(edge_index, num_nodes) or g.gcn.dtype != dtype \
                or g.csr.device != edge_index.device:
            g = self._graph = _build_graph(edge_index, num_nodes, dtype)
        if transpose and torch.is_grad_enabled():
            g.csr.transpose()  # cached: the backward of every aggregation reuses it
        return g

    def trim_support(self) -> Optional[str]:
        """Which students a call with ``num_sampled_nodes`` runs on the whole subgraph
        instead of trimmed layers (``None``: all are trimmed).

        A student is trimmed when each node's output depends on that node's rows only;
        batch norm in training mode (e.g. in the MLPs of PyG's ``GIN``) and PyG's
        graph-wise norms compute statistics over all rows, so such a student computes every
        layer on the whole subgraph (its seeds' logits are still returned; the students'
        current ``training`` flags count).
        """
        names = []
        for k, s in enumerate(self.students):
            m = s.node_model if isinstance(s, GraphStudent) else s
            if isinstance(m, BasicGNN) and not _row_independent(m):
                names.append(f"{k} ({getattr(m, 'name', None) or type(m).__name__})")
        if not names:
            return None
        return (f"student(s) {', '.join(names)} normalise over the rows of a batch (batch "
                "norm in training mode, or a graph-wise norm): not trimmed")

    @staticmethod
    def _x_cache(g: _Graph, x: Tensor) -> Dict[str, Optional[Tensor]]:
        """The per-input cache of ``g``, emptied when ``x`` is a new or modified tensor."""
        if g.x_key is None or g.x_key[0] is not x or g.x_key[1] != x._version:
            g.x_cache = {}
            g.x_key = (x, x._version)
        return g.x_cache

    def _input_aggregate(self, g: _Graph, x: Tensor, kind: str) -> Optional[Tensor]:
        r"""Cached :math:`\hat A X` (``"gcn"``) or raw :math:`A X` (``"sum"``) of the input."""
        if x.requires_grad:
            return None
        cache = self._x_cache(g, x)  # this call's dict, even if another call resets g's
        if kind not in cache:
            with torch.no_grad():
                w = g.gcn if kind == "gcn" else g.gin
                cache[kind] = multi_spmm(g.csr, x.unsqueeze(1).contiguous(),
                                         w.unsqueeze(1)).squeeze(1)
        return cache[kind]

    def _sparse_input(self, g: _Graph, x: Tensor) -> Optional[Tensor]:
        """Cached sparse CSR copy of a constant input ``x`` that is sparse enough, else None."""
        if x.requires_grad or x.layout != torch.strided or not x.is_floating_point():
            return None
        cache = self._x_cache(g, x)
        if "sparse" not in cache:
            nnz = int(torch.count_nonzero(x)) if x.numel() else 0
            dense = x.numel() == 0 or nnz > SPARSE_INPUT_MAX_DENSITY * x.numel()
            with warnings.catch_warnings():  # "sparse CSR support is in beta"
                warnings.simplefilter("ignore", UserWarning)
                cache["sparse"] = None if dense else x.detach().to_sparse_csr()
        return cache["sparse"]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_graph"] = None  # caches are not worth pickling
        return state

    # ----------------------------------------------------------------- forward
    def __call__(self, *args: Any, **kwargs: Any) -> List[Tensor]:
        return self.forward(*args, **kwargs)

    def forward(self, x: Tensor, edge_index: Tensor, batch: Optional[Tensor] = None,
                edge_attr: Optional[Tensor] = None,
                num_sampled_nodes: Optional[Sequence[int]] = None) -> List[Tensor]:
        """Logits of every student (in order): ``[N, C]`` node level, ``[B, C]`` graph
        level (``batch`` assigns nodes to graphs; ``None``: one graph).

        ``num_sampled_nodes`` (node level; a neighbour-sampled subgraph whose nodes are
        ordered by hop, seeds first, as :class:`~graphmutual.data.sampling.NeighborSampler`
        and PyG's ``NeighborLoader`` give them): the nodes added per hop. Only the seeds'
        logits ``[num_sampled_nodes[0], C]`` are returned, and every layer computes only
        the rows later layers need (exact; see the module docs), except for the students
        :meth:`trim_support` names, which compute every row.
        """
        if x.dim() != 2:
            raise ValueError(f"x must be [N, F], got {tuple(x.shape)}")
        if not self.graph_level:
            if batch is not None or edge_attr is not None:
                raise ValueError("batch/edge_attr are for graph-level (GraphStudent) cohorts")
            hops = None
            if num_sampled_nodes is not None:
                hops = _check_hops(num_sampled_nodes, x.size(0))
            return self._node_models(self.students, [x] * len(self.students), x, edge_index,
                                     hops)
        if num_sampled_nodes is not None:
            raise ValueError("num_sampled_nodes is for node-level cohorts on sampled subgraphs")
        return self._graph_forward(x, edge_index, batch)

    def _graph_forward(self, x: Tensor, edge_index: Tensor,
                       batch: Optional[Tensor]) -> List[Tensor]:
        r""":math:`\mathrm{head}(\mathrm{dropout}(\mathrm{pool}(\mathrm{GNN}(\mathrm{enc}
        (x)))))` of every :class:`~graphmutual.nn.GraphStudent`, fused where it pays."""
        students = self.students
        if self._encoder is not None:
            inputs = self._encoder(x)
        else:
            inputs = [x if s.encoder is None else s.encoder(x) for s in students]
        shared = x if all(h is x for h in inputs) else None
        h = self._node_models([s.node_model for s in students], inputs, shared, edge_index)
        if batch is None:
            batch = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
        # one readout call per student (pooling the embeddings side by side needs their
        # concatenation, and a copy of the split gradients in the backward)
        size = int(batch.max()) + 1 if batch.numel() else 0
        pooled = [s.pool(h[k], batch, size) for k, s in enumerate(students)]
        return [s.head(_module_dropout(s.dropout, p)) for s, p in zip(students, pooled)]

    def _node_models(self, models: Sequence[nn.Module], inputs: List[Tensor],
                     x0: Optional[Tensor], edge_index: Tensor,
                     hops: Optional[List[int]] = None) -> List[Tensor]:
        """Outputs of node-level ``models`` for per-model ``inputs`` (``x0``: the input
        shared by all of them, if any, whose first-layer aggregations may be cached).

        ``hops``: nodes per hop of a hop-ordered sampled subgraph; the outputs are then the
        seeds' rows only, each model computed on trimmed layers when its rows are
        independent (else on the whole subgraph).
        """
        n = inputs[0].size(0) if inputs else 0
        gnn = [k for k, m in enumerate(models) if isinstance(m, BasicGNN)]
        seeds = None if hops is None else hops[0]
        outs: List[Optional[Tensor]] = [None] * len(models)
        for k, m in enumerate(models):
            if isinstance(m, BasicGNN):
                continue
            if seeds is None:
                outs[k] = m(inputs[k], edge_index)
            elif _row_independent(m):  # graph-free: the seeds' rows are all it needs
                outs[k] = m(inputs[k][:seeds], edge_index)
            else:
                outs[k] = m(inputs[k], edge_index)[:seeds]
        if not gnn:
            return outs  # type: ignore[return-value]
        # each student's layers: trimmed to what its later layers need when its rows are
        # independent, else the whole subgraph (rows that share a structure share a plan)
        sizes: Dict[int, Optional[List[Tuple[int, int]]]] = {
            k: _layer_sizes(hops, models[k].num_layers)
            if hops is not None and _row_independent(models[k]) else None for k in gnn}
        g = self.graph(edge_index, n, inputs[gnn[0]].dtype, transpose=False)
        x0_rows: Dict[int, Optional[Tensor]] = {n: x0}

        def shared_input(rows: int) -> Optional[Tensor]:
            if rows not in x0_rows:  # one slice per row count: is_input() needs identity
                x0_rows[rows] = None if x0 is None else x0[:rows]
            return x0_rows[rows]

        h: Dict[int, Tensor] = {}
        for k in gnn:
            rows = n if sizes[k] is None else sizes[k][0][1]
            h[k] = shared_input(rows) if x0 is not None and inputs[k] is x0 \
                else _rows(inputs[k], rows)
        jk_xs: Dict[int, List[Tensor]] = {k: [] for k in gnn}
        depth = max(models[k].num_layers for k in gnn)
        for i in range(depth):
            active = [k for k in gnn if i < models[k].num_layers]
            plans: Dict[Optional[Tuple[int, int]], LayerPlan] = {}
            states = []
            for k in active:
                key = None if sizes[k] is None or sizes[k][i] == (n, n) else sizes[k][i]
                plan = plans.get(key)
                if plan is None:
                    layer = g if key is None else g.trimmed(*key)
                    if torch.is_grad_enabled():
                        layer.csr.transpose()  # cached: the backward reuses it
                    rows = n if key is None else key[1]
                    plan = plans[key] = LayerPlan(self, layer, shared_input(rows), first=i == 0,
                                                  trimmed=key is not None)
                conv = models[k].convs[i]
                states.append(CONV_ADAPTERS[type(conv)].begin(conv, h[k], plan))
            for plan in plans.values():
                plan.run()
            for k, state in zip(active, states):
                m = models[k]
                conv = m.convs[i]
                out = CONV_ADAPTERS[type(conv)].end(conv, state)
                if i < m.num_layers - 1 or m.jk_mode is not None:
                    out = self._post(m, i, out)
                    if hasattr(m, "jk"):
                        jk_xs[k].append(out)
                h[k] = out
        for k in gnn:
            m = models[k]
            if hasattr(m, "jk"):
                xs = jk_xs[k]
                if seeds is not None:  # trimmed layers have fewer rows, the seeds first
                    xs = [t[:seeds] for t in xs]
                out = m.jk(xs)
            else:
                out = h[k]
            if seeds is not None:
                out = out[:seeds]
            outs[k] = m.lin(out) if hasattr(m, "lin") else out
        return outs  # type: ignore[return-value]

    @staticmethod
    def _post(s: BasicGNN, i: int, x: Tensor) -> Tensor:
        """BasicGNN's activation / norm / dropout after conv ``i`` (same modules)."""
        norm = s.norms[i]
        if s.act is not None and s.act_first:
            x = s.act(x)
        x = norm(x, None, None) if s.supports_norm_batch else norm(x)
        if s.act is not None and not s.act_first:
            x = s.act(x)
        return _module_dropout(s.dropout, x)

    def __repr__(self) -> str:
        names = ", ".join(getattr(s, "name", None) or type(s).__name__ for s in self.students)
        g = self._graph
        cached = "none" if g is None else f"{g.csr!r}"
        level = "graph" if self.graph_level else "node"
        return (f"{self.__class__.__name__}(students=[{names}], level={level}, "
                f"cached_graph={cached})")
