"""The fused cohort: same logits and gradients as the students run one by one."""
from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F

from graphmutual.mutual.ensemble import MutualEnsemble
from graphmutual.nn import GCN, FusedCohort, GraphStudent, build_student, fused_support

N, FIN, C = 40, 10, 4


def _graph(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, FIN, generator=g, dtype=torch.float64)
    ei = torch.randint(0, N - 6, (2, 160), generator=g)  # nodes N-6.. are isolated
    extra = torch.tensor([[3, 3, 3, 7, 7, 1], [3, 3, 5, 9, 9, 1]])  # loops, duplicates
    return x, torch.cat([ei, extra], dim=1)


def _cohort(names, layers, **kw):
    torch.manual_seed(0)
    students = [build_student(n, FIN, C, 16, layers, **kw.get(n, {})) for n in names]
    for s in students:
        s.double().eval()
    return students


def _params(students):
    return [p for s in students for p in s.parameters()]


def _check(students, x, ei, atol=1e-10):
    fused = FusedCohort.try_build(students)
    assert fused is not None
    ref = [s(x, ei) for s in students]
    out = fused(x, ei)
    for r, o in zip(ref, out):
        torch.testing.assert_close(o, r, atol=atol, rtol=1e-8)
    ps = _params(students)
    w = [torch.randn_like(r) for r in ref]
    g_ref = torch.autograd.grad(sum((r * wi).sum() for r, wi in zip(ref, w)), ps)
    g_out = torch.autograd.grad(sum((o * wi).sum() for o, wi in zip(out, w)), ps)
    for a, b in zip(g_ref, g_out):
        torch.testing.assert_close(b, a, atol=atol, rtol=1e-8)
    return fused


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_equivalence_mixed_cohort(layers):
    x, ei = _graph()
    students = _cohort(["gcn", "gat", "gin", "mlp"], layers)
    _check(students, x, ei)


def test_equivalence_variants():
    """Several GAT/GCN/GIN students with different widths, options, trainable eps."""
    x, ei = _graph(1)
    torch.manual_seed(1)
    students = [
        build_student("gcn", FIN, C, 8, 2),
        build_student("gcn", FIN, C, 32, 3, act="tanh", improved=True, bias=False),
        build_student("gat", FIN, C, 16, 2, heads=2, negative_slope=0.1),
        build_student("gat", FIN, C, 12, 2, heads=3, residual=True, concat=True),
        build_student("gin", FIN, C, 16, 2, train_eps=True, eps=0.3),
        build_student("gin", FIN, C, 16, 2, norm="batch_norm"),
        build_student("gcn", FIN, C, 16, 2, jk="cat"),
    ]
    for s in students:
        s.double().eval()
    _check(students, x, ei)


def _sparse_features(seed: int = 0, density: float = 0.05):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(N, FIN * 4, generator=g, dtype=torch.float64)
    return x * (x < density)  # bag-of-words-like: ~5 % non-zero, one all-zero row likely


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_sparse_input_first_layer_is_equivalent(layers):
    """Sparse features take the sparse first-layer path with the same logits and grads."""
    from graphmutual.nn.fused import SPARSE_INPUT_MAX_DENSITY

    x, ei = _sparse_features(layers), _graph()[1]
    assert 0 < float((x != 0).double().mean()) <= SPARSE_INPUT_MAX_DENSITY
    torch.manual_seed(layers)
    f = x.size(1)
    students = [build_student("gcn", f, C, 16, layers),
                build_student("gat", f, C, 16, layers, heads=2),
                build_student("gin", f, C, 16, layers, train_eps=True, eps=0.2),
                build_student("gin", f, C, 8, layers, norm="batch_norm"),
                build_student("mlp", f, C, 16, layers)]
    for s in students:
        s.double().eval()
    fused = _check(students, x, ei)
    assert fused._graph.x_cache.get("sparse") is not None  # the sparse path was taken
    assert all(type(s.convs[0].nn.lins[0]).__name__ == "Linear" for s in students[2:4])


def test_dense_input_does_not_take_the_sparse_path():
    x, ei = _graph()
    fused = _check(_cohort(["gcn", "gat", "gin"], 2), x, ei)
    assert fused._graph.x_cache.get("sparse", "unset") is None


def test_equivalence_training_mode_without_dropout_and_float32():
    x, ei = _graph(2)
    students = _cohort(["gcn", "gat", "gin", "mlp"], 2,
                       gcn=dict(dropout=0.0), gat=dict(dropout=0.0), gin=dict(dropout=0.0),
                       mlp=dict(dropout=0.0))
    for s in students:
        s.float().train()
    _check(students, x.float(), ei, atol=1e-5)


def test_training_mode_applies_dropout():
    x, ei = _graph()
    students = _cohort(["gcn", "gat", "gin"], 2)
    for s in students:
        s.train()
    fused = FusedCohort(students)
    a, b = fused(x, ei), fused(x, ei)
    assert all(not torch.allclose(u, v) for u, v in zip(a, b))  # dropout is on
    for s in students:
        s.eval()
    a, b = fused(x, ei), fused(x, ei)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_no_edges_and_input_requiring_grad():
    x, _ = _graph()
    students = _cohort(["gcn", "gat", "gin"], 2)
    _check(students, x, torch.empty(2, 0, dtype=torch.long))
    x = x.clone().requires_grad_()
    fused = FusedCohort(students)
    ei = _graph()[1]
    out = fused(x, ei)
    gx = torch.autograd.grad(sum(o.sum() for o in out), x)[0]
    gx_ref = torch.autograd.grad(sum(s(x, ei).sum() for s in students), x)[0]
    torch.testing.assert_close(gx, gx_ref)


def test_cache_reuse_and_invalidation():
    x, ei = _graph()
    students = _cohort(["gcn", "gat", "gin"], 2)
    fused = FusedCohort(students)
    fused(x, ei)
    g = fused._graph
    cached = dict(g.x_cache)
    assert set(cached) == {"gcn", "sum", "sparse"} and cached["sparse"] is None  # dense x
    fused(x, ei)
    assert fused._graph is g and all(g.x_cache[k] is v for k, v in cached.items())

    # a new x: new first-layer aggregation, same graph
    x2 = x + 1.0
    out = fused(x2, ei)
    assert fused._graph is g and g.x_cache["gcn"] is not cached["gcn"]
    for o, s in zip(out, students):
        torch.testing.assert_close(o, s(x2, ei))
    # in-place change of x is noticed
    x2.mul_(2.0)
    for o, s in zip(fused(x2, ei), students):
        torch.testing.assert_close(o, s(x2, ei))
    # a new edge_index (and an in-place modified one) rebuilds the structure
    ei2 = ei[:, :100].clone()
    for o, s in zip(fused(x2, ei2), students):
        torch.testing.assert_close(o, s(x2, ei2))
    g2 = fused._graph
    assert g2 is not g
    ei2[0, :10] = ei2[1, :10]
    for o, s in zip(fused(x2, ei2), students):
        torch.testing.assert_close(o, s(x2, ei2))
    assert fused._graph is not g2
    # a sparse x replaces the cache and is cached as sparse
    xs = torch.zeros_like(x2)
    xs[::5, 1] = 1.0
    for o, s in zip(fused(xs, ei2), students):
        torch.testing.assert_close(o, s(xs, ei2))
    assert fused._graph.x_cache["sparse"] is not None
    fused.clear_cache()
    assert fused._graph is None
    assert "FusedCohort(students=[gcn, gat, gin]" in repr(fused)
    state = pickle.loads(pickle.dumps(fused))
    assert state._graph is None


def test_unsupported_students_fall_back():
    gcn = build_student("gcn", FIN, C, 16, 2)
    unsupported = [
        build_student("sage", FIN, C, 16, 2),
        build_student("gat", FIN, C, 16, 2, v2=True),
        build_student("gcn", FIN, C, 16, 2, normalize=False, add_self_loops=False),
        build_student("gat", FIN, C, 16, 2, edge_dim=3),
        build_student("gin", FIN, C, 16, 2, aggr="mean"),
        GraphStudent(build_student("gin", FIN, 16, 16, 2, edge_dim=3), 16, C,
                     edge_encoder=torch.nn.Linear(3, 16)),  # edge features
        GraphStudent(build_student("sage", FIN, 16, 16, 2), 16, C),
        torch.nn.Linear(FIN, C),
        GCN(-1, 16, 2, C),  # lazy
    ]
    for s in unsupported:
        assert fused_support(s) is not None
        assert FusedCohort.try_build([gcn, s]) is None
        with pytest.raises(ValueError, match="cannot be fused"):
            FusedCohort([gcn, s])
    assert FusedCohort.try_build([]) is None
    # node-level and graph-level students do not mix
    graph = GraphStudent(build_student("gcn", FIN, 16, 16, 2), 16, C)
    assert fused_support(graph) is None
    assert FusedCohort.try_build([gcn, graph]) is None
    with pytest.raises(ValueError, match="cannot fuse node-level"):
        FusedCohort([gcn, graph])
    assert fused_support(gcn) is None


def test_mutual_ensemble_uses_fused_path(monkeypatch):
    x, ei = _graph()
    students = _cohort(["gcn", "gat", "gin", "mlp"], 2)
    cohort = MutualEnsemble(students, method="dml")
    assert isinstance(cohort._fused, FusedCohort)
    # the fused cohort is not a submodule: the state dict only holds the students
    keys = set(cohort.state_dict())
    assert keys == set(MutualEnsemble(students, method="dml", fused=False).state_dict())
    assert not any("_fused" in k for k in keys)
    calls = []
    orig = FusedCohort.forward
    monkeypatch.setattr(FusedCohort, "forward",
                        lambda self, *a: calls.append(1) or orig(self, *a))
    fused_out = cohort(x, ei)
    assert calls == [1]
    plain = MutualEnsemble(students, method="dml", fused=False)
    assert plain._fused is None
    torch.testing.assert_close(fused_out, plain(x, ei))
    assert calls == [1]
    # graph-level style calls fall back to the students
    cohort(x, ei, batch=None)
    assert calls == [1]
    # fused=True insists; unsupported students under "auto" fall back
    with pytest.raises(ValueError, match="cannot be fused"):
        MutualEnsemble([students[0], build_student("sage", FIN, C, 16, 2)], method="dml",
                       fused=True)
    mixed = MutualEnsemble([students[0], build_student("sage", FIN, C, 16, 2).double()],
                           method="dml")
    assert mixed._fused is None
    assert mixed(x, ei).shape == (2, N, C)
    with pytest.raises(ValueError, match="fused must be"):
        MutualEnsemble(students, fused="yes")


def test_cora_training_same_accuracy():
    """A short training run on bundled Cora: fused and unfused reach about the same
    test accuracy (dropout masks differ, so not bit-identical)."""
    from graphmutual.data import load_dataset

    ds = load_dataset("cora")
    data, split = ds.data, ds.split(0)
    torch.set_num_threads(1)
    accs = {}
    for fused in ("auto", False):
        torch.manual_seed(0)
        students = [build_student(n, ds.num_features, ds.num_classes, 32, 2)
                    for n in ("gcn", "gat", "gin")]
        cohort = MutualEnsemble(students, method="dml", fused=fused)
        assert (cohort._fused is not None) == (fused == "auto")
        opt = torch.optim.Adam(cohort.parameters(), lr=0.01, weight_decay=5e-4)
        for epoch in range(30):
            cohort.train()
            opt.zero_grad()
            logits = cohort(data.x, data.edge_index)
            cohort.loss(logits, data.y, split.train, epoch=epoch)["total"].backward()
            opt.step()
        cohort.eval()
        with torch.no_grad():
            pred = cohort.predict(cohort(data.x, data.edge_index)).argmax(-1)
        accs[fused] = float((pred[split.test] == data.y[split.test]).float().mean())
    assert accs["auto"] > 0.7 and accs[False] > 0.7
    assert abs(accs["auto"] - accs[False]) < 0.04, accs


def test_fused_loss_is_differentiable_wrt_gin_eps():
    x, ei = _graph()
    students = _cohort(["gin"], 2, gin=dict(train_eps=True))
    fused = FusedCohort(students)
    out = fused(x, ei)[0]
    (g,) = torch.autograd.grad(F.log_softmax(out, -1).sum(), students[0].convs[1].eps)
    (g_ref,) = torch.autograd.grad(F.log_softmax(students[0](x, ei), -1).sum(),
                                   students[0].convs[1].eps)
    torch.testing.assert_close(g, g_ref)


# ------------------------------------------------------------------ adapters (registry)
@pytest.mark.parametrize("name,kw", [("gcn", {}), ("gcn", {"improved": True}),
                                     ("gat", {"heads": 2}), ("gat", {"concat": False}),
                                     ("gin", {"train_eps": True, "eps": 0.2})])
def test_each_adapter_alone_is_equivalent(name, kw):
    """One student per registered adapter, dense and sparse input, float64 logits + grads."""
    from torch_geometric.nn.conv import GATConv, GCNConv, GINConv

    from graphmutual.nn.fused import CONV_ADAPTERS

    assert set(CONV_ADAPTERS) == {GCNConv, GATConv, GINConv}
    x, ei = _graph(3)
    students = _cohort([name], 2, **{name: kw})
    assert type(students[0].convs[0]) in CONV_ADAPTERS
    _check(students, x, ei)
    xs = _sparse_features(3)
    torch.manual_seed(3)
    s = build_student(name, xs.size(1), C, 16, 2, **kw).double().eval()
    _check([s], xs, ei)


def test_register_a_new_adapter(monkeypatch):
    """A convolution subclass is not fused until an adapter is registered for it."""
    from torch_geometric.nn.conv import GCNConv

    from graphmutual.nn import fused as fused_mod

    class MyGCNConv(GCNConv):
        pass

    class MyGCN(GCN):
        def init_conv(self, in_channels, out_channels, **kwargs):
            return MyGCNConv(in_channels, out_channels, **kwargs)

    torch.manual_seed(0)
    s = MyGCN(FIN, 16, 2, C).double().eval()
    assert "no fused adapter" in fused_support(s)

    class MyAdapter(fused_mod.GCNAdapter):
        conv_type = MyGCNConv

    monkeypatch.setitem(fused_mod.CONV_ADAPTERS, MyGCNConv, None)  # restored afterwards
    assert fused_mod.register_conv_adapter(MyAdapter()).conv_type is MyGCNConv
    assert fused_support(s) is None
    _check([s], *_graph())
    with pytest.raises(TypeError, match="ConvAdapter"):
        fused_mod.register_conv_adapter(MyAdapter)


def test_forward_never_swaps_student_submodules():
    """The fused path only calls the students' modules (thread-safe, compile-friendly)."""
    xs, ei = _sparse_features(0), _graph()[1]
    torch.manual_seed(0)
    gin = build_student("gin", xs.size(1), C, 16, 2).double().eval()
    mlp = gin.convs[0].nn
    before = dict(gin.named_modules())
    seen = []
    mlp.norms[0].register_forward_hook(
        lambda *_: seen.append(dict(gin.named_modules()) == before))
    out = FusedCohort([gin])(xs, ei)[0]
    assert seen == [True]
    torch.testing.assert_close(out, gin(xs, ei))


# ------------------------------------------------------------------- graph-level students
def _molecules(seed: int = 0, graphs: int = 5):
    """A batch of random molecule-like graphs with OGB atom features (integer codes)."""
    from ogb.utils.features import get_atom_feature_dims
    from torch_geometric.data import Batch, Data

    g = torch.Generator().manual_seed(seed)
    dims = get_atom_feature_dims()
    data = []
    for i in range(graphs):
        n = 3 + 2 * i
        x = torch.stack([torch.randint(0, d, (n,), generator=g) for d in dims], dim=1)
        ei = torch.randint(0, n, (2, 3 * n), generator=g)
        data.append(Data(x=x, edge_index=ei, edge_attr=torch.zeros(3 * n, 3, dtype=torch.long)))
    return Batch.from_data_list(data)


def _graph_students(names, encoder=True, pools=None, dropout=0.0, **kw):
    from ogb.graphproppred.mol_encoder import AtomEncoder

    torch.manual_seed(0)
    out = []
    for i, n in enumerate(names):
        fin = 16 if encoder else FIN
        node = build_student(n, fin, 16, 16, 2, **kw.get(n, {}))
        out.append(GraphStudent(node, 16, C, pool=(pools or ["mean"] * len(names))[i],
                                encoder=AtomEncoder(16) if encoder else None,
                                dropout=dropout, name=n))
    return out


def _check_graph(students, batch, atol=1e-10):
    fused = FusedCohort.try_build(students)
    assert fused is not None and fused.graph_level
    ref = [s(batch.x, batch.edge_index, batch=batch.batch) for s in students]
    out = fused(batch.x, batch.edge_index, batch=batch.batch, edge_attr=batch.edge_attr)
    assert all(o.shape == (batch.num_graphs, C) for o in out)
    for r, o in zip(ref, out):
        torch.testing.assert_close(o, r, atol=atol, rtol=1e-8)
    ps = _params(students)
    w = [torch.randn_like(r) for r in ref]
    g_ref = torch.autograd.grad(sum((r * wi).sum() for r, wi in zip(ref, w)), ps,
                                allow_unused=True)
    g_out = torch.autograd.grad(sum((o * wi).sum() for o, wi in zip(out, w)), ps,
                                allow_unused=True)
    for p, a, b in zip(ps, g_ref, g_out):
        assert (a is None) == (b is None), p.shape
        if a is not None:
            torch.testing.assert_close(b, a, atol=atol, rtol=1e-8)
    return fused


def test_graph_students_with_atom_encoders_are_equivalent():
    """GCN+GAT+GIN(+MLP) graph students with OGB AtomEncoders: one embedding_bag for the
    encoders, one aggregation pass per layer, one readout: same logits and gradients."""
    batch = _molecules()
    students = _graph_students(["gcn", "gat", "gin", "mlp"],
                               gin=dict(norm="batch_norm", train_eps=True))
    for s in students:
        s.double().eval()
    fused = _check_graph(students, batch)
    assert fused._encoder is not None
    assert "level=graph" in repr(fused)


@pytest.mark.parametrize("pools", [["mean", "add", "max"], ["add", "add", "add"]])
def test_graph_students_without_encoder_and_other_pools(pools):
    batch = _molecules(1)
    batch.x = torch.randn(batch.num_nodes, FIN, dtype=torch.float64)
    students = _graph_students(["gcn", "gat", "gin"], encoder=False, pools=pools)
    for s in students:
        s.double().eval()
    fused = _check_graph(students, batch)
    assert fused._encoder is None


def test_graph_students_training_mode_float32():
    """Training mode (batch norm on batch statistics, no dropout) in float32."""
    batch = _molecules(2)
    students = _graph_students(["gcn", "gat", "gin"], gcn=dict(dropout=0.0),
                               gat=dict(dropout=0.0), gin=dict(dropout=0.0, norm="batch_norm"))
    for s in students:
        s.train()
    _check_graph(students, batch, atol=1e-5)
    # a single graph without a batch vector
    fused = FusedCohort(students)
    one = _molecules(3, graphs=1)
    for s, o in zip(students, fused(one.x, one.edge_index)):
        torch.testing.assert_close(o, s(one.x, one.edge_index), atol=1e-5, rtol=1e-5)


def test_graph_encoder_checks_feature_range():
    batch = _molecules()
    fused = FusedCohort(_graph_students(["gcn", "gin"]))
    bad = batch.x.clone()
    bad[0, 0] = 10_000
    with pytest.raises(ValueError, match="out of range"):
        fused(bad, batch.edge_index, batch=batch.batch)
    bad = batch.x.clone()
    bad[-1, -1] = -1  # a negative index would silently read the previous column's table
    with pytest.raises(ValueError, match="out of range"):
        fused(bad, batch.edge_index, batch=batch.batch)
    with pytest.raises(ValueError, match="integer features"):
        fused(batch.x.double(), batch.edge_index, batch=batch.batch)


def test_fused_encoder_backward_equals_embedding_bag_backward():
    """The encoders' custom backward (one ``index_add_`` per column) gives the gradient of
    ``embedding_bag(mode="sum")`` (float64), also with repeated indices, and no gradient
    when the weight needs none."""
    from graphmutual.nn.fused import _EmbeddingColumnSum

    torch.manual_seed(0)
    w = torch.randn(20, 6, dtype=torch.float64, requires_grad=True)
    index = torch.cat([torch.randint(0, 20, (50, 3)), torch.full((4, 3), 7)])
    grad = torch.randn(54, 6, dtype=torch.float64)
    out = _EmbeddingColumnSum.apply(index, w)
    (g_fast,) = torch.autograd.grad(out, w, grad)
    ref = torch.nn.functional.embedding_bag(index, w, mode="sum")
    (g_ref,) = torch.autograd.grad(ref, w, grad)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    torch.testing.assert_close(g_fast, g_ref, rtol=1e-12, atol=1e-12)
    assert not _EmbeddingColumnSum.apply(index, w.detach()).requires_grad


def test_mutual_ensemble_uses_fused_path_for_graph_students(monkeypatch):
    batch = _molecules()
    students = _graph_students(["gcn", "gat", "gin"])
    for s in students:
        s.double().eval()
    cohort = MutualEnsemble(students, method="gml")
    assert cohort._fused is not None and cohort._fused.graph_level
    calls = []
    orig = FusedCohort.forward
    monkeypatch.setattr(FusedCohort, "forward",
                        lambda self, *a, **k: calls.append(1) or orig(self, *a, **k))
    out = cohort(batch.x, batch.edge_index, batch=batch.batch, edge_attr=batch.edge_attr)
    assert calls == [1]
    plain = MutualEnsemble(students, method="gml", fused=False)
    torch.testing.assert_close(out, plain(batch.x, batch.edge_index, batch=batch.batch,
                                          edge_attr=batch.edge_attr))
    assert calls == [1]
    # unknown keywords fall back to the students (who raise as they would)
    with pytest.raises(TypeError):
        cohort(batch.x, batch.edge_index, batch=batch.batch, other=1)
    assert calls == [1]


def test_fused_dropout_keeps_the_distribution():
    """The fused path's dropout (15-bit random integers, two per 32-bit draw) drops a
    fraction p (rounded to a multiple of 2^-15), rescales exactly, and its masks are
    independent between neighbouring entries (the two halves of one draw)."""
    from graphmutual.nn.fused import DROPOUT_LEVELS, _dropout, _module_dropout

    torch.manual_seed(0)
    x = torch.ones(200_001, dtype=torch.float64)  # odd: the last draw is used halfway
    for p in (0.2, 0.5, 0.6):
        y = _dropout(x, p, True)
        p_hat = round(p * DROPOUT_LEVELS) / DROPOUT_LEVELS
        assert abs(p_hat - p) <= 0.5 / DROPOUT_LEVELS
        assert abs(float((y == 0).double().mean()) - p) < 0.01
        assert abs(float(y.mean()) - 1.0) < 0.02
        assert set(y.unique().tolist()) == {0.0, 1.0 / (1.0 - p_hat)}
        kept = (y != 0).double()
        corr = torch.corrcoef(torch.stack([kept[0:-1:2], kept[1::2]]))[0, 1]
        assert abs(float(corr)) < 0.01
    # any shape and dtype; the gradient is the mask
    x2 = torch.randn(37, 5, requires_grad=True)
    y2 = _dropout(x2, 0.5, True)
    y2.sum().backward()
    assert y2.shape == x2.shape and y2.dtype == torch.float32
    torch.testing.assert_close(x2.grad * x2.detach(), y2.detach())
    assert set(x2.grad.unique().tolist()) <= {0.0, 2.0}
    assert _dropout(x, 0.5, False) is x and torch.equal(_dropout(x, 1.0, True), 0 * x)
    assert torch.equal(_dropout(x, 1.0 - 1e-6, True), 0 * x)  # rounds to p = 1
    assert _dropout(x[:0], 0.5, True).numel() == 0
    m = torch.nn.Dropout(0.5).eval()
    assert _module_dropout(m, x) is x


def test_no_grad_call_skips_the_transpose_until_needed():
    x, ei = _graph()
    students = _cohort(["gcn", "gat", "gin"], 2)
    fused = FusedCohort(students)
    with torch.no_grad():
        fused(x, ei)
    g = fused._graph
    assert g.csr._t is None  # evaluation needs no backward structure
    out = fused(x, ei)  # the same cached graph, now with gradients
    assert fused._graph is g and g.csr._t is not None
    ps = _params(students)
    g_out = torch.autograd.grad(sum(o.sum() for o in out), ps)
    g_ref = torch.autograd.grad(sum(s(x, ei).sum() for s in students), ps)
    for a, b in zip(g_ref, g_out):
        torch.testing.assert_close(b, a)


def test_concurrent_calls_from_threads():
    """Two threads share one fused cohort on different graphs and inputs."""
    import threading

    students = _cohort(["gcn", "gat", "gin"], 2)
    fused = FusedCohort(students)
    cases = [_graph(1), (_sparse_features(2)[:, :FIN].contiguous(), _graph(2)[1])]
    refs = [[s(x, ei) for s in students] for x, ei in cases]
    errors = []

    def work(i):
        x, ei = cases[i]
        try:
            for _ in range(5):
                for o, r in zip(fused(x, ei), refs[i]):
                    torch.testing.assert_close(o, r)
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
