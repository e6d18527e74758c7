"""Benchmark: a matrix product on denormal inputs with and without flush-to-zero (CPU).

Why the bench workers call ``torch.set_flush_denormal(True)``: float32 values below
1.2e-38 (denormals) make CPU arithmetic slow. This times ``A @ B`` where ``A`` holds normal
values or denormals, with the flush off and on, interleaved in one process, one thread.

    python benchmarks/speed/bench_denormal.py

Writes ``benchmarks/results/denormal_cpu.{md,json}``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from graphmutual.bench.environment import environment, report_header
from graphmutual.bench.report import write_report

OUT = Path(__file__).resolve().parents[1] / "results"


def seconds(a: torch.Tensor, b: torch.Tensor, flush: bool, reps: int) -> float:
    torch.set_flush_denormal(flush)
    try:
        a = a.clone()  # flushing happens when values are loaded, so start from the same bits
        a @ b
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        return (time.perf_counter() - t0) / reps
    finally:
        torch.set_flush_denormal(False)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512, help="square matrix size")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best kept)")
    args = p.parse_args()
    if args.size < 1 or args.reps < 1 or args.rounds < 1:
        p.error("--size, --reps and --rounds must be positive")
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    b = torch.randn(args.size, args.size, generator=g)
    normal = torch.randn(args.size, args.size, generator=g)
    denormal = normal * 1e-39  # every entry below float32's smallest normal (1.18e-38)
    cases = {(name, flush): [] for name in ("normal", "denormal") for flush in (False, True)}
    for _ in range(args.rounds):
        for (name, flush), times in cases.items():
            a = normal if name == "normal" else denormal
            times.append(seconds(a, b, flush, args.reps))
    best = {k: min(v) for k, v in cases.items()}
    info = environment()
    md = [report_header("Denormal inputs and flush-to-zero (CPU, 1 torch thread)", info),
          f"`A @ B`, {args.size}×{args.size} float32, best of {args.rounds} interleaved "
          f"rounds of {args.reps}; `A` normal (randn) or denormal (randn × 1e-39).", "",
          "| A | flush_denormal off (ms) | on (ms) | off / on |", "|---|---|---|---|"]
    for name in ("normal", "denormal"):
        off, on = best[(name, False)], best[(name, True)]
        md.append(f"| {name} | {1e3 * off:.2f} | {1e3 * on:.2f} | {off / on:.1f}x |")
    md.append("")
    write_report(OUT / "denormal_cpu", "\n".join(md), {
        "command": sys.argv, "environment": info,
        "seconds": {f"{k[0]}/flush={k[1]}": v for k, v in cases.items()}})
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
