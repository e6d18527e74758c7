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
import sys
from pathlib import Path
from typing import Dict

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ogbg-molhiv",
                   choices=["ogbg-molhiv", "ogbg-molbace", "ogbg-molbbbp"])
    p.add_argument("--root", required=True,
                   help="folder holding ogb/ogbg_<name>/ (writable: processed/ is written)")
    p.add_argument("--bond", action="store_true", help="bond features (GINE / GAT edge_dim)")
    p.add_argument("--fixed-eps", action="store_true",
                   help="GIN with eps fixed at 0 (GIN-0, PyG's BasicGNN GIN and graphmutual's "
                        "student) instead of a trainable eps")
    p.add_argument("--softmax2", action="store_true",
                   help="two logits and softmax cross-entropy (graphmutual's loss) instead of "
                        "one logit and BCE; scored by the softmax probability of class 1")
    common.add_model_args(p, epochs=50)
    p.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    common.add_output_args(p, "seed")
    return p


class MolNet(nn.Module):
    """AtomEncoder -> L x (conv -> BN -> ReLU -> dropout) -> pooling -> linear head
    (``head``, ``plain_last``, ``norm``: see ``common.add_model_args``)."""

    def __init__(self, model: str, hidden: int, layers: int, dropout: float, pool: str,
                 bond: bool, heads: int, head: str = "linear", plain_last: bool = False,
                 norm: str = "batch_norm", train_eps: bool = True, out: int = 1) -> None:
        super().__init__()
        from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder
        from torch_geometric.nn import GATConv, GCNConv, GINConv, GINEConv

        common.check_shape(model, hidden, layers, heads)
        if model == "gcn" and bond:
            raise ValueError("PyG's GCNConv has no edge-feature input; drop --bond")
        self.atom = AtomEncoder(hidden)
        self.bond = nn.ModuleList([BondEncoder(hidden) for _ in range(layers)]) if bond else None
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        for _ in range(layers):
            if model == "gin":
                mlp = nn.Sequential(nn.Linear(hidden, hidden), common.norm_layer(norm, hidden),
                                    nn.ReLU(), nn.Linear(hidden, hidden))
                conv = (GINEConv(mlp, train_eps=train_eps) if bond
                        else GINConv(mlp, train_eps=train_eps))
            elif model == "gcn":
                conv = GCNConv(hidden, hidden)
            else:
                conv = GATConv(hidden, hidden // heads, heads=heads,
                               edge_dim=hidden if bond else None)
            self.convs.append(conv)
            self.norms.append(common.norm_layer(norm, hidden))
        self.dropout, self.pool, self.plain_last = dropout, pool, plain_last
        self.head = common.head_layer(head, hidden, out, dropout)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor, batch: Tensor) -> Tensor:
        def call(k: int, conv: nn.Module, h: Tensor) -> Tensor:
            if self.bond is not None:
                return conv(h, edge_index, self.bond[k](edge_attr))
            return conv(h, edge_index)

        h = common.stack(self.convs, self.norms, self.atom(x), call, self.dropout,
                         self.training, self.plain_last)
        return self.head(common.pool_fn(self.pool)(h, batch))


@torch.no_grad()
def evaluate(model: nn.Module, loader, evaluator) -> float:
    model.eval()
    ys, ps = [], []
    for b in loader:
        p = model(b.x, b.edge_index, b.edge_attr, b.batch)
        ps.append(p.softmax(-1)[:, 1:] if p.size(-1) == 2 else p)
        ys.append(b.y.view(-1, 1))
    return float(evaluator.eval({"y_true": torch.cat(ys).numpy(),
                                 "y_pred": torch.cat(ps).numpy()})["rocauc"])


def _bce_step(model: nn.Module, b) -> tuple:
    """BCE-with-logits over the labelled targets of the batch (NaN = unlabelled)."""
    logit = model(b.x, b.edge_index, b.edge_attr, b.batch).view(-1)
    y = b.y.view(-1).float()
    ok = ~torch.isnan(y)
    return F.binary_cross_entropy_with_logits(logit[ok], y[ok]), int(ok.sum())


def _ce2_step(model: nn.Module, b) -> tuple:
    """Softmax cross-entropy over two logits (graphmutual's loss), labelled targets only."""
    logits = model(b.x, b.edge_index, b.edge_attr, b.batch)
    y = b.y.view(-1)
    ok = ~torch.isnan(y)
    return F.cross_entropy(logits[ok], y[ok].long()), int(ok.sum())


def run_seed(args, dataset, split, seed: int) -> Dict:
    from ogb.graphproppred import Evaluator

    torch.manual_seed(seed)
    np.random.seed(seed)
    model = MolNet(args.model, args.hidden, args.layers, args.dropout, args.pool, args.bond,
                   args.heads, args.head, args.plain_last, args.norm,
                   train_eps=not args.fixed_eps, out=2 if args.softmax2 else 1)
    evaluator = Evaluator(args.dataset)

    def log(epoch: int, loss: float, val: float, tst: float, train_s: float) -> None:
        print(f"seed {seed} epoch {epoch:3d} loss {loss:.4f} val {val:.4f} "
              f"test {tst:.4f} ({train_s:.1f} s)", flush=True)

    step = _ce2_step if args.softmax2 else _bce_step
    return common.fit(model, args, seed, dataset, split["train"], split["valid"],
                      split["test"], step, lambda m, loader: evaluate(m, loader, evaluator),
                      log)


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
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    return common.run_all(args, seeds, lambda seed: run_seed(args, dataset, split, seed),
                          "benchmarks/reference/ogb_mol.py", "seed")


if __name__ == "__main__":
    raise SystemExit(main())
