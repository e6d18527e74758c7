r"""Scatter / segment / SpMM kernels for GNN cohorts.

Functional API (all differentiable, all ``torch.library`` custom ops underneath):

* :func:`scatter` -- reduce by index (sum, mean, max, min)
* :func:`segment` -- reduce over CSR pointers
* :func:`spmm` -- weighted sparse-dense aggregation over in-edges
* :func:`multi_spmm` -- the same for K students / heads in one pass over the edges
* :func:`edge_softmax` -- softmax of attention scores over in-edges
* :class:`CSR` -- cached destination-sorted structure (with the transpose for backward)
* :func:`sample_neighbors` -- uniform multi-hop neighbour sampling (seeded, parallel C++)

Which kernels run is decided in one place, :mod:`graphmutual.ops.backend`
(``GRAPHMUTUAL_BACKEND`` = ``auto`` | ``cpp`` | ``cuda`` | ``torch_scatter`` |
``reference``). Our C++/CUDA extensions are compiled on the first op call, not on import.
"""

from graphmutual.ops.backend import (
    BACKENDS,
    available_backends,
    current_backend,
    set_backend,
    use_backend,
)
from graphmutual.ops.csr import CSR
from graphmutual.ops.functional import edge_softmax, multi_spmm, scatter, segment, spmm
from graphmutual.ops.sampler import SampledSubgraph, sample_neighbors

__all__ = [
    "BACKENDS",
    "CSR",
    "SampledSubgraph",
    "available_backends",
    "current_backend",
    "edge_softmax",
    "multi_spmm",
    "sample_neighbors",
    "scatter",
    "segment",
    "set_backend",
    "spmm",
    "use_backend",
]
