"""The trainer on real data: node and graph cohorts, resume, checkpoints, export."""
import json

import pytest
import torch
from torch_geometric.nn.models import GCN as PyGGCN

from graphmutual.data import load_dataset
from graphmutual.mutual import MutualEnsemble
from graphmutual.train import (
    CheckpointError,
    ConfigError,
    TrainConfig,
    Trainer,
    load_checkpoint,
    load_student,
    parse_seeds,
    save_checkpoint,
)
from graphmutual.train.tasks import FullBatchNodeTask


def test_cora_cohort_trains_to_sensible_accuracy(tmp_dataset_copy):
    root = tmp_dataset_copy("Planetoid/Cora")
    cfg = TrainConfig(dataset="cora", root=str(root), students=["gcn", "gat"], method="gml",
                      epochs=60, progress=False)
    res = Trainer(cfg).run()
    assert res["splits"] == ["planetoid public split"]
    for member in ("gcn", "gat", "ensemble", "ensemble_alw"):
        assert res["members"][member]["test_mean"] > 0.75, (member, res["members"][member])
    # the ensemble at its best validation epoch is at least as good on validation as the
    # weaker student (it averages the two), and every best epoch lies inside the run
    m = res["members"]
    assert m["ensemble"]["val_mean"] >= min(m["gcn"]["val_mean"], m["gat"]["val_mean"])
    assert all(0 <= m[k]["best_epoch"][0] < res["epochs_run"][0] for k in m)


def test_mutag_graph_cohort(tmp_dataset_copy):
    root = tmp_dataset_copy("TUDataset/MUTAG")
    cfg = TrainConfig(dataset="mutag", root=str(root), students=["gin", "gcn"], method="dml",
                      epochs=40, progress=False, seeds=[0])
    res = Trainer(cfg).run()
    assert res["splits"][0].startswith("stratified 10-fold CV, fold 1/10")
    # MUTAG is 2/3 one class; the cohort must learn more than the majority vote on val
    assert res["members"]["gin"]["val_mean"] > 0.7
    assert res["members"]["ensemble"]["val_mean"] > 0.7
    assert res["warnings"] == []  # 40 epochs: judged, and both students learned


def test_ogb_molecules_use_rocauc(tmp_dataset_copy):
    root = tmp_dataset_copy("ogb/ogbg_molbace")
    cfg = TrainConfig(dataset="ogbg-molbace", root=str(root), students=["gin", "mlp"],
                      method="gml", epochs=2, hidden=32, num_layers=2, progress=False)
    trainer = Trainer(cfg)
    res = trainer.run()
    assert res["metric"] == "rocauc"
    # a real ROC-AUC of this run: neither NaN nor a constant prediction's 0.5
    gin = res["members"]["gin"]
    assert gin["test_mean"] == gin["test_mean"] and gin["test_mean"] != 0.5
    assert gin["val_mean"] != gin["test_mean"]
    assert res["input_features"] == "the dataset's node features"


def small_config(tmp_path, **kw):
    values = dict(dataset="cora", students=["gcn", "mlp"], method="gml", epochs=24,
                  checkpoint_every=5, progress=False, output=str(tmp_path / "run"),
                  seeds=[0])
    values.update(kw)
    return TrainConfig(**values)


class Killed(Exception):
    pass


def test_resume_reaches_the_same_result(tmp_path, monkeypatch):
    full = Trainer(small_config(tmp_path / "a")).run()

    cfg = small_config(tmp_path / "b")
    trainer = Trainer(cfg)
    calls = {"n": 0}
    original = FullBatchNodeTask.evaluate

    def dying_eval(self, *args):
        calls["n"] += 1
        if calls["n"] == 17:  # killed after the epoch-14 checkpoint, before epoch 19's
            raise Killed
        return original(self, *args)

    monkeypatch.setattr(FullBatchNodeTask, "evaluate", dying_eval)
    with pytest.raises(Killed):
        trainer.run()
    monkeypatch.setattr(FullBatchNodeTask, "evaluate", original)
    ckpt = load_checkpoint(tmp_path / "b" / "run" / "checkpoints" / "seed0.pt")
    assert ckpt["epoch"] == 14
    resumed = Trainer(cfg).run(resume=True)
    assert resumed["members"] == full["members"]
    assert resumed["epochs_run"] == full["epochs_run"]


def test_outputs_and_export_reload_in_plain_pyg(tmp_path):
    res = Trainer(small_config(tmp_path, students=["gcn", "gat"])).run()
    out = tmp_path / "run"
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["members"].keys() == res["members"].keys()
    assert {"test", "val", "test_mean", "test_std"} <= set(on_disk["members"]["gcn"])
    assert on_disk["seconds_per_epoch"][0] > 0
    assert (out / "log_seed0.csv").read_text().startswith("epoch,")

    ckpt = torch.load(out / "best_student.pt", weights_only=True)
    module, _, cls = ckpt["class"].rpartition(".")
    assert module.startswith("torch_geometric.nn.models") and cls in ("GCN", "GAT")
    # the export is the student with the best validation score
    best = max(("gcn", "gat"), key=lambda s: res["members"][s]["val"][0])
    assert ckpt["meta"]["name"] == best
    assert ckpt["meta"]["val"] == res["members"][best]["val"][0]
    if best == "gcn":  # plain PyG rebuilds it
        PyGGCN(**ckpt["kwargs"]).load_state_dict(ckpt["state_dict"])
    model = load_student(out / "best_student.pt")
    model.eval()
    ds = load_dataset("cora")
    x = ds.data.x
    assert ckpt["meta"]["normalize_features"] is True  # the node-task default
    x = x / x.sum(-1, keepdim=True).clamp_min(1e-12)
    with torch.no_grad():
        pred = model(x, ds.data.edge_index).argmax(-1)
    m = ds.split(0).test
    acc = (pred[m] == ds.data.y[m]).float().mean().item()
    assert acc == pytest.approx(ckpt["meta"]["test"], abs=1e-6)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "seed0.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    # a truncated real checkpoint
    good = tmp_path / "good.pt"
    save_checkpoint({"w": torch.randn(100, 100)}, good)
    good.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError):
        load_checkpoint(good)


def test_atomic_save_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "ckpt.pt"
    save_checkpoint({"a": torch.ones(2)}, target)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint({"a": torch.zeros(2)}, target)
    assert list(tmp_path.iterdir()) == [target]
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(target)["a"], torch.ones(2))


def test_bad_graphs_are_rejected(tmp_path):
    ds = load_dataset("cora")
    ds.data.x[3, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        Trainer(small_config(tmp_path), dataset=ds)
    ds = load_dataset("cora")
    ds.data.edge_index[0, 0] = 10_000
    with pytest.raises(ValueError, match="range"):
        Trainer(small_config(tmp_path), dataset=ds)


def test_config_validation():
    assert parse_seeds(3) == [0, 1, 2]
    assert parse_seeds("10") == list(range(10))
    assert parse_seeds("4,2") == [4, 2]
    assert parse_seeds("0,") == [0]
    with pytest.raises(ConfigError):
        parse_seeds("a,b")
    # "--seeds 0" is a count of zero: the error says how to run seed 0 alone
    with pytest.raises(ConfigError, match="give the list '0,'"):
        parse_seeds("0")
    with pytest.raises(ConfigError, match="unknown configuration key"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="unknown student"):
        Trainer(TrainConfig(students=["gcn", "transformer"], progress=False)).run()


def test_row_normalisation_default_is_planetoid_only():
    import dataclasses

    from graphmutual.data import load_dataset
    from graphmutual.train.cohort import task_defaults

    cora = load_dataset("cora")
    assert task_defaults(cora)["normalize_features"] is True
    photo = dataclasses.replace(cora, name="amazon-photo")
    assert task_defaults(photo)["normalize_features"] is False
    assert task_defaults(cora)["normalize_features"] is True  # the shared dict is untouched


def test_gin_gets_batch_norm_only_on_raw_feature_node_datasets():
    import dataclasses

    from torch_geometric.nn.norm import BatchNorm

    from graphmutual.data import load_dataset
    from graphmutual.train import TrainConfig, build_cohort

    cora = load_dataset("cora")
    photo_like = dataclasses.replace(cora, name="amazon-photo")

    def gin_norms(ds, **overrides):
        config = TrainConfig(students=["gcn", "gin"], method="independent", **overrides)
        gcn, gin = build_cohort(ds, config).students
        assert not any(isinstance(n, BatchNorm) for n in gcn.norms)  # only GIN is changed
        return [isinstance(n, BatchNorm) for n in gin.norms[:-1]]

    assert gin_norms(cora) == [False]
    assert gin_norms(photo_like) == [True]
    # the config overrides the task default both ways
    assert gin_norms(photo_like, gin_norm="none") == [False]
    assert gin_norms(cora, gin_norm="batch_norm") == [True]
    with pytest.raises(ConfigError, match="gin_norm must be one of"):
        TrainConfig(gin_norm="batchnorm")


def test_gml_divergence_default_is_balanced_on_planetoid_and_kl_elsewhere(tmp_dataset_copy):
    import dataclasses

    from graphmutual.train import build_cohort
    from graphmutual.train.cohort import registered_task_kind

    cora = load_dataset("cora")
    photo_like = dataclasses.replace(cora, name="amazon-photo")
    mutag = load_dataset("mutag", root=str(tmp_dataset_copy("TUDataset/MUTAG")))

    def divergence(ds, **overrides):
        return build_cohort(ds, TrainConfig(students=["gcn", "gin"], **overrides)).divergence

    assert divergence(cora) == "balanced"
    assert divergence(photo_like) == "kl" and divergence(mutag) == "kl"
    assert divergence(cora, method="dml") == "kl"  # DML is defined with KL
    # the config wins both ways
    assert divergence(cora, divergence="kl") == "kl"
    assert divergence(mutag, divergence="js") == "js"
    assert divergence(cora, method="dml", divergence="balanced") == "balanced"
    # the registry gives the same task kind without loading the dataset
    assert [registered_task_kind(n) for n in ("cora", "cora-bundled", "amazon-photo",
                                              "mutag", "ogbg-molbace")] == [
        "node", "node", "node-raw", "graph", "ogb-mol"]


def test_graph_readout_is_configurable(tmp_dataset_copy):
    from torch_geometric.nn import global_add_pool, global_mean_pool

    from graphmutual.data import load_dataset
    from graphmutual.train import build_cohort

    mutag = load_dataset("mutag", root=str(tmp_dataset_copy("TUDataset/MUTAG")))
    pools = [s.pool for s in build_cohort(mutag, TrainConfig(students=["gin", "gcn"])).students]
    assert pools == [global_mean_pool, global_mean_pool]  # the default readout
    cohort = build_cohort(mutag, TrainConfig(students=["gin", "gcn"], pool="add"))
    assert [s.pool for s in cohort.students] == [global_add_pool, global_add_pool]
    with pytest.raises(ConfigError, match="pool must be one of"):
        TrainConfig(pool="attention")
    with pytest.raises(ValueError, match="graph tasks only"):
        build_cohort(load_dataset("cora"), TrainConfig(pool="add"))


def _loss_history(trainer: Trainer, seed: int = 0):
    rows = []
    trainer.run_seed(seed, on_epoch=rows.append)
    return [{k: v for k, v in r.items() if k.startswith("loss/")} for r in rows]


def test_transductive_graph_mimicry_never_sees_held_out_labels(tmp_dataset_copy, monkeypatch):
    root = str(tmp_dataset_copy("TUDataset/MUTAG"))
    cfg = TrainConfig(dataset="mutag", root=root, students=["gin", "gcn"], method="gml",
                      epochs=3, warmup=0, progress=False, transductive=True)
    honest = Trainer(cfg)
    split = honest.dataset.split(0)
    seen = {"labelled": 0, "unlabelled": 0, "steps": 0}

    # every batch mixes labelled training graphs with unlabelled held-out ones, and the
    # held-out graphs reach the loss with label -1
    def spy(self, logits, y, mask=None, *args, **kw):
        assert mask is not None and mask.dtype == torch.bool and bool(mask.any())
        assert bool((y[~mask] == -1).all()) and bool((y[mask] >= 0).all())
        seen["labelled"] += int(mask.sum())
        seen["unlabelled"] += int((~mask).sum())
        seen["steps"] += 1
        return real(self, logits, y, mask, *args, **kw)

    real = MutualEnsemble.loss
    monkeypatch.setattr(MutualEnsemble, "loss", spy)
    rows = _loss_history(honest)
    monkeypatch.undo()
    steps = -(-len(split.train) // honest.batch_size)  # as many as an inductive epoch
    assert seen == {"labelled": 3 * len(split.train), "steps": 3 * steps,
                    "unlabelled": 3 * (len(split.val) + len(split.test))}

    # flipping every validation and test label changes nothing in training (the folds are
    # stratified by label, so the flipped run is given the honest run's split)
    flipped = Trainer(cfg)
    flipped.dataset.split = lambda seed: split
    held_out = torch.cat([split.val, split.test])
    flipped.dataset.data._data.y[held_out] = 1 - flipped.dataset.data._data.y[held_out]
    assert int(flipped.dataset.data[int(held_out[0])].y) != int(
        honest.dataset.data[int(held_out[0])].y)
    assert _loss_history(flipped) == rows


def test_transductive_is_a_no_op_without_mimicry(tmp_dataset_copy):
    root = str(tmp_dataset_copy("TUDataset/MUTAG"))
    runs = [_loss_history(Trainer(TrainConfig(
        dataset="mutag", root=root, students=["gin", "gcn"], method="independent", epochs=2,
        progress=False, transductive=flag))) for flag in (False, True)]
    assert runs[0] == runs[1]  # independent students never see unlabelled graphs
    with pytest.raises(ConfigError, match="transductive must be true or false"):
        TrainConfig(transductive="yes")


def test_a_task_plugs_into_the_loop_through_the_small_interface(tmp_path):
    """The loop only calls setup/train_epoch/evaluate: a task written against that interface
    (here one that wraps the node task and records the calls) runs unchanged."""
    from graphmutual.train import Evaluation, TrainingTask, resolve_config

    calls = []

    class Recording(TrainingTask):
        def __init__(self, inner):
            super().__init__(inner.dataset, inner.config, inner.device)
            self.inner = inner

        def setup(self, seed):
            calls.append(("setup", seed))
            self.inner.setup(seed)
            self.split = self.inner.split

        def train_epoch(self, cohort, optimizer, epoch):
            calls.append(("train", epoch))
            return self.inner.train_epoch(cohort, optimizer, epoch)

        def evaluate(self, cohort):
            ev = self.inner.evaluate(cohort)
            assert isinstance(ev, Evaluation)
            return ev

    cfg = small_config(tmp_path, epochs=3, output=None)
    ds = load_dataset("cora")
    inner = FullBatchNodeTask(ds, resolve_config(cfg, ds), torch.device("cpu"))
    plain = Trainer(cfg).run_seed(0)
    wrapped = Trainer(cfg, dataset=ds, task=Recording(inner)).run_seed(0)
    assert calls == [("setup", 0), ("train", 0), ("train", 1), ("train", 2)]
    assert wrapped["members"] == plain["members"]
    assert set(wrapped["members"]) == {"gcn", "mlp", "ensemble", "ensemble_alw"}


def test_resumed_multi_seed_run_exports_the_validation_best_student(tmp_path, monkeypatch):
    """Issue 18 #2: killed during the second seed and resumed, the export must still be the
    first seed's student when it has the better validation score (seed 2 beats seed 0 on
    validation here; the premise is asserted), exactly as in the uninterrupted run."""
    kw = dict(seeds=[2, 0], epochs=12)
    uninterrupted = Trainer(small_config(tmp_path / "a", **kw)).run()
    expected = torch.load(tmp_path / "a" / "run" / "best_student.pt", weights_only=True)
    assert expected["meta"]["seed"] == 2  # the premise: the first seed wins

    cfg = small_config(tmp_path / "b", **kw)
    calls = {"n": 0}
    original = FullBatchNodeTask.evaluate

    def dying_eval(self, *args):
        calls["n"] += 1
        if calls["n"] == 12 + 8:  # seed 0's epoch 7, after its epoch-4 checkpoint
            raise Killed
        return original(self, *args)

    monkeypatch.setattr(FullBatchNodeTask, "evaluate", dying_eval)
    with pytest.raises(Killed):
        Trainer(cfg).run()
    monkeypatch.setattr(FullBatchNodeTask, "evaluate", original)
    resumed = Trainer(cfg).run(resume=True)
    got = torch.load(tmp_path / "b" / "run" / "best_student.pt", weights_only=True)
    assert got["meta"] == expected["meta"]
    assert got["state_dict"].keys() == expected["state_dict"].keys()
    for k, v in expected["state_dict"].items():
        assert torch.equal(got["state_dict"][k], v), k
    assert resumed["members"] == uninterrupted["members"]


def test_resume_refuses_other_settings_and_foreign_checkpoints(tmp_path):
    cfg = small_config(tmp_path, epochs=2, checkpoint_every=1)
    Trainer(cfg).run()
    out = tmp_path / "run"
    # a finished seed trained with other students is not mixed into the new table
    other = small_config(tmp_path, epochs=2, students=["gcn", "gat"])
    with pytest.raises(ConfigError, match=r"seed0\.json' was trained with other settings "
                                          r"\(students\)"):
        Trainer(other).run(resume=True)
    # an interrupted seed: its checkpoint holds a gcn+mlp cohort
    (out / "seed0.json").unlink()
    with pytest.raises(CheckpointError, match=r"seed0\.pt' was written for another "
                                              r"configuration"):
        Trainer(other).run(resume=True)
    # a checkpoint with other keys names the file and what is missing
    save_checkpoint({"weights": torch.ones(1)}, out / "checkpoints" / "seed0.pt")
    with pytest.raises(CheckpointError, match=r"seed0\.pt' is not a graphmutual training "
                                              r"checkpoint \(it lacks best, best_states"):
        Trainer(cfg).run(resume=True)


def test_never_learned_flags_chance_level_and_stuck_cross_entropy():
    import math

    from graphmutual.train.health import chance_level, never_learned

    assert chance_level("accuracy", torch.tensor([0, 1, 1, 1, 2])) == 0.6
    assert chance_level("rocauc", None) == 0.5
    result = {"seed": 3, "members": {"gcn": {"val": 0.81}, "gin": {"val": 0.6},
                                     "mlp": {"val": 0.7}}}
    ln3 = math.log(3)
    history = [{"loss/ce/gcn": 1.0 / (e + 1), "loss/ce/gin": 0.5, "loss/ce/mlp": ln3 * 0.99}
               for e in range(20)]
    warnings = never_learned(["gcn", "gin", "mlp"], result, history, 3, chance=0.6)
    assert len(warnings) == 2
    assert warnings[0].startswith("student 'gin' never beat chance on validation (best "
                                  "0.6000 <= 0.6000")
    assert warnings[1].startswith("student 'mlp' never learned: its training cross-entropy "
                                  "stayed at ln C = 1.099")
    assert never_learned(["gin"], result, history[:19], 3, chance=0.6) == []  # too short


def test_a_student_that_never_learns_is_reported(tmp_path, caplog):
    # lr 1e-9: the weights never move, so every student stays at its initial guess
    cfg = small_config(tmp_path, epochs=20, lr=1e-9, warmup=0)
    with caplog.at_level("WARNING", logger="graphmutual.train.trainer"):
        res = Trainer(cfg).run()
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert on_disk["warnings"] == res["warnings"]
    assert {w.split("'")[1] for w in res["warnings"]} == {"gcn", "mlp"}
    assert all("seed 0" in w for w in res["warnings"])
    assert len([r for r in caplog.records if "never" in r.getMessage()]) == 2


def test_defaults_for_gives_a_users_loop_the_clis_ensemble(tmp_dataset_copy):
    """Issue 20: one set of defaults.  ``MutualEnsemble(students, **d.ensemble_kwargs())``
    is configured exactly like the cohort ``graphmutual train`` builds."""
    import dataclasses

    from graphmutual.train import build_cohort, defaults_for, resolve_config

    cora = load_dataset("cora")
    mutag = load_dataset("mutag", root=str(tmp_dataset_copy("TUDataset/MUTAG")))
    keys = ("method", "weighting", "entropy", "divergence", "warmup", "alw")
    for ds, method in ((cora, "gml"), (cora, "dml"), (mutag, "gml"), (mutag, "independent")):
        cfg = TrainConfig(students=["gcn", "gin"], method=method)
        cli = build_cohort(ds, cfg)
        d = defaults_for(ds)
        mine = MutualEnsemble(list(cli.students), **d.ensemble_kwargs(method))
        for k in keys[:-1]:
            assert getattr(mine, k) == getattr(cli, k), (ds.name, method, k)
        assert (mine.alw is None) == (cli.alw is None)
        if cli.alw is not None:
            assert (mine.alw.t_min, mine.alw.t_max) == (cli.alw.t_min, cli.alw.t_max)
        r = resolve_config(cfg, ds)
        assert (r.lr, r.epochs, r.patience, r.batch_size) == (d.lr, d.epochs, d.patience,
                                                              d.batch_size)
    assert defaults_for("cora") is defaults_for(cora)  # by name, without loading
    assert defaults_for("cora").ensemble_kwargs("gml")["divergence"] == "balanced"
    assert defaults_for("cora").warmup == 50 and defaults_for("mutag").warmup == 10
    with pytest.raises(dataclasses.FrozenInstanceError):
        defaults_for("cora").lr = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolve_config(TrainConfig(), cora).lr = 1.0
