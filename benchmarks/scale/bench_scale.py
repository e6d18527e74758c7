"""Seconds per epoch and peak memory of a GCN+GAT+GIN GML cohort against graph size:
full-batch (fused cohort) vs neighbour-sampled mini-batches.

Graphs are synthetic stochastic block models (:func:`graphmutual.data.synthetic.sbm_graph`)
with ogbn-arxiv's average degree (6.9) unless ``--avg-degree`` says otherwise. Every
configuration runs in its own subprocess so that its peak memory is its own:

* ``rss_setup_mib``: resident memory once the graph, its CSR and the cohort exist;
* ``peak_train_mib``: the peak resident memory *during training* (the kernel's high-water
  mark, reset with ``/proc/self/clear_refs`` after setup), and ``extra_train_mib`` =
  peak - setup, the memory training needs beyond the graph itself.

Full-batch epochs are timed whole (``--epochs``, the first one reported apart as warm-up).
A sampled epoch visits every node as a seed (the task's default); at large sizes it is
timed over ``--steps`` batches after one warm-up batch and extrapolated to the epoch's
batch count (the json says ``extrapolated``).

    python benchmarks/scale/bench_scale.py sweep --sizes 20000,85000,170000 \
        --out benchmarks/results/scale_epoch
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
from typing import Optional

from graphmutual.bench.memory import proc_status_kib, reset_peak_rss

ROOT = Path(__file__).resolve().parents[2]



def run_one(args) -> dict:
    import gc

    import torch

    torch.set_num_threads(args.threads)
    from graphmutual.data.synthetic import sbm_dataset
    from graphmutual.train import TrainConfig, build_cohort
    from graphmutual.train.sampled import SampledNodeRunner, parse_fanout

    t0 = time.perf_counter()
    n = args.nodes
    e = int(round(args.avg_degree * n))
    ds = sbm_dataset(n, e, num_classes=args.classes, num_features=args.features,
                     train_per_class=None, seed=0)
    data = ds.data
    gen_s = time.perf_counter() - t0
    torch.manual_seed(0)
    cfg = TrainConfig(dataset=ds.name, students=["gcn", "gat", "gin"], method="gml",
                      hidden=args.hidden, progress=False)
    cohort = build_cohort(ds, cfg)
    opt = torch.optim.Adam(cohort.parameters(), lr=0.01)
    row = dict(mode=args.mode, nodes=n, edges=int(data.edge_index.size(1)),
               features=args.features, classes=args.classes, hidden=args.hidden,
               threads=args.threads, generate_seconds=round(gen_s, 2))
    if args.mode == "sampled":
        fan = parse_fanout(args.fanout)
        task = SampledNodeRunner(data, data.train_mask, fan, batch_size=args.batch_size)
        row.update(fanout=fan, batch_size=args.batch_size)
    gc.collect()
    row["rss_setup_mib"] = round(proc_status_kib("VmRSS") / 1024, 1)
    row["peak_reset"] = reset_peak_rss()
    cohort.train()
    if args.mode == "fullbatch":
        times, cpu = [], []
        for epoch in range(args.epochs):
            cohort.set_epoch(epoch)
            t, c = time.perf_counter(), time.process_time()
            opt.zero_grad(set_to_none=True)
            losses = cohort.loss(cohort(data.x, data.edge_index), data.y, data.train_mask)
            losses["total"].backward()
            opt.step()
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        row["epoch_seconds"] = [round(t, 3) for t in times]
        row["epoch_cpu_seconds"] = [round(t, 3) for t in cpu]
        steady, steady_cpu = times[1:] or times, cpu[1:] or cpu
        row["seconds_per_epoch"] = round(sum(steady) / len(steady), 3)
        row["cpu_seconds_per_epoch"] = round(sum(steady_cpu) / len(steady_cpu), 3)
        row["extrapolated"] = False
    else:
        loader = task.loader()
        batches = len(loader)
        it = iter(loader)
        times, cpu = [], []
        limit = batches if args.steps <= 0 else min(batches, args.steps + 1)
        for _ in range(limit):
            t, c = time.perf_counter(), time.process_time()
            batch = next(it)  # sampling is part of the step's cost
            task.step(cohort, batch, opt, epoch=0)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        steady, steady_cpu = times[1:] or times, cpu[1:] or cpu
        per_step = sum(steady) / len(steady)
        per_step_cpu = sum(steady_cpu) / len(steady_cpu)
        row.update(batches_per_epoch=batches, steps_timed=len(steady),
                   seconds_per_step=round(per_step, 4), cpu_seconds_per_step=round(per_step_cpu, 4),
                   extrapolated=limit < batches)
        if limit < batches:
            row["seconds_per_epoch"] = round(per_step * batches, 2)
            row["cpu_seconds_per_epoch"] = round(per_step_cpu * batches, 2)
        else:
            row["seconds_per_epoch"] = round(sum(times), 2)
            row["cpu_seconds_per_epoch"] = round(sum(cpu), 2)
    row["peak_train_mib"] = round(proc_status_kib("VmHWM") / 1024, 1)
    row["extra_train_mib"] = round(row["peak_train_mib"] - row["rss_setup_mib"], 1)
    return row


def sweep(args) -> None:
    rows = []
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = args.modes.split(",")
    for n in sizes:
        for mode in modes:
            if mode == "fullbatch" and args.max_fullbatch and n > args.max_fullbatch:
                rows.append(dict(mode=mode, nodes=n, skipped=f"full batch above "
                                 f"{args.max_fullbatch} nodes not run (time/memory budget)"))
                continue
            cmd = [sys.executable, __file__, "run", "--nodes", str(n), "--mode", mode,
                   "--avg-degree", str(args.avg_degree), "--hidden", str(args.hidden),
                   "--features", str(args.features), "--classes", str(args.classes),
                   "--threads", str(args.threads), "--epochs", str(args.epochs),
                   "--steps", str(args.steps), "--fanout", args.fanout,
                   "--batch-size", str(args.batch_size)]
            env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(args.threads))
            print("$", " ".join(cmd[1:]), flush=True)
            res = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if res.returncode != 0:
                rows.append(dict(mode=mode, nodes=n, failed=res.stderr.strip()[-400:]))
                print(res.stderr[-2000:], flush=True)
            else:
                rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
            write(args.out, rows, args)


def merge(args) -> None:
    """Combine the rows of several sweeps (each row keeps the command that made it)."""
    rows, commands = [], []
    for path in args.inputs:
        blob = json.loads(Path(path).read_text())
        commands.append(blob["meta"]["command"])
        for r in blob["rows"]:
            rows.append(dict(r, command=blob["meta"]["command"]))
    rows.sort(key=lambda r: (r["nodes"], r["mode"]))
    write(args.out, rows, args, commands)


def write(out: str, rows: list, args, commands: Optional[list] = None) -> None:
    meta = dict(command="python benchmarks/scale/bench_scale.py " + " ".join(sys.argv[1:]),
                cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                python=platform.python_version())
    try:
        import torch

        meta["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    if commands:
        meta["merged_from"] = commands
    Path(out + ".json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1) + "\n")
    cmds = commands or [meta["command"]]
    lines = ["# Scale: GCN+GAT+GIN GML cohort, full batch (fused) vs sampled", "",
             "Commands:", "", *[f"- `{c}`" for c in cmds], "",
             *([f"merged into this file by `{meta['command']}`", ""] if commands else []),
             f"Machine: {meta['cores']} cores, one torch thread, torch {meta.get('torch')}. "
             "SBM graphs (`graphmutual.data.synthetic.sbm_graph`), hidden 64, 2 layers.", "",
             "CPU s/epoch is the process's CPU time (one thread): on this shared, "
             "oversubscribed machine it is the stable measure; wall s/epoch is also given. "
             "Sampled epochs visit every node as a seed; \"extra\" = peak during training "
             "minus the resident memory after setup (graph, CSR, cohort).", "",
             "| nodes | edges | mode | CPU s/epoch | wall s/epoch | setup RSS MiB | "
             "peak train RSS MiB | extra MiB | note |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "seconds_per_epoch" not in r:
            lines.append(f"| {r['nodes']} | | {r['mode']} | | | | | | "
                         f"{r.get('skipped') or 'failed: ' + r.get('failed', '')[-120:]} |")
            continue
        note = ""
        if r["mode"] == "sampled":
            note = (f"fan-out {r['fanout']}, batch {r['batch_size']}, {r['batches_per_epoch']} "
                    f"batches/epoch, {r['cpu_seconds_per_step']} CPU s/batch"
                    + (f" (extrapolated from {r['steps_timed']} batches)"
                       if r["extrapolated"] else ""))
        else:
            note = (f"{len(r['epoch_seconds'])} epochs, first (warm-up, not in the mean) "
                    f"{r['epoch_cpu_seconds'][0]} CPU s")
        note = f"degree {r['edges'] / r['nodes']:.1f}, {r['features']} features; " + note
        lines.append(f"| {r['nodes']} | {r['edges']} | {r['mode']} | {r['cpu_seconds_per_epoch']} "
                     f"| {r['seconds_per_epoch']} "
                     f"| {r['rss_setup_mib']} | {r['peak_train_mib']} | {r['extra_train_mib']} "
                     f"| {note} |")
    Path(out + ".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    mq = sub.add_parser("merge")
    mq.add_argument("inputs", nargs="+")
    mq.add_argument("--out", required=True)
    for name in ("run", "sweep"):
        q = sub.add_parser(name)
        q.add_argument("--avg-degree", type=float, default=6.9)
        q.add_argument("--hidden", type=int, default=64)
        q.add_argument("--features", type=int, default=128)
        q.add_argument("--classes", type=int, default=40)
        q.add_argument("--threads", type=int, default=1)
        q.add_argument("--epochs", type=int, default=3)
        q.add_argument("--steps", type=int, default=20)
        q.add_argument("--fanout", default="15,10")
        q.add_argument("--batch-size", type=int, default=1024)
        if name == "run":
            q.add_argument("--nodes", type=int, required=True)
            q.add_argument("--mode", choices=("fullbatch", "sampled"), required=True)
        else:
            q.add_argument("--sizes", default="20000,85000,170000")
            q.add_argument("--modes", default="fullbatch,sampled")
            q.add_argument("--max-fullbatch", type=int, default=0)
            q.add_argument("--out", required=True)
    args = p.parse_args()
    if args.cmd == "run":
        print(json.dumps(run_one(args)))
    elif args.cmd == "merge":
        merge(args)
    else:
        sweep(args)


if __name__ == "__main__":
    main()
