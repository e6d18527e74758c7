r"""Plain-PyG reference for the single-task OGB molecule datasets (ogbg-molhiv/-molbace/-molbbbp).

No graphmutual code is used: the model, the loop and the evaluation are written here with
PyG, OGB and torch only, so a graphmutual result can be set next to what a new user gets
from the textbook recipe on the same machine.

The default recipe (a small GIN; the "tiny GIN for ogbg-molhiv" shape, 32k parameters)::

    h^{(0)} = AtomEncoder(x)
    h^{(l)} = Dropout(ReLU(BN(GINConv_{MLP_l}(h^{(l-1)}))))      l = 1..L,
    MLP_l   = Linear -> BN -> ReLU -> Linear
    z_G     = Linear(mean_{v in G} h_v^{(L)})                        (one logit)

trained with BCE-with-logits, Adam (lr 1e-3, weight decay 1e-6), batch 32, dropout 0.5;
validation and test ROC-AUC by ``ogb.graphproppred.Evaluator`` after every epoch, the test
score reported at the best validation epoch (first one on ties).  ``--model gcn|gat`` swaps
the convolution; ``--bond`` adds OGB's ``BondEncoder`` per layer (GIN becomes GINE, GAT
reads the bond embedding in its attention, as in the OGB examples).

Example::

    OMP_NUM_THREADS=1 python benchmarks/reference/ogb_mol.py --dataset ogbg-molbace \
        --root /tmp/data --seeds 0,1,2 --epochs 50 --out results.json

The JSON is rewritten after every seed; rerunning with the same ``--out`` skips the seeds it
already holds (resumable).
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ogbg-molhiv",
                   choices=["ogbg-molhiv", "ogbg-molbace", "ogbg-molbbbp"])
    p.add_argument("--root", required=True,
                   help="folder holding ogb/ogbg_<name>/ (writable: processed/ is written)")
    p.add_argument("--model", default="gin", choices=["gin", "gcn", "gat"])
    p.add_argument("--bond", action="store_true", help="bond features (GINE / GAT edge_dim)")
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
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="JSON file (rewritten after every seed)")
    return p


class MolNet(nn.Module):
    """AtomEncoder -> L x (conv -> BN -> ReLU -> dropout) -> pooling -> linear head.

    ``head="mlp"``, ``plain_last=True`` and ``norm="none"`` rebuild graphmutual's
    GraphStudent layout in plain PyG (for the diagnosis of where the gap comes from).
    """

    def __init__(self, model: str, hidden: int, layers: int, dropout: float, pool: str,
                 bond: bool, heads: int, head: str = "linear", plain_last: bool = False,
                 norm: str = "batch_norm") -> None:
        super().__init__()
        from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder
        from torch_geometric.nn import GATConv, GCNConv, GINConv, GINEConv

        if layers < 1 or hidden < 1:
            raise ValueError(f"need layers >= 1 and hidden >= 1 (got {layers}, {hidden})")
        if model == "gcn" and bond:
            raise ValueError("PyG's GCNConv has no edge-feature input; drop --bond")
        if model == "gat" and hidden % heads:
            raise ValueError(f"hidden {hidden} is not divisible by {heads} heads")
        self.atom = AtomEncoder(hidden)
        self.bond = nn.ModuleList([BondEncoder(hidden) for _ in range(layers)]) if bond else None
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        for _ in range(layers):
            if model == "gin":
                mlp = nn.Sequential(nn.Linear(hidden, hidden), _norm(norm, hidden), nn.ReLU(),
                                    nn.Linear(hidden, hidden))
                conv = GINEConv(mlp, train_eps=True) if bond else GINConv(mlp, train_eps=True)
            elif model == "gcn":
                conv = GCNConv(hidden, hidden)
            else:
                conv = GATConv(hidden, hidden // heads, heads=heads,
                               edge_dim=hidden if bond else None)
            self.convs.append(conv)
            self.norms.append(_norm(norm, hidden))
        self.dropout, self.pool, self.plain_last = dropout, pool, plain_last
        self.head = _head(head, hidden, 1, dropout)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor, batch: Tensor) -> Tensor:
        from torch_geometric.nn import global_add_pool, global_mean_pool

        h = self.atom(x)
        for k, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            if self.bond is not None:
                h = conv(h, edge_index, self.bond[k](edge_attr))
            else:
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


@torch.no_grad()
def evaluate(model: nn.Module, loader, evaluator) -> float:
    model.eval()
    ys, ps = [], []
    for b in loader:
        ps.append(model(b.x, b.edge_index, b.edge_attr, b.batch))
        ys.append(b.y.view(-1, 1))
    return float(evaluator.eval({"y_true": torch.cat(ys).numpy(),
                                 "y_pred": torch.cat(ps).numpy()})["rocauc"])


def run_seed(args, dataset, split, seed: int) -> Dict:
    from ogb.graphproppred import Evaluator
    from torch_geometric.loader import DataLoader

    torch.manual_seed(seed)
    np.random.seed(seed)
    model = MolNet(args.model, args.hidden, args.layers, args.dropout, args.pool, args.bond,
                   args.heads, args.head, args.plain_last, args.norm)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    train = DataLoader(dataset[split["train"]], batch_size=args.batch_size, shuffle=True,
                       generator=gen)
    valid = DataLoader(dataset[split["valid"]], batch_size=256)
    test = DataLoader(dataset[split["test"]], batch_size=256)
    evaluator = Evaluator(args.dataset)
    curve: List[Dict] = []
    best = {"val": -1.0, "test": float("nan"), "epoch": -1}
    for epoch in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        total, n = 0.0, 0
        for b in train:
            opt.zero_grad(set_to_none=True)
            logit = model(b.x, b.edge_index, b.edge_attr, b.batch).view(-1)
            y = b.y.view(-1).float()
            ok = ~torch.isnan(y)
            loss = F.binary_cross_entropy_with_logits(logit[ok], y[ok])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * int(ok.sum())
            n += int(ok.sum())
        train_s = time.perf_counter() - t0
        val, tst = evaluate(model, valid, evaluator), evaluate(model, test, evaluator)
        curve.append({"epoch": epoch, "loss": total / max(n, 1), "val": val, "test": tst,
                      "train_seconds": train_s})
        if val > best["val"]:
            best = {"val": val, "test": tst, "epoch": epoch}
        print(f"seed {seed} epoch {epoch:3d} loss {total / max(n, 1):.4f} val {val:.4f} "
              f"test {tst:.4f} ({train_s:.1f} s)", flush=True)
    return {"seed": seed, "best": best, "curve": curve,
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
    from ogb.graphproppred import PygGraphPropPredDataset
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import GlobalStorage

    # ogb 1.3.6 calls torch.load without weights_only=False; allow-list PyG's own classes
    torch.serialization.add_safe_globals([DataEdgeAttr, DataTensorAttr, GlobalStorage])
    dataset = PygGraphPropPredDataset(args.dataset, str(Path(args.root) / "ogb"))
    split = dataset.get_idx_split()
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.exists() else {}
    runs = [r for r in record.get("runs", [])]
    done = {r["seed"] for r in runs}
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        if seed in done:
            continue
        runs.append(run_seed(args, dataset, split, seed))
        runs.sort(key=lambda r: r["seed"])
        record = {"script": "benchmarks/reference/ogb_mol.py",
                  "command": "python " + " ".join([sys.argv[0]] + sys.argv[1:]),
                  "args": vars(args), "hardware": platform.processor() or platform.machine(),
                  "cpus": os.cpu_count(), "torch": torch.__version__,
                  "summary": summarize(runs), "runs": runs}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1))
    if runs:
        s = summarize(runs)
        print(f"{args.dataset} {args.model}: val {s['val']['mean']:.2f} ± {s['val']['std']:.2f}"
              f"  test {s['test']['mean']:.2f} ± {s['test']['std']:.2f}  ({s['n']} seeds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
