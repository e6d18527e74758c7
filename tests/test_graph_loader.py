"""SliceLoader (graphmutual.data.slice_loader) yields exactly PyG DataLoader's batches."""
from __future__ import annotations

import pytest
import torch
import torch_geometric.transforms as T
from torch_geometric.data import Data, InMemoryDataset
from torch_geometric.loader import DataLoader

from graphmutual.data import SliceLoader, can_slice, graph_loader, load_dataset


class ListDataset(InMemoryDataset):
    """An in-memory dataset collated from a list of graphs (no files)."""

    def __init__(self, graphs, transform=None) -> None:
        super().__init__(None, transform=transform)
        self.data, self.slices = self.collate(graphs)


def synthetic(num_graphs: int = 37, features: bool = True, edge_attr: bool = True,
              seed: int = 0) -> ListDataset:
    """TU-like graphs of 1-12 nodes (some without edges), float x, int edge_attr, one y."""
    g = torch.Generator().manual_seed(seed)
    graphs = []
    for i in range(num_graphs):
        n = int(torch.randint(1, 13, (1,), generator=g))
        e = 0 if i % 9 == 4 else int(torch.randint(1, 3 * n + 1, (1,), generator=g))
        d = Data(edge_index=torch.randint(0, n, (2, e), generator=g),
                 y=torch.randint(0, 3, (1,), generator=g))
        if features:
            d.x = torch.randn(n, 5, generator=g)
        else:
            d.num_nodes = n
        if edge_attr:
            d.edge_attr = torch.randint(0, 4, (e, 3), generator=g)
        graphs.append(d)
    return ListDataset(graphs)


def assert_same_batches(ours, ref) -> None:
    ours, ref = list(ours), list(ref)
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        assert sorted(a.keys()) == sorted(b.keys())
        for key in b.keys():
            va, vb = a[key], b[key]
            if isinstance(vb, torch.Tensor):
                assert va.dtype == vb.dtype, key
                assert torch.equal(va, vb), key
            else:
                assert va == vb, key
        assert a.num_graphs == b.num_graphs
        assert a._slice_dict.keys() == b._slice_dict.keys()
        for key in b._slice_dict:
            assert torch.equal(a._slice_dict[key], b._slice_dict[key]), key
            assert torch.equal(torch.as_tensor(a._inc_dict[key]),
                               torch.as_tensor(b._inc_dict[key])), key


def compare(ds, index, batch_size: int, shuffle: bool) -> None:
    """Same batches and the same random numbers drawn, from a seeded and the global RNG."""
    for seeded in (True, False):
        torch.manual_seed(3)
        gen = torch.Generator().manual_seed(11) if seeded else None
        ref = list(DataLoader(ds if index is None else ds[index], batch_size=batch_size,
                              shuffle=shuffle,
                              generator=gen))
        after_ref = torch.rand(1), gen.initial_seed() if gen is not None else None
        gen_state = gen.get_state() if gen is not None else None
        torch.manual_seed(3)
        gen2 = torch.Generator().manual_seed(11) if seeded else None
        ours = list(SliceLoader(ds, index, batch_size, shuffle, gen2))
        assert torch.equal(torch.rand(1), after_ref[0])  # global RNG consumed alike
        if gen is not None:
            assert torch.equal(gen2.get_state(), gen_state)
        assert_same_batches(ours, ref)


@pytest.mark.parametrize("features,edge_attr", [(True, True), (True, False), (False, False)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_synthetic_equals_dataloader(features, edge_attr, shuffle):
    ds = synthetic(features=features, edge_attr=edge_attr)
    assert can_slice(ds) is None
    index = torch.tensor([5, 0, 36, 4, 13, 2, 8, 21, 22, 30, 1])
    compare(ds, index, 4, shuffle)
    compare(ds, None if shuffle else torch.arange(len(ds)), 8, shuffle)


def test_subset_of_a_subset_and_batch_sampler():
    ds = synthetic()
    sub = ds[torch.tensor([3, 9, 4, 20, 11, 17, 2])]
    ref = list(DataLoader(sub[torch.tensor([6, 0, 2, 5])], batch_size=3))
    assert_same_batches(SliceLoader(sub, [6, 0, 2, 5], 3), ref)
    batches = [[2, 0], [5], [1, 3, 4]]
    torch.manual_seed(0)
    ref = list(DataLoader(sub, batch_sampler=batches))
    assert_same_batches(SliceLoader(sub, batches=batches), ref)


def test_one_hot_degree_transform_is_applied_per_batch():
    ds = synthetic(features=False)
    ds.transform = T.OneHotDegree(12)
    assert can_slice(ds) is None
    compare(ds, torch.arange(0, 37, 2), 5, True)
    batch = next(iter(SliceLoader(ds, None, 6)))
    assert batch.x.shape == (batch.num_nodes, 13)
    # the graphs of a sliced batch come back out unchanged
    for i, g in enumerate(batch.to_data_list()):
        assert torch.equal(g.x, ds[i].x) and torch.equal(g.edge_index, ds[i].edge_index)


def test_falls_back_where_it_cannot_slice():
    ds = synthetic()
    ds.transform = T.NormalizeFeatures()  # per graph: not in the batch-safe list
    assert "per graph" in can_slice(ds)
    with pytest.raises(ValueError, match="cannot batch"):
        SliceLoader(ds, None, 4)
    assert isinstance(graph_loader(ds, [0, 1, 2], 2), DataLoader)
    ds.transform = None
    assert isinstance(graph_loader(ds, [0, 1, 2], 2), SliceLoader)
    assert isinstance(graph_loader(ds, [0, 1, 2], 2, slicing=False), DataLoader)
    empty = torch.zeros(2, 0, dtype=torch.long)
    extra = ListDataset(2 * [Data(x=torch.ones(2, 1), edge_index=empty, y=torch.tensor([0]),
                                  mask=torch.ones(2, dtype=torch.bool))])
    assert "mask" in can_slice(extra)
    node_y = ListDataset(2 * [Data(x=torch.ones(2, 1), edge_index=empty,
                                   y=torch.tensor([0, 1]))])
    assert "one entry per graph" in can_slice(node_y)
    assert "collated" in can_slice(ListDataset([Data(x=torch.ones(2, 1), edge_index=empty)]))
    with pytest.raises(ValueError, match="batch_size"):
        SliceLoader(ds, None, 0)
    with pytest.raises(ValueError, match="out of range"):
        SliceLoader(ds, [0, 99], 2)


@pytest.mark.parametrize("folder,name", [("TUDataset/MUTAG", "mutag"),
                                         ("TUDataset/ENZYMES", "enzymes"),
                                         ("TUDataset/IMDB-BINARY", "imdb-binary")])
def test_tu_datasets_equal_dataloader(tmp_dataset_copy, folder, name):
    ds = load_dataset(name, tmp_dataset_copy(folder))
    assert can_slice(ds.data) is None  # IMDB-BINARY: OneHotDegree, applied per batch
    split = ds.split(0)
    compare(ds.data, split.train, 32, True)
    compare(ds.data, split.val, 256, False)


def test_transductive_batches_equal_the_collated_copies():
    """GraphBatchTask's transductive batches (training graphs + unlabelled held-out graphs
    with y = -1 and a ``labelled`` flag): sliced ones equal the DataLoader ones."""
    from graphmutual.data import GraphDataset, Split
    from graphmutual.train import TrainConfig
    from graphmutual.train.defaults import resolve_config
    from graphmutual.train.tasks import GraphBatchTask

    split = Split(torch.arange(0, 20), torch.arange(20, 28), torch.arange(28, 37), "toy")
    ds = GraphDataset(name="toy", task="graph", data=synthetic(), num_features=5,
                      num_classes=3, metric="accuracy", splitter=lambda seed: split)
    ds.data._data.y = ds.data._data.y.view(-1)
    cfg = resolve_config(TrainConfig(dataset="toy", batch_size=6, transductive=True), ds)
    out = []
    for slicing in (True, False):
        task = GraphBatchTask(ds, cfg, torch.device("cpu"))
        task.slicing = slicing
        task.setup(0)
        torch.manual_seed(5)
        out.append(list(task._transductive_loader(torch.Generator().manual_seed(2))))
        out.append(torch.rand(1))  # the global RNG is drawn from alike
    assert_same_batches(out[0], out[2])
    assert torch.equal(out[1], out[3])
    assert sum(int(b.labelled.sum()) for b in out[0]) == 20
    assert all(bool((b.y[~b.labelled] == -1).all()) for b in out[0])


@pytest.mark.parametrize("transductive", [False, True])
def test_training_with_sliced_batches_is_the_same_run(tmp_dataset_copy, transductive):
    """GraphBatchTask with SliceLoader (the default) and with PyG's DataLoader: the same
    losses, scores and weights (same batches, same random numbers for dropout)."""
    from graphmutual.train import TrainConfig, Trainer

    root = tmp_dataset_copy("TUDataset/MUTAG")
    runs = []
    for slicing in (True, False):
        cfg = TrainConfig(dataset="mutag", root=str(root), students=["gin", "gcn"],
                          method="gml", epochs=2, hidden=16, progress=False, seeds=[1],
                          warmup=0, transductive=transductive)
        trainer = Trainer(cfg)
        trainer.task.slicing = slicing
        runs.append(trainer.fit_seed(1))
    (a, b) = runs
    assert a.history == b.history
    for (name, p), q in zip(a.cohort.state_dict().items(), b.cohort.state_dict().values()):
        assert torch.equal(p, q), name
