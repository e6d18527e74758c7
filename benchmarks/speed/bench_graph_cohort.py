r"""Speed of a graph-level cohort on ogbg-molhiv against plain PyG models.

Variants, all 2 layers x 64, batch 32, one torch thread, timed over the same fixed number of
training batches (``--batches``, not whole epochs: one molhiv epoch is 1,029 batches), each
batch = collate + forward + loss + backward + Adam step:

* ``plain_gin``   -- one plain-PyG GIN (OGB ``AtomEncoder``, batch norm inside each GIN MLP
  and after each hidden layer, mean pooling, dropout 0.5, linear head, BCE with logits, Adam
  lr 1e-3, weight decay 1e-6). No graphmutual code in the model or the loop.
* ``plain_seq3``  -- three such plain-PyG models (GCN, GAT with 8 heads, GIN) trained one
  after another, each over its own loader (the time is the sum of the three).
* ``cohort``      -- the K=3 GCN+GAT+GIN GML cohort as ``graphmutual train`` builds it
  (:func:`graphmutual.train.cohort.build_cohort`, ``--hidden 64 --num-layers 2``), trained
  with the trainer's step (``cohort(x, edge_index, batch=..., edge_attr=...)``,
  ``cohort.loss``, backward, Adam, one ``float()`` per loss term).
* ``cohort_unfused`` -- the same cohort with ``fused=False`` (students one by one).
* ``cohort_foreach`` -- ``cohort`` with ``Adam(foreach=True)`` (a trainer-side suggestion:
  one multi-tensor update instead of a Python loop over the cohort's ~64 parameters).
* ``plain_gin_fastcollate`` / ``cohort_fast`` -- trainer-side suggestions together: batches
  sliced straight out of the in-memory dataset's storage (:class:`SliceLoader`, a handful
  of tensor ops instead of PyG's per-graph ``separate`` + ``Batch.from_data_list``), and for
  the cohort also ``Adam(foreach=True)``; the plain GIN with the same loader is the fair
  yardstick for it.

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
VARIANTS = ("plain_gin", "plain_seq3", "cohort", "cohort_unfused", "cohort_foreach",
            "plain_gin_fastcollate", "cohort_fast")


# ------------------------------------------------------------------------- fast batching
class SliceLoader:
    """Shuffled mini-batches of an ``InMemoryDataset`` cut straight from its storage.

    The graphs of an in-memory dataset are stored concatenated with ``slices``; a batch of
    graphs ``idx`` is then one gather per attribute (node ids and edge ids from
    ``repeat_interleave`` of the graphs' ranges) plus the node offsets of ``edge_index``.
    Equivalent to PyG's ``DataLoader`` for datasets with ``x``, ``edge_index``,
    ``edge_attr`` and one ``y`` per graph (checked by ``--check-loader``).
    """

    def __init__(self, dataset, index, batch_size: int, generator=None) -> None:
        self.data, self.slices = dataset._data, dataset.slices
        self.index = torch.as_tensor(index, dtype=torch.long)
        self.batch_size, self.generator = batch_size, generator

    def _ranges(self, key: str, idx):
        start, end = self.slices[key][idx], self.slices[key][idx + 1]
        count = end - start
        cum = torch.cumsum(count, 0) - count
        ids = torch.repeat_interleave(start - cum, count) + torch.arange(int(count.sum()))
        return ids, count, cum

    def batch(self, idx):
        from torch_geometric.data import Batch

        d = self.data
        nodes, n_count, n_cum = self._ranges("x", idx)
        edges, e_count, _ = self._ranges("edge_index", idx)
        b = Batch(x=d.x[nodes], edge_attr=d.edge_attr[edges], y=d.y[idx],
                  edge_index=d.edge_index[:, edges] + torch.repeat_interleave(n_cum, e_count),
                  batch=torch.repeat_interleave(torch.arange(idx.numel()), n_count))
        b._num_graphs = idx.numel()
        return b

    def __iter__(self):
        perm = self.index[torch.randperm(self.index.numel(), generator=self.generator)]
        for idx in perm.split(self.batch_size):
            yield self.batch(idx)

    def __len__(self) -> int:
        return -(-self.index.numel() // self.batch_size)


def check_loader(dataset, index) -> None:
    """``SliceLoader`` batches equal PyG ``DataLoader`` batches (same graphs, same order)."""
    from torch_geometric.loader import DataLoader

    idx = torch.as_tensor(index[:100])
    ref = next(iter(DataLoader(dataset[idx], batch_size=100)))
    ours = SliceLoader(dataset, idx, 100).batch(idx)
    for key in ("x", "edge_index", "edge_attr", "y", "batch"):
        if not torch.equal(ref[key], ours[key]):
            raise AssertionError(f"SliceLoader differs from DataLoader in {key}")


def _loader(dataset, index, bs: int, gen, fast: bool):
    from torch_geometric.loader import DataLoader

    if fast:
        return SliceLoader(dataset, index, bs, gen)
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
def cohort_steps(ds, train_idx, hidden: int, layers: int, bs: int, fused: bool,
                 foreach: bool = False, fast: bool = False):
    from graphmutual.train.cohort import build_cohort
    from graphmutual.train.config import TrainConfig

    torch.manual_seed(0)
    cfg = TrainConfig(dataset="ogbg-molhiv", students=["gcn", "gat", "gin"], method="gml",
                      hidden=hidden, num_layers=layers, batch_size=bs)
    cohort = build_cohort(ds, cfg)
    if not fused:
        cohort = type(cohort)(list(cohort.students), method="gml", names=cohort.names,
                              divergence=cohort.divergence, warmup=cohort.warmup,
                              fused=False)
    opt = torch.optim.Adam(cohort.parameters(), lr=1e-3, weight_decay=cfg.weight_decay,
                           foreach=foreach or None)
    cohort.train()
    cohort.set_epoch(20)  # past the warm-up: the full mimicry loss is computed
    gen = torch.Generator().manual_seed(0)

    def step(b) -> None:
        opt.zero_grad(set_to_none=True)
        logits = cohort(b.x, b.edge_index, batch=b.batch, edge_attr=b.get("edge_attr"))
        losses = cohort.loss(logits, b.y)
        losses["total"].backward()
        opt.step()
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
    p.add_argument("--variants", default=",".join(VARIANTS[:4]))
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
    check_loader(ds.data, train_idx)
    plain_ds = PygGraphPropPredDataset("ogbg-molhiv", str(root / "ogb"))

    runners: Dict[str, List[Callable[[int], float]]] = {}
    fused_info = ""
    for v in variants:
        if v in ("plain_gin", "plain_gin_fastcollate"):
            runners[v] = [plain_steps(plain_ds, train_idx, "gin", a.hidden, a.layers,
                                      a.batch_size, fast=v != "plain_gin")]
        elif v == "plain_seq3":
            runners[v] = [plain_steps(plain_ds, train_idx, k, a.hidden, a.layers, a.batch_size)
                          for k in ("gcn", "gat", "gin")]
        else:
            run, cohort = cohort_steps(ds, train_idx, a.hidden, a.layers, a.batch_size,
                                       fused=v != "cohort_unfused",
                                       foreach=v in ("cohort_foreach", "cohort_fast"),
                                       fast=v == "cohort_fast")
            runners[v] = [run]
            if v == "cohort":
                fused_info = repr(getattr(cohort, "_fused", None))

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
        st = {v: x[key] for v, x in stats.items()}
        if "plain_gin" in st and "cohort" in st:
            ratios[f"cohort / plain_gin ({key})"] = st["cohort"] / st["plain_gin"]
        if "plain_seq3" in st and "cohort" in st:
            ratios[f"plain_seq3 / cohort ({key})"] = st["plain_seq3"] / st["cohort"]
        if "cohort_unfused" in st and "cohort" in st:
            ratios[f"cohort_unfused / cohort ({key})"] = st["cohort_unfused"] / st["cohort"]
        if "cohort_fast" in st and "plain_gin_fastcollate" in st:
            ratios[f"cohort_fast / plain_gin_fastcollate ({key})"] = (
                st["cohort_fast"] / st["plain_gin_fastcollate"])
        if "cohort_fast" in st and "plain_gin" in st:
            ratios[f"cohort_fast / plain_gin ({key})"] = st["cohort_fast"] / st["plain_gin"]
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
