"""Run configuration: one dataclass, loadable from YAML, validated up front."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import yaml

from graphmutual.mutual.alw import DEFAULT_T_MIN
from graphmutual.nn.graph import POOLS
from graphmutual.train.defaults import DEFAULT_T_MAX


class ConfigError(ValueError):
    """A configuration value or file is invalid."""


#: Accepted ``TrainConfig.gin_norm`` values.  Only norms that need no per-graph ``batch``
#: vector: graph students call their node model without one, so PyG's graph-wise norms
#: (``layer_norm``'s default mode, ``graph_norm``, ``instance_norm``) would mix graphs.
GIN_NORMS = ("none", "batch_norm")


@dataclass
class TrainConfig:
    """Everything a :class:`~graphmutual.train.Trainer` run needs.

    ``None`` for ``divergence``, ``lr``, ``epochs``, ``hidden``, ``num_layers``,
    ``batch_size``, ``patience``, ``warmup``, ``normalize_features``, ``gin_norm``,
    ``gat_dropout``, ``gat_heads`` and ``pool`` means "the task's default", and ``None`` for
    ``weighting`` and ``entropy`` "the method's preset":
    :func:`~graphmutual.train.defaults.resolve_config` resolves a config once into a frozen
    :class:`~graphmutual.train.defaults.ResolvedConfig`, and
    :func:`~graphmutual.train.defaults_for` shows the defaults of a dataset (the table and
    the evidence for each are in :mod:`graphmutual.train.defaults`).  In short: node tasks
    lr 0.01, 200 epochs, hidden 64, 2 layers, patience 100, a 50-epoch mimicry warm-up
    and, on Planetoid datasets, row-normalised features and, for GML, the balanced
    forward/reverse KL divergence; graph tasks lr 0.001, 100 epochs (50 for OGB molecules), hidden
    64, 3 layers, batch 32, patience 50, a 10-epoch warm-up, batch norm in GIN and dropout
    0.1 and 4 heads in GAT.  ``gin_norm`` is the normalisation between a GIN student's layers:
    ``"none"`` or ``"batch_norm"`` (batch norm on raw-feature node datasets and graph
    tasks).  ``gat_dropout`` is the GAT students' dropout (features and attention) when
    ``dropout`` is ``None``: ``None`` on node tasks keeps PyG's 0.6, 0.1 on graph tasks.
    ``gat_heads`` is the GAT students' number of attention heads (``hidden`` must be a
    multiple of it): ``None`` on node tasks keeps the student default of 8 (the GAT
    paper's), 4 on graph tasks.
    ``gin_train_eps`` makes the GIN students learn ``eps`` in ``MLP((1 + eps) * x_i + sum_j
    x_j)`` (GIN-eps, as OGB's examples and the plain-PyG reference scripts do) instead of
    fixing it at 0 (GIN-0, PyG's ``GIN`` default); off by default.
    ``pool`` (graph tasks only) is the readout of every graph student: ``"mean"``
    (default), ``"add"`` (= ``"sum"``, Xu et al.'s choice for GIN) or ``"max"``.
    ``dropout`` ``None`` keeps each student's own default (GAT 0.6, the others 0.5).
    ``edge_features`` (graph tasks with ``edge_attr`` only; off by default) lets the GAT and
    GIN students read the edge features: OGB bond features through OGB's ``BondEncoder``
    (GIN becomes GINE, as in the OGB molecule examples), float edge features through a
    linear layer.
    ``threads`` is applied by the command line (``graphmutual train`` and the bench
    workers own their process); in your own script call ``torch.set_num_threads``.
    ``transductive`` (graph tasks with mimicry only; off by default) lets the peers also
    mimic each other on the validation and test graphs -- their inputs, never their labels
    -- as they do on the unlabelled nodes of a node-classification graph.  It is
    transductive semi-supervised learning, not the standard inductive graph protocol, so
    results with it are reported as their own rows.

    Graph-specific mutual-learning variants (graph tasks only; each ``0`` = off, the
    default; :mod:`graphmutual.mutual.graphviews`): ``node_mimic`` (weight of the peers'
    mimicry of each other's node-level distributions, every graph student's head applied
    to its node embeddings; needs mimicry), ``view_drop`` (each student trains on its own
    view of every batch, with edges and float node-feature rows dropped with this
    probability; acts on independent training too, as augmentation) and ``alw_holdout``
    (this fraction of the training graphs, fixed per seed, is left out of the students'
    cross-entropy and is the only data ALW's weighting learns from; the students still
    mimic each other on it; needs ALW, i.e. GML) and ``boost`` :math:`\beta` (BGNN-style:
    each student's cross-entropy weighs the graphs its peers' mixture misclassifies by
    :math:`1 + \beta`; needs mimicry).
    """

    dataset: str = "cora"
    root: Optional[str] = None
    students: List[str] = field(default_factory=lambda: ["gcn", "gat", "gin"])
    method: str = "gml"
    divergence: Optional[str] = None
    temperature: float = 1.0
    mimic_weight: float = 1.0
    warmup: Optional[int] = None
    entropy: Optional[float] = None
    entropy_mode: str = "penalty"
    weighting: Optional[str] = None
    t_min: float = DEFAULT_T_MIN
    t_max: float = DEFAULT_T_MAX
    schedule: str = "simultaneous"
    renyi_alpha: float = 0.5
    balance: float = 0.5
    epochs: Optional[int] = None
    lr: Optional[float] = None
    weight_decay: float = 5e-4
    hidden: Optional[int] = None
    num_layers: Optional[int] = None
    dropout: Optional[float] = None
    gin_norm: Optional[str] = None
    gat_dropout: Optional[float] = None
    gat_heads: Optional[int] = None
    pool: Optional[str] = None
    edge_features: bool = False
    gin_train_eps: bool = False
    transductive: bool = False
    node_mimic: float = 0.0
    view_drop: float = 0.0
    alw_holdout: float = 0.0
    boost: float = 0.0
    batch_size: Optional[int] = None
    fanout: Optional[List[int]] = None
    patience: Optional[int] = None
    seeds: List[int] = field(default_factory=lambda: [0])
    normalize_features: Optional[bool] = None
    device: str = "cpu"
    threads: Optional[int] = None
    deterministic: bool = False
    checkpoint_every: int = 10
    output: Optional[str] = None
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.students, str):
            self.students = [s.strip() for s in self.students.split(",") if s.strip()]
        if not self.students:
            raise ConfigError("at least one student is needed")
        self.seeds = parse_seeds(self.seeds)
        for name in ("warmup", "temperature", "mimic_weight", "weight_decay", "t_min", "t_max",
                     "lr", "entropy", "dropout", "node_mimic", "view_drop", "alw_holdout", "boost"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ConfigError(f"{name} must be a number (got {v!r})")
        if self.warmup is not None and self.warmup < 0:
            raise ConfigError(f"warmup must be >= 0 (got {self.warmup})")
        for name in ("epochs", "hidden", "num_layers", "batch_size", "patience", "threads",
                     "gat_heads"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v <= 0):
                raise ConfigError(f"{name} must be a positive integer (got {v!r})")
        for name in ("lr", "temperature"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ConfigError(f"{name} must be > 0 (got {v!r})")
        if self.weight_decay < 0 or self.mimic_weight < 0:
            raise ConfigError("weight_decay and mimic_weight must be >= 0")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must lie in [0, 1) (got {self.dropout})")
        if self.gat_dropout is not None and not 0.0 <= self.gat_dropout < 1.0:
            raise ConfigError(f"gat_dropout must be in [0, 1) (got {self.gat_dropout!r})")
        for name in ("node_mimic", "boost"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 (got {getattr(self, name)})")
        for name in ("view_drop", "alw_holdout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must lie in [0, 1) (got {getattr(self, name)})")
        if self.gin_norm is not None and self.gin_norm not in GIN_NORMS:
            raise ConfigError(f"gin_norm must be one of {GIN_NORMS} (got {self.gin_norm!r})")
        if self.pool is not None and self.pool not in POOLS:
            raise ConfigError(f"pool must be one of {sorted(POOLS)} (got {self.pool!r})")
        for name in ("edge_features", "transductive", "gin_train_eps"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false (got {getattr(self, name)!r})")
        if self.fanout is not None:
            from graphmutual.train.sampled import parse_fanout

            try:
                self.fanout = parse_fanout(",".join(map(str, self.fanout))
                                           if isinstance(self.fanout, (list, tuple))
                                           else self.fanout)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if self.checkpoint_every <= 0:
            raise ConfigError("checkpoint_every must be a positive integer")
        if not 0 < self.t_min <= self.t_max:
            raise ConfigError(f"need 0 < t_min <= t_max (got {self.t_min}, {self.t_max})")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown configuration key(s) {unknown}; valid keys: {sorted(known)}"
            )
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None


def parse_seeds(value: Union[int, str, List[int]]) -> List[int]:
    """``10`` → seeds 0–9 (OGB's convention); ``"0,3,7"`` or ``[0, 3, 7]`` → those seeds."""
    if isinstance(value, bool):
        raise ConfigError(f"invalid seeds {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ConfigError(
                f"the number of seeds must be positive (got {value}); to run only seed 0, "
                "give the list '0,'"
            )
        return list(range(value))
    if isinstance(value, str):
        text = value.strip()
        if "," not in text:
            try:
                count = int(text)
            except ValueError:
                raise ConfigError(
                    f"invalid seeds '{value}': give a count (10) or a list (0,3,7)"
                ) from None
            return parse_seeds(count)
        try:
            value = [int(s) for s in text.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(
                f"invalid seeds '{value}': give a count (10) or a list (0,3,7)"
            ) from None
    seeds = [int(s) for s in value]
    if not seeds or any(s < 0 for s in seeds):
        raise ConfigError(f"seeds must be non-negative integers (got {value!r})")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be distinct (got {value!r})")
    return seeds


def load_yaml_config(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a YAML mapping of :class:`TrainConfig` keys (validated by ``from_dict``).

    The file must be UTF-8 text.  YAML is read with ``yaml.safe_load`` (plain values only,
    no Python objects).  Every problem is a :class:`ConfigError` naming the file.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file '{path}' is a directory, not a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config file '{path}' cannot be read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file '{path}' is not UTF-8 text (byte {exc.start} is "
            f"0x{raw[exc.start]:02x}); save it as UTF-8"
        ) from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"config file '{path}' is not valid YAML: {detail}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of keys to values")
    return {str(k).replace("-", "_"): v for k, v in values.items()}
