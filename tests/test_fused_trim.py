"""Exact per-layer trimming of the fused cohort on neighbour-sampled subgraphs.

On a hop-ordered sampled subgraph the seeds' logits of the trimmed fused cohort must equal
those of the untrimmed fused cohort and of the students run one by one (float64), forward
and gradients.
"""
from __future__ import annotations

import pytest
import torch

from graphmutual.data.sampling import NeighborSampler
from graphmutual.data.synthetic import sbm_graph
from graphmutual.mutual import MutualEnsemble
from graphmutual.nn import FusedCohort, GraphStudent, build_student
from graphmutual.nn.fused import _layer_sizes
from graphmutual.ops import CSR, sample_neighbors
from graphmutual.train.sampled import SampledNodeRunner

N, FIN, C, SEEDS = 240, 10, 4, 16


pytestmark = pytest.mark.usefixtures("one_thread")


def _sample(fanout, seed=0, density=None):
    """A sampled subgraph of a random graph with self-loops and duplicate edges."""
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, N, (2, 1600), generator=g)
    ei = torch.cat([ei, torch.tensor([[3, 3, 3, 7, 7], [3, 3, 5, 9, 9]])], dim=1)
    x = torch.randn(N, FIN, generator=g, dtype=torch.float64)
    if density is not None:
        x = x.abs() * (torch.rand(N, FIN, generator=g, dtype=torch.float64) < density)
    out = sample_neighbors(CSR.from_edge_index(ei, N), torch.arange(SEEDS) * 7, fanout,
                           seed=seed)
    return x[out.node], out.edge_index, out.num_sampled_nodes


def _students(names, layers, **kw):
    torch.manual_seed(0)
    out = [build_student(n, FIN, C, 16, layers, **kw.get(n, {})) for n in names]
    for s in out:
        s.double().eval()
    return out


def _check(students, x, ei, hops, atol=1e-10):
    """Trimmed == untrimmed fused == one by one on the seeds, forward and gradients."""
    fused = FusedCohort(students)
    bs = hops[0]
    ref = [s(x, ei)[:bs] for s in students]
    full = [o[:bs] for o in fused(x, ei)]
    trim = fused(x, ei, num_sampled_nodes=hops)
    params = [p for s in students for p in s.parameters()]
    ws = [torch.randn_like(r) for r in ref]
    grads = []
    for outs in (ref, full, trim):
        assert [tuple(o.shape) for o in outs] == [(bs, C)] * len(students)
        loss = sum((o * w).sum() for o, w in zip(outs, ws))
        grads.append(torch.autograd.grad(loss, params, allow_unused=True))
    for r, a, b in zip(ref, full, trim):
        torch.testing.assert_close(b, r, atol=atol, rtol=1e-8)
        torch.testing.assert_close(b, a, atol=atol, rtol=1e-8)
    for g_ref, g_full, g_trim in zip(*grads):
        if g_ref is None:
            assert g_trim is None or float(g_trim.abs().max()) == 0.0
            continue
        torch.testing.assert_close(g_trim, g_ref, atol=atol, rtol=1e-8)
        torch.testing.assert_close(g_trim, g_full, atol=atol, rtol=1e-8)
    return fused


def test_layer_sizes_follow_the_hops():
    # 10 seeds, 30 nodes at hop 1, 50 at hop 2: a 2-layer model maps 90 -> 40 -> 10 rows
    assert _layer_sizes([10, 30, 50], 2) == [(40, 90), (10, 40)]
    assert _layer_sizes([10, 30, 50], 1) == [(10, 40)]  # one layer: hop 2 is not read
    # deeper than sampled: the outer layers keep every node
    assert _layer_sizes([10, 30, 50], 3) == [(90, 90), (40, 90), (10, 40)]


@pytest.mark.parametrize("name", ["gcn", "gat", "gin"])
@pytest.mark.parametrize("layers,fanout", [(1, [4]), (2, [4, 3]), (3, [3, 3, 2]),
                                           (2, [4, 3, 2]), (3, [4, 3])])
def test_each_convolution_is_exact(name, layers, fanout):
    x, ei, hops = _sample(fanout)
    _check(_students([name], layers), x, ei, hops)


@pytest.mark.parametrize("layers", [2, 3])
def test_mixed_cohort_is_exact_and_layers_shrink(layers):
    fanout = [4, 3, 2][:layers]
    x, ei, hops = _sample(fanout, seed=1)
    fused = _check(_students(["gcn", "gat", "gin", "mlp"], layers), x, ei, hops)
    # the cached views are the trimmed layers: destinations shrink to the seeds
    sizes = sorted(fused._graph.views)
    want = sorted(s for s in _layer_sizes(hops, layers) if s != (x.size(0), x.size(0)))
    assert sizes == want and min(d for d, _ in sizes) == hops[0]
    views = fused._graph.views
    assert all(v.csr.num_edges < fused._graph.csr.num_edges for v in views.values())


def test_variants_mixed_depths_and_jumping_knowledge():
    x, ei, hops = _sample([4, 3, 2], seed=2)
    torch.manual_seed(2)
    students = [
        build_student("gcn", FIN, C, 32, 3, act="tanh", improved=True, bias=False),
        build_student("gcn", FIN, C, 4, 2),  # narrow hidden: A (X W) on the first layer
        build_student("gat", FIN, C, 12, 2, heads=3, residual=True, concat=True),
        build_student("gat", FIN, C, 8, 3, heads=2, negative_slope=0.1),
        build_student("gin", FIN, C, 16, 2, train_eps=True, eps=0.3),
        build_student("gin", FIN, C, 16, 2, norm="batch_norm"),  # eval: running stats
        build_student("gcn", FIN, C, 16, 3, jk="cat"),
        build_student("gat", FIN, C, 8, 2, jk="max"),
    ]
    for s in students:
        s.double().eval()
    _check(students, x, ei, hops)


def test_sparse_input_and_input_requiring_grad():
    x, ei, hops = _sample([4, 3], seed=3, density=0.05)
    students = _students(["gcn", "gat", "gin"], 2)
    _check(students, x, ei, hops)
    xg = x.clone().requires_grad_(True)
    fused = FusedCohort(students)
    ref = sum(s(xg, ei)[:hops[0]].sum() for s in students)
    out = sum(o.sum() for o in fused(xg, ei, num_sampled_nodes=hops))
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-8)
    (g_ref,) = torch.autograd.grad(ref, xg)
    (g_out,) = torch.autograd.grad(out, xg)
    torch.testing.assert_close(g_out, g_ref, atol=1e-10, rtol=1e-8)
    # nodes farther than the model's depth get no gradient (they were never read)
    far = sum(hops[:3])
    assert float(g_out[far:].abs().sum()) == 0.0


def test_batch_norm_in_training_is_not_trimmed_but_still_exact():
    """A GIN with batch norm (the training default off Planetoid; also in its MLPs) runs on
    the whole subgraph in training (statistics over all rows); the GCN beside it is
    trimmed."""
    x, ei, hops = _sample([4, 3], seed=4)
    students = _students(["gcn", "gin"], 2, gcn={"dropout": 0.0},
                         gin={"norm": "batch_norm", "dropout": 0.0})
    assert any("BatchNorm" in type(m).__name__ for m in students[1].modules())
    for s in students:
        s.train()  # without dropout, training mode is deterministic
    fused = _check(students, x, ei, hops)
    assert "1 (gin)" in fused.trim_support() and "0 (gcn)" not in fused.trim_support()
    assert sorted(fused._graph.views) == sorted(_layer_sizes(hops, 2))  # the GCN's layers
    for s in students:
        s.eval()
    assert fused.trim_support() is None  # eval mode: running statistics, row by row


def test_float32_training_mode_through_the_ensemble():
    x, ei, hops = _sample([4, 3], seed=5)
    students = _students(["gcn", "gat", "gin"], 2, gcn={"dropout": 0.0},
                         gat={"dropout": 0.0}, gin={"dropout": 0.0})
    for s in students:
        s.float().train()  # without dropout, training mode is deterministic
    cohort = MutualEnsemble(students, weighting="adaptive")
    out = cohort(x.float(), ei, num_sampled_nodes=hops)
    ref = cohort(x.float(), ei)[:, :hops[0]]
    assert out.shape == (3, hops[0], C)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_bad_hop_counts_are_rejected():
    x, ei, hops = _sample([4, 3], seed=6)
    fused = FusedCohort(_students(["gcn", "gat"], 2))
    with pytest.raises(ValueError, match="adds up to"):
        fused(x, ei, num_sampled_nodes=[hops[0], hops[1]])
    with pytest.raises(ValueError, match="num_sampled_nodes must be"):
        fused(x, ei, num_sampled_nodes=[hops[0], -1, hops[1] + hops[2] + 1])
    with pytest.raises(ValueError, match="num_sampled_nodes must be"):
        fused(x, ei, num_sampled_nodes=[])
    # the same nodes in another order: the counts no longer describe the hops
    perm = torch.randperm(x.size(0), generator=torch.Generator().manual_seed(0))
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    with pytest.raises(ValueError, match="ordered by hop"):
        fused(x[perm], inv[ei], num_sampled_nodes=hops)
    # a tensor of counts works like a list
    out = fused(x, ei, num_sampled_nodes=torch.tensor(hops))
    assert out[0].shape == (hops[0], C)
    assert fused.accepts(x, ei, num_sampled_nodes=hops)
    assert not fused.accepts(x, ei, other=hops)


def test_graph_level_cohort_rejects_hop_counts():
    students = [GraphStudent(build_student(n, FIN, 8, 8, 2), 8, C) for n in ("gcn", "gin")]
    fused = FusedCohort(students)
    x = torch.randn(6, FIN)
    ei = torch.tensor([[0, 1, 2], [1, 2, 0]])
    assert not fused.accepts(x, ei, num_sampled_nodes=[2, 4])
    with pytest.raises(ValueError, match="node-level"):
        fused(x, ei, num_sampled_nodes=[2, 4])


def test_runner_trims_with_the_same_losses_and_gradients():
    d = sbm_graph(400, 3000, num_classes=3, num_features=8, seed=0)
    losses, grads = [], []
    for trim in (True, False):
        torch.manual_seed(0)
        students = [build_student(s, 8, 3, hidden_channels=16, dropout=0.0)
                    for s in ("gcn", "gat", "gin")]
        for s in students:
            s.double()
        cohort = MutualEnsemble(students, weighting="adaptive").double()
        runner = SampledNodeRunner(d, d.train_mask, [4, 3], batch_size=64, trim=trim)
        runner.data.x = runner.data.x.double()
        torch.manual_seed(1)
        batch = next(iter(runner.loader()))
        assert runner.trims(cohort, batch) is trim
        opt = torch.optim.SGD(cohort.parameters(), lr=0.0)
        cohort.train()
        out = runner.step(cohort, batch, opt, epoch=3)
        losses.append(float(out["total"].detach()))
        grads.append([p.grad.clone() for p in cohort.parameters() if p.grad is not None])
    assert losses[0] == pytest.approx(losses[1], rel=1e-10)
    assert len(grads[0]) == len(grads[1])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)


def test_runner_without_a_fused_cohort_does_not_trim():
    d = sbm_graph(200, 1500, num_classes=3, num_features=8, seed=0)
    students = [build_student(s, 8, 3, hidden_channels=8) for s in ("gcn", "sage")]
    cohort = MutualEnsemble(students, weighting="adaptive")  # SAGE does not fuse
    runner = SampledNodeRunner(d, d.train_mask, [3, 3], batch_size=32)
    batch = next(iter(runner.loader()))
    assert not runner.trims(cohort, batch)
    assert runner.seed_logits(cohort, batch).shape == (2, 32, 3)


def test_unfused_ensemble_takes_hop_counts_and_cuts_to_the_seeds():
    """``num_sampled_nodes`` on the unfused path: the students see the whole subgraph and
    the result is the seeds' rows, the same numbers as the trimmed fused path."""
    x, ei, hops = _sample([4, 3], seed=8)
    fused = MutualEnsemble(_students(["gcn", "gat", "gin"], 2), fused=True)
    plain = MutualEnsemble(_students(["gcn", "gat", "gin"], 2), fused=False)
    assert fused.fused_cohort is not None and plain.fused_cohort is None
    out = plain(x, ei, num_sampled_nodes=hops)
    assert out.shape == (3, hops[0], C)
    torch.testing.assert_close(out, fused(x, ei, num_sampled_nodes=hops), atol=1e-10,
                               rtol=1e-8)


def test_pyg_sampler_output_is_hop_ordered():
    """Batches from NodeLoader + our NeighborSampler carry the counts trimming needs."""
    d = sbm_graph(300, 2400, num_classes=3, num_features=FIN, seed=1)
    sampler = NeighborSampler(d, [4, 3], seed=0)
    from torch_geometric.loader import NodeLoader

    batch = next(iter(NodeLoader(d, node_sampler=sampler, batch_size=20)))
    assert list(batch.num_sampled_nodes)[0] == batch.batch_size == 20
    students = _students(["gcn", "gat", "gin"], 2)
    _check(students, batch.x.double(), batch.edge_index, batch.num_sampled_nodes)
