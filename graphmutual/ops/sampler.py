r"""Uniform multi-hop neighbour sampling on a destination-sorted CSR.

For seed nodes :math:`S_0` and fan-outs :math:`(k_1, \dots, k_L)`, hop :math:`l` draws for
every node :math:`v` first reached at hop :math:`l - 1` a uniform sample of
:math:`\min(k_l, d_v)` distinct in-neighbours (all of them for :math:`k_l = -1`; with
``replace=True`` exactly :math:`k_l` draws with replacement) and adds the edges
:math:`u \to v`. Nodes are numbered in order of first appearance, the seeds first, so the
first ``len(seeds)`` rows of any model output belong to the seeds -- the layout PyG's
:class:`~torch_geometric.loader.NeighborLoader` produces.

The C++ kernel (``csrc/sampler_cpu.cpp``) runs the per-node draws in parallel with one random
stream per ``(seed, hop, node)``: the result depends on ``seed`` only, never on the number of
threads. The pure-torch reference (used when no compiler is available, or with
``GRAPHMUTUAL_BACKEND=reference``) has the same output contract and is reproducible for a
given ``seed`` too, but draws a different sample than the C++ kernel.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Union

import torch
from torch import Tensor

from graphmutual.ops import _validate as V
from graphmutual.ops.backend import get_kernels
from graphmutual.ops.csr import CSR


class SampledSubgraph(NamedTuple):
    """Output of :func:`sample_neighbors` (all tensors int64, on CPU).

    Attributes:
        node: ``[S]`` global ids of the sampled nodes, seeds first.
        row: ``[E']`` local index (into ``node``) of every sampled edge's source.
        col: ``[E']`` local index of its destination.
        edge: ``[E']`` CSR position of the edge; ``csr.perm[edge]`` is its column in the
            ``edge_index`` the CSR was built from.
        num_sampled_nodes: nodes added per hop (``len(fanouts) + 1`` entries, seeds first).
        num_sampled_edges: edges added per hop (``len(fanouts)`` entries).
    """

    node: Tensor
    row: Tensor
    col: Tensor
    edge: Tensor
    num_sampled_nodes: list[int]
    num_sampled_edges: list[int]

    @property
    def edge_index(self) -> Tensor:
        """``[2, E']`` local ``edge_index`` (messages flow ``row -> col``)."""
        return torch.stack([self.row, self.col])


def check_fanouts(fanouts: Sequence[int]) -> list[int]:
    """Fan-outs as a list of ints, each ``-1`` (all neighbours) or ``>= 0``."""
    if isinstance(fanouts, (int, Tensor)) or not isinstance(fanouts, (list, tuple)):
        raise TypeError(f"fanouts must be a list of ints (one per hop), got {fanouts!r}")
    out = []
    for k in fanouts:
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"fanouts must be ints, got {k!r} in {list(fanouts)}")
        if k < -1:
            raise ValueError(f"fan-outs must be -1 (all neighbours) or >= 0, got {k}")
        out.append(int(k))
    return out


def sample_neighbors(adj: Union[CSR, tuple[Tensor, Tensor]], seeds: Union[Tensor, Sequence[int]],
                     fanouts: Sequence[int], *, replace: bool = False,
                     seed: Optional[int] = None) -> SampledSubgraph:
    r"""Sample a multi-hop neighbourhood of ``seeds`` (in-neighbours: sources of edges into a
    node, i.e. the nodes whose messages it aggregates).

    Args:
        adj: a :class:`~graphmutual.ops.CSR` (rows = destinations; build it once with
            :meth:`CSR.from_edge_index` and reuse it) or a ``(rowptr, col)`` tuple, on CPU,
            int32 or int64.
        seeds: ``[B]`` distinct node ids to sample around.
        fanouts: neighbours per node and hop, e.g. ``[15, 10]``; ``-1`` takes all.
        replace: sample with replacement (default ``False``).
        seed: random seed; the same seed gives the same sample for any number of threads.
            ``None`` draws one from :mod:`torch`'s global generator (so
            :func:`torch.manual_seed` makes runs reproducible).
    """
    if isinstance(adj, CSR):
        rowptr, col, n = adj.rowptr, adj.col, adj.num_rows
        if adj.num_cols != adj.num_rows:
            raise ValueError("neighbour sampling needs a square CSR (num_rows == num_cols), got "
                             f"{adj.num_rows} x {adj.num_cols}")
    elif isinstance(adj, (tuple, list)) and len(adj) == 2:
        rowptr, col = V.unify_index(V.index_tensor(adj[0], "rowptr"),
                                    V.index_tensor(adj[1], "col"))
        n = rowptr.numel() - 1
        V.check_ptr(rowptr, col.numel(), "rowptr")
        V.check_range(col, n, "col")
    else:
        raise TypeError("adj must be a graphmutual.ops.CSR or a (rowptr, col) tuple")
    if rowptr.device.type != "cpu":
        raise ValueError(f"the neighbour sampler runs on CPU; got a graph on {rowptr.device} "
                         "(sample on CPU and move the subgraph)")
    fanouts = check_fanouts(fanouts)
    if not isinstance(seeds, Tensor):
        seeds = torch.as_tensor(list(seeds), dtype=torch.long)
    if seeds.dtype not in V.INDEX_DTYPES:
        raise TypeError(f"seeds must be an int32 or int64 tensor, got {seeds.dtype}")
    if seeds.dim() != 1:
        raise ValueError(f"seeds must be one-dimensional, got shape {tuple(seeds.shape)}")
    seeds = seeds.to("cpu", torch.long).contiguous()
    V.check_range(seeds, n, "seeds")
    if seeds.numel() and torch.unique(seeds).numel() != seeds.numel():
        raise ValueError("seeds must be distinct node ids (found duplicates)")
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)))
    elif isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    seed = int(seed) % (2**63)
    node, row, col_, edge, nn, ne = get_kernels(rowptr.device).sample_neighbors(
        rowptr, col, seeds, fanouts, seed, bool(replace))
    return SampledSubgraph(node, row, col_, edge, nn.tolist(), ne.tolist())
