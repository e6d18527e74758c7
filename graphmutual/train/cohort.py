"""Build a cohort of students for a loaded dataset (node or graph task)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from torch import nn

from graphmutual.data import GraphDataset
from graphmutual.mutual import MutualEnsemble
from graphmutual.nn import EDGE_FEATURE_STUDENTS, GraphStudent, build_student
from graphmutual.train import defaults as _defaults
from graphmutual.train.defaults import ResolvedConfig, TaskDefaults, defaults_for, resolve_config

# the defaults moved to graphmutual.train.defaults; these names stay importable from here
TASK_DEFAULTS = _defaults.TASK_DEFAULTS
task_kind = _defaults.task_kind
registered_task_kind = _defaults.registered_task_kind
resolve_default = _defaults.resolve_default


def task_defaults(dataset: GraphDataset) -> TaskDefaults:
    """The :class:`~graphmutual.train.defaults.TaskDefaults` of ``dataset`` (same as
    :func:`~graphmutual.train.defaults_for`)."""
    return defaults_for(dataset)


def unique_names(names: List[str]) -> List[str]:
    """``["gcn", "gcn", "gat"]`` → ``["gcn", "gcn_2", "gat"]``."""
    seen: dict = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


def build_students(
    dataset: GraphDataset,
    names: List[str],
    hidden: int,
    num_layers: int,
    dropout: Optional[float] = None,
    student_kwargs: Optional[Dict[str, Dict[str, Any]]] = None,
    pool: Optional[str] = None,
    edge_features: bool = False,
) -> List[nn.Module]:
    """Instantiate the named students for ``dataset``'s task.

    Node tasks get PyG models mapping features to class logits. Graph tasks get a
    :class:`~graphmutual.nn.GraphStudent` (node model → ``pool`` readout, by default the
    task's, :attr:`TaskDefaults.pool <graphmutual.train.defaults.TaskDefaults>` →
    MLP head); OGB molecules are first embedded by OGB's ``AtomEncoder``.  ``student_kwargs``
    maps a student name to extra keyword arguments of :func:`~graphmutual.nn.build_student` (e.g.
    ``{"gin": {"norm": "batch_norm"}}``).

    ``edge_features`` (graph tasks whose graphs have ``edge_attr``) lets the students that
    can read them (:data:`~graphmutual.nn.students.EDGE_FEATURE_STUDENTS`: GAT, and GIN as
    GINE) see the bonds: OGB's ``BondEncoder`` embeds OGB bond features, a linear layer
    embeds float edge features (e.g. MUTAG's one-hot bond types), both to width ``hidden``.
    The other students (GCN, GraphSAGE, MLP) are built as without it.
    """
    edge_in = _edge_feature_width(dataset) if edge_features else None
    if pool is None:
        pool = defaults_for(dataset).pool
    if edge_features and not any(n.lower() in EDGE_FEATURE_STUDENTS for n in names):
        raise ValueError(f"edge_features=True, but none of the students {list(names)} can "
                         f"read edge features (only {list(EDGE_FEATURE_STUDENTS)} can)")
    students: List[nn.Module] = []
    for name in names:
        extra = dict((student_kwargs or {}).get(name.lower(), {}))
        if dropout is not None:
            extra["dropout"] = dropout
        if dataset.task == "node":
            students.append(build_student(name, dataset.num_features, dataset.num_classes,
                                          hidden, num_layers, **extra))
            continue
        encoder = None
        in_channels = dataset.num_features
        if dataset.atom_features:
            from ogb.graphproppred.mol_encoder import AtomEncoder

            encoder, in_channels = AtomEncoder(hidden), hidden
        edge_encoder = None
        if edge_in is not None and name.lower() in EDGE_FEATURE_STUDENTS:
            edge_encoder, extra["edge_dim"] = _edge_encoder(dataset, edge_in, hidden), hidden
        node_model = build_student(name, in_channels, hidden, hidden, num_layers, **extra)
        head = {"dropout": dropout} if dropout is not None else {}
        students.append(GraphStudent(node_model, hidden, dataset.num_classes,
                                     pool=pool, encoder=encoder, name=name,
                                     edge_encoder=edge_encoder, **head))
    return students


def _edge_feature_width(dataset: GraphDataset) -> int:
    """The width of ``dataset``'s ``edge_attr``; a clear error when there is none."""
    if dataset.task != "graph":
        raise ValueError(f"edge features apply to graph tasks only; '{dataset.name}' is a "
                         f"{dataset.task} task")
    width = int(getattr(dataset.data, "num_edge_features", 0) or 0)
    if width == 0:
        raise ValueError(f"'{dataset.name}' has no edge features (edge_attr) to use")
    return width


def _edge_encoder(dataset: GraphDataset, width: int, hidden: int) -> nn.Module:
    if dataset.atom_features:  # OGB molecules: integer bond features
        from ogb.graphproppred.mol_encoder import BondEncoder

        return BondEncoder(hidden)
    return nn.Linear(width, hidden)


def _student_kwargs(config: ResolvedConfig) -> Dict[str, Dict[str, Any]]:
    """Per-student constructor arguments that come from the task defaults: GIN's
    normalisation and trainable epsilon and, on graph tasks, GAT's dropout
    (``config.dropout`` still wins) and GAT's number of heads."""
    kwargs: Dict[str, Dict[str, Any]] = {}
    if config.gin_norm != "none":
        kwargs["gin"] = {"norm": config.gin_norm}
    if config.gin_train_eps:
        kwargs.setdefault("gin", {})["train_eps"] = True
    gat: Dict[str, Any] = {}
    if config.gat_dropout is not None:
        gat["dropout"] = config.gat_dropout
    if config.gat_heads is not None:
        gat["heads"] = config.gat_heads
    if gat:
        kwargs["gat"] = gat
    return kwargs


def build_cohort(dataset: GraphDataset,
                 config: Union[ResolvedConfig, Any]) -> MutualEnsemble:
    """A :class:`~graphmutual.MutualEnsemble` for ``dataset`` as ``config`` describes it
    (a :class:`~graphmutual.train.TrainConfig`, resolved here, or a
    :class:`~graphmutual.train.defaults.ResolvedConfig`)."""
    if not isinstance(config, ResolvedConfig):
        config = resolve_config(config, dataset)
    students = build_students(
        dataset, list(config.students), config.hidden, config.num_layers, config.dropout,
        student_kwargs=_student_kwargs(config),
        pool=config.pool,
        edge_features=config.edge_features,
    )
    if len(students) == 1 and config.method != "independent":
        raise ValueError(
            f"method '{config.method}' needs at least 2 students; got only "
            f"{list(config.students)}"
        )
    return MutualEnsemble(students, names=unique_names([s.lower() for s in config.students]),
                          **config.ensemble_kwargs())
