r"""The fused graph path now against an earlier commit's, in one process on ogbg-molhiv.

Two copies of the K=3 GCN+GAT+GIN GML cohort (``graphmutual train``'s students, 2 layers x
64, batch 32, the same initial parameters) train on the same batches, with the same trainer
(:func:`~graphmutual.data.graph_loader`, :func:`~graphmutual.train.trainer.make_optimizer`,
the task's step); the only difference is the :class:`~graphmutual.nn.fused.FusedCohort` that
runs the students: this checkout's, or the one in ``graphmutual/nn/fused.py`` at ``--ref``
(read with ``git show`` and imported as a separate module). Blocks of ``--block`` batches
alternate between the two (order rotated), process CPU time per batch, medians over blocks.
Before timing, both give the same evaluation-mode logits on a batch (checked, float32).

Usage::

    python benchmarks/speed/ab_fused_graph.py --root /tmp/data --ref 4a9813a

Writes ``benchmarks/results/graph_cohort_cpu-ab.{md,json}``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Dict, List

import torch

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def old_fused(ref: str) -> types.ModuleType:
    """``graphmutual/nn/fused.py`` at git ``ref`` as a module of its own."""
    src = subprocess.run(["git", "show", f"{ref}:graphmutual/nn/fused.py"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    mod = types.ModuleType(f"fused_at_{ref}")
    sys.modules[mod.__name__] = mod  # dataclasses look their module up
    exec(compile(src, f"fused.py@{ref}", "exec"), mod.__dict__)
    return mod


def main(argv: List[str] | None = None) -> Dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True, help="dataset root holding ogb/ogbg_molhiv")
    p.add_argument("--ref", default="4a9813a", help="git commit of the other fused.py")
    p.add_argument("--batches", type=int, default=100, help="timed batches per round")
    p.add_argument("--block", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=str(RESULTS / "graph_cohort_cpu-ab"))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    from graphmutual.bench.environment import environment
    from graphmutual.data import graph_loader, load_dataset
    from graphmutual.train.cohort import build_cohort
    from graphmutual.train.config import TrainConfig
    from graphmutual.train.defaults import resolve_config
    from graphmutual.train.tasks import _step
    from graphmutual.train.trainer import make_optimizer

    old = old_fused(a.ref)
    ds = load_dataset("ogbg-molhiv", a.root)
    cfg = resolve_config(TrainConfig(dataset="ogbg-molhiv", students=["gcn", "gat", "gin"],
                                     method="gml", hidden=64, num_layers=2, batch_size=32), ds)
    runs = {}
    for name in ("now", a.ref):
        torch.manual_seed(0)
        cohort = build_cohort(ds, cfg)
        if name != "now":
            cohort._fused = old.FusedCohort(list(cohort.students))
        assert cohort.fused_cohort is not None
        runs[name] = [cohort, make_optimizer(cohort, cfg.lr, cfg.weight_decay), None]
    b = next(iter(graph_loader(ds.data, ds.split(0).train, 32)))
    with torch.no_grad():
        outs = []
        for cohort, _, _ in runs.values():
            cohort.eval()
            outs.append(cohort(b.x, b.edge_index, batch=b.batch))
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-5)
    for r in runs.values():
        r[0].train()
        r[0].set_epoch(20)
        r[2] = iter(graph_loader(ds.data, ds.split(0).train, 32, shuffle=True,
                                 generator=torch.Generator().manual_seed(0)))

    def run(name: str, n: int) -> float:
        cohort, opt, it = runs[name]
        c = time.process_time()
        for _ in range(n):
            try:
                batch = next(it)
            except StopIteration:
                runs[name][2] = it = iter(graph_loader(ds.data, ds.split(0).train, 32,
                                                       shuffle=True))
                batch = next(it)
            losses = _step(cohort, opt, (batch.x, batch.edge_index), batch.y, None,
                           {"batch": batch.batch})
            for v in losses.values():
                float(v.detach())
        return 1e3 * (time.process_time() - c) / n

    names = list(runs)
    for name in names:
        run(name, 10)  # warm-up
    cpu: Dict[str, List[float]] = {n: [] for n in names}
    blocks = max(1, a.batches // a.block)
    for r in range(a.rounds):
        for k in range(blocks):
            order = names if (r * blocks + k) % 2 == 0 else names[::-1]
            for name in order:
                cpu[name].append(run(name, a.block))
        print(f"round {r}: " + ", ".join(
            f"{n} {statistics.median(cpu[n][-blocks:]):.1f}" for n in names) + " ms CPU/batch")
    med = {n: statistics.median(v) for n, v in cpu.items()}
    cmd = "python benchmarks/speed/ab_fused_graph.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    result = {"command": cmd.strip(), "ref": a.ref, "cpu_ms_per_batch_median": med,
              "cpu_ms_per_block": cpu, "ratio_ref_over_now": med[a.ref] / med["now"],
              "config": vars(a), "environment": environment()}
    Path(a.out + ".json").write_text(json.dumps(result, indent=1))
    lines = [f"Command: `{result['command']}`", "",
             "GCN+GAT+GIN GML cohort on ogbg-molhiv (2 x 64, batch 32, one torch thread), "
             "the trainer's loader, Adam and step; only the fused cohort differs. "
             f"{a.rounds} rounds x {blocks} blocks of {a.block} batches, alternating.", "",
             "| fused.py | CPU ms per training batch (median over blocks) |", "|---|---:|",
             f"| this checkout | {med['now']:.2f} |",
             f"| commit {a.ref} | {med[a.ref]:.2f} |", "",
             f"{a.ref} / this checkout: {result['ratio_ref_over_now']:.3f}", "", "Hardware:", ""]
    lines += [f"- {k}: {v}" for k, v in result["environment"].items()]
    Path(a.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
