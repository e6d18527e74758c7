"""CPU time per sampled step and peak memory of a GCN+GAT+GIN GML cohort on neighbour-sampled
mini-batches: students one by one (``unfused``), the fused cohort on the whole subgraph
(``fused``) and the fused cohort on exactly trimmed layers (``trimmed``).

Every (graph size, mode) runs in its own subprocess, so its peak memory is its own, and all
modes train on the same batches (same seeds, same sampler stream). Per step it records the
process CPU time (one torch thread), split into sampling, the fused cohort's per-batch
structure build (:func:`graphmutual.nn.fused._build_graph`: CSR with self-loops and the
edge weights) and CSR transposes for the backward, and the rest (forward, loss, backward,
optimiser). Peak memory is the kernel's high-water mark during training (reset after
setup) minus the resident memory after setup.

    nice -n 5 python benchmarks/scale/bench_trim.py sweep --sizes 42000,170000 \
        --steps 10 --out benchmarks/results/scale_trim
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from graphmutual.bench.memory import proc_status_kib, reset_peak_rss

ROOT = Path(__file__).resolve().parents[2]

MODES = ("unfused", "fused", "trimmed")


class _Timer:
    """Accumulates the CPU time spent inside a wrapped function."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, fn):
        def inner(*args, **kwargs):
            t = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - t
        return inner


def run_one(args) -> dict:
    import gc

    import torch

    torch.set_num_threads(args.threads)
    import graphmutual.nn.fused as fused_mod
    from graphmutual.data.sampling import NeighborSampler
    from graphmutual.data.synthetic import sbm_dataset
    from graphmutual.mutual import MutualEnsemble
    from graphmutual.ops.csr import CSR
    from graphmutual.train import TrainConfig, build_cohort
    from graphmutual.train.defaults import resolve_config
    from graphmutual.train.sampled import SampledNodeRunner, parse_fanout

    build_t, transpose_t = _Timer(), _Timer()
    fused_mod._build_graph = build_t.wrap(fused_mod._build_graph)
    CSR.transpose = transpose_t.wrap(CSR.transpose)

    n = args.nodes
    ds = sbm_dataset(n, int(round(args.avg_degree * n)), num_classes=args.classes,
                     num_features=args.features, train_per_class=None, seed=0)
    data = ds.data
    torch.manual_seed(0)
    cfg = TrainConfig(dataset=ds.name, students=["gcn", "gat", "gin"], method="gml",
                      hidden=args.hidden, progress=False, gin_norm=args.gin_norm)
    cohort = build_cohort(ds, cfg)
    if args.mode == "unfused":
        cohort = MutualEnsemble(list(cohort.students), names=cohort.names, fused=False,
                                **resolve_config(cfg, ds).ensemble_kwargs())
    assert (cohort._fused is None) == (args.mode == "unfused")
    opt = torch.optim.Adam(cohort.parameters(), lr=0.01)
    fan = parse_fanout(args.fanout)
    runner = SampledNodeRunner(data, data.train_mask, fan, batch_size=args.batch_size,
                               trim=args.mode == "trimmed")
    # the sampler's own stream: dropout draws differ between the modes, the batches must not
    runner.sampler = NeighborSampler(runner.data, fan, seed=0)
    row = dict(mode=args.mode, gin_norm=args.gin_norm or "default", nodes=n,
               edges=int(data.edge_index.size(1)),
               features=args.features, classes=args.classes, hidden=args.hidden,
               threads=args.threads, fanout=fan, batch_size=args.batch_size,
               untrimmed_students=cohort._fused.trim_support()
               if args.mode == "trimmed" else None)
    gc.collect()
    row["rss_setup_mib"] = round(proc_status_kib("VmRSS") / 1024, 1)
    row["peak_reset"] = reset_peak_rss()
    cohort.train()
    torch.manual_seed(1)  # the same batches in every mode
    it = iter(runner.loader())
    steps = []
    for _ in range(args.steps + 1):
        b0, t0 = build_t.seconds, transpose_t.seconds
        c0, w0 = time.process_time(), time.perf_counter()
        batch = next(it)
        c1 = time.process_time()
        trims = runner.trims(cohort, batch)
        runner.step(cohort, batch, opt, epoch=0)
        c2, w2 = time.process_time(), time.perf_counter()
        steps.append(dict(cpu=c2 - c0, wall=w2 - w0, sample=c1 - c0,
                          build=build_t.seconds - b0, transpose=transpose_t.seconds - t0,
                          nodes=int(batch.num_nodes), edges=int(batch.edge_index.size(1)),
                          hops=list(batch.num_sampled_nodes), trimmed=trims))
    row["peak_train_mib"] = round(proc_status_kib("VmHWM") / 1024, 1)
    row["extra_train_mib"] = round(row["peak_train_mib"] - row["rss_setup_mib"], 1)
    steady = steps[1:]  # the first step is a warm-up

    def mean(key):
        return sum(s[key] for s in steady) / len(steady)

    row.update(steps_timed=len(steady), trimmed=all(s["trimmed"] for s in steady),
               cpu_ms_per_step=round(1000 * mean("cpu"), 1),
               wall_ms_per_step=round(1000 * mean("wall"), 1),
               sample_ms=round(1000 * mean("sample"), 1),
               build_ms=round(1000 * mean("build"), 1),
               transpose_ms=round(1000 * mean("transpose"), 1),
               subgraph_nodes=round(mean("nodes")), subgraph_edges=round(mean("edges")),
               hops_first_batch=steady[0]["hops"],
               step_cpu_ms=[round(1000 * s["cpu"], 1) for s in steps])
    return row


def sweep(args) -> None:
    out = Path(args.out + ".json")
    rows = json.loads(out.read_text())["rows"] if args.resume and out.exists() else []
    done = {(r["nodes"], r["mode"], r["gin_norm"]) for r in rows if "cpu_ms_per_step" in r}
    runs = [(n, mode, norm) for norm in args.gin_norms.split(",")
            for n in [int(s) for s in args.sizes.split(",")] for mode in args.modes.split(",")]
    for n, mode, norm in runs:
        if (n, mode, norm) in done:
            continue
        cmd = [sys.executable, __file__, "run", "--nodes", str(n), "--mode", mode,
               "--gin-norm", norm,
               "--avg-degree", str(args.avg_degree), "--hidden", str(args.hidden),
               "--features", str(args.features), "--classes", str(args.classes),
               "--threads", str(args.threads), "--steps", str(args.steps),
               "--fanout", args.fanout, "--batch-size", str(args.batch_size)]
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(args.threads))
        print("$", " ".join(cmd[1:]), flush=True)
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if res.returncode != 0:
            rows.append(dict(mode=mode, nodes=n, gin_norm=norm,
                             failed=res.stderr.strip()[-400:]))
            print(res.stderr[-2000:], flush=True)
        else:
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
        write(args.out, rows)  # after every run: a partial sweep is reportable


def write(out: str, rows: list) -> None:
    import torch

    meta = dict(command="nice -n 5 python benchmarks/scale/bench_trim.py "
                + " ".join(sys.argv[1:]),
                cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                python=platform.python_version(), torch=torch.__version__)
    Path(out + ".json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1) + "\n")
    lines = ["# Fused cohort on sampled subgraphs: unfused vs fused vs fused + exact trimming",
             "", f"Command: `{meta['command']}`", "",
             f"Machine: {meta['cores']}-core {meta['cpu']}, one torch thread, torch "
             f"{meta['torch']}, shared with other jobs (wall times are inflated; CPU time is "
             "the stable measure). SBM graphs (`graphmutual.data.synthetic.sbm_graph`), "
             "GCN+GAT+GIN GML cohort, hidden 64, 2 layers; every mode trains on the same "
             "batches.", "",
             "CPU ms/step: process CPU time of one training step (sampling, forward, loss, "
             "backward, Adam), mean over the timed steps after one warm-up step. *build*: "
             "the fused cohort's per-batch structure (CSR with self-loops, GCN/GIN edge "
             "weights); *transpose*: CSR transposes for the backward; *extra MiB*: peak "
             "resident memory during training minus the resident memory after setup.", "",
             "*GIN norm*: `batch_norm` is the training default on this task (batch norm "
             "between GIN's layers and in its MLPs); in training it needs statistics over all "
             "rows, so that student is not trimmed (the GCN and GAT students are). `none`: "
             "no norm, every student trimmed.", "",
             "| nodes | edges | GIN norm | mode | CPU ms/step | vs unfused | sample ms | "
             "build ms | transpose ms | build+transpose share | wall ms/step | subgraph "
             "nodes / edges | extra MiB | steps |",
             "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base = {(r["nodes"], r["gin_norm"]): r["cpu_ms_per_step"] for r in rows
            if r.get("mode") == "unfused" and "cpu_ms_per_step" in r}
    for r in rows:
        if "cpu_ms_per_step" not in r:
            lines.append(f"| {r['nodes']} | | {r.get('gin_norm')} | {r['mode']} | failed: "
                         f"{r.get('failed', '')[-120:]} |||||||||")
            continue
        b = base.get((r["nodes"], r["gin_norm"]))
        rel = f"{r['cpu_ms_per_step'] / b:.2f}x" if b else ""
        share = (r["build_ms"] + r["transpose_ms"]) / r["cpu_ms_per_step"]
        lines.append(
            f"| {r['nodes']} | {r['edges']} | {r['gin_norm']} | {r['mode']} "
            f"| {r['cpu_ms_per_step']} | {rel} "
            f"| {r['sample_ms']} | {r['build_ms']} | {r['transpose_ms']} | {share:.1%} "
            f"| {r['wall_ms_per_step']} | {r['subgraph_nodes']} / {r['subgraph_edges']} "
            f"| {r['extra_train_mib']} | {r['steps_timed']} |")
    hops = {r["nodes"]: r["hops_first_batch"] for r in rows if "hops_first_batch" in r}
    lines += ["", "Nodes per hop of the first timed batch (seeds, hop 1, hop 2): "
              + "; ".join(f"{n} nodes: {h}" for n, h in hops.items())]
    Path(out + ".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("run", "sweep"):
        q = sub.add_parser(name)
        q.add_argument("--avg-degree", type=float, default=6.9)
        q.add_argument("--hidden", type=int, default=64)
        q.add_argument("--features", type=int, default=128)
        q.add_argument("--classes", type=int, default=40)
        q.add_argument("--threads", type=int, default=1)
        q.add_argument("--steps", type=int, default=10)
        q.add_argument("--fanout", default="15,10")
        q.add_argument("--batch-size", type=int, default=1024)
        if name == "run":
            q.add_argument("--gin-norm", default=None, choices=("batch_norm", "none"),
                           help="GIN's norm (default: the task default, batch norm here)")
            q.add_argument("--nodes", type=int, required=True)
            q.add_argument("--mode", choices=MODES, required=True)
        else:
            q.add_argument("--sizes", default="42000,170000")
            q.add_argument("--modes", default=",".join(MODES))
            q.add_argument("--gin-norms", default="batch_norm,none")
            q.add_argument("--out", required=True)
            q.add_argument("--resume", action="store_true",
                           help="keep the finished rows of --out and run the rest")
    args = p.parse_args()
    if args.cmd == "run":
        print(json.dumps(run_one(args)))
    else:
        sweep(args)


if __name__ == "__main__":
    main()
