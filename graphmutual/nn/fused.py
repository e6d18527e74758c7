r"""A fused cohort: K node-level students that share one graph, run in one pass per layer.

:class:`FusedCohort` runs the students of a cohort in lock-step, layer by layer, with **the
students' own modules and parameters** (nothing is copied, so state dicts, optimisers and
export keep working). Only the message passing is replaced: every layer aggregates all
students at once with :func:`graphmutual.ops.multi_spmm` on one cached CSR.

**One structure for every student.** For a graph with edges :math:`\mathcal{E}` (duplicates
allowed) the cached CSR holds the non-loop edges plus exactly one self-loop per node (sorted
by destination, transposed once for the backward). Every supported convolution is a
weighted sum over this structure, with its own weight per edge:

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
``multi_spmm`` call over ``[N, K', F]`` features with ``[E, K']`` edge weights.

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
* :class:`graphmutual.nn.MLP` (graph-free; called as it is).

Not supported: GraphSAGE and other convolutions, ``GATv2``, edge weights / edge features,
bipartite or sampled (``num_sampled_*``) inputs, graph-level wrappers
(:class:`~graphmutual.nn.GraphStudent`), ``torch.jit``-scripted students.

Dropout: the fused path applies dropout in the same places as the students (after each
hidden layer's activation, and GAT's attention dropout), using each module's ``training``
flag; the masks are drawn in a different order, so training-mode outputs only agree in
distribution.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn.conv import GATConv, GCNConv, GINConv
from torch_geometric.nn.models import MLP as PyGMLP
from torch_geometric.nn.models.basic_gnn import BasicGNN

from graphmutual.nn.students import MLP as GraphFreeMLP
from graphmutual.ops import CSR, edge_softmax, multi_spmm

__all__ = ["FusedCohort", "fused_support"]

_CONVS = (GCNConv, GATConv, GINConv)
#: Largest fraction of non-zero input features for which the first layer runs on a sparse
#: copy of ``x`` (see the module docs); denser inputs stay dense.
SPARSE_INPUT_MAX_DENSITY = 0.1


def _is_lazy(module: nn.Module) -> bool:
    return any(isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters())


def fused_support(student: nn.Module) -> Optional[str]:
    """Why ``student`` cannot run in a :class:`FusedCohort` (``None`` if it can)."""
    if isinstance(student, GraphFreeMLP):
        return None
    if isinstance(student, torch.jit.ScriptModule):
        return "scripted modules are not supported"
    if not isinstance(student, BasicGNN):
        return f"{type(student).__name__} is not a PyG BasicGNN (GCN/GAT/GIN) or the MLP"
    if _is_lazy(student):
        return "lazy (uninitialised) parameters"
    if type(student).forward is not BasicGNN.forward:
        return f"{type(student).__name__} overrides forward()"
    if len(student.convs) != student.num_layers or len(student.norms) != student.num_layers:
        return "unexpected number of layers"
    for conv in student.convs:
        if type(conv) not in _CONVS:
            return f"convolution {type(conv).__name__} is not supported"
        if getattr(conv, "aggr", None) != "add" or conv.flow != "source_to_target":
            return "only sum aggregation with source_to_target flow is supported"
        if conv.node_dim not in (0, -2) or conv.decomposed_layers != 1:
            return "unsupported MessagePassing options"
        if isinstance(conv, GCNConv) and not (conv.normalize and conv.add_self_loops):
            return "GCNConv needs normalize=True and add_self_loops=True"
        if isinstance(conv, GATConv) and (conv.lin is None or not conv.add_self_loops
                                          or conv.edge_dim is not None):
            return "GATConv needs integer in_channels, add_self_loops=True, edge_dim=None"
    return None


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

    def matches(self, edge_index: Tensor, num_nodes: int) -> bool:
        return (self.edge_index is edge_index and self.version == edge_index._version
                and self.num_nodes == num_nodes)


def _build_graph(edge_index: Tensor, num_nodes: int, dtype: torch.dtype) -> _Graph:
    with torch.no_grad():
        src, dst = edge_index[0], edge_index[1]
        is_loop = src == dst
        n_raw_loops = torch.bincount(src[is_loop], minlength=num_nodes)
        keep = edge_index[:, ~is_loop]
        loops = torch.arange(num_nodes, device=edge_index.device, dtype=edge_index.dtype)
        ei = torch.cat([keep, loops.unsqueeze(0).expand(2, -1)], dim=1)
        csr = CSR.from_edge_index(ei, num_nodes)
        csr.transpose()  # cached: the backward of every aggregation reuses it
        deg = csr.rowptr[1:] - csr.rowptr[:-1]
        row = torch.repeat_interleave(torch.arange(num_nodes, device=ei.device), deg)
        col = csr.col.long()
        loop = (col == row).to(dtype)
        dis = deg.to(dtype).pow(-0.5)  # every node has its loop: deg >= 1
        gcn = dis[row] * dis[col]
        gin = 1.0 - loop + loop * n_raw_loops.to(dtype)[row]
    return _Graph(edge_index, edge_index._version, num_nodes, csr, row, loop, gcn, gin)


def _mlp_after_first(mlp: PyGMLP, h: Tensor) -> Tensor:
    """``mlp`` applied to ``h`` = the output of its first linear layer (the rest of it).

    The first layer is swapped for an identity for this call only, so every later module
    (activation, norm, dropout, further layers) is the MLP's own, called by its own forward.
    """
    first = mlp.lins[0]
    mlp.lins[0] = nn.Identity()
    try:
        return mlp(h)
    finally:
        mlp.lins[0] = first


class _Requests:
    """Aggregation requests of one layer, grouped by per-student width into one call each."""

    def __init__(self) -> None:
        self.items: List[Tuple[Tensor, Tensor]] = []  # ([N, K, F] features, [E, K] weights)

    def add(self, x: Tensor, w: Tensor) -> int:
        self.items.append((x, w))
        return len(self.items) - 1

    def run(self, csr: CSR) -> List[Tensor]:
        groups: Dict[int, List[int]] = {}
        for i, (x, _) in enumerate(self.items):
            groups.setdefault(x.size(-1), []).append(i)
        out: List[Optional[Tensor]] = [None] * len(self.items)
        for idx in groups.values():
            xs = [self.items[i][0] for i in idx]
            ws = [self.items[i][1] for i in idx]
            x = xs[0] if len(xs) == 1 else torch.cat(xs, dim=1)
            w = ws[0] if len(ws) == 1 else torch.cat(ws, dim=1)
            y = multi_spmm(csr, x.contiguous(), w)
            ks = [t.size(1) for t in xs]
            for i, part in zip(idx, y.split(ks, dim=1)):
                out[i] = part
        return out  # type: ignore[return-value]


class FusedCohort:
    """Run node-level GCN/GAT/GIN/MLP students together with one aggregation pass per layer.

    Not an :class:`~torch.nn.Module`: it holds no parameters, only references to the
    students (whose ``training`` flags it follows) and a cache of the last graph.

    Args:
        students: the student modules, all supported (see :func:`fused_support`); use
            :meth:`try_build` to get ``None`` instead of an error.

    Call it as ``cohort(x, edge_index)``; it returns the list of the students' logits.
    """

    def __init__(self, students: Sequence[nn.Module]) -> None:
        students = list(students)
        for i, s in enumerate(students):
            why = fused_support(s)
            if why is not None:
                raise ValueError(f"student {i} ({type(s).__name__}) cannot be fused: {why}")
        self.students: List[nn.Module] = students
        self._graph: Optional[_Graph] = None

    @classmethod
    def try_build(cls, students: Sequence[nn.Module]) -> Optional[FusedCohort]:
        """A :class:`FusedCohort`, or ``None`` when any student is not supported."""
        students = list(students)
        if not students or any(fused_support(s) is not None for s in students):
            return None
        return cls(students)

    # ------------------------------------------------------------------ caches
    def clear_cache(self) -> None:
        """Forget the cached graph structure and first-layer aggregations."""
        self._graph = None

    def graph(self, edge_index: Tensor, num_nodes: int, dtype: torch.dtype) -> _Graph:
        """The cached structure of ``edge_index`` (rebuilt when the tensor changes)."""
        g = self._graph
        if g is None or not g.matches(edge_index, num_nodes) or g.gcn.dtype != dtype \
                or g.csr.device != edge_index.device:
            g = self._graph = _build_graph(edge_index, num_nodes, dtype)
        return g

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
        if kind not in self._x_cache(g, x):
            with torch.no_grad():
                w = g.gcn if kind == "gcn" else g.gin
                g.x_cache[kind] = multi_spmm(g.csr, x.unsqueeze(1).contiguous(),
                                             w.unsqueeze(1)).squeeze(1)
        return g.x_cache[kind]

    def _sparse_input(self, g: _Graph, x: Tensor) -> Optional[Tensor]:
        """Cached sparse CSR copy of a constant input ``x`` that is sparse enough, else None."""
        if x.requires_grad or x.layout != torch.strided or not x.is_floating_point():
            return None
        if "sparse" not in self._x_cache(g, x):
            nnz = int(torch.count_nonzero(x)) if x.numel() else 0
            dense = x.numel() == 0 or nnz > SPARSE_INPUT_MAX_DENSITY * x.numel()
            with warnings.catch_warnings():  # "sparse CSR support is in beta"
                warnings.simplefilter("ignore", UserWarning)
                g.x_cache["sparse"] = None if dense else x.detach().to_sparse_csr()
        return g.x_cache["sparse"]

    @staticmethod
    def _sparse_linear(xs: Tensor, lin: nn.Module, bias: bool = True) -> Tensor:
        r""":math:`\mathbf{X}W^\top (+ b)` for a sparse CSR ``xs`` and a linear layer."""
        out = torch.sparse.mm(xs, lin.weight.t())
        return out + lin.bias if bias and lin.bias is not None else out

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_graph"] = None  # caches are not worth pickling
        return state

    # ----------------------------------------------------------------- forward
    def __call__(self, x: Tensor, edge_index: Tensor) -> List[Tensor]:
        return self.forward(x, edge_index)

    def forward(self, x: Tensor, edge_index: Tensor) -> List[Tensor]:
        """Logits ``[N, C]`` of every student (in order) for node features ``x``."""
        if x.dim() != 2:
            raise ValueError(f"x must be [N, F], got {tuple(x.shape)}")
        n = x.size(0)
        gnn = [k for k, s in enumerate(self.students) if isinstance(s, BasicGNN)]
        outs: List[Optional[Tensor]] = [None] * len(self.students)
        for k, s in enumerate(self.students):
            if k not in gnn:
                outs[k] = s(x, edge_index)
        if not gnn:
            return outs  # type: ignore[return-value]
        g = self.graph(edge_index, n, x.dtype)
        h: Dict[int, Tensor] = {k: x for k in gnn}
        jk_xs: Dict[int, List[Tensor]] = {k: [] for k in gnn}
        depth = max(self.students[k].num_layers for k in gnn)
        for i in range(depth):
            active = [k for k in gnn if i < self.students[k].num_layers]
            new = self._layer(i, active, h, x, g)
            for k in active:
                s = self.students[k]
                out = new[k]
                if i < s.num_layers - 1 or s.jk_mode is not None:
                    out = self._post(s, i, out)
                    if hasattr(s, "jk"):
                        jk_xs[k].append(out)
                h[k] = out
        for k in gnn:
            s = self.students[k]
            out = s.jk(jk_xs[k]) if hasattr(s, "jk") else h[k]
            outs[k] = s.lin(out) if hasattr(s, "lin") else out
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
        return s.dropout(x)

    def _layer(self, i: int, active: List[int], h: Dict[int, Tensor], x0: Tensor,
               g: _Graph) -> Dict[int, Tensor]:
        """Conv ``i`` of every active student, with one aggregation call per width."""
        n = x0.size(0)
        req = _Requests()
        finish = {}  # k -> callable(aggregated) -> conv output
        gat: List[Tuple[int, GATConv, Tensor, Tensor, Tensor, Optional[Tensor]]] = []
        xs = self._sparse_input(g, x0) if i == 0 else None
        for k in active:
            conv = self.students[k].convs[i]
            xk = h[k]
            sparse = xs is not None and xk is x0
            if isinstance(conv, GCNConv) and sparse:
                r = req.add(self._sparse_linear(xs, conv.lin, bias=False).unsqueeze(1),
                            g.gcn.unsqueeze(1))
                finish[k] = (r, conv, "gcn_bias", None)
            elif isinstance(conv, GINConv) and sparse and isinstance(conv.nn, PyGMLP):
                w = g.gin + g.loop * (1 + conv.eps)
                lin0 = conv.nn.lins[0]
                r = req.add(self._sparse_linear(xs, lin0, bias=False).unsqueeze(1),
                            w.unsqueeze(1))
                finish[k] = (r, conv, "gin_first", lin0.bias)
            elif isinstance(conv, GCNConv):
                cached = self._input_aggregate(g, x0, "gcn") if i == 0 and xk is x0 else None
                if cached is not None:
                    finish[k] = (None, conv, "gcn_post", cached)
                elif conv.in_channels <= conv.out_channels:
                    r = req.add(xk.unsqueeze(1), g.gcn.unsqueeze(1))
                    finish[k] = (r, conv, "gcn_post", None)
                else:
                    r = req.add(conv.lin(xk).unsqueeze(1), g.gcn.unsqueeze(1))
                    finish[k] = (r, conv, "gcn_bias", None)
            elif isinstance(conv, GINConv):
                cached = self._input_aggregate(g, x0, "sum") if i == 0 and xk is x0 else None
                if cached is not None:
                    finish[k] = (None, conv, "gin", cached + (1 + conv.eps) * x0)
                else:
                    w = g.gin + g.loop * (1 + conv.eps)
                    r = req.add(xk.unsqueeze(1), w.unsqueeze(1))
                    finish[k] = (r, conv, "gin", None)
            else:  # GATConv
                hh, c = conv.heads, conv.out_channels
                z = (self._sparse_linear(xs, conv.lin, bias=False) if sparse
                     else conv.lin(xk)).view(n, hh, c)
                a_src = (z * conv.att_src).sum(-1)
                a_dst = (z * conv.att_dst).sum(-1)
                res = conv.res(xk) if conv.res is not None else None
                gat.append((k, conv, z, a_src, a_dst, res))
        if gat:
            self._attention(gat, g, req, finish)
        aggs = req.run(g.csr)
        new: Dict[int, Tensor] = {}
        for k in active:
            r, conv, how, extra = finish[k]
            agg = aggs[r] if r is not None else None
            if how == "gcn_post":
                base = extra if agg is None else agg.squeeze(1)
                out = conv.lin(base)
                new[k] = out + conv.bias if conv.bias is not None else out
            elif how == "gcn_bias":
                out = agg.squeeze(1)
                new[k] = out + conv.bias if conv.bias is not None else out
            elif how == "gin":
                new[k] = conv.nn(extra if agg is None else agg.squeeze(1))
            elif how == "gin_first":  # the MLP's first linear map was applied already
                out = agg.squeeze(1)
                new[k] = _mlp_after_first(conv.nn, out + extra if extra is not None else out)
            else:  # gat
                out = agg.reshape(n, -1) if conv.concat else agg.mean(dim=1)
                if extra is not None:
                    out = out + extra
                new[k] = out + conv.bias if conv.bias is not None else out
        return new

    @staticmethod
    def _attention(gat: list, g: _Graph, req: _Requests, finish: dict) -> None:
        """Attention weights of all GAT heads with one gather and one edge softmax."""
        col, row = g.csr.col, g.row
        heads = [conv.heads for (_, conv, *_) in gat]
        src = torch.cat([a for (_, _, _, a, _, _) in gat], dim=1)  # [N, sum H]
        dst = torch.cat([a for (_, _, _, _, a, _) in gat], dim=1)
        score = src.index_select(0, col) + dst.index_select(0, row)  # [E, sum H]
        slopes = {conv.negative_slope for (_, conv, *_) in gat}
        if len(slopes) == 1:
            score = F.leaky_relu(score, slopes.pop())
        else:
            score = torch.cat([F.leaky_relu(part, conv.negative_slope) for part, (_, conv, *_)
                               in zip(score.split(heads, dim=1), gat)], dim=1)
        alpha = edge_softmax(score, g.csr)
        for part, (k, conv, z, _, _, res) in zip(alpha.split(heads, dim=1), gat):
            part = F.dropout(part, p=conv.dropout, training=conv.training)
            r = req.add(z, part)
            finish[k] = (r, conv, "gat", res)

    def __repr__(self) -> str:
        names = ", ".join(getattr(s, "name", None) or type(s).__name__ for s in self.students)
        g = self._graph
        cached = "none" if g is None else f"{g.csr!r}"
        return f"{self.__class__.__name__}(students=[{names}], cached_graph={cached})"
