"""1 vs 2 processes, data-parallel and student-parallel, against the single-process trainer.

Every configuration is a fresh ``torchrun --standalone`` job of
``python -m graphmutual train --distributed {data,student}`` (gloo on the CPU, one torch
thread per rank) on the same dataset, cohort and seed; the single-process trainer
(``python -m graphmutual train``) is the baseline. Reported per configuration: training
seconds per epoch (mean over epochs, evaluation excluded, as ``results.json`` records it),
the wall clock of the whole job (start-up and data loading included), every rank's peak
resident memory, and the test accuracy at the best validation epoch (so the runs can be
checked to agree).

Usage::

    python benchmarks/scale/bench_distributed.py --dataset cora --epochs 30 \
        --out benchmarks/results/scale_distributed
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]


def run(cmd, env):
    """Run ``cmd``; return its wall clock and stdout (exit on failure)."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def median_epoch(out: Path) -> float:
    """Median training seconds per epoch (the checkpoint keeps every epoch's time; the
    median is robust to the first epoch's warm-up and to other jobs on a shared machine)."""
    from graphmutual.train import load_checkpoint

    return statistics.median(load_checkpoint(out / "checkpoints" / "seed0.pt")["train_seconds"])


def main() -> None:
    from graphmutual.bench.environment import cpu_model  # the name bench records give

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="cora")
    p.add_argument("--students", default="gcn,gat,gin")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default=None, help="dataset root (default: the package's)")
    p.add_argument("--out", default="benchmarks/results/scale_distributed")
    p.add_argument("--batch-size", type=int, default=None,
                   help="node tasks: sampled training with this many seed nodes per (global) "
                        "step, in every configuration")
    p.add_argument("--fanout", default=None, help="with --batch-size: e.g. 10,5")
    args = p.parse_args()

    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    common = ["--dataset", args.dataset, "--students", args.students, "--epochs",
              str(args.epochs), "--seeds", f"{args.seed},", "--threads", "1", "--no-progress"]
    if args.root:
        common += ["--root", args.root]
    sampled = args.batch_size is not None
    if sampled:
        common += ["--batch-size", str(args.batch_size)]
        if args.fanout:
            common += ["--fanout", args.fanout]
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "single"
        # the trainer in a wrapper that reports its own peak memory (ru_maxrss, KiB)
        wrapper = ("import resource, sys; from graphmutual.cli import main; rc = main("
                   "sys.argv[1:]); print('PEAK_RSS_KIB', resource.getrusage("
                   "resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
        wall, stdout = run([sys.executable, "-c", wrapper, "train", *common, "--output",
                            str(out)], env)
        res = json.loads((out / "results.json").read_text())
        rss = float(stdout.split("PEAK_RSS_KIB")[1].split()[0]) / 1024
        task = res["task"]
        rows.append(dict(config="single process (Trainer)", mode="-", ranks=1,
                         s_per_epoch=res["seconds_per_epoch_mean"], wall=wall,
                         median_s=median_epoch(out), peak_rss_mib=[round(rss, 1)],
                         members=res["members"]))
        for mode in ("data", "student"):
            for ranks in (1, 2):
                out = Path(tmp) / f"{mode}{ranks}"
                cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       "--nproc-per-node", str(ranks), "-m", "graphmutual", "train",
                       "--distributed", mode, *common, "--output", str(out)]
                wall, _ = run(cmd, env)
                res = json.loads((out / "results.json").read_text())
                rows.append(dict(config=f"{mode}-parallel", mode=mode, ranks=ranks,
                                 s_per_epoch=res["seconds_per_epoch_mean"], wall=wall,
                                 median_s=median_epoch(out),
                                 peak_rss_mib=res["distributed"]["peak_rss_mib"],
                                 members=res["members"]))
    load_after = os.getloadavg()

    command = ("python benchmarks/scale/bench_distributed.py --dataset "
               f"{args.dataset} --students {args.students} --epochs {args.epochs} "
               f"--seed {args.seed} --out {args.out}" + (f" --root {args.root}" if args.root
                                                         else "")
               + (f" --batch-size {args.batch_size}" if sampled else "")
               + (f" --fanout {args.fanout}" if sampled and args.fanout else ""))
    meta = dict(command=command, cpu=cpu_model(), cores=os.cpu_count(),
                torch=torch.__version__, python=platform.python_version(),
                load_average_before=load_before, load_average_after=load_after)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=2))

    names = [n for n in rows[0]["members"]]
    what = (f", sampled: {args.batch_size} seed nodes per global step, fan-out "
            f"{args.fanout or 'default'}" if sampled else "")
    lines = [
        f"# 1 vs 2 processes: data- and student-parallel on {args.dataset} "
        f"({args.students}, GML, seed {args.seed}, {args.epochs} epochs{what})",
        "",
        f"Command: `{command}`",
        "",
        f"Hardware: {meta['cpu']}, {meta['cores']} cores shared with other jobs (load "
        f"average {load_before[0]:.1f} before, {load_after[0]:.1f} after), no GPU; torch "
        f"{meta['torch']}, gloo, one torch thread per rank. Single measurements on a busy "
        "machine: read them as rough.",
        "",
        "| configuration | ranks | train s/epoch (median) | train s/epoch (mean) "
        "| job wall clock (s) | peak RSS per rank (MiB) | " + " / ".join(names) + " test |",
        "|---|---|---|---|---|---|---|",
    ]
    graph_task = task == "graph"
    notes = ["", "How to read it: " + (
        "sampled node training: data-parallel splits every global batch of seed nodes over "
        "the ranks and each rank samples its own (smaller) subgraph, so the ranks share the "
        "sampling and the message passing, and add one all-reduce of the gradients per step; "
        "student-parallel samples the same subgraph on every rank (each rank repeats the "
        "sampling), runs its students one by one and all-gathers the seeds' logits every "
        "step. Evaluation (exact layer-wise inference, not in the train time) runs on every "
        "rank for a share of the students, the logits all-gathered. Both modes draw the "
        "trainer's batches, but their dropout masks come from seeded streams of their own "
        "(never from the generator that draws the batches), so with dropout their accuracies "
        "differ from the trainer's by dropout noise even on one rank (with dropout 0 one rank "
        "is the trainer bit for bit, tests/test_distributed_sampled.py); student-parallel "
        "gives the same result on 1 and 2 ranks; data-parallel on 2 ranks samples its own "
        "subgraphs around half batches, another sample. On this shared machine 2 processes "
        "also get a larger share of the 2 cores than 1 process does (other jobs kept the "
        "load average near the value above), which flatters the 2-rank times." if sampled else
        "graph batches: data-parallel splits every batch over the ranks, so they share the "
        "work; every configuration runs the students one by one (the fused cohort serves "
        "node-level calls only). On one rank data-parallel draws the trainer's dropout "
        "masks (its accuracies are the trainer's); on two ranks each rank draws the masks "
        "of its part of the batch, and student-parallel draws each student's masks from its "
        "own stream (1 and 2 ranks agree with each other), so those accuracies differ from "
        "the trainer's." if graph_task else
        "data-parallel on a node task still runs the whole graph's message "
        "passing on every rank (full batch), so 2 ranks repeat the 1-rank work and add an "
        "all-reduce; data-parallel shares real work only on graph batches (and sampled "
        "nodes). Student-parallel runs each rank's students one by one; the trainer and "
        "data-parallel use the fused cohort (one aggregation pass for all students). With "
        "dropout, student-parallel draws each student's masks from its own stream (so 1 and "
        "2 ranks agree with each other, not with the trainer's masks); full-batch "
        "data-parallel draws the trainer's masks on every rank, so its accuracies are the "
        "trainer's. The mean includes the first epoch, which also loads the C++ kernels "
        "the fused cohort uses (seconds on a busy machine); the median is the steady state."
    ) + " Student-parallel on 2 ranks is as slow as its slowest rank: with 3 students rank 0 "
        "holds two of them. Two ranks on this machine share its 2 cores with other jobs: no "
        "speed-up is expected."]
    for r in rows:
        acc = " / ".join(f"{100 * r['members'][n]['test_mean']:.1f}" for n in names)
        rss = ", ".join(f"{v:.0f}" for v in r["peak_rss_mib"])
        lines.append(f"| {r['config']} | {r['ranks']} | {r['median_s']:.3f} | "
                     f"{r['s_per_epoch']:.3f} | "
                     f"{r['wall']:.1f} | {rss} | {acc} |")
    lines += notes
    Path(f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
