r"""Exact layer-wise full-neighbourhood inference for large graphs.

A full-batch forward of an :math:`L`-layer GNN holds every edge's messages of a layer at
once; a sampled forward is approximate. Layer-wise inference computes layer :math:`l` for
*all* nodes, one batch of destination nodes at a time, from the stored layer :math:`l-1`
embeddings of the batch and of its full in-neighbourhood:

.. math::
    H^{(l)}_{B} = f^{(l)}\big(H^{(l-1)}_{B \cup \mathcal{N}(B)},\; E_{\to B}\big)

where :math:`E_{\to B}` are all edges into the batch :math:`B`. Memory is two
``[N, hidden]`` embeddings plus one batch's subgraph; the result equals the full-batch
forward (up to floating-point summation order) because every supported layer computes a
node's output from the node itself and its in-edges only.

Supported: PyG :class:`~torch_geometric.nn.models.basic_gnn.BasicGNN` models (the GCN,
GAT, GIN and GraphSAGE students) built from ``GCNConv``, ``GATConv``, ``GATv2Conv``,
``GINConv``, ``SAGEConv`` or ``GraphConv`` with ``jk=None`` or ``"last"``, and
:class:`~torch_geometric.nn.models.MLP` (the graph-free student). ``GCNConv``'s symmetric
normalisation needs the *full-graph* degree of each source node, which a batch subgraph does
not have: it is computed once on the whole graph and passed as edge weights (the layer's
own normalisation is switched off while it runs), so GCN stays exact too.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GATv2Conv, GCNConv, GINConv, GraphConv, SAGEConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.nn.models import MLP
from torch_geometric.nn.models.basic_gnn import BasicGNN

from graphmutual.ops import CSR

#: layers whose output at node i depends on x_i and its in-edges only (exact batch by batch)
LOCAL_CONVS = (GCNConv, GATConv, GATv2Conv, GINConv, SAGEConv, GraphConv)


def check_layerwise(model: nn.Module) -> None:
    """Raise a clear error if ``model`` cannot be run layer by layer exactly."""
    if isinstance(model, MLP):
        return
    if not isinstance(model, BasicGNN):
        raise TypeError("layer-wise inference supports PyG BasicGNN models (GCN, GAT, GIN, "
                        f"GraphSAGE) and MLP; got {type(model).__name__}")
    if model.jk_mode not in (None, "last"):
        raise ValueError(f"layer-wise inference needs jk=None or 'last' (got {model.jk_mode!r})")
    if model.supports_norm_batch:
        raise ValueError("layer-wise inference cannot use graph-level norms (they need "
                         "statistics over all nodes of a graph)")
    for conv in model.convs:
        if not isinstance(conv, LOCAL_CONVS):
            raise ValueError(f"{type(conv).__name__} is not supported by layer-wise inference "
                             f"(supported: {', '.join(c.__name__ for c in LOCAL_CONVS)})")


def _gcn_key(conv: nn.Module) -> Optional[tuple]:
    if isinstance(conv, GCNConv) and conv.normalize:
        return ("gcn", bool(conv.improved), bool(conv.add_self_loops))
    return None


@contextmanager
def _no_normalize(conv: nn.Module) -> Iterator[None]:
    old = conv.normalize
    conv.normalize = False
    try:
        yield
    finally:
        conv.normalize = old


class LayerwiseInference:
    r"""Exact full-neighbourhood inference, batched over destination nodes, layer by layer.

    Builds the CSR of the graph once (and, for GCN layers, the full-graph normalised edge
    weights once) and reuses them for every call, every model and every epoch.

    Args:
        edge_index (Tensor): ``[2, E]`` edges of the whole graph (messages ``src -> dst``).
        num_nodes (int): number of nodes.
        batch_size (int): destination nodes per batch (default 4096).
        progress (bool): show a tqdm bar over layers x batches (default ``False``).

    Example::

        infer = LayerwiseInference(data.edge_index, data.num_nodes, batch_size=8192)
        logits = infer([gcn, gat, gin], data.x)   # [K, N, C], equals the full-batch forward
    """

    def __init__(self, edge_index: Tensor, num_nodes: int, batch_size: int = 4096,
                 progress: bool = False) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.edge_index = edge_index.cpu()
        self.num_nodes = int(num_nodes)
        self.batch_size = batch_size
        self.progress = progress
        self._graphs: dict = {}

    def _graph(self, key: Optional[tuple], dtype: torch.dtype) -> tuple[CSR, Optional[Tensor]]:
        """``(csr, edge weights in CSR order or None)`` of the graph a layer reads."""
        full = (key, dtype if key is not None else None)
        if full not in self._graphs:
            if key is None:
                self._graphs[full] = (CSR.from_edge_index(self.edge_index, self.num_nodes), None)
            else:
                _, improved, loops = key
                ei, w = gcn_norm(self.edge_index, None, self.num_nodes, improved, loops,
                                 "source_to_target", dtype)
                csr = CSR.from_edge_index(ei, self.num_nodes)
                self._graphs[full] = (csr, csr.edge_values(w))
        return self._graphs[full]

    def _batch(self, csr: CSR, weight: Optional[Tensor], b0: int, b1: int
               ) -> tuple[Tensor, Tensor, Optional[Tensor]]:
        """``(n_id, local edge_index, weights)`` of all edges into nodes ``b0 .. b1 - 1``;
        ``n_id`` starts with the batch itself."""
        rowptr = csr.rowptr
        e0, e1 = int(rowptr[b0]), int(rowptr[b1])
        src = csr.col[e0:e1].long()
        counts = (rowptr[b0 + 1:b1 + 1] - rowptr[b0:b1]).long()
        dst = torch.repeat_interleave(torch.arange(b1 - b0), counts, output_size=e1 - e0)
        inside = (src >= b0) & (src < b1)
        extra = torch.unique(src[~inside])
        local_src = torch.where(inside, src - b0,
                                (b1 - b0) + torch.searchsorted(extra, src).clamp(
                                    max=max(extra.numel() - 1, 0)))
        n_id = torch.cat([torch.arange(b0, b1), extra])
        w = None if weight is None else weight[e0:e1]
        return n_id, torch.stack([local_src, dst]), w

    @staticmethod
    def _layer(model: BasicGNN, i: int, x: Tensor, edge_index: Tensor,
               weight: Optional[Tensor], size: int) -> Tensor:
        conv = model.convs[i]
        if weight is not None:
            with _no_normalize(conv):
                h = conv(x, edge_index, edge_weight=weight)[:size]
        else:
            h = conv(x, edge_index)[:size]
        last = i == model.num_layers - 1
        if not last or model.jk_mode is not None:
            if model.act is not None and model.act_first:
                h = model.act(h)
            h = model.norms[i](h)
            if model.act is not None and not model.act_first:
                h = model.act(h)
        if last and hasattr(model, "lin"):
            h = model.lin(h)
        return h

    @torch.no_grad()
    def __call__(self, models: Union[nn.Module, Sequence[nn.Module]], x: Tensor) -> Tensor:
        """Outputs of one model (``[N, C]``) or of a cohort (``[K, N, C]``) on all nodes.

        Every model must be in ``eval()`` mode (dropout off), as in PyG's own inference.
        """
        single = isinstance(models, nn.Module)
        models = [models] if single else list(models)
        if not models:
            raise ValueError("no models given")
        if self.num_nodes == 0:
            raise ValueError("the graph has no nodes")
        if x.size(0) != self.num_nodes:
            raise ValueError(f"x has {x.size(0)} rows but the graph has {self.num_nodes} nodes")
        for m in models:
            check_layerwise(m)
            if m.training:
                raise ValueError(f"{type(m).__name__} is in training mode; call .eval() first "
                                 "(dropout would make inference random)")
        n, bs, dev = self.num_nodes, self.batch_size, x.device
        starts = list(range(0, n, bs))
        outs: list[Optional[Tensor]] = [None] * len(models)
        gnn = [k for k, m in enumerate(models) if not isinstance(m, MLP)]
        for k, m in enumerate(models):
            if isinstance(m, MLP):
                outs[k] = torch.cat([m(x[b:b + bs]) for b in starts])
        hs = {k: x for k in gnn}
        depth = max((models[k].num_layers for k in gnn), default=0)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=depth * len(starts), desc="layer-wise inference", leave=False)
        for i in range(depth):
            active = [k for k in gnn if models[k].num_layers > i]
            keys = {k: _gcn_key(models[k].convs[i]) for k in active}
            nxt: dict[int, list[Tensor]] = {k: [] for k in active}
            for b0 in starts:
                b1 = min(b0 + bs, n)
                cache: dict = {}
                for k in active:
                    key = (keys[k], hs[k].dtype if keys[k] else None)
                    if key not in cache:
                        csr, w = self._graph(keys[k], hs[k].dtype)
                        n_id, ei, ew = self._batch(csr, w, b0, b1)
                        cache[key] = (n_id.to(dev), ei.to(dev),
                                      None if ew is None else ew.to(dev))
                    n_id, ei, ew = cache[key]
                    nxt[k].append(self._layer(models[k], i, hs[k][n_id], ei, ew, b1 - b0))
                if bar is not None:
                    bar.update(1)
            for k in active:
                hs[k] = torch.cat(nxt[k])
                if models[k].num_layers == i + 1:
                    outs[k] = hs[k]
        if bar is not None:
            bar.close()
        return outs[0] if single else torch.stack(outs)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_nodes={self.num_nodes}, "
                f"num_edges={self.edge_index.size(1)}, batch_size={self.batch_size})")


def layerwise_inference(models: Union[nn.Module, Sequence[nn.Module]], x: Tensor,
                        edge_index: Tensor, batch_size: int = 4096) -> Tensor:
    """One-shot :class:`LayerwiseInference` (builds the CSR; keep the object to reuse it)."""
    return LayerwiseInference(edge_index, x.size(0), batch_size)(models, x)


__all__ = ["LOCAL_CONVS", "LayerwiseInference", "check_layerwise", "layerwise_inference"]
