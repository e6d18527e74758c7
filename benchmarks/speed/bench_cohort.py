r"""Benchmark: one training epoch of a GCN+GAT+GIN cohort, fused vs run one after another.

Variants (each epoch = forward + cross-entropy on the training nodes + backward + Adam step):

* ``fused``       -- :class:`graphmutual.nn.FusedCohort` over the three students;
* ``sequential``  -- the same three students as plain PyG models, run one after another
  (what :class:`graphmutual.MutualEnsemble` does with ``fused=False``);
* ``gat``         -- a single GAT student (the yardstick: "within 1.6x of one GAT");
* ``baseline``    -- loads the data and builds nothing (peak RSS of the interpreter + data).

Every (variant, dataset) runs in its own subprocess, so its peak memory is the process's peak
resident set size read with ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` at the end of the
run. Rounds are interleaved (``fused, sequential, gat, fused, ...``) so that load from other
processes on a shared machine hits all variants alike; the table reports the median over
rounds of each round's median epoch time. Torch threads are set explicitly
(``--threads``, default 1: on a shared, oversubscribed CPU multi-threaded torch is erratic).

Accuracy: on Cora, the fused and the sequential cohort are also trained from the same
initial parameters for ``--acc-epochs`` epochs and their test accuracies reported (dropout
masks differ between the two paths, so equal means "about equal").

Usage::

    python benchmarks/speed/bench_cohort.py               # full run, writes benchmarks/results/
    python benchmarks/speed/bench_cohort.py --quick       # smoke run (small synthetic graph)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
VARIANTS = ("fused", "sequential", "gat", "baseline")
DATASETS = ("cora", "synthetic")


# ----------------------------------------------------------------------------- worker
def _data(name: str, nodes: int, edges: int, features: int, classes: int, seed: int):
    import torch

    if name == "cora":
        from graphmutual.data import load_dataset

        ds = load_dataset("cora")
        d, split = ds.data, ds.split(0)
        return d.x, d.edge_index, d.y, split.train, split.test, ds.num_classes
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(nodes, features, generator=g)
    ei = torch.randint(0, nodes, (2, edges), generator=g)
    y = torch.randint(0, classes, (nodes,), generator=g)
    perm = torch.randperm(nodes, generator=g)
    train = torch.zeros(nodes, dtype=torch.bool)
    train[perm[: nodes // 10]] = True
    test = torch.zeros(nodes, dtype=torch.bool)
    test[perm[nodes // 10: nodes // 5]] = True
    return x, ei, y, train, test, classes


def _students(variant: str, fin: int, c: int, hidden: int, seed: int):
    import torch

    from graphmutual.nn import build_student

    torch.manual_seed(seed)
    names = ["gat"] if variant == "gat" else ["gcn", "gat", "gin"]
    return [build_student(n, fin, c, hidden, 2) for n in names]


def _forward(variant: str, students, fused, x, ei):
    if variant == "fused":
        return fused(x, ei)
    return [s(x, ei) for s in students]


def worker(args: argparse.Namespace) -> Dict[str, Any]:
    import torch
    import torch.nn.functional as F

    from graphmutual.nn import FusedCohort

    torch.set_num_threads(args.threads)
    x, ei, y, train, test, c = _data(args.dataset, args.nodes, args.edges, args.features,
                                     args.classes, args.seed)
    out: Dict[str, Any] = dict(variant=args.variant, dataset=args.dataset,
                               num_nodes=x.size(0), num_edges=ei.size(1),
                               num_features=x.size(1), num_classes=c)
    if args.variant == "baseline":
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return out
    students = _students(args.variant, x.size(1), c, args.hidden, args.seed)
    fused = FusedCohort(students) if args.variant == "fused" else None
    params = [p for s in students for p in s.parameters()]
    opt = torch.optim.Adam(params, lr=0.01, weight_decay=5e-4)

    def epoch() -> float:
        t0 = time.perf_counter()
        for s in students:
            s.train()
        opt.zero_grad(set_to_none=True)
        logits = _forward(args.variant, students, fused, x, ei)
        loss = sum(F.cross_entropy(z[train], y[train]) for z in logits)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    n_epochs = args.acc_epochs if args.acc_epochs else args.warmup + args.epochs
    times = [epoch() for _ in range(n_epochs)]
    out["epoch_s"] = times[args.warmup:] if not args.acc_epochs else times
    if args.acc_epochs:
        with torch.no_grad():
            for s in students:
                s.eval()
            logits = _forward(args.variant, students, fused, x, ei)
        out["test_acc"] = {s.name: float((z[test].argmax(-1) == y[test]).float().mean())
                           for s, z in zip(students, logits)}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["threads"] = torch.get_num_threads()
    return out


# ----------------------------------------------------------------------------- driver
def _run(args: argparse.Namespace, variant: str, dataset: str, acc_epochs: int = 0
         ) -> Dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", variant, "--dataset", dataset,
           "--threads", str(args.threads), "--epochs", str(args.epochs),
           "--warmup", str(args.warmup), "--nodes", str(args.nodes), "--edges",
           str(args.edges), "--features", str(args.features), "--classes", str(args.classes),
           "--hidden", str(args.hidden), "--seed", str(args.seed),
           "--acc-epochs", str(acc_epochs)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(f"worker {variant}/{dataset} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _table(summary: Dict[str, Dict[str, Any]], datasets: List[str], variants: List[str]
           ) -> List[str]:
    lines = ["| dataset | variant | s / epoch (median) | vs fused | peak RSS (MB) | "
             "peak RSS over baseline (MB) |", "|---|---|---|---|---|---|"]
    for d in datasets:
        base = summary[d].get("baseline", {}).get("peak_rss_mb")
        fused = summary[d].get("fused", {}).get("epoch_s")
        for v in variants:
            r = summary[d].get(v)
            if r is None:
                continue
            t = r.get("epoch_s")
            ts = f"{t:.4f}" if t is not None else "-"
            ratio = f"{t / fused:.2f}x" if t is not None and fused else "-"
            over = f"{r['peak_rss_mb'] - base:.0f}" if base is not None else "-"
            lines.append(f"| {d} | {v} | {ts} | {ratio} | {r['peak_rss_mb']:.0f} | {over} |")
    return lines


def main(argv: List[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 round, 3 epochs, 20k-node / 200k-edge synthetic graph, "
                        "no accuracy run, results not written unless --out is given")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--epochs", type=int, default=10, help="timed epochs per run")
    p.add_argument("--warmup", type=int, default=2, help="untimed epochs per run")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--nodes", type=int, default=100_000, help="synthetic graph: nodes")
    p.add_argument("--edges", type=int, default=1_000_000, help="synthetic graph: edges")
    p.add_argument("--features", type=int, default=128, help="synthetic graph: features")
    p.add_argument("--classes", type=int, default=10, help="synthetic graph: classes")
    p.add_argument("--hidden", type=int, default=64, help="hidden width of every student")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--acc-epochs", type=int, default=200,
                   help="Cora accuracy run length, fused vs sequential (0: skip)")
    p.add_argument("--out", type=Path, default=None,
                   help="output stem (default benchmarks/results/cohort_cpu)")
    p.add_argument("--worker", choices=VARIANTS, default=None, help=argparse.SUPPRESS)
    p.add_argument("--dataset", choices=DATASETS, default="cora", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        args.variant = args.worker
        print(json.dumps(worker(args)))
        return 0
    if args.quick:
        args.rounds, args.epochs, args.warmup = 1, 3, 1
        args.nodes, args.edges, args.acc_epochs = 20_000, 200_000, 0
    out = args.out or (None if args.quick else RESULTS / "cohort_cpu")
    command = " ".join(["python", "benchmarks/speed/bench_cohort.py"] + (argv or sys.argv[1:]))

    runs: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for r in range(args.rounds):
        for d in args.datasets:
            for v in args.variants:
                res = _run(args, v, d)
                runs.setdefault((d, v), []).append(res)
                med = statistics.median(res["epoch_s"]) if "epoch_s" in res else None
                print(f"round {r} {d:9s} {v:10s} "
                      f"{'' if med is None else f'{med:.4f} s/epoch '}"
                      f"peak {res['peak_rss_mb']:.0f} MB", flush=True)
    summary: Dict[str, Dict[str, Any]] = {}
    for (d, v), rs in runs.items():
        row: Dict[str, Any] = dict(peak_rss_mb=max(x["peak_rss_mb"] for x in rs),
                                   num_nodes=rs[0]["num_nodes"], num_edges=rs[0]["num_edges"])
        if "epoch_s" in rs[0]:
            per_round = [statistics.median(x["epoch_s"]) for x in rs]
            row.update(epoch_s=statistics.median(per_round), epoch_s_rounds=per_round)
        summary.setdefault(d, {})[v] = row
    acc: Dict[str, Any] = {}
    if args.acc_epochs and "cora" in args.datasets:
        for v in ("fused", "sequential"):
            res = _run(args, v, "cora", acc_epochs=args.acc_epochs)
            acc[v] = res["test_acc"]
            print(f"accuracy cora {v}: {res['test_acc']}", flush=True)

    lines = [f"# Fused cohort vs sequential PyG students (CPU, {args.threads} torch thread"
             f"{'s' if args.threads > 1 else ''})", "",
             f"Command: `{command}`", "",
             "Epoch = forward + summed cross-entropy + backward + Adam step. Students: "
             f"`build_student` defaults, {args.hidden} hidden, 2 layers (GAT: 8 heads, "
             "dropout .6; GCN/GIN dropout .5). Median over "
             f"{args.rounds} interleaved rounds of the median of {args.epochs} epochs "
             f"(after {args.warmup} warm-up). Peak RSS: `resource.getrusage(RUSAGE_SELF)."
             "ru_maxrss` of a fresh subprocess per (variant, dataset); 'baseline' loads the "
             "data only.", ""]
    lines += _table(summary, args.datasets, args.variants)
    targets = []
    for d in args.datasets:
        s = summary[d]
        if all(k in s and "epoch_s" in s[k] for k in ("fused", "sequential", "gat")):
            sp = s["sequential"]["epoch_s"] / s["fused"]["epoch_s"]
            vg = s["fused"]["epoch_s"] / s["gat"]["epoch_s"]
            mem = s["fused"]["peak_rss_mb"] < s["sequential"]["peak_rss_mb"]
            targets.append(dict(dataset=d, speedup_vs_sequential=sp, fused_over_gat=vg,
                                fused_peak_below_sequential=mem))
    if targets:
        lines += ["", "| dataset | fused speed-up vs sequential (target >= 2x) | "
                  "fused / single GAT (target <= 1.6x) | fused peak RSS below sequential |",
                  "|---|---|---|---|"]
        for t in targets:
            lines.append(f"| {t['dataset']} | {t['speedup_vs_sequential']:.2f}x | "
                         f"{t['fused_over_gat']:.2f}x | "
                         f"{'yes' if t['fused_peak_below_sequential'] else 'no'} |")
    if acc:
        lines += ["", f"Cora test accuracy after {args.acc_epochs} epochs (same initial "
                  "parameters, seed "
                  f"{args.seed}; dropout masks differ between the paths):", "",
                  "| student | fused | sequential |", "|---|---|---|"]
        for name in acc["fused"]:
            lines.append(f"| {name} | {acc['fused'][name]:.3f} | "
                         f"{acc['sequential'][name]:.3f} |")
    # imported here, not at the top: the worker processes measure their peak RSS
    from graphmutual.bench.environment import environment, environment_markdown
    from graphmutual.bench.report import write_report

    hw = environment()
    lines += ["", "Hardware and software:", "", environment_markdown(hw)]
    text = "\n".join(lines) + "\n"
    print(text)
    if out is not None:
        payload = dict(command=command, args={k: (str(v) if isinstance(v, Path) else v)
                                              for k, v in vars(args).items()},
                       summary=summary, targets=targets, accuracy=acc, hardware=hw)
        md, js = write_report(out, text, payload)
        print(f"wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
