"""The defaults a benchmark run inherits, and how they enter its cache key.

A :class:`~graphmutual.bench.presets.RunSpec` names only what the suite sets (the method
variant, ``--set``/``--epochs`` overrides); every other :class:`~graphmutual.train.TrainConfig`
field takes its default — a class default (``t_min=0.75``), the task default of its
dataset (:data:`graphmutual.train.defaults.TASK_DEFAULTS`: ``lr``, ``epochs``, ``warmup``, ...)
or the method's preset (:data:`graphmutual.mutual.PRESETS`: ``weighting``, ``entropy``).

Hashing only the spec would let a cached run survive a change of a default it trained
with, and a table would then label it with the new default. So the cache key also holds
the **drift**: every inherited value that differs from the baseline — the defaults
in force when this rule was introduced, while the drift was still empty for every run, so
no key made before it changed. Change a default, and exactly the runs that inherit it get
new keys and retrain, while the rest still come from the cache: making the balanced
divergence GML's default on the Planetoid datasets (session 8) gave new keys to the
Cora/CiteSeer GML runs without a divergence setting (drift ``{"divergence": "balanced"}``)
and to nothing else.

When a field is *added* to ``TrainConfig``, add it to :data:`BASELINE_CONFIG` with the
default that reproduces the old behaviour (a test checks that every field that can change
a result is listed). The values are resolved by the same rule as every training run
(:func:`graphmutual.train.defaults.resolve_values`).  Defaults of the students themselves
(a student's dropout, GAT's heads: :data:`graphmutual.nn.students.STUDENT_DEFAULTS`) are not
covered; the tables' code fingerprints show runs made by different code.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping

from graphmutual.bench.presets import MIMICRY_ONLY_KEYS, RunSpec
from graphmutual.mutual import PRESETS
from graphmutual.train import TrainConfig
from graphmutual.train.defaults import TASK_DEFAULTS, registered_task_kind, resolve_values

#: ``TrainConfig`` fields that cannot change a run's result (where it runs, what it writes).
NOT_RESULT_FIELDS = frozenset({"dataset", "root", "students", "method", "seeds", "device",
                               "threads", "checkpoint_every", "output", "progress"})

#: The class defaults of the result-changing ``TrainConfig`` fields when the key began to
#: cover defaults (cache version 1, session 8).
BASELINE_CONFIG: Dict[str, Any] = {
    "divergence": "kl", "temperature": 1.0, "mimic_weight": 1.0, "warmup": None,
    "entropy": None, "entropy_mode": "penalty", "weighting": None, "t_min": 0.75,
    "t_max": 4.0, "schedule": "simultaneous", "renyi_alpha": 0.5, "balance": 0.5,
    "epochs": None, "lr": None, "weight_decay": 5e-4, "hidden": None, "num_layers": None,
    "dropout": None, "gat_dropout": None, "gat_heads": None, "gin_norm": None, "pool": None,
    "edge_features": False, "gin_train_eps": False, "transductive": False,
    "node_mimic": 0.0, "view_drop": 0.0,
    "alw_holdout": 0.0, "boost": 0.0, "batch_size": None, "fanout": None, "patience": None,
    "normalize_features": None, "deterministic": False,
}
_NODE = dict(lr=0.01, epochs=200, hidden=64, num_layers=2, patience=100, batch_size=None,
             warmup=50, normalize_features=True, gin_norm="none")
_GRAPH = dict(lr=0.001, epochs=100, hidden=64, num_layers=3, patience=50, batch_size=32,
              warmup=10, normalize_features=False, gin_norm="none",
              pool="mean")  # then resolved in the cohort builder, now a task default
#: The task defaults then, by task kind (:func:`graphmutual.train.defaults.task_kind`).
BASELINE_TASK: Dict[str, Dict[str, Any]] = {
    "node": _NODE,
    "node-raw": dict(_NODE, normalize_features=False, gin_norm="batch_norm"),
    "graph": _GRAPH,
    "ogb-mol": dict(_GRAPH, hidden=256, num_layers=5),
}
#: The method presets then.
BASELINE_PRESETS: Dict[str, Dict[str, Any]] = {
    "independent": {"weighting": "none", "entropy": 0.0},
    "dml": {"weighting": "uniform", "entropy": 0.0},
    "gml": {"weighting": "adaptive", "entropy": 0.1},
}


def result_fields() -> Dict[str, Any]:
    """The result-changing ``TrainConfig`` fields and their class defaults now."""
    return {f.name: f.default for f in dataclasses.fields(TrainConfig)
            if f.name not in NOT_RESULT_FIELDS}


def _resolve(spec: RunSpec, config: Mapping[str, Any], task: Mapping[str, Any],
             presets: Mapping[str, Mapping[str, Any]]) -> Dict[str, Any]:
    method = spec.config.get("method", "gml").lower()
    unset = {key: value for key, value in config.items()
             if key not in spec.config
             and not (method == "independent" and key in MIMICRY_ONLY_KEYS)}
    return resolve_values(unset, method, task, presets)


def inherited_settings(spec: RunSpec) -> Dict[str, Any]:
    """The values ``spec`` takes from defaults today: every result-changing field it does
    not set, resolved through its dataset's task defaults and its method's preset (``None``
    where the value is resolved deeper, e.g. a student's dropout)."""
    return _resolve(spec, result_fields(), TASK_DEFAULTS[registered_task_kind(spec.dataset)],
                    PRESETS)


def baseline_settings(spec: RunSpec) -> Dict[str, Any]:
    """What :func:`inherited_settings` returned under the baseline defaults
    (:data:`BASELINE_CONFIG`, :data:`BASELINE_TASK`, :data:`BASELINE_PRESETS`)."""
    return _resolve(spec, BASELINE_CONFIG, BASELINE_TASK[registered_task_kind(spec.dataset)],
                    BASELINE_PRESETS)


def defaults_drift(spec: RunSpec) -> Dict[str, Any]:
    """The inherited values of ``spec`` that differ from the baseline (usually ``{}``).

    A field that is new since the baseline counts as drift, so its runs retrain until it
    is added to :data:`BASELINE_CONFIG`.
    """
    missing = object()
    base = baseline_settings(spec)
    return {k: v for k, v in sorted(inherited_settings(spec).items())
            if base.get(k, missing) != v}
