"""Student settings in TrainConfig: ``gat_heads`` (a task default next to ``gat_dropout``)
and ``gin_train_eps``."""
import pytest

from graphmutual.data import load_dataset
from graphmutual.train import TrainConfig, build_cohort, defaults_for, resolve_config
from graphmutual.train.config import ConfigError
from graphmutual.train.defaults import TASK_DEFAULTS


def _gat_heads(ds, **overrides):
    """The heads of every layer of the cohort's GAT student, and its dropout."""
    config = TrainConfig(students=["gcn", "gat"], method="independent", **overrides)
    gat = build_cohort(ds, config).students[1]
    gat = getattr(gat, "node_model", gat)  # a graph task's GraphStudent wraps the GAT
    return [conv.heads for conv in gat.convs], gat.dropout.p


def test_gat_heads_defaults_and_override_on_a_node_task():
    cora = load_dataset("cora")
    # node tasks keep the GAT paper's 8 heads (the student's own default)
    assert TASK_DEFAULTS["node"].gat_heads is None
    assert TASK_DEFAULTS["node-raw"].gat_heads is None
    assert resolve_config(TrainConfig(), cora).gat_heads is None
    assert _gat_heads(cora) == ([8, 8], 0.6)
    # the key overrides it and leaves the dropout alone; the built model really changes
    assert _gat_heads(cora, gat_heads=2) == ([2, 2], 0.6)
    assert _gat_heads(cora, gat_heads=4, dropout=0.3) == ([4, 4], 0.3)
    config = TrainConfig(students=["gat"], method="independent", gat_heads=4)
    assert build_cohort(cora, config).students[0].init_kwargs["heads"] == 4  # export


def test_gat_heads_on_a_graph_task_follows_the_task_default(tmp_dataset_copy):
    mutag = load_dataset("mutag", root=str(tmp_dataset_copy("TUDataset/MUTAG")))
    d = defaults_for(mutag)
    # graph tasks: 4 heads (validated against 8: check-gat-heads-paired.md)
    assert d.gat_heads == 4 and defaults_for("ogbg-molbace").gat_heads == 4
    heads, p = _gat_heads(mutag)
    assert heads == [4] * d.num_layers and p == d.gat_dropout == 0.1
    assert _gat_heads(mutag, gat_heads=8)[0] == [8] * d.num_layers  # the key still wins


def test_bad_gat_heads_are_rejected_clearly():
    for bad in (0, -4, 2.0, "4"):
        with pytest.raises(ConfigError, match="gat_heads must be a positive integer"):
            TrainConfig(gat_heads=bad)
    cora = load_dataset("cora")
    with pytest.raises(ConfigError, match=r"hidden \(64\) must be a multiple of gat_heads"):
        resolve_config(TrainConfig(gat_heads=3), cora)
    with pytest.raises(ConfigError, match="must be a multiple of gat_heads"):
        resolve_config(TrainConfig(students=["GAT", "gcn"], gat_heads=3), cora)  # any case
    # without a GAT student the setting is unused, so any positive value is fine
    assert resolve_config(TrainConfig(students=["gcn"], method="independent", gat_heads=3),
                          cora).gat_heads == 3


def test_gin_train_eps_makes_eps_a_parameter_and_is_exported(tmp_dataset_copy):
    """``gin_train_eps``: GIN-eps (learned) instead of GIN-0; off by default."""
    import torch
    from torch_geometric.nn import GINConv

    mutag = load_dataset("mutag", root=str(tmp_dataset_copy("TUDataset/MUTAG")))

    def gin(**overrides):
        config = TrainConfig(students=["gin"], method="independent", **overrides)
        return build_cohort(mutag, config).students[0].node_model

    assert resolve_config(TrainConfig(), mutag).gin_train_eps is False
    fixed, learned = gin(), gin(gin_train_eps=True)
    convs = [c for c in learned.convs if isinstance(c, GINConv)]
    assert convs and all(isinstance(c.eps, torch.nn.Parameter) for c in convs)
    assert not any(isinstance(c.eps, torch.nn.Parameter) for c in fixed.convs)
    assert learned.init_kwargs["train_eps"] is True  # a plain-PyG rebuild gets it too
    for bad in (1, "yes", None):
        with pytest.raises(ConfigError, match="gin_train_eps must be true or false"):
            TrainConfig(gin_train_eps=bad)
