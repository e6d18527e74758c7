r"""Mini-batches of an in-memory graph dataset cut straight out of its storage.

A PyG :class:`~torch_geometric.data.InMemoryDataset` keeps all its graphs concatenated in
one :class:`~torch_geometric.data.Data` plus a ``slices`` dictionary: graph :math:`i` owns
rows :math:`[s^{a}_i, s^{a}_{i+1})` of every attribute :math:`a`. PyG's
:class:`~torch_geometric.loader.DataLoader` builds a batch of graphs :math:`I` by first
separating every graph into its own ``Data`` object and then collating them again
(``Batch.from_data_list``): two Python passes over the graphs per batch.
:class:`SliceLoader` builds the same batch with one gather per attribute,

.. math::
    \mathrm{rows}^{a}(I) = \mathop{\Vert}_{i \in I}\, [s^{a}_i, s^{a}_{i+1}), \qquad
    \mathrm{edge\_index}_I = \mathrm{edge\_index}[:, \mathrm{rows}(I)]
        + \big(\textstyle\sum_{i' \text{ before } i \text{ in } I} n_{i'}\big)_{\text{per edge}},

and the ``batch`` / ``ptr`` vectors from the node counts :math:`n_i` (a few tensor ops per
batch instead of a loop over its graphs).

The batches are *equal* to the ``DataLoader``'s (same graphs in the same order, same
``x``, ``edge_index``, ``edge_attr``, ``y``, ``batch``, ``ptr``, ``num_nodes``) and the
loader draws the same random numbers as ``DataLoader(..., shuffle=..., generator=...)``
(including the base seed a ``DataLoader`` iterator draws even without workers), so a run
trained with it is the same run. It applies to datasets whose graphs hold only node-level
attributes (``x``, ``pos``), ``edge_index``, ``edge_attr``, a per-graph ``y`` and
``num_nodes``, with no transform or a transform that gives the same result on a whole batch
as on each graph (:data:`BATCH_SAFE_TRANSFORMS`, e.g. ``OneHotDegree``). Everything else
gets PyG's ``DataLoader`` from :func:`graph_loader` (:func:`can_slice` says which).
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

#: Attributes a sliceable dataset's graphs may hold, by kind.
NODE_KEYS = ("x", "pos")
EDGE_KEYS = ("edge_attr",)
GRAPH_KEYS = ("y",)


#: Transforms (PyG class names) whose result on a batch equals the batch of their per-graph
#: results (they act node by node on the graph's own edges); :class:`SliceLoader` applies
#: them once per batch.
BATCH_SAFE_TRANSFORMS: Tuple[str, ...] = ("OneHotDegree",)


def _batch_safe_transforms() -> tuple:
    import torch_geometric.transforms as T

    return tuple(getattr(T, name) for name in BATCH_SAFE_TRANSFORMS)


def _transform_ok(transform) -> bool:
    if transform is None:
        return True
    from torch_geometric.transforms import Compose

    if isinstance(transform, Compose):
        return all(_transform_ok(t) for t in transform.transforms)
    return isinstance(transform, _batch_safe_transforms())


def can_slice(dataset) -> Optional[str]:
    """``None`` when :class:`SliceLoader` applies to ``dataset``, else the reason it does not
    (the dataset is then loaded with PyG's ``DataLoader`` by :func:`graph_loader`)."""
    from torch_geometric.data import InMemoryDataset

    if not isinstance(dataset, InMemoryDataset):
        return f"{type(dataset).__name__} is not an InMemoryDataset"
    slices = getattr(dataset, "slices", None)
    data = getattr(dataset, "_data", None)
    if slices is None or data is None:
        return "the dataset has no collated storage"
    if not _transform_ok(dataset.transform):
        return f"transform {dataset.transform!r} is applied per graph"
    keys = set(data.keys())
    allowed = set(NODE_KEYS + EDGE_KEYS + GRAPH_KEYS) | {"edge_index", "num_nodes"}
    extra = keys - allowed
    if extra:
        return f"attributes {sorted(extra)} (only {sorted(allowed)} are sliced)"
    if "edge_index" not in keys:
        return "the graphs have no edge_index"
    if set(slices) != keys - {"num_nodes"}:
        return f"slices for {sorted(slices)} but attributes {sorted(keys)}"
    if "y" in slices and not torch.equal(slices["y"], torch.arange(slices["y"].numel())):
        return "y is not one entry per graph"
    node_slices = _node_counts(dataset)
    if node_slices is None:
        return "the number of nodes per graph is not stored"
    return None


def _node_counts(dataset) -> Optional[Tensor]:
    """Nodes per stored graph (before any ``index_select``), or ``None`` when unknown."""
    data, slices = dataset._data, dataset.slices
    counts = getattr(data._store, "_num_nodes", None)
    if counts is not None:
        return torch.as_tensor(counts, dtype=torch.long)
    for key in NODE_KEYS:
        if key in slices:
            return slices[key].diff()
    return None


def _ranges(starts: Tensor, counts: Tensor) -> Tensor:
    """The concatenated ranges ``[starts[i], starts[i] + counts[i])`` as one index."""
    offsets = torch.cumsum(counts, 0) - counts
    total = int(counts.sum())
    return torch.repeat_interleave(starts - offsets, counts, output_size=total) + \
        torch.arange(total)


class SliceLoader:
    r"""Mini-batches of graphs ``index`` of an in-memory ``dataset``, equal to
    ``DataLoader(dataset[index], batch_size, shuffle=shuffle, generator=generator)``.

    See the module docstring for the idea and :func:`can_slice` for when it applies.

    Args:
        dataset: a PyG :class:`~torch_geometric.data.InMemoryDataset` (a subset made with
            ``dataset[idx]`` is fine).
        index: which graphs of ``dataset`` (positions, as for ``dataset[index]``);
            ``None``: all.
        batch_size: graphs per batch (the last batch may be smaller).
        shuffle: reshuffle the graphs on every pass.
        generator: the random generator of the shuffling (as ``DataLoader``'s).
        batches: instead of ``batch_size`` / ``shuffle``, a fixed list of batches, each a
            list of positions in ``index`` (as ``DataLoader(batch_sampler=...)``).
    """

    def __init__(self, dataset, index: Optional[Union[Tensor, Sequence[int]]] = None,
                 batch_size: int = 1, shuffle: bool = False,
                 generator: Optional[torch.Generator] = None,
                 batches: Optional[List[List[int]]] = None) -> None:
        reason = can_slice(dataset)
        if reason is not None:
            raise ValueError(f"SliceLoader cannot batch this dataset: {reason}; use "
                             "torch_geometric.loader.DataLoader (or graph_loader())")
        if batches is None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        stored = dataset.indices()  # positions of the (subset's) graphs in the storage
        stored = (torch.arange(stored.start, stored.stop, stored.step)
                  if isinstance(stored, range) else torch.as_tensor(stored, dtype=torch.long))
        if index is not None:
            index = torch.as_tensor(index, dtype=torch.long).view(-1)
            if index.numel() and (int(index.min()) < -stored.numel()
                                  or int(index.max()) >= stored.numel()):
                raise ValueError(f"index out of range for a dataset of {stored.numel()} "
                                 "graphs")
            stored = stored[index]
        self.dataset = dataset
        self.graphs = stored  # storage positions of the graphs this loader batches
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.batches = batches
        self._data = dataset._data
        self._slices = dataset.slices
        self._nodes = _node_counts(dataset)
        self._node_starts = torch.cumsum(self._nodes, 0) - self._nodes
        self._has_num_nodes = "num_nodes" in self._data.keys()
        # attributes stored row by row with the edges (edge_attr): gathered with the edges
        self._edge_aligned = {k for k, s in self._slices.items()
                              if k != "edge_index" and torch.equal(s, self._slices["edge_index"])}
        self._transform = dataset.transform

    def __len__(self) -> int:
        if self.batches is not None:
            return len(self.batches)
        return -(-self.graphs.numel() // self.batch_size)

    def _order(self) -> List[Tensor]:
        """The batches of one pass, drawing random numbers exactly as ``DataLoader``."""
        gen = self.generator
        # a DataLoader iterator draws a base seed (for workers) even without workers
        torch.empty((), dtype=torch.int64).random_(generator=gen)
        n = self.graphs.numel()
        if self.batches is not None:
            return [torch.as_tensor(b, dtype=torch.long) for b in self.batches]
        if not self.shuffle:
            return list(torch.arange(n).split(self.batch_size))
        if gen is None:  # RandomSampler seeds its own generator from the global one
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
            gen = torch.Generator()
            gen.manual_seed(seed)
        perm = torch.randperm(n, generator=gen)
        # RandomSampler draws one more (empty-sliced) permutation when it runs out
        torch.randperm(n, generator=gen)
        return list(perm.split(self.batch_size))

    def __iter__(self) -> Iterator:
        for _, batch in self.with_positions():
            yield batch

    def with_positions(self) -> Iterator[Tuple[Tensor, object]]:
        """Like iterating the loader, but yields ``(positions, batch)``: which entries of
        ``index`` each batch holds (e.g. to flag some of its graphs)."""
        for pos in self._order():
            yield pos, self.collate(self.graphs[pos])

    def collate(self, graphs: Tensor):
        """The :class:`~torch_geometric.data.Batch` of the stored graphs ``graphs`` (storage
        positions, in batch order)."""
        from torch_geometric.data import Batch

        data, slices = self._data, self._slices
        b = graphs.numel()
        n_count = self._nodes[graphs]
        n_cum = torch.cumsum(n_count, 0)
        n_start = n_cum - n_count
        num_nodes = int(n_cum[-1]) if b else 0
        e_lo = slices["edge_index"][graphs]
        e_count = slices["edge_index"][graphs + 1] - e_lo
        edges = _ranges(e_lo, e_count)
        out = Batch()
        slice_dict, inc_dict = {}, {}
        zeros = torch.zeros(b, dtype=torch.long)
        for key in data.keys():
            if key == "num_nodes":
                continue
            value = data[key]
            if key == "edge_index":
                shift = torch.repeat_interleave(n_start, e_count, output_size=edges.numel())
                out[key] = value[:, edges] + shift
                counts, inc = e_count, n_start
            elif key in GRAPH_KEYS:  # one row per graph (checked by can_slice)
                out[key] = value[graphs]
                counts, inc = torch.ones(b, dtype=torch.long), zeros
            else:
                lo = slices[key][graphs]
                counts = slices[key][graphs + 1] - lo
                out[key] = (value[edges] if key in self._edge_aligned
                            else value[_ranges(lo, counts)])
                inc = zeros
            slice_dict[key] = torch.cat([zeros[:1], torch.cumsum(counts, 0)])
            inc_dict[key] = inc
        if self._has_num_nodes:
            out.num_nodes = num_nodes
        out.batch = torch.repeat_interleave(torch.arange(b), n_count, output_size=num_nodes)
        out.ptr = torch.cat([zeros[:1], n_cum])
        out._num_graphs = b
        out._slice_dict = slice_dict
        out._inc_dict = inc_dict
        if self._transform is not None:
            out = self._transform(out)
            for key in out.keys():  # node features the transform built, as DataLoader has
                if key not in slice_dict and key not in ("batch", "ptr", "num_nodes"):
                    slice_dict[key], inc_dict[key] = out.ptr, zeros
        return out

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({type(self.dataset).__name__}, "
                f"graphs={self.graphs.numel()}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle})")


def graph_loader(dataset, index: Optional[Union[Tensor, Sequence[int]]] = None,
                 batch_size: int = 1, shuffle: bool = False,
                 generator: Optional[torch.Generator] = None,
                 batches: Optional[List[List[int]]] = None, slicing: bool = True):
    """A :class:`SliceLoader` over ``dataset[index]`` when :func:`can_slice` allows it (and
    ``slicing``), else PyG's :class:`~torch_geometric.loader.DataLoader` with the same
    arguments; both yield the same batches."""
    if slicing and can_slice(dataset) is None:
        return SliceLoader(dataset, index, batch_size, shuffle, generator, batches)
    from torch_geometric.loader import DataLoader

    subset = dataset if index is None else dataset[torch.as_tensor(index, dtype=torch.long)]
    if batches is not None:
        return DataLoader(subset, batch_sampler=batches, generator=generator)
    return DataLoader(subset, batch_size=batch_size, shuffle=shuffle, generator=generator)
