"""Neighbour-sampler throughput: our C++ kernel (1 and 2 threads), our pure-torch reference,
and torch-sparse's ``neighbor_sample`` (the kernel PyG's NeighborSampler calls without
pyg-lib) when it is importable, all on the same destination-sorted CSR (= PyG's CSC).

Each backend samples the same sequence of ``--batches`` batches of ``--batch-size`` distinct
random seeds with fan-outs ``--fanout`` (without replacement) after ``--warmup`` batches;
the table reports seeds/s and sampled edges/s (median of ``--repeats`` passes).

    python benchmarks/scale/bench_sampler.py --out benchmarks/results/scale_sampler
    # with a torch-sparse build kept outside the environment:
    python benchmarks/scale/bench_sampler.py --torch-sparse-path /path/to/site --out ...
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def bench_graph(n: int, e: int, fan: list, args, ts, ts_version: str, rows: list) -> None:
    """Time every available sampler on one SBM graph; append a row per (sampler, threads)."""
    import torch

    import graphmutual.ops as O
    from graphmutual.data.synthetic import sbm_graph

    d = sbm_graph(n, e, num_classes=40, num_features=1, seed=0)
    csr = O.CSR.from_edge_index(d.edge_index, n)
    rowptr, col = csr.rowptr.long(), csr.col.long()
    g = torch.Generator().manual_seed(0)
    total = args.warmup + args.batches
    seeds = [torch.randperm(n, generator=g)[:args.batch_size] for _ in range(total)]

    def bench(name, fn, nb, threads=1):
        torch.set_num_threads(threads)
        for s in seeds[:args.warmup]:
            fn(s)
        passes, cpu = [], []
        edges = 0
        for _ in range(args.repeats):
            t, c = time.perf_counter(), time.process_time()
            edges = 0
            for s in seeds[args.warmup:args.warmup + nb]:
                edges += fn(s)
            passes.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        # one thread: CPU time (stable on a loaded machine); more: wall time
        sec = statistics.median(cpu if threads == 1 else passes)
        row = dict(graph=f"{n} nodes / {e} edges", backend=name, threads=threads,
                   batches=nb, seconds=round(sec, 4),
                   clock="cpu" if threads == 1 else "wall",
                   wall_seconds=round(statistics.median(passes), 4),
                   seeds_per_s=round(nb * args.batch_size / sec),
                   edges_per_s=round(edges / sec), edges_per_batch=round(edges / nb))
        print(json.dumps(row), flush=True)
        rows.append(row)

    def ours(s):
        return O.sample_neighbors(csr, s, fan, seed=int(s[0])).edge.numel()

    def tsparse(s):
        return ts(rowptr, col, s, fan, False, True)[1].numel()

    if ts is not None:  # same contract: seeds first, true edges, fan-out respected
        node, row_, col_, edge = ts(rowptr, col, seeds[0], fan, False, True)
        assert torch.equal(node[:args.batch_size], seeds[0])
        assert torch.equal(col[edge], node[row_])
        assert bool(((rowptr[node[col_]] <= edge) & (edge < rowptr[node[col_] + 1])).all())

    with O.use_backend("cpp"):
        bench("graphmutual C++", ours, args.batches, 1)
        bench("graphmutual C++", ours, args.batches, 2)
    with O.use_backend("reference"):
        bench("graphmutual reference (torch)", ours, args.reference_batches, 1)
    if ts is not None:
        bench(ts_version if "torch-sparse" in ts_version else f"torch-sparse {ts_version}",
              tsparse, args.batches, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--graphs", default="169343:1166243,169343:4233575",
                   help="comma-separated nodes:edges of SBM graphs")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--fanout", default="15,10")
    p.add_argument("--reference-batches", type=int, default=5)
    p.add_argument("--torch-sparse-path", default=None)
    p.add_argument("--torch-sparse-standalone", default=None, metavar="DIR",
                   help="build torch-sparse's neighbor_sample_cpu.cpp alone from the source "
                        "distribution in DIR (downloaded there with pip if missing); see "
                        "torch_sparse_sampler.py")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.torch_sparse_path:
        sys.path.insert(0, args.torch_sparse_path)

    import torch

    try:
        import torch_sparse  # noqa: F401

        ts = torch.ops.torch_sparse.neighbor_sample
        ts_version = torch_sparse.__version__
    except Exception as exc:  # noqa: BLE001
        ts, ts_version = None, f"not available: {type(exc).__name__}: {exc}"

    if ts is None and args.torch_sparse_standalone:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import torch_sparse_sampler

        ts_version = torch_sparse_sampler.load(workdir=args.torch_sparse_standalone)
        ts = torch.ops.torch_sparse_standalone.neighbor_sample
    fan = [int(k) for k in args.fanout.split(",")]
    rows: list = []
    for spec in args.graphs.split(","):
        n, e = (int(v) for v in spec.split(":"))
        bench_graph(n, e, fan, args, ts, ts_version, rows)
    torch.set_num_threads(1)

    meta = dict(command="python benchmarks/scale/bench_sampler.py " + " ".join(sys.argv[1:]),
                cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                torch=torch.__version__, torch_sparse=ts_version, fanout=fan,
                batch_size=args.batch_size)
    Path(args.out + ".json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1) + "\n")
    lines = ["# Neighbour-sampler throughput (CPU)", "",
             f"Command: `{meta['command']}`  ",
             f"{meta['cores']}-core machine, torch {meta['torch']}, torch-sparse: "
             f"{ts_version}. Fan-out {fan}, {args.batch_size} seeds per batch, without "
             "replacement; median of the passes. One thread: per-process CPU time (stable on "
             "this shared, oversubscribed machine); two threads: wall time (CPU time would "
             "add both threads up), so the 2-thread rows suffer from the machine's load.", "",
             "| graph | sampler | threads | seeds/s | sampled edges/s | edges/batch |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['graph']} | {r['backend']} | {r['threads']} | {r['seeds_per_s']} "
                     f"| {r['edges_per_s']} | {r['edges_per_batch']} |")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
