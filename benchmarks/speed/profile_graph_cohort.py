r"""Where a graph cohort's time goes on ogbg-molhiv (CPU, one thread), and whether larger
evaluation batches help.

1. ``torch.profiler`` over ``--steps`` training steps of the K=3 GCN+GAT+GIN GML cohort as the
   trainer runs it (``graph_loader`` batches, ``make_optimizer``, the task's ``_step``):
   the operators with the most self CPU time (the profiler's own overhead inflates every
   row; read the shares, not the milliseconds).
2. The same steps split into phases (forward, mutual loss with ALW, backward, Adam),
   process CPU ms per step, without the profiler.
3. ``GraphBatchTask.evaluate`` (validation + test) of the same, untrained cohort with
   ``eval_batch_size`` 128, 256 (the default), 1024 and 4096: process CPU seconds (each
   size twice, interleaved) and whether the scores are the same.

Usage::

    python benchmarks/speed/profile_graph_cohort.py --root /tmp/data   # root/ogb/ogbg_molhiv

Writes ``benchmarks/results/graph_cohort_cpu-profile.md``.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import List

import torch

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def main(argv: List[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True, help="dataset root holding ogb/ogbg_molhiv")
    p.add_argument("--steps", type=int, default=60, help="profiled training steps")
    p.add_argument("--out", default=str(RESULTS / "graph_cohort_cpu-profile.md"))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    from torch.profiler import profile

    from graphmutual.bench.environment import environment
    from graphmutual.data import graph_loader, load_dataset
    from graphmutual.train.cohort import build_cohort
    from graphmutual.train.config import TrainConfig
    from graphmutual.train.defaults import resolve_config
    from graphmutual.train.tasks import GraphBatchTask, _step
    from graphmutual.train.trainer import make_optimizer

    ds = load_dataset("ogbg-molhiv", a.root)
    cfg = resolve_config(TrainConfig(dataset="ogbg-molhiv", students=["gcn", "gat", "gin"],
                                     method="gml", hidden=64, num_layers=2, batch_size=32), ds)
    torch.manual_seed(0)
    cohort = build_cohort(ds, cfg)
    opt = make_optimizer(cohort, cfg.lr, cfg.weight_decay)
    cohort.train()
    cohort.set_epoch(20)
    loader = iter(graph_loader(ds.data, ds.split(0).train, 32, shuffle=True,
                               generator=torch.Generator().manual_seed(0)))
    batches = [next(loader) for _ in range(a.steps + 20)]

    def step(b) -> None:
        losses = _step(cohort, opt, (b.x, b.edge_index), b.y, None,
                       {"batch": b.batch, "edge_attr": b.get("edge_attr")})
        for v in losses.values():
            float(v.detach())

    phases = {"forward": 0.0, "loss": 0.0, "backward": 0.0, "adam": 0.0}

    def timed_step(b) -> None:  # _step, phase by phase
        t = [time.process_time()]
        opt.zero_grad(set_to_none=True)
        logits = cohort(b.x, b.edge_index, batch=b.batch, edge_attr=b.get("edge_attr"))
        t.append(time.process_time())
        losses = cohort.loss(logits, b.y)
        t.append(time.process_time())
        losses["total"].backward()
        t.append(time.process_time())
        opt.step()
        t.append(time.process_time())
        for k, t0, t1 in zip(phases, t, t[1:]):
            phases[k] += 1e3 * (t1 - t0) / a.steps

    for b in batches[:20]:
        step(b)
    for b in batches[20:]:
        timed_step(b)
    with profile() as prof:
        for b in batches[20:]:
            step(b)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)

    sizes = (128, 256, 1024, 4096)
    cpu = {s: [] for s in sizes}
    scores = {}
    for _ in range(2):
        for size in sizes:
            task = GraphBatchTask(ds, dataclasses.replace(cfg, eval_batch_size=size),
                                  torch.device("cpu"))
            task.setup(0)
            c = time.process_time()
            scores[size] = task.evaluate(cohort).scores
            cpu[size].append(time.process_time() - c)
    same = all(scores[s] == scores[256] for s in sizes)
    cmd = "python benchmarks/speed/profile_graph_cohort.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    lines = [f"Command: `{cmd.strip()}`", "",
             f"## Self CPU time by operator, {a.steps} training steps of the GML cohort "
             "(GCN+GAT+GIN, 2 x 64, batch 32)", "", "```", table.strip(), "```", "",
             "## CPU ms per training step by phase (no profiler)", "",
             "| phase | CPU ms |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in phases.items()]
    lines += [f"| total | {sum(phases.values()):.2f} |", "",
             "## Evaluation (validation + test) by `eval_batch_size`", "",
             "| eval_batch_size | CPU s (two runs) |", "|---:|---|"]
    lines += [f"| {s} | {', '.join(f'{t:.2f}' for t in cpu[s])} |" for s in sizes]
    lines += ["", f"Scores identical for every size: {same}", "", "Hardware:", ""]
    lines += [f"- {k}: {v}" for k, v in environment().items()]
    text = "\n".join(lines) + "\n"
    Path(a.out).write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
