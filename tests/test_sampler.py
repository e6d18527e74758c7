"""The neighbour sampler (graphmutual.ops.sample_neighbors), both backends."""

from __future__ import annotations

import pytest
import torch

import graphmutual.ops as O
from graphmutual.ops import _build

BACKENDS = ["cpp", "reference"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "cpp" and _build.ensure("cpu") is not None:
        pytest.skip(f"C++ kernels unavailable: {_build.ensure('cpu')}")
    with O.use_backend(request.param):
        yield request.param


def random_graph(n=300, e=3000, seed=0, isolated=10, dtype=torch.long):
    """Random multigraph; the last ``isolated`` nodes have no in-edges."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, n, (e,), generator=g)
    dst = torch.randint(0, n - isolated, (e,), generator=g)
    # one high-degree node (> 64 picks exercises the bitmap path of Floyd's algorithm)
    src = torch.cat([src, torch.arange(n)])
    dst = torch.cat([dst, torch.zeros(n, dtype=torch.long)])
    ei = torch.stack([src, dst]).to(dtype)
    return ei, O.CSR.from_edge_index(ei, n)


def check_sample(csr, seeds, fanouts, out, replace=False):
    """Every structural property of a sample, against the CSR it came from."""
    node, row, col, edge = out.node, out.row, out.col, out.edge
    assert node.dtype == row.dtype == col.dtype == edge.dtype == torch.long
    assert torch.equal(node[: seeds.numel()], seeds.long())
    assert node.unique().numel() == node.numel()  # every node once
    assert sum(out.num_sampled_nodes) == node.numel()
    assert sum(out.num_sampled_edges) == edge.numel() == row.numel() == col.numel()
    rowptr, colidx = csr.rowptr.long(), csr.col.long()
    # the edge is a true edge u -> v of the graph: CSR position `edge` lies in row v
    # and stores source u
    src_g, dst_g = node[row], node[col]
    assert torch.equal(colidx[edge], src_g)
    assert bool(((rowptr[dst_g] <= edge) & (edge < rowptr[dst_g + 1])).all())
    # hop structure: hop-l edges point into the nodes first reached at hop l-1
    bounds = torch.tensor([0] + out.num_sampled_nodes).cumsum(0)
    ebounds = torch.tensor([0] + out.num_sampled_edges).cumsum(0)
    deg = rowptr[1:] - rowptr[:-1]
    for h, k in enumerate(fanouts):
        c = col[ebounds[h]:ebounds[h + 1]]
        e = edge[ebounds[h]:ebounds[h + 1]]
        assert bool(((c >= bounds[h]) & (c < bounds[h + 1])).all())
        frontier = torch.arange(int(bounds[h]), int(bounds[h + 1]))
        counts = torch.bincount(c - bounds[h], minlength=frontier.numel())
        d = deg[node[frontier]]
        want = d if k < 0 else (torch.where(d > 0, k, 0) if replace else d.clamp(max=k))
        assert torch.equal(counts, want), f"fan-out not respected at hop {h}"
        if not replace:  # no CSR position twice (so duplicate edges are distinct picks)
            assert e.unique().numel() == e.numel()
        # within a row the picks come in CSR order
        same = c[1:] == c[:-1]
        assert bool((e[1:][same] >= e[:-1][same]).all())
    # new nodes of hop l are sources of hop-l edges, numbered by first appearance
    for h in range(len(fanouts)):
        r = row[ebounds[h]:ebounds[h + 1]]
        fresh = r[r >= bounds[h + 1]]
        if fresh.numel():
            first = []
            for v in fresh.tolist():
                if v not in first:
                    first.append(v)
            assert first == list(range(int(bounds[h + 1]), int(bounds[h + 2])))


@pytest.mark.parametrize("fanouts", [[5, 3], [-1], [2, -1, 1], [0, 4], [100], []])
def test_sample_is_valid(backend, fanouts):
    _, csr = random_graph()
    seeds = torch.tensor([0, 5, 17, 299, 42, 298])  # 298/299 are isolated (no in-edges)
    out = O.sample_neighbors(csr, seeds, fanouts, seed=3)
    check_sample(csr, seeds, fanouts, out)


def test_replace(backend):
    _, csr = random_graph()
    seeds = torch.arange(0, 300, 7)
    out = O.sample_neighbors(csr, seeds, [4, 2], seed=1, replace=True)
    check_sample(csr, seeds, [4, 2], out, replace=True)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_index_dtypes(backend, dtype):
    ei, csr64 = random_graph()
    csr = O.CSR.from_edge_index(ei.to(dtype), 300)
    assert csr.col.dtype == dtype
    seeds = torch.arange(0, 300, 3, dtype=dtype)
    out = O.sample_neighbors(csr, seeds, [6, 4], seed=11)
    check_sample(csr, seeds, [6, 4], out)
    ref = O.sample_neighbors(csr64, seeds.long(), [6, 4], seed=11)
    for a, b in zip(out, ref):
        assert a == b if isinstance(a, list) else torch.equal(a, b)
    # a raw (rowptr, col) tuple works too
    raw = O.sample_neighbors((csr.rowptr, csr.col), seeds, [6, 4], seed=11)
    assert torch.equal(raw.node, out.node)


def test_deterministic_per_seed(backend):
    _, csr = random_graph()
    seeds = torch.arange(0, 290, 2)
    a = O.sample_neighbors(csr, seeds, [5, 5], seed=7)
    b = O.sample_neighbors(csr, seeds, [5, 5], seed=7)
    c = O.sample_neighbors(csr, seeds, [5, 5], seed=8)
    assert all(torch.equal(x, y) for x, y in zip(a[:4], b[:4]))
    assert not torch.equal(a.edge, c.edge)
    torch.manual_seed(0)
    d = O.sample_neighbors(csr, seeds, [5, 5])
    torch.manual_seed(0)
    e = O.sample_neighbors(csr, seeds, [5, 5])
    assert torch.equal(d.edge, e.edge)


def test_thread_count_does_not_change_the_sample():
    if _build.ensure("cpu") is not None:
        pytest.skip("C++ kernels unavailable")
    _, csr = random_graph(n=5000, e=60000)
    seeds = torch.randperm(4990, generator=torch.Generator().manual_seed(0))[:2000]
    old = torch.get_num_threads()
    try:
        with O.use_backend("cpp"):
            torch.set_num_threads(1)
            a = O.sample_neighbors(csr, seeds, [10, 5], seed=5)
            torch.set_num_threads(2)
            b = O.sample_neighbors(csr, seeds, [10, 5], seed=5)
    finally:
        torch.set_num_threads(old)
    assert all(torch.equal(x, y) for x, y in zip(a[:4], b[:4]))


@pytest.mark.parametrize("k", [3, 80])  # the linear-scan and the bitmap path
def test_uniform(backend, k):
    """Each of a node's d in-neighbours is picked with probability k / d."""
    d = 100
    ei = torch.stack([torch.arange(1, d + 1), torch.zeros(d, dtype=torch.long)])
    csr = O.CSR.from_edge_index(ei, d + 1)
    trials = 400
    hits = torch.zeros(d + 1)
    for s in range(trials):
        out = O.sample_neighbors(csr, torch.tensor([0]), [k], seed=s)
        hits[out.node[1:]] += 1
    freq = hits[1:] / trials
    p = k / d
    sd = (p * (1 - p) / trials) ** 0.5
    assert abs(float(freq.mean()) - p) < 1e-6  # exactly k distinct picks each time
    assert float((freq - p).abs().max()) < 5 * sd + 1e-9


def test_bad_input():
    _, csr = random_graph()
    with pytest.raises(ValueError, match="out of range"):
        O.sample_neighbors(csr, torch.tensor([0, 300]), [2])
    with pytest.raises(ValueError, match="out of range"):
        O.sample_neighbors(csr, torch.tensor([-1]), [2])
    with pytest.raises(ValueError, match="distinct"):
        O.sample_neighbors(csr, torch.tensor([3, 3]), [2])
    with pytest.raises(ValueError, match="fan-outs"):
        O.sample_neighbors(csr, torch.tensor([3]), [2, -2])
    with pytest.raises(TypeError, match="list of ints"):
        O.sample_neighbors(csr, torch.tensor([3]), 2)
    with pytest.raises(TypeError, match="ints"):
        O.sample_neighbors(csr, torch.tensor([3]), [2.5])
    with pytest.raises(TypeError, match="int32 or int64"):
        O.sample_neighbors(csr, torch.tensor([3.0]), [2])
    with pytest.raises(ValueError, match="one-dimensional"):
        O.sample_neighbors(csr, torch.tensor([[3]]), [2])
    with pytest.raises(TypeError, match="seed"):
        O.sample_neighbors(csr, torch.tensor([3]), [2], seed=1.5)
    with pytest.raises(ValueError, match="non-decreasing"):
        O.sample_neighbors((torch.tensor([0, 2, 1, 3]), torch.tensor([0, 1, 2])), [0], [1])
    with pytest.raises(ValueError, match="out of range"):
        O.sample_neighbors((torch.tensor([0, 1, 2]), torch.tensor([0, 5])), [0], [1])
    with pytest.raises(ValueError, match="square"):
        bip = O.CSR.from_edge_index(torch.tensor([[0, 4], [0, 1]]), 5, num_dst_nodes=2)
        O.sample_neighbors(bip, [0], [1])


def test_kernel_rejects_malformed_csr():
    """The C++ kernel checks the structure again (second line of defence)."""
    if _build.ensure("cpu") is not None:
        pytest.skip("C++ kernels unavailable")
    ops = torch.ops.graphmutual_cpu
    seeds = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="malformed"):
        ops.sample_neighbors(torch.tensor([0, 2, 1]), torch.tensor([0, 1]), seeds, [1], 0, False)
    with pytest.raises(ValueError, match="malformed"):
        ops.sample_neighbors(torch.tensor([0, 1, 2]), torch.tensor([0, 7]), seeds, [1], 0, False)
    with pytest.raises(ValueError, match="unique"):
        ops.sample_neighbors(torch.tensor([0, 1, 2]), torch.tensor([0, 1]),
                             torch.tensor([1, 1]), [1], 0, False)
    # the per-thread node map is clean after an error
    out = ops.sample_neighbors(torch.tensor([0, 1, 2]), torch.tensor([1, 0]), seeds, [1], 0, False)
    assert out[0].tolist() == [0, 1] and out[1].tolist() == [1, 0]


def test_empty_seeds(backend):
    _, csr = random_graph()
    out = O.sample_neighbors(csr, torch.empty(0, dtype=torch.long), [3, 2], seed=0)
    assert out.node.numel() == 0 and out.edge.numel() == 0
    assert out.num_sampled_nodes == [0, 0, 0] and out.num_sampled_edges == [0, 0]


# ------------------------------------------------------------------ PyG sampler interface
def _data(n=200, e=1500, seed=0):
    from torch_geometric.data import Data

    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    return Data(x=torch.randn(n, 8, generator=g, dtype=torch.float64), edge_index=ei,
                edge_attr=torch.arange(e, dtype=torch.float64).unsqueeze(-1),
                y=torch.randint(0, 3, (n,), generator=g),
                train_mask=torch.rand(n, generator=g) < 0.3)


def test_node_loader_batches():
    from torch_geometric.loader import NodeLoader

    from graphmutual.data.sampling import NeighborSampler

    data = _data()
    sampler = NeighborSampler(data, [4, 3], seed=0)
    loader = NodeLoader(data, node_sampler=sampler, input_nodes=data.train_mask,
                        batch_size=16, shuffle=True)
    seen = []
    for batch in loader:
        bs = batch.batch_size
        seeds = batch.n_id[:bs]
        seen.append(seeds)
        assert bool(data.train_mask[seeds].all())
        assert torch.equal(batch.x, data.x[batch.n_id])
        assert torch.equal(batch.y, data.y[batch.n_id])
        # local edges are true edges, and e_id/edge_attr point at them
        src, dst = batch.n_id[batch.edge_index[0]], batch.n_id[batch.edge_index[1]]
        assert torch.equal(data.edge_index[0, batch.e_id], src)
        assert torch.equal(data.edge_index[1, batch.e_id], dst)
        assert torch.equal(batch.edge_attr.squeeze(-1).long(), batch.e_id)
        assert sum(batch.num_sampled_nodes) == batch.num_nodes
    seen = torch.cat(seen)
    assert torch.equal(seen.sort().values, data.train_mask.nonzero().view(-1))


def test_full_fanout_equals_full_batch():
    """With fan-outs [-1, -1], a 2-layer SAGE gives the full-batch outputs on the seeds."""
    from torch_geometric.loader import NodeLoader
    from torch_geometric.nn.models import GraphSAGE

    from graphmutual.data.sampling import NeighborSampler

    data = _data()
    torch.manual_seed(0)
    model = GraphSAGE(8, 16, 2, 3).double().eval()
    full = model(data.x, data.edge_index)
    loader = NodeLoader(data, node_sampler=NeighborSampler(data, [-1, -1]),
                        input_nodes=None, batch_size=37)
    for batch in loader:
        out = model(batch.x, batch.edge_index)[:batch.batch_size]
        torch.testing.assert_close(out, full[batch.n_id[:batch.batch_size]])


def test_sampler_seed_reproducible():
    from graphmutual.data.sampling import NeighborSampler

    data = _data()
    seeds = torch.arange(0, 200, 5)
    a = NeighborSampler(data, [3, 3], seed=4)
    b = NeighborSampler(data, [3, 3], seed=4)
    for _ in range(2):
        oa, ob = a.sample(seeds), b.sample(seeds)
        assert torch.equal(oa.node, ob.node) and torch.equal(oa.edge, ob.edge)
    assert "NeighborSampler(num_neighbors=[3, 3]" in repr(a)


def test_sampler_bad_input():
    from graphmutual.data.sampling import NeighborSampler, pyg_sampler_available

    data = _data()
    with pytest.raises(ValueError, match="backend"):
        NeighborSampler(data, [2], backend="dgl")
    with pytest.raises(ValueError, match="fan-outs"):
        NeighborSampler(data, [2, -3])
    with pytest.raises(TypeError, match="homogeneous"):
        NeighborSampler({"edge_index": data.edge_index}, [2])
    if not pyg_sampler_available():
        with pytest.raises(ImportError, match="pyg-lib or torch-sparse"):
            NeighborSampler(data, [2], backend="pyg")
    with pytest.raises(NotImplementedError, match="nodes only"):
        NeighborSampler(data, [2]).sample_from_edges(None)


def test_pyg_backend_matches_semantics():
    """When pyg-lib/torch-sparse is installed, backend='pyg' gives a valid sample too."""
    from graphmutual.data.sampling import NeighborSampler, pyg_sampler_available

    if not pyg_sampler_available():
        pytest.skip("neither pyg-lib nor torch-sparse is installed")
    data = _data()
    seeds = torch.arange(0, 200, 4)
    ours = NeighborSampler(data, [3, 2], seed=0).sample(seeds)
    theirs = NeighborSampler(data, [3, 2], backend="pyg").sample(seeds)
    for out in (ours, theirs):
        assert torch.equal(out.node[: seeds.numel()], seeds)
        src, dst = out.node[out.row], out.node[out.col]
        edges = set(map(tuple, data.edge_index.t().tolist()))
        assert all((s, d) in edges for s, d in zip(src.tolist(), dst.tolist()))


# ------------------------------------------------------------------ layer-wise inference
def _graph64(n=120, e=700, seed=1):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n - 5, (2, e), generator=g)  # 5 isolated nodes
    ei = torch.cat([ei, torch.tensor([[3, 3, 7], [3, 3, 9]])], 1)  # self-loops, duplicates
    x = torch.randn(n, 6, generator=g, dtype=torch.float64)
    return x, ei


@pytest.mark.parametrize("name,kw", [
    ("gcn", {}), ("gcn", {"improved": True}), ("gcn", {"normalize": False}),
    ("gat", {"heads": 2}), ("gin", {}), ("sage", {}), ("mlp", {}),
    ("gcn", {"jk": "last", "norm": "batch_norm"}), ("sage", {"num_layers": 3}),
])
def test_layerwise_equals_full_batch(name, kw):
    from graphmutual.nn.inference import LayerwiseInference
    from graphmutual.nn.students import build_student

    x, ei = _graph64()
    torch.manual_seed(0)
    kw = dict(kw)
    layers = kw.pop("num_layers", 2)
    model = build_student(name, 6, 4, hidden_channels=8, num_layers=layers, **kw)
    model = model.double().eval()
    full = model(x, ei)
    infer = LayerwiseInference(ei, x.size(0), batch_size=17)
    torch.testing.assert_close(infer(model, x), full, rtol=1e-10, atol=1e-12)


def test_layerwise_cohort_stack():
    from graphmutual.nn.inference import layerwise_inference
    from graphmutual.nn.students import build_student

    x, ei = _graph64()
    torch.manual_seed(0)
    models = [build_student(s, 6, 4, hidden_channels=8, num_layers=n).double().eval()
              for s, n in (("gcn", 2), ("gat", 3), ("gin", 1), ("mlp", 2))]
    out = layerwise_inference(models, x, ei, batch_size=50)
    assert out.shape == (4, x.size(0), 4)
    for k, m in enumerate(models):
        torch.testing.assert_close(out[k], m(x, ei), rtol=1e-10, atol=1e-12)


def test_layerwise_bad_input():
    from torch_geometric.nn.models import GCN

    from graphmutual.nn.inference import LayerwiseInference

    x, ei = _graph64()
    infer = LayerwiseInference(ei, x.size(0))
    model = GCN(6, 8, 2, 4).double()
    with pytest.raises(ValueError, match="eval"):
        infer(model, x)
    with pytest.raises(ValueError, match="rows"):
        infer(model.eval(), x[:5])
    with pytest.raises(ValueError, match="jk"):
        infer(GCN(6, 8, 2, 4, jk="cat").eval(), x.float())
    with pytest.raises(TypeError, match="BasicGNN"):
        infer(torch.nn.Linear(6, 4), x)
    with pytest.raises(ValueError, match="batch_size"):
        LayerwiseInference(ei, x.size(0), batch_size=0)
