"""Benchmark: GML cohort (GCN+GAT+GIN) training epoch with the fused cohort's sparse first
layer on versus off (``SPARSE_INPUT_MAX_DENSITY`` set to 0), side by side in one process.

    python benchmarks/speed/bench_sparse_input.py --root ~/.cache/graphmutual/bench-data

``--root`` must be writable (the loaders write ``processed/``): e.g. the copy that
``graphmutual bench --root ../shared/datasets`` makes in ``~/.cache/graphmutual/bench-data``.

Writes ``benchmarks/results/sparse_input_cpu.{md,json}`` (command, hardware, load average).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import graphmutual.nn.fused as fused
from graphmutual.bench.environment import environment, load_average, report_header
from graphmutual.bench.report import write_report
from graphmutual.train import TrainConfig
from graphmutual.train.trainer import Trainer

OUT = Path(__file__).resolve().parents[1] / "results"


def epoch_seconds(dataset: str, root: str, epochs: int, sparse: bool) -> float:
    saved = fused.SPARSE_INPUT_MAX_DENSITY
    fused.SPARSE_INPUT_MAX_DENSITY = saved if sparse else 0.0
    try:
        cfg = TrainConfig(dataset=dataset, root=root, method="gml", epochs=epochs,
                          progress=False, threads=1)
        return float(Trainer(cfg).run_seed(0)["seconds_per_epoch"])
    finally:
        fused.SPARSE_INPUT_MAX_DENSITY = saved


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="dataset root (Planetoid/, Coauthor/, ...)")
    p.add_argument("--datasets", default="cora,citeseer,coauthor-cs")
    p.add_argument("--epochs", type=int, default=6, help="timed epochs per run")
    p.add_argument("--rounds", type=int, default=2, help="interleaved sparse/dense rounds")
    args = p.parse_args()
    torch.set_num_threads(1)
    load_start = load_average()
    rows = []
    for ds in args.datasets.split(","):
        times = {"sparse": [], "dense": []}
        for _ in range(args.rounds):
            for mode in ("sparse", "dense"):
                times[mode].append(epoch_seconds(ds, args.root, args.epochs, mode == "sparse"))
        s, d = min(times["sparse"]), min(times["dense"])
        rows.append({"dataset": ds, "sparse_s": s, "dense_s": d, "speedup": d / s,
                     "rounds": times})
        print(f"{ds}: sparse {s:.3f} s/epoch, dense {d:.3f}, {d / s:.2f}x", flush=True)
    hw = environment()
    md = report_header("Sparse first layer of the fused cohort (CPU, 1 torch thread)", hw,
                       load_at_start=load_start)
    md += (f"\nGML cohort GCN+GAT+GIN, training seconds per epoch (no evaluation), best of "
           f"{args.rounds} interleaved rounds of {args.epochs} epochs.\n\n"
           "| dataset | sparse first layer (s/epoch) | dense (s/epoch) | speed-up |\n"
           "|---|---|---|---|\n")
    md += "".join(f"| {r['dataset']} | {r['sparse_s']:.3f} | {r['dense_s']:.3f} | "
                  f"{r['speedup']:.2f}x |\n" for r in rows)
    write_report(OUT / "sparse_input_cpu", md,
                 {"command": sys.argv, "hardware": hw, "rows": rows})
    print(md)


if __name__ == "__main__":
    main()
