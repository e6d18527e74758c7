"""Benchmark suite: independent vs DML vs GML (and ablations) on node and graph datasets.

The top layer of graphmutual: it may import :mod:`graphmutual.train`, ``data``, ``mutual``
and ``nn``; only :mod:`graphmutual.cli` imports it.

* :mod:`~graphmutual.bench.presets` — datasets, method variants, the :class:`RunSpec`;
* :mod:`~graphmutual.bench.inherited` — the defaults a run inherits (they enter its key);
* :mod:`~graphmutual.bench.cache` — one JSON per finished run, keyed by a config hash;
* :mod:`~graphmutual.bench.worker` — runs one configuration in a fresh subprocess;
* :mod:`~graphmutual.bench.runner` — expands a suite, skips cached runs, runs the rest;
* :mod:`~graphmutual.bench.aggregate` — mean ± unbiased std tables (markdown + JSON);
* :mod:`~graphmutual.bench.plots` — matplotlib figures;
* :mod:`~graphmutual.bench.environment` — the hardware and software behind a table (also
  used by every script under ``benchmarks/``);
* :mod:`~graphmutual.bench.report` — atomic writes of ``NAME.md`` / ``NAME.json`` result files;
* :mod:`~graphmutual.bench.cli` — ``graphmutual bench`` (writes to ``./runs/bench`` unless
  ``--output`` says otherwise).
"""

from graphmutual.bench.cache import RunCache, config_hash
from graphmutual.bench.presets import (
    GRAPH_PRESETS,
    NODE_PRESETS,
    VARIANTS,
    RunSpec,
    expand_suite,
)

__all__ = [
    "GRAPH_PRESETS",
    "NODE_PRESETS",
    "RunCache",
    "RunSpec",
    "VARIANTS",
    "config_hash",
    "expand_suite",
]
