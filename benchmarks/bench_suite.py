"""Run the graphmutual benchmark suite (same options as ``graphmutual bench``).

    python benchmarks/bench_suite.py --quick
    python benchmarks/bench_suite.py --root ../shared/datasets --datasets cora,citeseer --name node

See ``benchmarks/PROTOCOL.md`` for the protocol and ``benchmarks/reproduce.sh`` for the
commands behind the checked-in results in ``benchmarks/results/bench/``.
"""
from __future__ import annotations

import sys

from graphmutual.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
