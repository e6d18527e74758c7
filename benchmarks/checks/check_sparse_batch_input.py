"""What a sampled batch's wide sparse features cost before the fused first layer sees them.

A Coauthor-CS-shaped feature matrix (18,333 x 6,805, 0.9 % non-zero, random values) and a
batch of 11.5k nodes (what 1024 seeds reach in two hops there): CPU seconds to slice the
dense rows, count their non-zeros and convert them to CSR (what the fused cohort does for a
new input) against slicing the rows of a sparse COO copy made once, and a sparse against a
dense product with a 64-wide weight (the first layer). One torch thread; medians of
``--repeats`` rounds.

    python benchmarks/checks/check_sparse_batch_input.py \
        --out benchmarks/results/check_sparse_batch_input
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from graphmutual.bench.environment import environment, load_average, report_header
from graphmutual.bench.report import write_report


def _lap(out: list, start: float) -> float:
    """Append the CPU seconds since ``start`` to ``out``; return the time now."""
    now = time.process_time()
    out.append(now - start)
    return now


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=18333)
    p.add_argument("--features", type=int, default=6805)
    p.add_argument("--density", type=float, default=0.009)
    p.add_argument("--batch-nodes", type=int, default=11500)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
    load_start = load_average()
    g = torch.Generator().manual_seed(0)
    shape = (args.nodes, args.features)
    x = (torch.rand(shape, generator=g) < args.density).float() * torch.rand(shape, generator=g)
    x_coo = x.to_sparse_coo().coalesce()
    w = torch.randn(args.features, 64, generator=g)
    rounds = {k: [] for k in ("dense_slice", "count_nonzero", "to_sparse_csr",
                              "sparse_copy_slice", "sparse_mm", "dense_mm")}
    for _ in range(args.repeats):
        idx = torch.randperm(args.nodes, generator=g)[:args.batch_nodes]
        t = time.process_time()
        xb = x[idx]
        t = _lap(rounds["dense_slice"], t)
        int(torch.count_nonzero(xb))
        t = _lap(rounds["count_nonzero"], t)
        xs = xb.to_sparse_csr()
        t = _lap(rounds["to_sparse_csr"], t)
        x_coo.index_select(0, idx)
        t = _lap(rounds["sparse_copy_slice"], t)
        xs @ w
        t = _lap(rounds["sparse_mm"], t)
        xb @ w
        _lap(rounds["dense_mm"], t)
    med = {k: statistics.median(v) for k, v in rounds.items()}
    info = environment()
    rows = "\n".join(f"| {k} | {v:.3f} |" for k, v in med.items())
    md = report_header("Sparse batch input: per-batch conversion vs a sparse copy", info,
                       notes=(f"{args.nodes} x {args.features} features, density "
                              f"{args.density}, batches of {args.batch_nodes} nodes, one torch "
                              f"thread, median of {args.repeats} rounds (CPU seconds)."),
                       load_at_start=load_start)
    md += "\n| step | CPU s |\n|---|---:|\n" + rows + "\n"
    write_report(args.out, md, {"args": vars(args), "median_cpu_s": med, "rounds": rounds,
                                "environment": info})
    print(md)


if __name__ == "__main__":
    main()
