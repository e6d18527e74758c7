r"""Our neighbour sampler behind PyG's sampler interface.

:class:`NeighborSampler` is a :class:`torch_geometric.sampler.BaseSampler`, so it plugs into
:class:`torch_geometric.loader.NodeLoader` the way PyG's own sampler does inside
:class:`~torch_geometric.loader.NeighborLoader`::

    from torch_geometric.loader import NodeLoader
    from graphmutual.data.sampling import NeighborSampler

    sampler = NeighborSampler(data, [15, 10])          # CSR built once, here
    loader = NodeLoader(data, node_sampler=sampler, input_nodes=data.train_mask,
                        batch_size=1024, shuffle=True)
    for batch in loader:                               # like NeighborLoader's batches:
        out = model(batch.x, batch.edge_index)[:batch.batch_size]

It runs :func:`graphmutual.ops.sample_neighbors` (C++, or the pure-torch reference where no
compiler is available), so it needs neither ``pyg-lib`` nor ``torch-sparse``. With
``backend="pyg"`` it hands the work to PyG's :class:`torch_geometric.sampler.NeighborSampler`
instead, which needs one of them.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.sampler import (
    BaseSampler,
    EdgeSamplerInput,
    NodeSamplerInput,
    SamplerOutput,
)

from graphmutual.ops import CSR, sample_neighbors
from graphmutual.ops.sampler import check_fanouts

SAMPLER_BACKENDS = ("graphmutual", "pyg")


def pyg_sampler_available() -> bool:
    """Whether PyG's own neighbour sampler can run (it needs pyg-lib or torch-sparse)."""
    import torch_geometric.typing as T

    return bool(T.WITH_PYG_LIB or T.WITH_TORCH_SPARSE)


class NeighborSampler(BaseSampler):
    r"""Uniform multi-hop neighbour sampling for homogeneous graphs (node-level mini-batches).

    Hop :math:`l` draws, for every node reached at hop :math:`l-1`, at most
    ``num_neighbors[l]`` distinct in-neighbours (``-1``: all of them). The output follows
    PyG's layout: the seeds are the first ``batch_size`` nodes of every batch, ``edge_index``
    is local, ``n_id``/``e_id`` map back to the full graph, ``num_sampled_nodes`` /
    ``num_sampled_edges`` count per hop.

    Args:
        data (Data): the graph (its ``edge_index``; CSR is built once here and kept).
        num_neighbors (list[int]): fan-out per hop, e.g. ``[15, 10]``.
        replace (bool): sample with replacement (default ``False``).
        seed (int, optional): seed of this sampler's own random stream: the sequence of
            batches is then reproducible whatever ``torch``'s global state. ``None`` draws
            each batch's seed from :mod:`torch`'s global generator.
        backend (str): ``"graphmutual"`` (default, our kernel) or ``"pyg"`` (PyG's
            sampler, needs ``pyg-lib`` or ``torch-sparse``).
    """

    def __init__(self, data: Data, num_neighbors: Sequence[int], *, replace: bool = False,
                 seed: Optional[int] = None, backend: str = "graphmutual") -> None:
        if not isinstance(data, Data):
            raise TypeError("NeighborSampler supports homogeneous torch_geometric.data.Data "
                            f"graphs, got {type(data).__name__}")
        if getattr(data, "edge_index", None) is None:
            raise ValueError("data has no edge_index")
        if backend not in SAMPLER_BACKENDS:
            raise ValueError(f"backend must be one of {SAMPLER_BACKENDS}, got {backend!r}")
        self.num_neighbors = check_fanouts(list(num_neighbors))
        self.replace = bool(replace)
        self.backend = backend
        self.num_nodes = int(data.num_nodes)
        self._gen = None if seed is None else torch.Generator().manual_seed(int(seed))
        self._pyg: Optional[BaseSampler] = None
        self.csr: Optional[CSR] = None
        if backend == "pyg":
            if not pyg_sampler_available():
                raise ImportError("backend='pyg' needs pyg-lib or torch-sparse; neither is "
                                  "installed (use backend='graphmutual')")
            from torch_geometric.sampler import NeighborSampler as PyGNeighborSampler

            self._pyg = PyGNeighborSampler(data, self.num_neighbors, replace=self.replace)
        else:
            self.csr = CSR.from_edge_index(data.edge_index.cpu(), self.num_nodes)

    def _next_seed(self) -> Optional[int]:
        if self._gen is None:
            return None
        return int(torch.randint(0, 2**62, (1,), generator=self._gen))

    def sample(self, seeds: Tensor) -> SamplerOutput:
        """Sample around ``seeds`` (``[B]`` distinct node ids)."""
        if self._pyg is not None:
            return self._pyg.sample_from_nodes(NodeSamplerInput(None, seeds.long()))
        out = sample_neighbors(self.csr, seeds, self.num_neighbors, replace=self.replace,
                               seed=self._next_seed())
        return SamplerOutput(node=out.node, row=out.row, col=out.col, edge=out.edge,
                             num_sampled_nodes=out.num_sampled_nodes,
                             num_sampled_edges=out.num_sampled_edges)

    def sample_from_nodes(self, index: NodeSamplerInput, **kwargs) -> SamplerOutput:
        if index.time is not None:
            raise ValueError("graphmutual's NeighborSampler does not do temporal sampling "
                             "(the seeds have timestamps)")
        out = self.sample(index.node)
        out.metadata = (index.input_id, None)
        return out

    def sample_from_edges(self, index: EdgeSamplerInput, neg_sampling=None) -> SamplerOutput:
        raise NotImplementedError("graphmutual's NeighborSampler samples around nodes only "
                                  "(use torch_geometric.loader.LinkNeighborLoader for links)")

    @property
    def edge_permutation(self) -> Union[Tensor, None]:
        if self._pyg is not None:
            return self._pyg.edge_permutation
        return self.csr.perm

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_neighbors={self.num_neighbors}, "
                f"replace={self.replace}, backend={self.backend!r})")
