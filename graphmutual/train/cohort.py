"""Build a cohort of students for a loaded dataset (node or graph task)."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from torch import nn

from graphmutual.data import DATASETS, GraphDataset, canonical_name
from graphmutual.mutual import PRESETS, MutualEnsemble
from graphmutual.nn import EDGE_FEATURE_STUDENTS, GraphStudent, build_student

#: Task defaults used when a :class:`~graphmutual.train.TrainConfig` field is ``None``.
#: ``gin_norm`` is the normalisation between a GIN student's layers (PyG's ``norm``).
#: ``divergence`` is GML's (DML keeps KL, its definition): the balanced forward/reverse
#: KL beat KL on validation on Cora and CiteSeer (10 seeds, check-node-divergence.md) and
#: tied it on Coauthor CS and Amazon Photo (check-divergence-cs.md, -photo.md), so only the
#: row-normalised Planetoid kind gets it; on graph tasks no divergence separated from KL
#: (ablation-mutag.md, ablation-molbace.md).
NODE_DEFAULTS = dict(lr=0.01, epochs=200, hidden=64, num_layers=2, patience=100,
                     batch_size=None, warmup=50, normalize_features=True, gin_norm="none",
                     divergence="balanced")
GRAPH_DEFAULTS = dict(lr=0.001, epochs=100, hidden=64, num_layers=3, patience=50,
                      batch_size=32, warmup=10, normalize_features=False, gin_norm="none",
                      divergence="kl")
# 256, not OGB's 300: GAT students split the width over 8 heads
OGB_MOL_DEFAULTS = dict(GRAPH_DEFAULTS, hidden=256, num_layers=5)
#: Row-normalised features are the Planetoid convention (and raw Cora features made GIN
#: unstable); on Amazon Photo they cost a lone GCN a large part of its *validation*
#: accuracy (one-split check), so other node datasets keep their raw features.
ROW_NORMALISED = ("cora", "citeseer", "pubmed")
#: Raw (unnormalised) node features: GIN's sum over neighbours (up to 1,434 on Amazon Photo)
#: diverges without normalisation, batch norm restores it, and on row-normalised Cora and
#: CiteSeer batch norm *hurts* GIN — so only raw-feature node datasets get it (validation
#: table: benchmarks/results/bench/check-gin-norm.md).
RAW_NODE_DEFAULTS = dict(NODE_DEFAULTS, normalize_features=False, gin_norm="batch_norm",
                         divergence="kl")


#: The task defaults of each kind of dataset (:func:`task_kind`).
TASK_DEFAULTS: Dict[str, dict] = {"node": NODE_DEFAULTS, "node-raw": RAW_NODE_DEFAULTS,
                                  "graph": GRAPH_DEFAULTS, "ogb-mol": OGB_MOL_DEFAULTS}


def task_kind(name: str, task: str, atom_features: bool = False) -> str:
    """Which :data:`TASK_DEFAULTS` entry a dataset gets: ``"node"`` (row-normalised
    Planetoid), ``"node-raw"`` (other node datasets), ``"graph"`` or ``"ogb-mol"``."""
    if task == "node":
        return "node" if name.lower() in ROW_NORMALISED else "node-raw"
    return "ogb-mol" if atom_features else "graph"


def task_defaults(dataset: GraphDataset) -> dict:
    """The defaults a :class:`~graphmutual.train.TrainConfig` ``None`` field takes on
    ``dataset`` (the shared dict: do not modify it)."""
    return TASK_DEFAULTS[task_kind(dataset.name, dataset.task, dataset.atom_features)]


def resolve_default(key: str, value: Any, method: str, task: Mapping[str, Any],
                    presets: Mapping[str, Mapping[str, Any]] = PRESETS) -> Any:
    """The value a :class:`~graphmutual.train.TrainConfig` field ``key`` set to ``value``
    takes for ``method`` under the task defaults ``task``: ``value`` itself unless it is
    ``None``; then the task's default (``divergence`` only for GML: DML is defined with
    KL), else the method's preset (``weighting``, ``entropy``), else ``None`` (resolved
    further down, e.g. a student's dropout).  The bench's cache key resolves with the same
    function (:mod:`graphmutual.bench.inherited`)."""
    if value is not None:
        return value
    if key == "divergence" and method != "gml":
        return "kl"
    if key in task:
        return task[key]
    return presets.get(method, {}).get(key)


def config_value(config, key: str, task: Mapping[str, Any]) -> Any:
    """:func:`resolve_default` of ``config.<key>`` for ``config.method``."""
    return resolve_default(key, getattr(config, key), config.method.lower(), task)


def registered_task_kind(name: str) -> str:
    """:func:`task_kind` of a registered dataset, read from the registry without loading
    it (``ValueError`` for an unknown name)."""
    spec = DATASETS[canonical_name(name)]
    # the bundled Cora loads under its source name, "cora"
    return task_kind(spec.source_name, spec.task, spec.family == "ogbg")


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
    pool: str = "mean",
    edge_features: bool = False,
) -> List[nn.Module]:
    """Instantiate the named students for ``dataset``'s task.

    Node tasks get PyG models mapping features to class logits. Graph tasks get a
    :class:`~graphmutual.nn.GraphStudent` (node model → ``pool`` readout, mean by default →
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
        students.append(GraphStudent(node_model, hidden, dataset.num_classes,
                                     pool=pool, encoder=encoder, name=name,
                                     dropout=extra.get("dropout", 0.5),
                                     edge_encoder=edge_encoder))
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


def build_cohort(dataset: GraphDataset, config) -> MutualEnsemble:
    """A :class:`~graphmutual.MutualEnsemble` for ``dataset`` as ``config`` describes it."""
    d = task_defaults(dataset)
    gin_norm = config_value(config, "gin_norm", d)
    if config.pool is not None and dataset.task != "graph":
        raise ValueError(f"pool={config.pool!r} applies to graph tasks only; "
                         f"'{dataset.name}' is a {dataset.task} task")
    students = build_students(
        dataset, config.students, config_value(config, "hidden", d),
        config_value(config, "num_layers", d), config.dropout,
        student_kwargs={"gin": {"norm": gin_norm}} if gin_norm != "none" else None,
        pool=config.pool or "mean",
        edge_features=config.edge_features,
    )
    method = config.method
    if len(students) == 1 and method != "independent":
        raise ValueError(
            f"method '{method}' needs at least 2 students; got only {config.students}"
        )
    return MutualEnsemble(
        students,
        method=method,
        weighting=config.weighting,
        entropy=config.entropy,
        entropy_mode=config.entropy_mode,
        divergence=config_value(config, "divergence", d),
        temperature=config.temperature,
        mimic_weight=config.mimic_weight,
        warmup=config_value(config, "warmup", d),
        t_min=config.t_min,
        t_max=config.t_max,
        schedule=config.schedule,
        renyi_alpha=config.renyi_alpha,
        balance=config.balance,
        names=unique_names([s.lower() for s in config.students]),
    )
