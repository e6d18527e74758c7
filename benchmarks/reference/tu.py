r"""Plain-PyG reference for TU graph classification (MUTAG, PROTEINS, ENZYMES).

The model and the loop use PyG and torch only.  For identical folds the split function is
imported from graphmutual (``graphmutual.data.splits.stratified_kfold_split``: stratified
10-fold CV, shuffle seed 0, fold ``s mod 10`` is the test fold of seed ``s``, and a
stratified 10 % of the training folds -- drawn with seed ``s`` -- is the inner validation
split); nothing else of graphmutual is used.  Node features are built as graphmutual's TU
loader builds them (Errica et al. 2020): the one-hot node labels and the continuous node
attributes (``use_node_attr=True``), the attribute columns standardised over all nodes.

The model (Xu et al. 2019's GIN with the usual PyG example layout)::

    h^{(l)} = Dropout(ReLU(BN(GINConv_{MLP_l}(h^{(l-1)}))))      l = 1..L,
    MLP_l   = Linear -> BN -> ReLU -> Linear
    z_G     = Linear(pool_{v in G} h_v^{(L)})

trained with cross-entropy and Adam; the test accuracy is taken at the epoch of best
validation accuracy (first one on ties), never at the best test epoch.

Example::

    OMP_NUM_THREADS=1 python benchmarks/reference/tu.py --dataset MUTAG --root /tmp/data \
        --folds 0-9 --epochs 100 --out mutag.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def parse_folds(text: str) -> List[int]:
    """``"0-9"`` → 0..9, ``"0,3,7"`` → those."""
    text = text.strip()
    if "-" in text and "," not in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",") if s.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="MUTAG", choices=["MUTAG", "PROTEINS", "ENZYMES"])
    p.add_argument("--root", required=True,
                   help="folder holding TUDataset/<NAME>/raw (writable: processed/ is written)")
    p.add_argument("--model", default="gin", choices=["gin", "gcn", "gat"])
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4, help="GAT heads (hidden split over them)")
    p.add_argument("--pool", default="mean", choices=["mean", "add"])
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--head", default="linear", choices=["linear", "mlp"],
                   help="mlp: dropout -> Linear-ReLU-Linear head (graphmutual's GraphStudent)")
    p.add_argument("--norm", default="batch_norm", choices=["batch_norm", "none"],
                   help="none: no BN after the convs nor inside GIN's MLP")
    p.add_argument("--plain-last", action="store_true",
                   help="no BN/ReLU/dropout after the last conv (PyG BasicGNN's last layer, "
                        "as in graphmutual's students)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-6)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--folds", "--seeds", dest="folds", default="0-9",
                   help="seeds = folds: '0-9' or '0,3,7' (seed s tests on fold s mod 10)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="JSON file (rewritten after every fold)")
    return p


class TUNet(nn.Module):
    """L x (conv -> BN -> ReLU -> dropout) -> pooling -> linear head.

    ``head="mlp"``, ``plain_last=True`` and ``norm="none"`` rebuild graphmutual's
    GraphStudent layout in plain PyG (for the diagnosis of where the gap comes from).
    """

    def __init__(self, model: str, in_channels: int, hidden: int, layers: int, classes: int,
                 dropout: float, pool: str, heads: int, head: str = "linear",
                 plain_last: bool = False, norm: str = "batch_norm") -> None:
        super().__init__()
        from torch_geometric.nn import GATConv, GCNConv, GINConv

        if layers < 1 or hidden < 1:
            raise ValueError(f"need layers >= 1 and hidden >= 1 (got {layers}, {hidden})")
        if model == "gat" and hidden % heads:
            raise ValueError(f"hidden {hidden} is not divisible by {heads} heads")
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        width = in_channels
        for _ in range(layers):
            if model == "gin":
                conv = GINConv(nn.Sequential(nn.Linear(width, hidden), _norm(norm, hidden),
                                             nn.ReLU(), nn.Linear(hidden, hidden)),
                               train_eps=True)
            elif model == "gcn":
                conv = GCNConv(width, hidden)
            else:
                conv = GATConv(width, hidden // heads, heads=heads)
            self.convs.append(conv)
            self.norms.append(_norm(norm, hidden))
            width = hidden
        self.dropout, self.pool, self.plain_last = dropout, pool, plain_last
        self.head = _head(head, hidden, classes, dropout)

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor) -> Tensor:
        from torch_geometric.nn import global_add_pool, global_mean_pool

        h = x
        for k, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            h = conv(h, edge_index)
            if k < len(self.convs) - 1 or not self.plain_last:
                h = F.dropout(F.relu(norm(h)), self.dropout, self.training)
        pool = global_mean_pool if self.pool == "mean" else global_add_pool
        return self.head(pool(h, batch))


def _norm(kind: str, width: int) -> nn.Module:
    return nn.BatchNorm1d(width) if kind == "batch_norm" else nn.Identity()


def _head(kind: str, hidden: int, out: int, dropout: float) -> nn.Module:
    if kind == "linear":
        return nn.Linear(hidden, out)
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, out))


def load(root: str, name: str):
    """TUDataset with node labels + standardised continuous attributes (graphmutual's x)."""
    from torch_geometric.datasets import TUDataset

    ds = TUDataset(str(Path(root) / "TUDataset"), name, use_node_attr=True)
    k = int(ds.num_node_attributes)
    if k > 0:
        block = ds._data.x[:, :k]
        std = block.std(dim=0, unbiased=False)
        block.sub_(block.mean(dim=0)).div_(torch.where(std > 0, std, torch.ones_like(std)))
    return ds


@torch.no_grad()
def accuracy(model: nn.Module, loader) -> float:
    model.eval()
    right = total = 0
    for b in loader:
        right += int((model(b.x, b.edge_index, b.batch).argmax(-1) == b.y).sum())
        total += b.num_graphs
    return right / total


def run_fold(args, dataset, seed: int) -> Dict:
    from torch_geometric.loader import DataLoader

    from graphmutual.data.splits import stratified_kfold_split  # identical folds only

    split = stratified_kfold_split(dataset._data.y.view(-1), seed)
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = TUNet(args.model, dataset.num_features, args.hidden, args.layers,
                  dataset.num_classes, args.dropout, args.pool, args.heads, args.head,
                  args.plain_last, args.norm)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    train = DataLoader(dataset[split.train], batch_size=args.batch_size, shuffle=True,
                       generator=gen)
    valid = DataLoader(dataset[split.val], batch_size=256)
    test = DataLoader(dataset[split.test], batch_size=256)
    curve: List[Dict] = []
    best = {"val": -1.0, "test": float("nan"), "epoch": -1}
    t_all = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        total = 0.0
        for b in train:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(b.x, b.edge_index, b.batch), b.y)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * b.num_graphs
        train_s = time.perf_counter() - t0
        val, tst = accuracy(model, valid), accuracy(model, test)
        curve.append({"epoch": epoch, "loss": total / len(split.train), "val": val,
                      "test": tst, "train_seconds": train_s})
        if val > best["val"]:
            best = {"val": val, "test": tst, "epoch": epoch}
    print(f"{args.dataset} seed {seed} ({split.description}): best val {best['val']:.4f} "
          f"test {best['test']:.4f} at epoch {best['epoch']} "
          f"({time.perf_counter() - t_all:.0f} s)", flush=True)
    return {"seed": seed, "split": split.description, "best": best, "curve": curve,
            "seconds_per_epoch": float(np.mean([c["train_seconds"] for c in curve])),
            "parameters": sum(p.numel() for p in model.parameters())}


def summarize(runs: List[Dict]) -> Dict:
    def stat(key: str) -> Dict:
        v = np.array([r["best"][key] for r in runs]) * 100
        return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
    return {"val": stat("val"), "test": stat("test"), "n": len(runs)}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset = load(args.root, args.dataset)
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.exists() else {}
    runs = list(record.get("runs", []))
    done = {r["seed"] for r in runs}
    for seed in parse_folds(args.folds):
        if seed in done:
            continue
        runs.append(run_fold(args, dataset, seed))
        runs.sort(key=lambda r: r["seed"])
        record = {"script": "benchmarks/reference/tu.py",
                  "command": "python " + " ".join([sys.argv[0]] + sys.argv[1:]),
                  "args": vars(args), "hardware": platform.processor() or platform.machine(),
                  "cpus": os.cpu_count(), "torch": torch.__version__,
                  "summary": summarize(runs), "runs": runs}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1))
    if runs:
        s = summarize(runs)
        print(f"{args.dataset} {args.model}: val {s['val']['mean']:.2f} ± {s['val']['std']:.2f}"
              f"  test {s['test']['mean']:.2f} ± {s['test']['std']:.2f}  ({s['n']} folds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
