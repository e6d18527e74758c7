r"""Synthetic graphs for scale tests: a stochastic block model with class-correlated features.

:func:`sbm_graph` draws a planted-partition graph (one block per class) with ``num_edges``
directed edges (both directions of ``num_edges / 2`` undirected ones), in :math:`O(E)` time
and memory, so ogbn-products-sized graphs (2.4M nodes, 62M edges) can be made without a
download:

* labels :math:`y_v \sim \mathrm{Uniform}\{0, \dots, C-1\}`;
* each undirected edge picks a uniform source :math:`u`; with probability ``homophily`` its
  other end is a uniform node of class :math:`y_u`, else a uniform node of a uniform class
  (so the expected edge homophily is :math:`h + (1 - h)/C`);
* features :math:`x_v = \mu_{y_v} + \sigma\,\varepsilon_v` with class means
  :math:`\mu_c \sim \mathcal{N}(0, I/F)` scaled to norm ``signal`` (default 1) and
  :math:`\varepsilon_v \sim \mathcal{N}(0, I/F)`, :math:`\sigma` = ``noise`` (default 6):
  individually noisy (even the true class means classify only ~60 % of 5 classes), but
  averaging neighbours of a homophilous graph recovers much of it (~80 %; 20k nodes,
  average degree 10, ``homophily=0.6``).

Self-loops and repeated edges can occur (as in real crawled graphs); they are kept.
:data:`SCALES` lists the two sizes of the scale benchmark.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch_geometric.data import Data

from graphmutual.data.dataset import GraphDataset, Split

#: name -> keyword arguments of :func:`sbm_graph` (sizes of ogbn-arxiv and ogbn-products)
SCALES = {
    "arxiv": dict(num_nodes=169_343, num_edges=1_166_243, num_classes=40, num_features=128),
    "products": dict(num_nodes=2_449_029, num_edges=61_859_140, num_classes=47,
                     num_features=100),
}


def sbm_graph(num_nodes: int, num_edges: int, num_classes: int = 10, num_features: int = 64,
              homophily: float = 0.6, signal: float = 1.0, noise: float = 6.0,
              train_per_class: Optional[int] = 20, val_fraction: float = 0.1,
              seed: int = 0) -> Data:
    r"""A stochastic block model graph as a PyG :class:`~torch_geometric.data.Data`.

    Args:
        num_nodes: :math:`N`.
        num_edges: directed edges :math:`E` (rounded down to an even number).
        num_classes: :math:`C` (one block per class).
        num_features: :math:`F`.
        homophily: probability :math:`h` that an edge is drawn inside its source's block.
        signal: norm of the class means.
        noise: per-node feature noise scale :math:`\sigma`.
        train_per_class: labelled nodes per class (a semi-supervised split, like
            Planetoid); ``None`` labels half of the nodes (like the OGB splits).
        val_fraction: fraction of the nodes in the validation set; the rest are test.
        seed: random seed (the graph is a function of the arguments and the seed).

    Returns:
        ``Data(x [N, F] float32, edge_index [2, E] int64, y [N], train_mask, val_mask,
        test_mask)``.
    """
    for name, v in (("num_nodes", num_nodes), ("num_classes", num_classes),
                    ("num_features", num_features)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if isinstance(num_edges, bool) or not isinstance(num_edges, int) or num_edges < 0:
        raise ValueError(f"num_edges must be a non-negative int, got {num_edges!r}")
    if num_classes > num_nodes:
        raise ValueError(f"num_classes ({num_classes}) exceeds num_nodes ({num_nodes})")
    if not 0.0 <= homophily <= 1.0:
        raise ValueError(f"homophily must lie in [0, 1], got {homophily}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    g = torch.Generator().manual_seed(seed)
    n, c = num_nodes, num_classes
    y = torch.randint(0, c, (n,), generator=g)
    y[torch.randperm(n, generator=g)[:c]] = torch.arange(c)  # every class present
    by_class = torch.argsort(y, stable=True)
    count = torch.bincount(y, minlength=c)
    start = torch.cumsum(count, 0) - count

    half = num_edges // 2
    src = torch.randint(0, n, (half,), generator=g)
    same = torch.rand(half, generator=g) < homophily
    cls = torch.where(same, y[src], torch.randint(0, c, (half,), generator=g))
    del same
    pick = (torch.rand(half, generator=g, dtype=torch.float64) * count[cls]).long()
    dst = by_class[start[cls] + torch.minimum(pick, count[cls] - 1)]
    del cls, pick
    edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
    del src, dst

    f = num_features
    mu = torch.randn(c, f, generator=g)
    mu = signal * mu / mu.norm(dim=1, keepdim=True).clamp(min=1e-12)
    x = torch.randn(n, f, generator=g).mul_(noise / f ** 0.5).add_(mu[y])

    perm = torch.randperm(n, generator=g)
    train = torch.zeros(n, dtype=torch.bool)
    if train_per_class is None:
        train[perm[: n // 2]] = True
    else:  # the first train_per_class nodes of every class in a random order
        order = perm[torch.argsort(y[perm], stable=True)]
        rank = torch.arange(n) - start[y[order]]
        train[order[rank < train_per_class]] = True
    rest = perm[~train[perm]]
    n_val = int(round(val_fraction * n))
    val = torch.zeros(n, dtype=torch.bool)
    val[rest[:n_val]] = True
    test = ~(train | val)
    return Data(x=x, edge_index=edge_index, y=y, train_mask=train, val_mask=val,
                test_mask=test)


def sbm_dataset(num_nodes: int, num_edges: int, seed: int = 0, **kwargs) -> GraphDataset:
    """:func:`sbm_graph` wrapped as a :class:`GraphDataset` (one fixed split for every run
    seed, like the OGB node datasets)."""
    data = sbm_graph(num_nodes, num_edges, seed=seed, **kwargs)
    split = Split(data.train_mask, data.val_mask, data.test_mask,
                  f"synthetic SBM split (graph seed {seed})")
    return GraphDataset(
        name=f"sbm-{num_nodes}", task="node", data=data, num_features=data.x.size(1),
        num_classes=int(data.y.max()) + 1, metric="accuracy",
        notes=f"stochastic block model, {num_nodes} nodes, {data.edge_index.size(1)} edges, "
              f"seed {seed}", splitter=lambda _seed: split)
