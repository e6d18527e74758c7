"""The task defaults, and the one place where a configuration is resolved.

A :class:`~graphmutual.train.TrainConfig` field left at ``None`` means "the task's default".
:func:`resolve_config` turns a config into a frozen :class:`ResolvedConfig` once, with every
value concrete, and that object is what the cohort builder, the training tasks, the trainer
and the bench cache key read.  :func:`defaults_for` gives the same defaults to a user's own
training loop::

    from graphmutual import MutualEnsemble
    from graphmutual.train import defaults_for

    d = defaults_for("cora")                    # or a loaded GraphDataset
    cohort = MutualEnsemble(students, **d.ensemble_kwargs("gml"))
    optimizer = torch.optim.Adam(cohort.parameters(), lr=d.lr, weight_decay=d.weight_decay)

Each default and the evidence for it (validation tables under ``benchmarks/results/bench``):

========================  ========  ========  ==========  ===========================
setting                   node      node-raw  graph       ogb-mol
========================  ========  ========  ==========  ===========================
lr                        0.01      0.01      0.001       0.001
epochs                    200       200       100         50
hidden                    64        64        64          64
num_layers                2         2         3           3
patience                  100       100       50          50
batch_size                full      full      32          32
warmup (mimicry ramp)     50        50        10          10
normalize_features        yes       no        no          no
gin_norm                  none      batch     batch       batch
gat_dropout               (0.6)     (0.6)     0.1         0.1
gat_heads                 (8)       (8)       4           4
divergence (GML)          balanced  kl        kl          kl
pool                      --        --        mean        mean
========================  ========  ========  ==========  ===========================

* ``node`` = Planetoid (Cora, CiteSeer, PubMed): row-normalised features, as in Kipf &
  Welling 2017 (raw Cora features made GIN unstable).  On Amazon Photo row normalisation
  cost a lone GCN a large part of its validation accuracy (one-split check), so the other
  node datasets (``node-raw``) keep raw features.
* ``gin_norm``: GIN's sum over neighbours (up to 1,434 on Amazon Photo) diverges on raw
  features without normalisation and batch norm restores it; on row-normalised Cora and
  CiteSeer batch norm *hurts* GIN (``check-gin-norm.md``).
* ``divergence`` is GML's (DML keeps KL, its definition): the balanced forward/reverse KL
  beat KL on validation on Cora and CiteSeer (10 seeds, ``check-node-divergence.md``) and
  tied it on Coauthor CS and Amazon Photo (``check-divergence-cs.md``, ``-photo.md``); on
  graph tasks no divergence separated from KL (``ablation-mutag.md``,
  ``ablation-molbace.md``).
* graph tasks (``benchmarks/results/reference/README.md``, validation, one change at a
  time from a plain-PyG recipe run side by side): batch norm in GIN (MUTAG 90.00 -> 95.29;
  it is what closed the gap to plain PyG on molbace and molhiv); GAT's dropout 0.1 instead
  of PyG's 0.6, which PyG's GAT also applies to the attention (ENZYMES folds 0-2: 40.74 ->
  66.05; MUTAG ties); OGB molecules the small recipe, 64 x 3 for 50 epochs (the published
  small GIN, 78.35 on molhiv, beats OGB's 300 x 5, 75.58; the best validation epochs fell
  around 33 of 50 on molbace).  The combination was not run as a whole.  The OGB-sized
  configuration (300 x 5, bond features, 100 epochs) is
  ``benchmarks/configs/graph-ogb-molhiv-gpu.yaml``.
* ``weighting`` and ``entropy`` come from the method's preset
  (:data:`graphmutual.mutual.PRESETS`: GML adaptive ALW with entropy 0.1, DML uniform
  peers, independent none); ``t_min`` is :data:`graphmutual.mutual.alw.DEFAULT_T_MIN`.
* ``gat_heads``: node tasks keep the GAT student's 8 heads (``None``; the GAT paper's).
  Graph tasks use 4: GAT alone, 8 / 4 / 2 heads, paired by fold or seed, validation
  difference of 4 heads from 8 (x100, mean +- standard error): MUTAG 0.00 +- 1.52 and
  ENZYMES -0.93 +- 1.24 (10 folds), ogbg-molbace ROC-AUC +0.89 +- 0.35 (5 seeds), all
  within noise; 2 heads lost on ENZYMES (-3.15 +- 1.20) (``check-gat-heads-paired.md``).
  In the GML cohort (MUTAG, ogbg-molbace) the GAT, the best student and the ensemble
  tied 8 heads on validation too (``check-gat-heads-gml-paired.md``).
  Four heads halve the last GAT layer, which averages ``heads`` x 64 outputs: a K=3
  GCN+GAT+GIN cohort step on molhiv costs about 12 % less CPU time
  (``benchmarks/results/graph_cohort_cpu.md``).
* ``dropout`` ``None`` keeps each student's own default
  (:data:`graphmutual.nn.students.STUDENT_DEFAULTS`: GAT 0.6, the others 0.5).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from graphmutual.mutual import PRESETS
from graphmutual.mutual.alw import DEFAULT_T_MAX, DEFAULT_T_MIN

#: Planetoid datasets: row-normalised features and the balanced divergence for GML.
ROW_NORMALISED = ("cora", "citeseer", "pubmed")


@dataclass(frozen=True)
class TaskDefaults:
    """The training defaults of one kind of dataset (see the module docstring's table).

    ``batch_size`` ``None`` = full-batch training (node tasks); ``pool`` ``None`` = no
    readout (node tasks).  ``eval_batch_size`` is the smallest evaluation batch of a
    mini-batched task (evaluation needs no gradients, so larger batches are cheaper).
    """

    kind: str
    lr: float
    epochs: int
    hidden: int
    num_layers: int
    patience: int
    batch_size: Optional[int]
    warmup: int
    normalize_features: bool
    gin_norm: str
    divergence: str
    pool: Optional[str] = None
    gat_dropout: Optional[float] = None
    gat_heads: Optional[int] = None
    eval_batch_size: int = 256
    weight_decay: float = 5e-4
    t_min: float = DEFAULT_T_MIN
    t_max: float = DEFAULT_T_MAX

    def get(self, key: str, default: Any = None) -> Any:
        """``self.<key>`` when it is a default this object holds, else ``default``."""
        return getattr(self, key) if key in _TASK_FIELDS else default

    def __contains__(self, key: str) -> bool:
        return key in _TASK_FIELDS

    def __getitem__(self, key: str) -> Any:
        if key not in _TASK_FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def ensemble_kwargs(self, method: str = "gml") -> Dict[str, Any]:
        """Keyword arguments of :class:`~graphmutual.MutualEnsemble` that reproduce what
        ``graphmutual train --method METHOD`` uses on this kind of dataset."""
        method = method.lower()
        if method not in PRESETS:
            raise ValueError(f"unknown method '{method}'; choose one of {sorted(PRESETS)}")
        return dict(method=method, divergence=self.divergence if method == "gml" else "kl",
                    warmup=self.warmup, t_min=self.t_min, t_max=self.t_max,
                    **PRESETS[method])


_TASK_FIELDS = frozenset(f.name for f in dataclasses.fields(TaskDefaults)) - {"kind"}

_NODE = TaskDefaults(kind="node", lr=0.01, epochs=200, hidden=64, num_layers=2, patience=100,
                     batch_size=None, warmup=50, normalize_features=True, gin_norm="none",
                     divergence="balanced")
_GRAPH = TaskDefaults(kind="graph", lr=0.001, epochs=100, hidden=64, num_layers=3,
                      patience=50, batch_size=32, warmup=10, normalize_features=False,
                      gin_norm="batch_norm", divergence="kl", pool="mean",
                      gat_dropout=0.1, gat_heads=4)

#: The task defaults of each kind of dataset (:func:`task_kind`).  Read-only by contract.
TASK_DEFAULTS: Dict[str, TaskDefaults] = {
    "node": _NODE,
    "node-raw": dataclasses.replace(_NODE, kind="node-raw", normalize_features=False,
                                    gin_norm="batch_norm", divergence="kl"),
    "graph": _GRAPH,
    "ogb-mol": dataclasses.replace(_GRAPH, kind="ogb-mol", epochs=50),
}


def task_kind(name: str, task: str, atom_features: bool = False) -> str:
    """Which :data:`TASK_DEFAULTS` entry a dataset gets: ``"node"`` (row-normalised
    Planetoid), ``"node-raw"`` (other node datasets), ``"graph"`` or ``"ogb-mol"``."""
    if task == "node":
        return "node" if name.lower() in ROW_NORMALISED else "node-raw"
    return "ogb-mol" if atom_features else "graph"


def registered_task_kind(name: str) -> str:
    """:func:`task_kind` of a registered dataset, read from the registry without loading
    it (``ValueError`` for an unknown name)."""
    from graphmutual.data import DATASETS, canonical_name

    spec = DATASETS[canonical_name(name)]
    # the bundled Cora loads under its source name, "cora"
    return task_kind(spec.source_name, spec.task, spec.family == "ogbg")


def defaults_for(dataset: Union[str, Any]) -> TaskDefaults:
    """The defaults ``graphmutual train`` uses on ``dataset`` (a registered name or a
    loaded :class:`~graphmutual.data.GraphDataset`); see the module docstring."""
    if isinstance(dataset, str):
        return TASK_DEFAULTS[registered_task_kind(dataset)]
    return TASK_DEFAULTS[task_kind(dataset.name, dataset.task, dataset.atom_features)]


def resolve_default(key: str, value: Any, method: str, task: Mapping[str, Any],
                    presets: Mapping[str, Mapping[str, Any]] = PRESETS) -> Any:
    """The value a :class:`~graphmutual.train.TrainConfig` field ``key`` set to ``value``
    takes for ``method`` under the task defaults ``task``: ``value`` itself unless it is
    ``None``; then the task's default (``divergence`` only for GML: DML is defined with
    KL), else the method's preset (``weighting``, ``entropy``), else ``None``.  The one rule;
    :func:`resolve_config` and the bench's cache key (:mod:`graphmutual.bench.inherited`)
    both apply it."""
    if value is not None:
        return value
    if key == "divergence" and method != "gml":
        return "kl"
    if key in task:
        return task[key]
    return presets.get(method, {}).get(key)


@dataclass(frozen=True)
class ResolvedConfig:
    """A :class:`~graphmutual.train.TrainConfig` with every default resolved for one dataset.

    Built once by :func:`resolve_config`; every field is concrete except where ``None`` has
    a meaning of its own: ``batch_size`` and ``pool`` (``None`` on node tasks: full batch,
    no readout), ``dropout`` (each student's own default), ``root`` (the data package's
    default root, ``$GRAPHMUTUAL_DATA``), ``threads`` (leave torch's setting) and
    ``output`` (write nothing).
    """

    dataset: str
    kind: str
    task: str
    root: Optional[str]
    students: Tuple[str, ...]
    method: str
    divergence: str
    temperature: float
    mimic_weight: float
    warmup: int
    entropy: float
    entropy_mode: str
    weighting: str
    t_min: float
    t_max: float
    schedule: str
    renyi_alpha: float
    balance: float
    epochs: int
    lr: float
    weight_decay: float
    hidden: int
    num_layers: int
    dropout: Optional[float]
    gin_norm: str
    gat_dropout: Optional[float]
    gat_heads: Optional[int]
    pool: Optional[str]
    edge_features: bool
    gin_train_eps: bool
    transductive: bool
    node_mimic: float
    view_drop: float
    alw_holdout: float
    boost: float
    batch_size: Optional[int]
    eval_batch_size: Optional[int]
    fanout: Optional[Tuple[int, ...]]
    patience: int
    seeds: Tuple[int, ...]
    normalize_features: bool
    device: str
    threads: Optional[int]
    deterministic: bool
    checkpoint_every: int
    output: Optional[str]
    progress: bool

    def to_dict(self) -> Dict[str, Any]:
        out = dataclasses.asdict(self)
        out["students"], out["seeds"] = list(self.students), list(self.seeds)
        out["fanout"] = list(self.fanout) if self.fanout else None
        return out

    def ensemble_kwargs(self) -> Dict[str, Any]:
        """The :class:`~graphmutual.MutualEnsemble` keyword arguments of this run."""
        keys = ("method", "weighting", "entropy", "entropy_mode", "divergence", "temperature",
                "mimic_weight", "warmup", "t_min", "t_max", "schedule", "renyi_alpha",
                "balance")
        return {k: getattr(self, k) for k in keys}


def resolve_values(values: Mapping[str, Any], method: str, task: Mapping[str, Any],
                   presets: Mapping[str, Mapping[str, Any]] = PRESETS) -> Dict[str, Any]:
    """:func:`resolve_default` applied to every ``key: value`` of ``values``."""
    return {k: resolve_default(k, v, method, task, presets) for k, v in values.items()}


def resolve_config(config: Any, dataset: Any) -> ResolvedConfig:
    """Resolve ``config`` (a :class:`~graphmutual.train.TrainConfig`) for ``dataset`` (a
    loaded :class:`~graphmutual.data.GraphDataset`) into a :class:`ResolvedConfig`."""
    from graphmutual.train.config import ConfigError

    task = defaults_for(dataset)
    method = config.method.lower()
    values = resolve_values(config.to_dict(), method, task)
    if config.pool is not None and dataset.task != "graph":
        raise ValueError(f"pool={config.pool!r} applies to graph tasks only; "
                         f"'{dataset.name}' is a {dataset.task} task")
    on = [k for k in GRAPH_VARIANTS if values.get(k)]
    if on and dataset.task != "graph":
        raise ValueError(f"{', '.join(on)} appl{'ies' if len(on) == 1 else 'y'} to graph "
                         f"tasks only; '{dataset.name}' is a {dataset.task} task")
    values.update(
        method=method, kind=task.kind, task=dataset.task, students=tuple(config.students),
        seeds=tuple(config.seeds),
        fanout=tuple(config.fanout) if config.fanout else None,
        eval_batch_size=(max(values["batch_size"], task.eval_batch_size)
                         if values["batch_size"] else None),
    )
    heads = values["gat_heads"]
    has_gat = any(str(n).lower() == "gat" for n in values["students"])
    if heads is not None and has_gat and values["hidden"] % heads:
        raise ConfigError(f"hidden ({values['hidden']}) must be a multiple of gat_heads "
                          f"({heads}): the GAT students split their width into the heads")
    missing = [k for k in _CONCRETE if values.get(k) is None]
    if missing:  # a programming error in the tables above, not bad input
        raise ConfigError(f"no default for {missing} on '{dataset.name}'")
    return ResolvedConfig(**values)


#: The graph-specific mutual-learning variants (``TrainConfig`` fields; 0 = off).
GRAPH_VARIANTS = ("node_mimic", "view_drop", "alw_holdout", "boost")

#: ``ResolvedConfig`` fields that must never be ``None``.
_CONCRETE: List[str] = [f.name for f in dataclasses.fields(ResolvedConfig) if f.name not in (
    "root", "dropout", "gat_dropout", "gat_heads", "pool", "batch_size", "eval_batch_size",
    "fanout", "threads", "output")]
