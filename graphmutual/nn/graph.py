r"""Graph-level students: a node model, a global pooling and a classification head.

.. math::
    h_v = \mathrm{GNN}\big(\mathrm{enc}(x), \mathrm{enc}_E(e)\big)_v, \qquad
    z_G = \mathrm{head}\Big(\mathrm{pool}_{v \in G}\, h_v\Big)

The edge encoder :math:`\mathrm{enc}_E` and the edge input are optional: without them
(or when the node model cannot read edge features) the GNN sees ``x`` and the graph only.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

from graphmutual.nn.signature import graph_free_kwargs, is_graph_free

POOLS = {"mean": global_mean_pool, "add": global_add_pool, "sum": global_add_pool,
         "max": global_max_pool}


class GraphStudent(nn.Module):
    """Wrap a node-level model into a graph classifier.

    Args:
        node_model: maps ``(x, edge_index)`` to node embeddings ``[N, H]``.  A graph-free
            node model (:func:`~graphmutual.nn.signature.is_graph_free`, e.g. PyG's ``MLP``)
            is called with ``x`` only, plus ``batch=`` when its ``forward`` takes it (so
            ``MLP(norm="graph_norm")`` normalises per graph).
        hidden_channels: ``H``, the width of the node embeddings.
        out_channels: number of classes ``C``.
        pool: ``"mean"``, ``"add"``/``"sum"`` or ``"max"``.
        encoder: optional input encoder applied to ``x`` first (e.g. OGB's ``AtomEncoder``
            for integer atom features).
        edge_encoder: optional encoder of ``edge_attr`` (e.g. OGB's ``BondEncoder``); its
            output is passed to the node model as ``edge_attr``. Needs a node model that
            reads edge features (a PyG model with ``supports_edge_attr``, e.g.
            ``build_student("gin", ..., edge_dim=H)``).
        dropout: dropout before the head.
        name: display name (defaults to the node model's).
    """

    def __init__(
        self,
        node_model: nn.Module,
        hidden_channels: int,
        out_channels: int,
        pool: str = "mean",
        encoder: Optional[nn.Module] = None,
        dropout: float = 0.5,
        name: Optional[str] = None,
        edge_encoder: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown pooling '{pool}'; choose from {sorted(POOLS)}")
        if edge_encoder is not None and not getattr(node_model, "supports_edge_attr", False):
            raise ValueError(
                f"{type(node_model).__name__} does not read edge features, so an edge "
                "encoder would be unused; build the node model with edge_dim or drop it"
            )
        self.encoder = encoder
        self.edge_encoder = edge_encoder
        self.node_model = node_model
        self.graph_free = is_graph_free(node_model)
        self.pool_name = pool
        self.pool = POOLS[pool]
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(
            nn.Linear(hidden_channels, hidden_channels), nn.ReLU(),
            nn.Linear(hidden_channels, out_channels),
        )
        self.name = name or getattr(node_model, "name", node_model.__class__.__name__)

    def reset_parameters(self) -> None:
        for module in (self.encoder, self.edge_encoder, self.node_model):
            if module is not None and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        for layer in self.head:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        batch: Optional[Tensor] = None,
        edge_attr: Optional[Tensor] = None,
    ) -> Tensor:
        if self.encoder is not None:
            x = self.encoder(x)
        if batch is None:
            batch = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
        if self.graph_free:
            h = self.node_model(x, **graph_free_kwargs(self.node_model, {"batch": batch}))
        elif self.edge_encoder is None:
            h = self.node_model(x, edge_index)
        elif edge_attr is None:
            raise ValueError(f"student '{self.name}' reads edge features but got no edge_attr")
        else:
            h = self.node_model(x, edge_index, edge_attr=self.edge_encoder(edge_attr))
        return self.head(self.dropout(self.pool(h, batch)))

    def __repr__(self) -> str:
        edges = ", edge_features=True" if self.edge_encoder is not None else ""
        return (f"{self.__class__.__name__}({self.node_model!r}, pool={self.pool_name}"
                f"{edges}, name={self.name})")
