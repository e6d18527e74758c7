"""Graph-specific mutual-learning variants: node-level mimicry, augmented views, ALW hold-out.

Each variant is a ``TrainConfig`` field that is off (0) by default; the tests check that it
changes the loss in the intended way and that it is a no-op when off.  Everything runs on a
small synthetic graph dataset (no shared data needed).
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Data, InMemoryDataset

from graphmutual.bench import inherited
from graphmutual.data import GraphDataset, Split
from graphmutual.mutual import MimicryLoss
from graphmutual.mutual.alw import alw_loss
from graphmutual.mutual.graphviews import (
    NodeEmbeddingTap,
    boost_weights,
    drop_view,
    node_logits,
)
from graphmutual.train import TrainConfig
from graphmutual.train.cohort import build_cohort
from graphmutual.train.config import ConfigError
from graphmutual.train.defaults import GRAPH_VARIANTS, resolve_config
from graphmutual.train.tasks import GraphBatchTask

torch.set_num_threads(1)


class _Graphs(InMemoryDataset):
    def __init__(self, graphs):
        super().__init__(None)
        self._data, self.slices = self.collate(graphs)


def toy_dataset(n: int = 40, seed: int = 0) -> GraphDataset:
    """``n`` small random graphs, 4 float features, 2 classes (label = has many edges)."""
    g = torch.Generator().manual_seed(seed)
    graphs = []
    for i in range(n):
        nodes = 4 + i % 5
        e = int(torch.randint(nodes, 3 * nodes, (1,), generator=g))
        ei = torch.randint(nodes, (2, e), generator=g)
        x = torch.rand(nodes, 4, generator=g)
        graphs.append(Data(x=x, edge_index=ei, y=torch.tensor([int(e > 2 * nodes)]),
                           edge_attr=torch.rand(e, 3, generator=g)))
    split = Split(torch.arange(0, 24), torch.arange(24, 32), torch.arange(32, 40), "toy")
    return GraphDataset(name="toy", task="graph", data=_Graphs(graphs), num_features=4,
                        num_classes=2, metric="accuracy", splitter=lambda seed: split)


def make(method="gml", dropout=0.0, **variants):
    torch.manual_seed(0)
    ds = toy_dataset()
    # no batch norm: the exact recomputations below run sub-batches, whose batch statistics
    # would differ (graph tasks default to batch norm in GIN)
    cfg = resolve_config(TrainConfig(dataset="toy", method=method, hidden=16, num_layers=2,
                                     batch_size=8, dropout=dropout, warmup=0, gin_norm="none",
                                     progress=False, **variants), ds)
    task = GraphBatchTask(ds, cfg, torch.device("cpu"))
    task.setup(0)
    cohort = build_cohort(ds, cfg)
    return task, cohort


def first_batch(task):
    return next(iter(task._loader(task.split.train, False)))


def step(task, cohort, batch, seed=1):
    """One variant_step on a copy of ``cohort`` (SGD lr 0: nothing moves)."""
    cohort = copy.deepcopy(cohort)
    opt = torch.optim.SGD(cohort.parameters(), lr=0.0)
    cohort.train()
    return task.variant_step(cohort, opt, batch, None, torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------- configuration
def test_variants_default_off_and_in_the_bench_baseline():
    cfg = TrainConfig()
    for name in GRAPH_VARIANTS:
        assert getattr(cfg, name) == 0.0
        assert inherited.BASELINE_CONFIG[name] == 0.0  # no existing cache key changes


@pytest.mark.parametrize("key,value", [("node_mimic", -1.0), ("view_drop", 1.0),
                                       ("alw_holdout", -0.1), ("alw_holdout", 1.0),
                                       ("view_drop", "0.2"), ("boost", -1.0)])
def test_bad_variant_values_are_config_errors(key, value):
    with pytest.raises(ConfigError, match=key):
        TrainConfig(**{key: value})


def test_graph_variants_on_a_node_task_are_refused():
    from graphmutual.data import load_dataset

    cora = load_dataset("cora")
    with pytest.raises(ValueError, match="node_mimic applies to graph tasks only"):
        resolve_config(TrainConfig(dataset="cora", node_mimic=1.0), cora)


def test_variants_refuse_the_alternating_schedule_and_transductive_holdout():
    ds = toy_dataset()
    cfg = resolve_config(TrainConfig(dataset="toy", schedule="alternating", view_drop=0.1), ds)
    with pytest.raises(ValueError, match="simultaneous"):
        GraphBatchTask(ds, cfg, torch.device("cpu"))
    cfg = resolve_config(TrainConfig(dataset="toy", transductive=True, alw_holdout=0.2), ds)
    with pytest.raises(ValueError, match="cannot be combined"):
        GraphBatchTask(ds, cfg, torch.device("cpu"))


# ------------------------------------------------------------------ the loss pieces
def test_peer_terms_match_the_graph_level_mimicry_terms():
    torch.manual_seed(0)
    logits = torch.randn(3, 10, 4)
    y = torch.randint(4, (10,))
    for weighting in ("uniform", "none"):
        m = MimicryLoss(weighting=weighting, temperature=2.0, mimic_weight=0.7)
        full = m(logits, y, torch.ones(10, dtype=torch.bool), epoch=5)
        for a, b in zip(m.peer_terms(logits, epoch=5), full.mimic):
            torch.testing.assert_close(a, b)
    m = MimicryLoss(weighting="uniform", warmup=10)
    assert all(float(t) > 0 for t in m.peer_terms(logits, epoch=0))  # ramp > 0
    assert all(float(t) == 0 for t in MimicryLoss("uniform", mimic_weight=0.0)
               .peer_terms(logits))


def test_alw_rows_select_what_alw_learns_from():
    from graphmutual.mutual.alw import AdaptiveLogitWeighting

    torch.manual_seed(0)
    logits, y = torch.randn(3, 12, 3), torch.randint(3, (12,))
    alw = AdaptiveLogitWeighting(3)
    m = MimicryLoss(weighting="adaptive")
    lab = torch.arange(12) < 8
    held = ~lab
    plain = m(logits, y, lab, alw=alw)
    moved = m(logits, y, lab, alw=alw, alw_rows=held)
    q = m.targets(logits, alw).mixture
    torch.testing.assert_close(plain.alw, alw_loss(q, y, lab))
    torch.testing.assert_close(moved.alw, alw_loss(q, y, held))
    assert not torch.isclose(plain.alw, moved.alw)
    for a, b in zip(plain.mimic, moved.mimic):  # mimicry itself unchanged
        torch.testing.assert_close(a, b)


def test_ensemble_alw_mask_moves_alw_only_and_is_ignored_without_alw():
    _, cohort = make()
    torch.manual_seed(1)
    logits, y = torch.randn(3, 10, 2), torch.randint(2, (10,))
    mask = torch.arange(10) < 7
    a = cohort.loss(logits, y, mask)
    b = cohort.loss(logits, y, mask, alw_mask=~mask)
    torch.testing.assert_close(a["ce"], b["ce"])
    torch.testing.assert_close(a["mimic"], b["mimic"])
    assert not torch.isclose(a["alw"], b["alw"])
    _, dml = make("dml")
    torch.testing.assert_close(dml.loss(logits, y, mask)["total"],
                               dml.loss(logits, y, mask, alw_mask=~mask)["total"])
    with pytest.raises(ValueError, match="alw_mask has 3 entries"):
        cohort.loss(logits, y, mask, alw_mask=torch.ones(3, dtype=torch.bool))


def test_drop_view():
    g = torch.Generator().manual_seed(0)
    x, ei, ea = torch.rand(50, 4) + 0.1, torch.randint(50, (2, 400)), torch.rand(400, 2)
    assert drop_view(x, ei, ea, 0.0)[1] is ei
    vx, vei, vea = drop_view(x, ei, ea, 0.3, g)
    assert 200 < vei.size(1) < 360 and vea.size(0) == vei.size(1)
    kept = [tuple(c) for c in vei.t().tolist()]
    assert set(kept) <= set(tuple(c) for c in ei.t().tolist())
    zero = (vx == 0).all(1)
    assert 3 < int(zero.sum()) < 30 and torch.equal(vx[~zero], x[~zero])
    again = drop_view(x, ei, ea, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(again[1], vei) and torch.equal(again[0], vx)
    xi = torch.randint(5, (50, 9))  # integer (atom) features are never masked
    assert drop_view(xi, ei, None, 0.5, g)[0] is xi
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        drop_view(x, ei, ea, 1.0)


def test_node_embedding_tap_and_node_logits():
    task, cohort = make()
    batch = first_batch(task)
    cohort.eval()
    with NodeEmbeddingTap(cohort.students) as tap:  # student by student (no fused pass)
        logits = cohort.stack([cohort.call_student(k, batch.x, batch.edge_index,
                                                   batch=batch.batch) for k in range(3)])
    z = node_logits(list(cohort.students), tap.embeddings)
    assert z.shape == (3, batch.num_nodes, 2) and logits.shape == (3, batch.num_graphs, 2)
    s = cohort.students[2]
    torch.testing.assert_close(z[2], s.head(s.node_model(batch.x, batch.edge_index)))
    # hooks are removed on exit
    assert all(not s.node_model._forward_hooks for s in cohort.students)
    with pytest.raises(ValueError, match="GraphStudent"):
        NodeEmbeddingTap([torch.nn.Linear(2, 2)])


# ----------------------------------------------------------- the variants in training
def test_variant_step_with_everything_off_is_the_plain_step():
    task, cohort = make()
    batch = first_batch(task)
    a = copy.deepcopy(cohort)
    opt_a = torch.optim.Adam(a.parameters(), lr=0.01)
    b = copy.deepcopy(cohort)
    opt_b = torch.optim.Adam(b.parameters(), lr=0.01)
    a.train()
    b.train()
    from graphmutual.train.tasks import _step
    la = _step(a, opt_a, (batch.x, batch.edge_index), batch.y, None,
               {"batch": batch.batch, "edge_attr": None})
    lb = task.variant_step(b, opt_b, batch, None, torch.Generator().manual_seed(0))
    assert la.keys() == lb.keys()
    torch.testing.assert_close(la["total"], lb["total"])
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_node_mimic_adds_the_weighted_node_level_term():
    task, cohort = make()
    batch = first_batch(task)
    off = step(task, cohort, batch)
    task1, _ = make(node_mimic=1.0)
    task3, _ = make(node_mimic=3.0)
    on1, on3 = step(task1, cohort, batch), step(task3, cohort, batch)
    torch.testing.assert_close(on1["ce"], off["ce"])
    torch.testing.assert_close(on1["mimic"], off["mimic"])
    assert float(on1["node_mimic"].detach()) > 0
    torch.testing.assert_close(on3["node_mimic"], 3 * on1["node_mimic"])
    torch.testing.assert_close(on1["total"], off["total"] + on1["node_mimic"])
    # independent training has no peers: node_mimic is a no-op there
    task_i, ind = make("independent", node_mimic=1.0)
    assert "node_mimic" not in step(task_i, ind, batch)


def test_view_drop_gives_each_student_its_own_view():
    task, cohort = make(view_drop=0.3)
    batch = first_batch(task)
    seen = []
    hooks = [s.node_model.register_forward_pre_hook(
        lambda m, args: seen.append(args[1].size(1))) for s in cohort.students]
    out = step(task, cohort, batch, seed=3)
    for h in hooks:
        h.remove()
    assert all(n < batch.num_edges for n in seen[:3]) and len(set(seen[:3])) > 1
    again = step(task, cohort, batch, seed=3)  # same generator, same views
    torch.testing.assert_close(out["total"], again["total"])
    plain_task, _ = make()
    plain = step(plain_task, cohort, batch)
    assert not torch.isclose(out["mimic"], plain["mimic"])


def test_alw_holdout_leaves_ce_and_feeds_alw():
    task, cohort = make(alw_holdout=0.25)
    flagged = task._holdout_loader(torch.Generator().manual_seed(0))
    graphs = task._holdout[1]
    held = torch.tensor([bool(g.holdout) for g in graphs])
    assert int(held.sum()) == 6  # 25 % of 24 training graphs, fixed per seed
    task.setup(0)  # same split object: same hold-out
    task._holdout_loader(torch.Generator())
    assert torch.equal(held, torch.tensor([bool(g.holdout) for g in task._holdout[1]]))
    batches = list(flagged)
    assert sum(int(b.holdout.sum()) for b in batches) == 6  # each epoch sees all of them
    batch = next(b for b in batches if 0 < int(b.holdout.sum()) < b.num_graphs)
    h = batch.holdout.view(-1)
    c = copy.deepcopy(cohort)
    c.train()
    torch.manual_seed(5)
    out = task.variant_step(c, torch.optim.SGD(c.parameters(), lr=0.0), batch, None,
                            torch.Generator())
    c.eval()
    with torch.no_grad():
        logits = c(batch.x, batch.edge_index, batch=batch.batch)
    fit = ~h
    ce = sum(F.cross_entropy(z[fit], batch.y[fit]) for z in logits)
    torch.testing.assert_close(out["ce"], ce)  # dropout 0: train = eval logits
    q = c.mimicry.targets(logits, c.alw).mixture
    torch.testing.assert_close(out["alw"], alw_loss(q, batch.y, h))
    # without ALW (DML) the hold-out is a no-op: every training graph is fitted
    task_d, dml = make("dml", alw_holdout=0.25)
    plain_d, _ = make("dml")
    b = first_batch(task_d)
    torch.testing.assert_close(step(task_d, dml, b)["total"], step(plain_d, dml, b)["total"])


def test_a_short_training_run_with_every_variant():
    task, cohort = make(node_mimic=1.0, view_drop=0.2, alw_holdout=0.2, boost=1.0,
                        dropout=0.5)
    opt = torch.optim.Adam(cohort.parameters(), lr=0.01)
    first = task.train_epoch(cohort, opt, 0)
    for epoch in range(1, 4):
        last = task.train_epoch(cohort, opt, epoch)
    assert {"node_mimic", "alw", "ce"} <= set(last) and last["ce"] < first["ce"]
    ev = task.evaluate(cohort)
    assert {"gcn", "gat", "gin", "ensemble", "ensemble_alw"} <= set(ev.scores)


def test_boost_weights_upweight_what_the_peers_misclassify():
    # student 0's peers (1, 2) say class 1 on sample 0 and class 0 on sample 1
    logits = torch.tensor([[[0.0, 5.0], [5.0, 0.0]],
                           [[0.0, 5.0], [5.0, 0.0]],
                           [[0.0, 5.0], [5.0, 0.0]]])
    y = torch.tensor([1, 1])
    w = boost_weights(logits, y, MimicryLoss("uniform"), 2.0)
    assert torch.equal(w, torch.tensor([[1.0, 3.0]] * 3))
    with pytest.raises(ValueError, match=">= 0"):
        boost_weights(logits, y, MimicryLoss("uniform"), -1.0)


def test_boost_reweights_the_cross_entropy_only():
    task, cohort = make("dml")
    batch = first_batch(task)
    off = step(task, cohort, batch)
    task_b, _ = make("dml", boost=1.0)
    on = step(task_b, cohort, batch)
    c = copy.deepcopy(cohort)
    c.eval()
    with torch.no_grad():
        logits = c(batch.x, batch.edge_index, batch=batch.batch)
    w = boost_weights(logits, batch.y, c.mimicry, 1.0)
    assert (w > 1).any()  # some graph is misclassified by the peers at initialisation
    ce = sum((F.cross_entropy(z, batch.y, reduction="none") * wk).mean()
             for z, wk in zip(logits, w))
    torch.testing.assert_close(on["ce"], ce)
    assert float(on["ce"].detach()) > float(off["ce"].detach())
    torch.testing.assert_close(on["mimic"], off["mimic"])
    task_i, ind = make("independent", boost=1.0)
    plain_i, _ = make("independent")
    torch.testing.assert_close(step(task_i, ind, batch)["total"],
                               step(plain_i, ind, batch)["total"])
    with pytest.raises(ValueError, match="ce_weight must be"):
        cohort.loss(logits, batch.y, ce_weight=torch.ones(2, batch.num_graphs))
