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
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


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
    common.add_model_args(p, epochs=100)
    p.add_argument("--folds", "--seeds", dest="folds", default="0-9",
                   help="seeds = folds: '0-9' or '0,3,7' (seed s tests on fold s mod 10)")
    common.add_output_args(p, "fold")
    return p


class TUNet(nn.Module):
    """L x (conv -> BN -> ReLU -> dropout) -> pooling -> linear head (``head``,
    ``plain_last``, ``norm``: see ``common.add_model_args``)."""

    def __init__(self, model: str, in_channels: int, hidden: int, layers: int, classes: int,
                 dropout: float, pool: str, heads: int, head: str = "linear",
                 plain_last: bool = False, norm: str = "batch_norm") -> None:
        super().__init__()
        from torch_geometric.nn import GATConv, GCNConv, GINConv

        common.check_shape(model, hidden, layers, heads)
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        width = in_channels
        for _ in range(layers):
            if model == "gin":
                mlp = nn.Sequential(nn.Linear(width, hidden), common.norm_layer(norm, hidden),
                                    nn.ReLU(), nn.Linear(hidden, hidden))
                conv = GINConv(mlp, train_eps=True)
            elif model == "gcn":
                conv = GCNConv(width, hidden)
            else:
                conv = GATConv(width, hidden // heads, heads=heads)
            self.convs.append(conv)
            self.norms.append(common.norm_layer(norm, hidden))
            width = hidden
        self.dropout, self.pool, self.plain_last = dropout, pool, plain_last
        self.head = common.head_layer(head, hidden, classes, dropout)

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor) -> Tensor:
        h = common.stack(self.convs, self.norms, x, lambda k, conv, h: conv(h, edge_index),
                  self.dropout, self.training, self.plain_last)
        return self.head(common.pool_fn(self.pool)(h, batch))


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


def _ce_step(model: nn.Module, b) -> tuple:
    """Cross-entropy of the batch, averaged over its graphs."""
    return F.cross_entropy(model(b.x, b.edge_index, b.batch), b.y), b.num_graphs


def run_fold(args, dataset, seed: int) -> Dict:
    from graphmutual.data.splits import stratified_kfold_split  # identical folds only

    split = stratified_kfold_split(dataset._data.y.view(-1), seed)
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = TUNet(args.model, dataset.num_features, args.hidden, args.layers,
                  dataset.num_classes, args.dropout, args.pool, args.heads, args.head,
                  args.plain_last, args.norm)
    t_all = time.perf_counter()
    run = common.fit(model, args, seed, dataset, split.train, split.val, split.test, _ce_step,
                     accuracy)
    best = run["best"]
    print(f"{args.dataset} seed {seed} ({split.description}): best val {best['val']:.4f} "
          f"test {best['test']:.4f} at epoch {best['epoch']} "
          f"({time.perf_counter() - t_all:.0f} s)", flush=True)
    return {"seed": seed, "split": split.description, **run}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset = load(args.root, args.dataset)
    return common.run_all(args, parse_folds(args.folds),
                          lambda seed: run_fold(args, dataset, seed),
                          "benchmarks/reference/tu.py", "fold")


if __name__ == "__main__":
    raise SystemExit(main())
