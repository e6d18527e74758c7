r"""What the plain-PyG reference scripts (``ogb_mol.py``, ``tu.py``) share.

Only PyG, torch and numpy: the shared command-line options, the layer pieces of the
textbook layout, the training loop that keeps the test score of the best validation epoch,
and the resumable JSON record (rewritten after every seed; seeds already in ``--out`` are
skipped).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn


def add_model_args(p: argparse.ArgumentParser, epochs: int) -> None:
    """The model, optimiser and loop options both scripts take (``--epochs`` default differs).

    ``--head mlp``, ``--plain-last`` and ``--norm none`` rebuild graphmutual's GraphStudent
    layout in plain PyG (for the diagnosis of where the gap comes from).
    """
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
    p.add_argument("--epochs", type=int, default=epochs)


def add_output_args(p: argparse.ArgumentParser, unit: str) -> None:
    """``--threads`` and ``--out`` (the JSON file rewritten after every ``unit``)."""
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help=f"JSON file (rewritten after every {unit})")


def norm_layer(kind: str, width: int) -> nn.Module:
    """``BatchNorm1d(width)`` for ``"batch_norm"``, else the identity."""
    return nn.BatchNorm1d(width) if kind == "batch_norm" else nn.Identity()


def head_layer(kind: str, hidden: int, out: int, dropout: float) -> nn.Module:
    """``Linear`` or dropout -> Linear-ReLU-Linear (graphmutual's GraphStudent head)."""
    if kind == "linear":
        return nn.Linear(hidden, out)
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, out))


def check_shape(model: str, hidden: int, layers: int, heads: int) -> None:
    """Clear errors for a layout that cannot be built."""
    if layers < 1 or hidden < 1:
        raise ValueError(f"need layers >= 1 and hidden >= 1 (got {layers}, {hidden})")
    if model == "gat" and hidden % heads:
        raise ValueError(f"hidden {hidden} is not divisible by {heads} heads")


def stack(convs: nn.ModuleList, norms: nn.ModuleList, h: Tensor,
          conv_call: Callable[[int, nn.Module, Tensor], Tensor], dropout: float,
          training: bool, plain_last: bool) -> Tensor:
    r"""``h <- Dropout(ReLU(BN(conv_k(h))))`` for every layer ``k``; the last one is the bare
    conv when ``plain_last``."""
    import torch.nn.functional as F

    for k, (conv, norm) in enumerate(zip(convs, norms)):
        h = conv_call(k, conv, h)
        if k < len(convs) - 1 or not plain_last:
            h = F.dropout(F.relu(norm(h)), dropout, training)
    return h


def pool_fn(kind: str) -> Callable:
    """PyG's ``global_mean_pool`` or ``global_add_pool``."""
    from torch_geometric.nn import global_add_pool, global_mean_pool

    return global_mean_pool if kind == "mean" else global_add_pool


def fit(model: nn.Module, args, seed: int, dataset, train_idx, val_idx, test_idx,
        step: Callable[[nn.Module, object], Tuple[Tensor, int]],
        score: Callable[[nn.Module, object], float],
        log: Optional[Callable[[int, float, float, float, float], None]] = None) -> Dict:
    r"""Adam (``args.lr``, ``args.weight_decay``) for ``args.epochs`` epochs over seeded
    shuffled mini-batches of ``args.batch_size``.

    ``step(model, batch)`` gives the batch's mean loss and how many targets it averaged;
    ``score(model, loader)`` the validation / test metric (higher is better).  The test score
    kept is the one at the first epoch of best validation score, never the best test epoch.
    """
    from torch_geometric.loader import DataLoader

    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    train = DataLoader(dataset[train_idx], batch_size=args.batch_size, shuffle=True,
                       generator=gen)
    valid = DataLoader(dataset[val_idx], batch_size=256)
    test = DataLoader(dataset[test_idx], batch_size=256)
    curve: List[Dict] = []
    best = {"val": -1.0, "test": float("nan"), "epoch": -1}
    for epoch in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        total, n = 0.0, 0
        for b in train:
            opt.zero_grad(set_to_none=True)
            loss, count = step(model, b)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * count
            n += count
        train_s = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            val, tst = score(model, valid), score(model, test)
        curve.append({"epoch": epoch, "loss": total / max(n, 1), "val": val, "test": tst,
                      "train_seconds": train_s})
        if val > best["val"]:
            best = {"val": val, "test": tst, "epoch": epoch}
        if log is not None:
            log(epoch, total / max(n, 1), val, tst, train_s)
    return {"seed": seed, "best": best, "curve": curve,
            "seconds_per_epoch": float(np.mean([c["train_seconds"] for c in curve])),
            "parameters": sum(p.numel() for p in model.parameters())}


def summarize(runs: List[Dict]) -> Dict:
    """Mean and sample std (in %) of the best-epoch validation and test scores."""
    def stat(key: str) -> Dict:
        v = np.array([r["best"][key] for r in runs]) * 100
        return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
    return {"val": stat("val"), "test": stat("test"), "n": len(runs)}


def run_all(args, seeds: Iterable[int], run_one: Callable[[int], Dict], script: str,
            unit: str) -> int:
    """Run ``run_one(seed)`` for the seeds ``args.out`` does not hold yet, rewriting the JSON
    record after each, then print the summary."""
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.exists() else {}
    runs = list(record.get("runs", []))
    done = {r["seed"] for r in runs}
    for seed in seeds:
        if seed in done:
            continue
        runs.append(run_one(seed))
        runs.sort(key=lambda r: r["seed"])
        record = {"script": script,
                  "command": "python " + " ".join([sys.argv[0]] + sys.argv[1:]),
                  "args": vars(args), "hardware": platform.processor() or platform.machine(),
                  "cpus": os.cpu_count(), "torch": torch.__version__,
                  "summary": summarize(runs), "runs": runs}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1))
    if runs:
        s = summarize(runs)
        print(f"{args.dataset} {args.model}: val {s['val']['mean']:.2f} ± {s['val']['std']:.2f}"
              f"  test {s['test']['mean']:.2f} ± {s['test']['std']:.2f}  ({s['n']} {unit}s)")
    return 0
