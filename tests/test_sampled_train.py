"""Sampled mini-batch cohort training (graphmutual.train.sampled) and the SBM generator."""

from __future__ import annotations

import pytest
import torch

from graphmutual.data.synthetic import sbm_dataset, sbm_graph
from graphmutual.mutual import MutualEnsemble
from graphmutual.nn.students import build_student
from graphmutual.train.sampled import SampledNodeRunner, mimicry_only_loss, parse_fanout

pytestmark = pytest.mark.usefixtures("one_thread")


def _cohort(f, c, fused="auto", **kw):
    torch.manual_seed(0)
    students = [build_student(s, f, c, hidden_channels=16) for s in ("gcn", "gat", "gin")]
    return MutualEnsemble(students, weighting="adaptive", warmup=0, fused=fused, **kw)


# ------------------------------------------------------------------------------ SBM
def test_sbm_graph():
    d = sbm_graph(3000, 30000, num_classes=5, homophily=0.7, seed=1)
    assert d.x.shape == (3000, 64) and d.edge_index.shape == (2, 30000)
    ei = d.edge_index
    # undirected: every edge appears in both directions
    assert torch.equal(ei[:, :15000].flip(0), ei[:, 15000:])
    h = float((d.y[ei[0]] == d.y[ei[1]]).float().mean())
    assert abs(h - (0.7 + 0.3 / 5)) < 0.02
    assert torch.bincount(d.y[d.train_mask]).tolist() == [20] * 5
    assert not bool((d.train_mask & d.val_mask).any() | (d.train_mask & d.test_mask).any()
                    | (d.val_mask & d.test_mask).any())
    assert bool((d.train_mask | d.val_mask | d.test_mask).all())
    # the features carry the class (nearest class mean beats chance by far) ...
    mu = torch.stack([d.x[d.y == k].mean(0) for k in range(5)])
    acc = float(((d.x @ mu.t()).argmax(1) == d.y).float().mean())
    assert acc > 0.4
    # ... and neighbour averaging carries it better (homophily)
    agg = torch.zeros_like(d.x).index_add_(0, ei[1], d.x[ei[0]])
    acc_agg = float(((agg @ mu.t()).argmax(1) == d.y).float().mean())
    assert acc_agg > acc + 0.1
    again = sbm_graph(3000, 30000, num_classes=5, homophily=0.7, seed=1)
    assert torch.equal(again.edge_index, ei) and torch.equal(again.x, d.x)


def test_sbm_bad_input():
    with pytest.raises(ValueError, match="num_nodes"):
        sbm_graph(0, 10)
    with pytest.raises(ValueError, match="homophily"):
        sbm_graph(100, 10, homophily=1.5)
    with pytest.raises(ValueError, match="exceeds"):
        sbm_graph(5, 10, num_classes=10)
    ds = sbm_dataset(500, 4000, num_classes=4)
    assert ds.task == "node" and ds.num_classes == 4 and ds.split(0).sizes()[0] == 80


# ----------------------------------------------------------------------------- task
def test_parse_fanout():
    assert parse_fanout("15,10") == [15, 10]
    assert parse_fanout("-1") == [-1]
    for bad in ("", "a,b", "15,0", "15,-2"):
        with pytest.raises(ValueError, match="fan-out"):
            parse_fanout(bad)


def test_sampled_training_learns_and_evaluates_exactly():
    d = sbm_graph(600, 6000, num_classes=4, num_features=16, homophily=0.8, seed=0)
    cohort = _cohort(16, 4)
    task = SampledNodeRunner(d, d.train_mask, [5, 5], batch_size=128)
    opt = torch.optim.Adam(cohort.parameters(), lr=0.01)
    torch.manual_seed(0)
    for epoch in range(15):
        losses = task.train_epoch(cohort, opt, epoch)
    assert losses["batches"] == 5  # all 600 nodes are seeds, 128 per batch
    logits = task.logits(cohort)
    cohort.eval()
    with torch.no_grad():
        full = cohort(d.x, d.edge_index)
    torch.testing.assert_close(logits, full, rtol=1e-4, atol=1e-5)  # exact inference
    acc = (cohort.predict(logits).argmax(-1) == d.y)[d.test_mask].float().mean()
    assert float(acc) > 0.6  # 4 classes: chance is 0.25


def test_mimicry_only_batches():
    d = sbm_graph(300, 2000, num_classes=3, num_features=8, train_per_class=2, seed=0)
    cohort = _cohort(8, 3)
    task = SampledNodeRunner(d, d.train_mask, [4], batch_size=8)
    opt = torch.optim.Adam(cohort.parameters(), lr=0.01)
    torch.manual_seed(0)
    out = task.train_epoch(cohort, opt, 0)
    assert out["mimicry_only_batches"] > 0 and out["batches"] == 38
    # a step on a batch without labels moves the students through mimicry alone
    batch = next(b for b in task.loader() if not bool(b.labelled[:b.batch_size].any()))
    before = [p.detach().clone() for p in cohort.students[0].parameters()]
    losses = task.step(cohort, batch, opt, epoch=5)
    assert float(losses["ce"].detach()) == 0.0 and float(losses["mimic"].detach()) > 0.0
    assert any(not torch.equal(a, b) for a, b in zip(before, cohort.students[0].parameters()))
    direct = mimicry_only_loss(cohort, torch.randn(3, 10, 3))
    assert float(direct["alw"]) == 0.0 and float(direct["total"]) > 0.0


def test_every_student_sees_the_same_subgraph():
    d = sbm_graph(200, 1500, num_classes=3, num_features=8, seed=0)
    cohort = _cohort(8, 3, fused=False)
    seen = []
    hooks = [s.register_forward_pre_hook(lambda m, args: seen.append(args[1]))
             for s in cohort.students]
    task = SampledNodeRunner(d, d.train_mask, [3, 3], batch_size=50)
    opt = torch.optim.Adam(cohort.parameters(), lr=0.01)
    batch = next(iter(task.loader()))
    task.step(cohort, batch, opt, 0)
    for h in hooks:
        h.remove()
    assert len(seen) == 3 and all(e is seen[0] for e in seen)


def test_seed_nodes_train_and_reproducible():
    d = sbm_graph(300, 2000, num_classes=3, num_features=8, seed=0)
    task = SampledNodeRunner(d, d.train_mask, [3], batch_size=16, seed_nodes="train")
    seeds = torch.cat([b.n_id[:b.batch_size] for b in task.loader()])
    assert torch.equal(seeds.sort().values, d.train_mask.nonzero().view(-1))

    def run():
        cohort = _cohort(8, 3)
        t = SampledNodeRunner(d, d.train_mask, [3, 3], batch_size=64)
        opt = torch.optim.Adam(cohort.parameters(), lr=0.01)
        torch.manual_seed(3)
        return [t.train_epoch(cohort, opt, e)["total"] for e in range(2)]

    assert run() == run()
    with pytest.raises(ValueError, match="seed_nodes"):
        SampledNodeRunner(d, d.train_mask, [3], seed_nodes="some")
    with pytest.raises(ValueError, match="batch_size"):
        SampledNodeRunner(d, d.train_mask, [3], batch_size=0)


# ------------------------------------------------------------------- with the Trainer
def _trainer(tmp_path, epochs, sub="run", **kw):
    from graphmutual.train import TrainConfig, Trainer, resolve_config
    from graphmutual.train.sampled import SampledNodeTask

    ds = sbm_dataset(400, 3000, num_classes=3, num_features=8, seed=0)
    cfg = TrainConfig(dataset=ds.name, students=["gcn", "gat", "gin"], method="gml",
                      epochs=epochs, batch_size=128, hidden=16, seeds=[0], progress=False,
                      checkpoint_every=1, output=str(tmp_path / sub), **kw)
    task = SampledNodeTask(ds, resolve_config(cfg, ds), torch.device("cpu"), fanout=[5, 5])
    return Trainer(cfg, ds, task=task)


def test_trainer_with_sampled_task_and_resume(tmp_path):
    full = _trainer(tmp_path, 4, "full").fit_seed(0)
    assert full.result["epochs_run"] == 4
    assert {"gcn", "gat", "gin", "ensemble"} <= set(full.result["members"])
    assert all(0.0 <= m["test"] <= 1.0 for m in full.result["members"].values())
    # kill after 2 epochs, resume to 4: the same history as the uninterrupted run
    _trainer(tmp_path, 2, "resumed").fit_seed(0)
    resumed = _trainer(tmp_path, 4, "resumed").fit_seed(0, resume=True)
    assert [r["loss/total"] for r in resumed.history] == [r["loss/total"] for r in full.history]
    assert resumed.result["members"] == full.result["members"]


def test_sampled_task_checks():
    from graphmutual.train import TrainConfig, resolve_config
    from graphmutual.train.sampled import SampledNodeTask, default_fanout

    assert default_fanout(2) == [15, 10] and default_fanout(4) == [15, 10, 5, 5]
    ds = sbm_dataset(100, 400, num_classes=3, num_features=4)
    cfg = TrainConfig(dataset=ds.name, students=["gcn", "mlp"], progress=False)
    with pytest.raises(ValueError, match="batch size"):
        SampledNodeTask(ds, resolve_config(cfg, ds), torch.device("cpu"))
    cfg = TrainConfig(dataset=ds.name, students=["gcn", "mlp"], batch_size=32, progress=False)
    task = SampledNodeTask(ds, resolve_config(cfg, ds), torch.device("cpu"))
    assert task.fanout == [15, 10] and "SampledNodeTask" in repr(task)
