r"""Speed of a graph-level cohort on ogbg-molhiv against plain PyG models.

Variants, all 2 layers x 64, batch 32, one torch thread, timed over the same fixed number of
training batches (``--batches``, not whole epochs: one molhiv epoch is 1,029 batches), each
batch = collate + forward + loss + backward + Adam step:

* ``plain_gin``   -- one plain-PyG GIN (OGB ``AtomEncoder``, batch norm inside each GIN MLP
  and after each hidden layer, mean pooling, dropout 0.5, linear head, BCE with logits, Adam
  lr 1e-3, weight decay 1e-6) over PyG's ``DataLoader``. No graphmutual code in the model or
  the loop: the reference of issue 17.
* ``plain_gin_slice`` -- the same plain GIN, batches from graphmutual's
  :class:`~graphmutual.data.SliceLoader` (the same batches, cut from the dataset's storage):
  the yardstick when both sides use the faster loader.
* ``plain_seq3``  -- three plain-PyG models (GCN, GAT with 8 heads, GIN) over PyG's
  ``DataLoader``, trained one after another (the time is the sum of the three).
* ``cohort``      -- the K=3 GCN+GAT+GIN GML cohort as ``graphmutual train`` trains it now:
  :func:`graphmutual.train.cohort.build_cohort` (``--hidden 64 --num-layers 2``; GAT's
  heads are the task default ``gat_heads``), batches
  from :func:`graphmutual.data.graph_loader` (``SliceLoader``), the trainer's
  :func:`~graphmutual.train.trainer.make_optimizer` (Adam, ``fused=True``) and the task's step
  (:func:`graphmutual.train.tasks._step`, one ``float()`` per loss term).
* ``cohort_before`` -- the cohort as session 11's trainer ran it: PyG's ``DataLoader``, the
  default (for-loop) Adam and an 8-head GAT.
* ``cohort_unfused`` -- ``cohort`` with ``fused=False`` (students one by one).
* ``cohort_foreach_adam`` -- ``cohort`` with ``Adam(foreach=True)``, the trainer's Adam of the
  previous speed pass (bit-identical to the default Adam; the trainer's ``fused=True`` differs
  from it by rounding only).
* ``cohort_gat8``, ``cohort_gat4``, ``cohort_gat2`` -- ``cohort`` with an 8-, 4- or 2-head
  GAT student (``gat_heads``; 8 is the GAT paper's and the node tasks' default; the graph
  default is chosen on validation: ``benchmarks/results/bench/check-gat-heads-*.md``).

Timing is interleaved in blocks of ``--block`` batches (the variants take turns every
block, order rotated) so that load from other processes hits all variants alike. Both the
process CPU time (one torch thread: robust to other processes on a shared machine) and the
wall time of every block are recorded; the table reports per-batch medians over blocks (and
the fastest block). Every model trains ``--warmup`` untimed batches first.

Usage::

    python benchmarks/speed/bench_graph_cohort.py --root /tmp/data   # root/ogb/ogbg_molhiv
    python benchmarks/speed/bench_graph_cohort.py --quick            # smoke run

Without ``--root`` the shared ``ogb/ogbg_molhiv`` folder is copied to a temporary directory
(the OGB loader writes ``processed/`` next to ``raw/``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared" / "datasets"
VARIANTS = ("plain_gin", "plain_gin_slice", "plain_seq3", "cohort", "cohort_before",
            "cohort_unfused", "cohort_foreach_adam", "cohort_gat8", "cohort_gat4",
            "cohort_gat2")
#: ``cohort_*`` variant -> keyword arguments of :func:`cohort_steps`
COHORTS = {"cohort": {}, "cohort_before": {"adam": "loop", "fast": False, "gat_heads": 8},
           "cohort_unfused": {"fused": False}, "cohort_foreach_adam": {"adam": "foreach"},
           "cohort_gat8": {"gat_heads": 8}, "cohort_gat4": {"gat_heads": 4},
           "cohort_gat2": {"gat_heads": 2}}
#: (numerator, denominator) of the reported ratios
RATIOS = (("cohort", "plain_gin"), ("plain_seq3", "cohort"), ("cohort", "plain_gin_slice"),
          ("cohort_before", "cohort"), ("cohort_before", "plain_gin"),
          ("cohort_unfused", "cohort"), ("cohort_foreach_adam", "cohort"),
          ("cohort_foreach_adam", "plain_gin"), ("cohort_gat8", "plain_gin"),
          ("cohort_gat4", "plain_gin"), ("cohort_gat2", "plain_gin"),
          ("plain_seq3", "cohort_gat4"), ("plain_gin", "plain_gin_slice"))


def check_loader(dataset, index) -> None:
    """The package's ``SliceLoader`` batches equal PyG ``DataLoader`` batches here."""
    from torch_geometric.loader import DataLoader

    from graphmutual.data import SliceLoader

    idx = torch.as_tensor(index[:100])
    ref = next(iter(DataLoader(dataset[idx], batch_size=100)))
    ours = next(iter(SliceLoader(dataset, idx, 100)))
    for key in ("x", "edge_index", "edge_attr", "y", "batch", "ptr"):
        if not torch.equal(ref[key], ours[key]):
            raise AssertionError(f"SliceLoader differs from DataLoader in {key}")


def _loader(dataset, index, bs: int, gen, fast: bool):
    """PyG's ``DataLoader`` or (``fast``) the package's loader, over the same batches."""
    from torch_geometric.loader import DataLoader

    from graphmutual.data import graph_loader

    if fast:
        return graph_loader(dataset, index, bs, shuffle=True, generator=gen)
    return DataLoader(dataset[index], batch_size=bs, shuffle=True, generator=gen)


# ------------------------------------------------------------------ plain PyG (no graphmutual)
class PlainNet(nn.Module):
    """AtomEncoder -> 2-layer PyG model (batch norm) -> mean pool -> dropout -> linear."""

    def __init__(self, kind: str, hidden: int, layers: int) -> None:
        super().__init__()
        from ogb.graphproppred.mol_encoder import AtomEncoder
        from torch_geometric.nn.models import GAT, GCN, GIN

        self.enc = AtomEncoder(hidden)
        cls = {"gcn": GCN, "gat": GAT, "gin": GIN}[kind]
        extra = {"heads": 8} if kind == "gat" else {}
        self.gnn = cls(hidden, hidden, layers, hidden, norm="batch_norm", **extra)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x, edge_index, batch):
        from torch_geometric.nn import global_mean_pool

        h = self.gnn(self.enc(x), edge_index)
        h = F.dropout(global_mean_pool(h, batch), 0.5, self.training)
        return self.head(h).view(-1)


def plain_steps(dataset, train_idx, kind: str, hidden: int, layers: int, bs: int,
                fast: bool = False):
    """``run(n)``: train ``n`` batches of a plain model; returns (wall, CPU) seconds."""
    torch.manual_seed(0)
    model = PlainNet(kind, hidden, layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)
    model.train()
    gen = torch.Generator().manual_seed(0)

    def step(b) -> None:
        opt.zero_grad(set_to_none=True)
        out = model(b.x, b.edge_index, b.batch)
        loss = F.binary_cross_entropy_with_logits(out, b.y.view(-1).float())
        loss.backward()
        opt.step()
        float(loss.detach())

    return _timed(_loader(dataset, train_idx, bs, gen, fast), step)


def _timed(loader, step: Callable[[object], None]) -> Callable[[int], Tuple[float, float]]:
    """``run(n)``: ``step`` over the next ``n`` batches of ``loader`` (restarting it when it
    runs out); returns the (wall, CPU) seconds they took."""
    it = iter(loader)

    def run(n: int) -> Tuple[float, float]:
        nonlocal it
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            try:
                b = next(it)
            except StopIteration:
                it = iter(loader)
                b = next(it)
            step(b)
        return time.perf_counter() - t0, time.process_time() - c0

    return run


# ------------------------------------------------------------------------ graphmutual cohort
def cohort_steps(ds, train_idx, hidden: int, layers: int, bs: int, fused: bool = True,
                 adam: str = "trainer", fast: bool = True, gat_heads: int | None = None):
    """``(run, cohort)``: ``run(n)`` trains ``n`` batches of the GML cohort.

    ``adam``: ``"trainer"`` (:func:`~graphmutual.train.trainer.make_optimizer`), ``"loop"``
    (PyTorch's default), ``"foreach"`` or ``"fused"``; ``fast``: the package's loader (else
    PyG's); ``gat_heads``: GAT's heads (``None``: the task default).
    """
    from graphmutual.mutual import MutualEnsemble
    from graphmutual.train.cohort import _student_kwargs, build_students, unique_names
    from graphmutual.train.config import TrainConfig
    from graphmutual.train.defaults import resolve_config
    from graphmutual.train.tasks import _step
    from graphmutual.train.trainer import make_optimizer

    torch.manual_seed(0)
    cfg = resolve_config(TrainConfig(dataset="ogbg-molhiv", students=["gcn", "gat", "gin"],
                                     method="gml", hidden=hidden, num_layers=layers,
                                     batch_size=bs, gat_heads=gat_heads), ds)
    kwargs = _student_kwargs(cfg)
    students = build_students(ds, list(cfg.students), cfg.hidden, cfg.num_layers, cfg.dropout,
                              student_kwargs=kwargs, pool=cfg.pool,
                              edge_features=cfg.edge_features)
    cohort = MutualEnsemble(students, names=unique_names(list(cfg.students)),
                            **{**cfg.ensemble_kwargs(), "fused": "auto" if fused else False})
    if adam == "trainer":
        opt = make_optimizer(cohort, cfg.lr, cfg.weight_decay)
    else:
        opt = torch.optim.Adam(cohort.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                               fused=adam == "fused" or None,
                               foreach=adam == "foreach" or None)
    cohort.train()
    cohort.set_epoch(20)  # past the warm-up: the full mimicry loss is computed
    gen = torch.Generator().manual_seed(0)
    device = torch.device("cpu")

    def step(b) -> None:  # GraphBatchTask.train_epoch's step
        b = b.to(device)
        kw = {"batch": b.batch, "edge_attr": b.get("edge_attr")}
        losses = _step(cohort, opt, (b.x, b.edge_index), b.y, None, kw)
        for v in losses.values():
            float(v.detach())

    return _timed(_loader(ds.data, train_idx, bs, gen, fast), step), cohort


def markdown(result: Dict) -> str:
    """The result as a small markdown table (what ``graph_cohort_cpu*.md`` holds)."""
    c = result["config"]
    lines = [f"Command: `{result['command']}`", ""]
    if result.get("note"):
        lines += [result["note"], ""]
    lines += [
             f"ogbg-molhiv training batches, {c['layers']} layers x {c['hidden']}, batch "
             f"{c['batch_size']}, one torch thread; {c['rounds']} rounds x {c['batches']} "
             f"batches per variant, interleaved in blocks of {c['block']} (not whole epochs).",
             "", "CPU time is the process's (one torch thread), the robust number on a shared "
             "machine; wall times depend on the load of other processes.",
             "", "| variant | CPU ms/batch (median) | wall ms/batch (median) | "
             "wall ms/batch (fastest block) |", "|---|---:|---:|---:|"]
    for v, st in result["ms_per_batch"].items():
        lines.append(f"| {v} | {st['cpu_ms_median']:.1f} | {st['wall_ms_median']:.1f} | "
                     f"{st['wall_ms_min']:.1f} |")
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in result["ratios"].items()]
    lines += ["", f"Fused cohort: `{result['fused_cohort']}`", "", "Hardware:", ""]
    lines += [f"- {k}: {v}" for k, v in result["environment"].items()]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------- main
def dataset_root(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    tmp = Path(tempfile.mkdtemp(prefix="bench_graph_cohort_"))
    shutil.copytree(SHARED / "ogb" / "ogbg_molhiv", tmp / "ogb" / "ogbg_molhiv",
                    ignore=shutil.ignore_patterns("processed"))
    return tmp


def main(argv: List[str] | None = None) -> Dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", help="dataset root holding ogb/ogbg_molhiv (default: temp copy)")
    p.add_argument("--batches", type=int, default=200,
                   help="timed batches per variant and round")
    p.add_argument("--block", type=int, default=20,
                   help="batches per interleaved block (variants alternate every block)")
    p.add_argument("--warmup", type=int, default=10, help="untimed batches before a block")
    p.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--label", default="", help="suffix of the result files (e.g. -before)")
    p.add_argument("--note", default="", help="a line written under the command")
    p.add_argument("--quick", action="store_true", help="smoke run: 5 batches, 1 round")
    p.add_argument("--no-write", action="store_true", help="print only")
    a = p.parse_args(argv)
    if a.quick:
        a.batches, a.block, a.warmup, a.rounds = 4, 2, 1, 1
    torch.set_num_threads(1)
    variants = [v for v in a.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}")

    from ogb.graphproppred import PygGraphPropPredDataset

    from graphmutual.data import load_dataset

    root = dataset_root(a.root)
    ds = load_dataset("ogbg-molhiv", root)  # also processes the raw files once
    train_idx = ds.split(0).train
    check_loader(ds.data, train_idx)  # (tests/test_graph_loader.py checks it in full)
    plain_ds = PygGraphPropPredDataset("ogbg-molhiv", str(root / "ogb"))

    runners: Dict[str, List[Callable[[int], float]]] = {}
    fused_info = ""
    for v in variants:
        if v in ("plain_gin", "plain_gin_slice"):
            runners[v] = [plain_steps(plain_ds, train_idx, "gin", a.hidden, a.layers,
                                      a.batch_size, fast=v == "plain_gin_slice")]
        elif v == "plain_seq3":
            runners[v] = [plain_steps(plain_ds, train_idx, k, a.hidden, a.layers, a.batch_size)
                          for k in ("gcn", "gat", "gin")]
        else:
            run, cohort = cohort_steps(ds, train_idx, a.hidden, a.layers, a.batch_size,
                                       **COHORTS[v])
            runners[v] = [run]
            if v == "cohort":
                gat = [st for st in cohort.students if st.name == "gat"][0]
                fused_info = (f"{getattr(cohort, '_fused', None)!r}, GAT heads "
                              f"{gat.node_model.convs[0].heads}")

    # blocks of --block batches, variants interleaved block by block (order rotated), so
    # that a burst of load from other processes hits every variant alike
    wall: Dict[str, List[float]] = {v: [] for v in variants}
    cpu: Dict[str, List[float]] = {v: [] for v in variants}
    for v in variants:
        for run in runners[v]:
            run(a.warmup)
    blocks = max(1, a.batches // a.block)
    for r in range(a.rounds):
        for b in range(blocks):
            j = (r * blocks + b) % len(variants)
            for v in variants[j:] + variants[:j]:
                w = c = 0.0
                for run in runners[v]:  # a sequence of models: each trains its block in turn
                    dw, dc = run(a.block)
                    w, c = w + dw, c + dc
                wall[v].append(w / a.block)
                cpu[v].append(c / a.block)
        print(f"round {r}: " + ", ".join(
            f"{v} {1e3 * statistics.median(cpu[v][-blocks:]):.1f}" for v in variants)
            + " ms CPU/batch", flush=True)

    stats = {}
    for v in variants:
        stats[v] = {"cpu_ms_median": 1e3 * statistics.median(cpu[v]),
                    "cpu_ms_min": 1e3 * min(cpu[v]),
                    "wall_ms_median": 1e3 * statistics.median(wall[v]),
                    "wall_ms_min": 1e3 * min(wall[v])}
    ratios = {}
    for key in ("cpu_ms_median", "wall_ms_median", "wall_ms_min"):
        for num, den in RATIOS:
            if num in stats and den in stats:
                ratios[f"{num} / {den} ({key})"] = stats[num][key] / stats[den][key]
    from graphmutual.bench.environment import environment

    cmd = "python benchmarks/speed/bench_graph_cohort.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    result = {"command": cmd.strip(), "config": {k: getattr(a, k) for k in
                                                 ("batches", "block", "warmup", "rounds",
                                                  "hidden",
                                                  "layers", "batch_size")},
              "ms_per_batch": stats, "cpu_ms_per_block": {
                  v: [round(1e3 * t, 3) for t in ts] for v, ts in cpu.items()},
              "wall_ms_per_block": {
                  v: [round(1e3 * t, 3) for t in ts] for v, ts in wall.items()},
              "ratios": ratios, "fused_cohort": fused_info, "note": a.note,
              "environment": environment()}
    print(json.dumps({"ms_per_batch": stats, "ratios": ratios}, indent=1))
    if not a.no_write and not a.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stem = RESULTS / f"graph_cohort_cpu{a.label}"
        stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        stem.with_suffix(".md").write_text(markdown(result))
        print(f"wrote {stem}.json and .md")
    return result


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
