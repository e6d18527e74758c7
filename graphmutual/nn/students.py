r"""Student models: thin wrappers over :mod:`torch_geometric.nn.models`.

**The student contract.** A student is any :class:`torch.nn.Module` whose forward accepts
the cohort's inputs and returns logits of shape ``[N, C]``:

* node classification: ``student(x, edge_index)`` → ``[num_nodes, C]``;
* graph classification: ``student(x, edge_index, batch=batch, edge_attr=edge_attr)`` →
  ``[num_graphs, C]``.

Every student of a cohort must return the same ``C``; :class:`~graphmutual.MutualEnsemble`
raises a clear error otherwise. The classes below follow PyG's constructor conventions
(``in_channels, hidden_channels, num_layers, out_channels``) and add a ``name``.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Final, Optional

from torch import Tensor, nn
from torch_geometric.nn import GINEConv, MessagePassing
from torch_geometric.nn import models as pyg_models


class MLP(pyg_models.MLP):
    r"""A graph-free student: :class:`torch_geometric.nn.models.MLP` that ignores the graph.

    Useful for graph-free deployment: it learns from its GNN peers during training and
    needs only node features at inference.
    """

    name = "mlp"

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        num_layers: int,
        out_channels: int,
        dropout: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            in_channels=in_channels,
            hidden_channels=hidden_channels,
            out_channels=out_channels,
            num_layers=num_layers,
            dropout=dropout,
            norm=kwargs.pop("norm", None),
            **kwargs,
        )

    def forward(self, x: Tensor, edge_index: Optional[Tensor] = None, *args, **kwargs) -> Tensor:
        kwargs.pop("edge_attr", None)
        kwargs.pop("edge_weight", None)
        return super().forward(x, batch=kwargs.get("batch"))


class GCN(pyg_models.GCN):
    """:class:`torch_geometric.nn.models.GCN` as a student (Kipf & Welling, 2017)."""

    name = "gcn"


class GAT(pyg_models.GAT):
    """:class:`torch_geometric.nn.models.GAT` as a student (Veličković et al., 2018).

    ``hidden_channels`` is the total width; it is split into ``heads`` heads.
    """

    name = "gat"


class GIN(pyg_models.GIN):
    """:class:`torch_geometric.nn.models.GIN` as a student (Xu et al., 2019)."""

    name = "gin"


class GINE(pyg_models.GIN):
    r"""GIN with edge features (Hu et al., 2020): :class:`~torch_geometric.nn.conv.GINEConv`
    layers, the GIN of the OGB molecule examples.

    .. math::
        h_v' = \mathrm{MLP}\Big((1 + \epsilon)\, h_v
        + \sum_{u \in \mathcal{N}(v)} \mathrm{ReLU}(h_u + W e_{uv})\Big)

    ``edge_dim`` is the width of the ``edge_attr`` passed to ``forward`` (``W`` maps it to
    each layer's input width). Built by ``build_student("gin", ..., edge_dim=D)``.
    """

    name = "gin"
    supports_edge_attr: Final[bool] = True

    def init_conv(self, in_channels: int, out_channels: int, **kwargs: Any) -> MessagePassing:
        # PyG's GIN builds the layer's MLP; only the convolution around it changes
        mlp = super().init_conv(in_channels, out_channels).nn
        return GINEConv(mlp, **kwargs)


class GraphSAGE(pyg_models.GraphSAGE):
    """:class:`torch_geometric.nn.models.GraphSAGE` as a student (Hamilton et al., 2017)."""

    name = "sage"


#: name → (class, default keyword arguments) of the built-in students.
STUDENTS: Dict[str, Callable[..., nn.Module]] = {
    "gcn": GCN,
    "gat": GAT,
    "gin": GIN,
    "mlp": MLP,
    "sage": GraphSAGE,
}

#: Students that can read edge features (``build_student(..., edge_dim=D)``): GIN becomes
#: :class:`GINE` (the bond embedding enters every message); GAT reads them only in its
#: attention scores, not in the messages. PyG's GCN, GraphSAGE and the MLP have no
#: edge-feature input.
EDGE_FEATURE_STUDENTS = ("gat", "gin")

#: Per-student defaults used by :func:`build_student` (the PyG examples' settings).
STUDENT_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "gcn": dict(dropout=0.5),
    "gat": dict(dropout=0.6, heads=8),
    "gin": dict(dropout=0.5),
    "mlp": dict(dropout=0.5),
    "sage": dict(dropout=0.5),
}


def build_student(
    name: str,
    in_channels: int,
    out_channels: int,
    hidden_channels: int = 64,
    num_layers: int = 2,
    edge_dim: Optional[int] = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a built-in student by name (``gcn``, ``gat``, ``gin``, ``mlp``, ``sage``).

    Keyword arguments override :data:`STUDENT_DEFAULTS` (e.g. ``dropout``, ``heads``).
    ``edge_dim`` (students in :data:`EDGE_FEATURE_STUDENTS` only) makes the student read
    ``edge_attr`` of that width: GAT through its attention, GIN as :class:`GINE`.
    """
    key = name.lower()
    if key not in STUDENTS:
        raise ValueError(f"unknown student '{name}'; choose from {sorted(STUDENTS)}")
    if edge_dim is not None:
        if key not in EDGE_FEATURE_STUDENTS:
            raise ValueError(f"student '{name}' cannot read edge features; only "
                             f"{list(EDGE_FEATURE_STUDENTS)} can (got edge_dim={edge_dim})")
        if isinstance(edge_dim, bool) or not isinstance(edge_dim, int) or edge_dim <= 0:
            raise ValueError(f"edge_dim must be a positive int (got {edge_dim!r})")
        kwargs["edge_dim"] = edge_dim
    if in_channels <= 0 or out_channels <= 0 or hidden_channels <= 0 or num_layers <= 0:
        raise ValueError(
            "in_channels, out_channels, hidden_channels and num_layers must be positive "
            f"(got {in_channels}, {out_channels}, {hidden_channels}, {num_layers})"
        )
    opts = {**STUDENT_DEFAULTS[key], **kwargs}
    if key != "gat":
        opts.pop("heads", None)
    cls = GINE if key == "gin" and edge_dim is not None else STUDENTS[key]
    student = cls(in_channels, hidden_channels, num_layers, out_channels, **opts)
    # recorded so that an exported student can be rebuilt by plain PyG (see train.export)
    student.init_kwargs = dict(in_channels=in_channels, hidden_channels=hidden_channels,
                               num_layers=num_layers, out_channels=out_channels, **opts)
    if key == "mlp":
        student.init_kwargs["norm"] = None
    return student
