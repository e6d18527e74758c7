"""Tests for graphmutual.data: loaders, splits, the bundled Cora and input validation.

Real datasets come from ``shared/datasets`` through a temporary copy (``tmp_dataset_copy``)
so nothing is ever written into ``shared/``.
"""

from __future__ import annotations

import builtins
import warnings
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

from graphmutual.data import (
    GraphDataset,
    Split,
    available_datasets,
    default_root,
    load_dataset,
    per_class_random_split,
    validate_graph,
)
from graphmutual.data.bundled import BUNDLED_CORA_PATH

# --------------------------------------------------------------------------------------------
# bundled Cora and Planetoid
# --------------------------------------------------------------------------------------------


def test_bundled_cora_is_small_and_offline():
    assert BUNDLED_CORA_PATH.is_file()
    assert BUNDLED_CORA_PATH.stat().st_size < 200 * 1024
    ds = load_dataset("cora")
    assert isinstance(ds, GraphDataset)
    assert (ds.name, ds.task, ds.metric, ds.root) == ("cora", "node", "accuracy", None)
    assert (ds.num_features, ds.num_classes) == (1433, 7)
    assert ds.data.num_nodes == 2708 and ds.data.edge_index.size(1) == 10556
    split = ds.split(0)
    assert split.sizes() == (140, 500, 1000) and split.is_mask
    assert split.description == "planetoid public split"
    # same split for every seed, and a copy: mutating it must not touch the dataset
    assert torch.equal(ds.split(7).train, split.train)
    split.train[:] = False
    assert int(ds.split(0).train.sum()) == 140
    assert load_dataset("CORA-Bundled").data.num_nodes == 2708


def test_bundled_cora_equals_pyg_planetoid(tmp_dataset_copy):
    from torch_geometric.datasets import Planetoid

    root = tmp_dataset_copy("Planetoid/Cora")
    ref = Planetoid(str(root / "Planetoid"), "Cora")[0]
    ours = load_dataset("cora").data
    assert sorted(ours.keys()) == sorted(ref.keys())
    for key in ref.keys():
        assert ours[key].dtype == ref[key].dtype, key
        assert torch.equal(ours[key], ref[key]), key
    # with a root, "cora" is PyG's Planetoid (same object content)
    with_root = load_dataset("cora", root)
    assert with_root.root == str(root)
    assert torch.equal(with_root.data.x, ours.x)


def test_build_script_reproduces_bundled_cora(shared_datasets, tmp_path):
    import importlib.util

    from graphmutual.data.bundled import load_bundled_cora

    script = Path(__file__).resolve().parents[1] / "scripts" / "build_bundled_cora.py"
    spec = importlib.util.spec_from_file_location("build_bundled_cora", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "cora.npz"
    raw = shared_datasets / "Planetoid" / "Cora" / "raw"
    assert module.main(["--raw", str(raw), "--out", str(out)]) == 0
    rebuilt, shipped = load_bundled_cora(out), load_bundled_cora()
    for key in shipped.keys():
        assert torch.equal(rebuilt[key], shipped[key]), key
    assert not (raw.parent / "processed").exists()


def test_citeseer_from_temp_copy(tmp_dataset_copy, shared_datasets):
    root = tmp_dataset_copy("Planetoid/CiteSeer")
    ds = load_dataset("CiteSeer", root)
    assert (ds.data.num_nodes, ds.num_features, ds.num_classes) == (3327, 3703, 6)
    assert ds.data.x.dtype == torch.float32 and ds.data.y.dtype == torch.long
    assert ds.split(3).sizes() == (120, 500, 1000)
    assert (root / "Planetoid" / "CiteSeer" / "processed").is_dir()
    assert not (shared_datasets / "Planetoid" / "CiteSeer" / "processed").exists()


# --------------------------------------------------------------------------------------------
# Amazon / Coauthor: per-class random splits
# --------------------------------------------------------------------------------------------


def test_amazon_photo_per_class_split(tmp_dataset_copy):
    root = tmp_dataset_copy("Amazon/Photo")
    ds = load_dataset("photo", root)
    assert ds.name == "amazon-photo" and ds.task == "node"
    assert (ds.data.num_nodes, ds.num_features, ds.num_classes) == (7650, 745, 8)
    y = ds.data.y
    s0, s0_again, s1 = ds.split(0), ds.split(0), ds.split(1)
    for s in (s0, s1):
        assert (s.train & s.val).sum() == 0 and (s.train & s.test).sum() == 0
        assert (s.val & s.test).sum() == 0
        assert bool((s.train | s.val | s.test).all())
        assert torch.equal(torch.bincount(y[s.train], minlength=8), torch.full((8,), 20))
        assert torch.equal(torch.bincount(y[s.val], minlength=8), torch.full((8,), 30))
    assert torch.equal(s0.train, s0_again.train) and torch.equal(s0.val, s0_again.val)
    assert not torch.equal(s0.train, s1.train)
    assert "20 train / 30 val per class" in s0.description


def test_per_class_split_rejects_tiny_class():
    y = torch.tensor([0] * 100 + [1] * 10)
    with pytest.raises(ValueError, match="class 1 has only 10 nodes"):
        per_class_random_split(y, seed=0)


# --------------------------------------------------------------------------------------------
# TU: stratified 10-fold CV with an inner validation split
# --------------------------------------------------------------------------------------------


def test_mutag_stratified_folds(tmp_dataset_copy):
    root = tmp_dataset_copy("TUDataset/MUTAG")
    ds = load_dataset("MUTAG", root)
    assert (ds.task, ds.metric, ds.num_graphs, ds.num_features, ds.num_classes) == (
        "graph",
        "accuracy",
        188,
        7,
        2,
    )
    y = ds.data.y
    assert y.dtype == torch.long and y.shape == (188,)
    class_counts = torch.bincount(y)
    test_seen = torch.zeros(188, dtype=torch.long)
    for seed in range(10):
        s = ds.split(seed)
        assert s.train.dtype == torch.long
        tr, va, te = (set(t.tolist()) for t in (s.train, s.val, s.test))
        assert not (tr & va) and not (tr & te) and not (va & te)  # val never overlaps test
        assert tr | va | te == set(range(188))
        test_seen[s.test] += 1
        # stratified: each test fold holds ~1/10 of each class
        fold_counts = torch.bincount(y[s.test], minlength=2)
        assert bool(((fold_counts - class_counts / 10).abs() <= 1).all())
        # inner validation: 10% of the training fold, stratified as well
        assert abs(len(va) - 0.1 * (len(tr) + len(va))) <= 1
        assert f"fold {seed + 1}/10" in s.description
    assert bool((test_seen == 1).all())  # the 10 test folds partition the dataset
    # fold = seed % 10; deterministic
    assert torch.equal(ds.split(13).test, ds.split(3).test)
    assert torch.equal(ds.split(3).val, ds.split(3).val)


def test_imdb_binary_gets_degree_features(tmp_dataset_copy):
    root = tmp_dataset_copy("TUDataset/IMDB-BINARY")
    ds = load_dataset("imdb_binary", root)
    assert ds.num_graphs == 1000 and ds.num_classes == 2
    g = ds.data[0]
    assert g.x is not None and g.x.size(1) == ds.num_features == 136
    assert bool((g.x.sum(dim=1) == 1).all())  # one-hot
    assert "one-hot degree" in ds.notes
    # a clear field says the features were built, and how (issue 18 #5)
    assert ds.input_features.startswith("one-hot degree (0..135), built by graphmutual")
    assert ds.builds_features
    assert ds.input_transform == {"name": "OneHotDegree", "kwargs": {"max_degree": 135}}


def test_enzymes_uses_standardised_node_attributes(tmp_dataset_copy):
    """ENZYMES: 18 continuous attributes (standardised) + 3 one-hot node labels."""
    root = tmp_dataset_copy("TUDataset/ENZYMES")
    ds = load_dataset("enzymes", root)
    assert (ds.num_graphs, ds.num_features, ds.num_classes) == (600, 21, 6)
    x = ds.data._data.x
    attributes, labels = x[:, :18], x[:, 18:]
    assert torch.allclose(attributes.mean(0), torch.zeros(18), atol=1e-4)
    assert torch.allclose(attributes.std(0, unbiased=False), torch.ones(18), atol=1e-3)
    assert bool((labels.sum(dim=1) == 1).all())  # the node labels stay one-hot, unscaled
    assert "18 standardised continuous node attributes" in ds.notes
    assert "standardised over the dataset by graphmutual" in ds.input_features
    assert ds.builds_features and ds.input_transform["name"] == "StandardizeColumns"
    # a graph sliced out of the dataset sees the same standardised values
    assert torch.equal(ds.data[0].x, x[: ds.data[0].num_nodes])


# --------------------------------------------------------------------------------------------
# OGB molecules
# --------------------------------------------------------------------------------------------


def test_ogbg_molbace(tmp_dataset_copy):
    root = tmp_dataset_copy("ogb/ogbg_molbace")
    ds = load_dataset("ogbg-molbace", root)
    assert (ds.name, ds.ogb_name, ds.metric, ds.num_classes) == (
        "ogbg-molbace",
        "ogbg-molbace",
        "rocauc",
        2,
    )
    assert ds.atom_features and ds.num_features == 9 and ds.num_graphs == 1513
    y = ds.data.y
    assert y.dtype == torch.long and y.shape == (1513,) and set(y.unique().tolist()) == {0, 1}
    assert ds.data[0].y.shape == (1,)
    s = ds.split(0)
    assert s.sizes() == (1210, 151, 152) and s.train.dtype == torch.long
    assert s.description == "ogb scaffold split"
    assert torch.equal(ds.split(5).test, s.test)  # official split: same for every seed
    # a second load reuses processed/ and gives the same data
    assert torch.equal(load_dataset("molbace", root).data.y, y)


def test_ogb_missing_release_file_errors_instead_of_prompting(tmp_dataset_copy, monkeypatch):
    root = tmp_dataset_copy("ogb/ogbg_molbace")
    (root / "ogb" / "ogbg_molbace" / "RELEASE_v1.txt").unlink()

    def no_prompt(*args):
        raise AssertionError("input() must never be called")

    monkeypatch.setattr(builtins, "input", no_prompt)
    with pytest.raises(FileNotFoundError, match="RELEASE_v1.txt"):
        load_dataset("ogbg-molbace", root)


def test_ogb_regression_and_multitask_are_rejected():
    with pytest.raises(ValueError, match="regression"):
        load_dataset("ogbg-molesol")
    with pytest.raises(ValueError, match="regression"):
        load_dataset("ogbg_molfreesolv")
    with pytest.raises(ValueError, match="multi-task"):
        load_dataset("ogbg-moltox21")


# --------------------------------------------------------------------------------------------
# names, roots and clean failure
# --------------------------------------------------------------------------------------------


def test_available_datasets_and_unknown_names():
    names = available_datasets()
    for n in ("cora", "citeseer", "mutag", "ogbg-molbace", "amazon-photo", "coauthor-cs"):
        assert n in names
    with pytest.raises(ValueError, match="Did you mean 'cora'") as err:
        load_dataset("coraa")
    assert "Available:" in str(err.value) and "mutag" in str(err.value)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("no-such-thing")


def test_missing_root_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("mutag", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="TUDataset"):
        load_dataset("mutag", tmp_path, download=False)
    with pytest.raises(FileNotFoundError, match="ogbg_molbbbp"):
        load_dataset("ogbg-molbbbp", tmp_path, download=False)
    with pytest.raises(FileNotFoundError, match="ogbn_arxiv"):
        load_dataset("ogbn-arxiv", tmp_path, download=False)
    (tmp_path / "Planetoid").mkdir()
    with pytest.raises(FileNotFoundError, match="parent"):
        load_dataset("citeseer", tmp_path / "Planetoid")
    assert not any(tmp_path.rglob("processed"))


def test_failed_processing_leaves_no_processed_dir(tmp_dataset_copy):
    root = tmp_dataset_copy("TUDataset/MUTAG")
    raw = root / "TUDataset" / "MUTAG" / "raw" / "MUTAG_A.txt"
    raw.write_text("this is, not an edge list\n")
    with pytest.raises(ValueError, match="could not read or process"):
        load_dataset("mutag", root)
    assert not (root / "TUDataset" / "MUTAG" / "processed").exists()


def test_unwritable_root_is_a_clear_error_that_keeps_the_files(tmp_dataset_copy, monkeypatch):
    """Issue 18 #5: a root that cannot be written advised deleting the dataset folder."""
    import errno

    import torch_geometric.io.fs as fs

    root = tmp_dataset_copy("TUDataset/MUTAG")
    raw = sorted(p.name for p in (root / "TUDataset" / "MUTAG" / "raw").iterdir())

    def refuse(data, path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(fs, "torch_save", refuse)
    with pytest.raises(PermissionError, match="dataset root must be writable") as err:
        load_dataset("mutag", root)
    assert isinstance(err.value, ValueError)  # a bad-input error, like the others
    assert "delete" not in str(err.value)
    assert sorted(p.name for p in (root / "TUDataset" / "MUTAG" / "raw").iterdir()) == raw
    assert not (root / "TUDataset" / "MUTAG" / "processed").exists()


def test_node_datasets_use_their_own_features():
    ds = load_dataset("cora")
    assert ds.input_features == "raw" and ds.input_transform is None


def test_corrupt_processed_dir_is_rebuilt(tmp_dataset_copy):
    root = tmp_dataset_copy("TUDataset/MUTAG")
    load_dataset("mutag", root)
    processed = root / "TUDataset" / "MUTAG" / "processed"
    for f in processed.glob("data*.pt"):
        f.write_bytes(b"truncated")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset("mutag", root)
    assert ds.num_graphs == 188
    assert any("processing the raw files again" in str(w.message) for w in caught)


def test_default_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHMUTUAL_DATA", str(tmp_path / "d"))
    assert default_root() == tmp_path / "d"
    monkeypatch.delenv("GRAPHMUTUAL_DATA")
    assert "graphmutual" in str(default_root())


# --------------------------------------------------------------------------------------------
# validate_graph
# --------------------------------------------------------------------------------------------


def _toy() -> Data:
    return Data(
        x=torch.randn(4, 3),
        edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]),
        y=torch.tensor([0, 1, 0, 1]),
        train_mask=torch.tensor([True, True, False, False]),
        test_mask=torch.tensor([False, False, True, True]),
    )


def test_validate_graph_accepts_good_graph():
    validate_graph(_toy(), num_classes=2)
    validate_graph(load_dataset("cora").data, num_classes=7)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: setattr(d, "edge_index", torch.tensor([[0, 1], [1, 4]])), "index 4"),
        (lambda d: setattr(d, "edge_index", torch.tensor([[0, -1], [1, 2]])), "negative"),
        (lambda d: setattr(d, "edge_index", torch.tensor([0, 1, 2])), r"shape \[2, num_edges\]"),
        (lambda d: setattr(d, "edge_index", torch.tensor([[0], [1]], dtype=torch.int32)), "int64"),
        (lambda d: d.x.__setitem__((1, 2), float("nan")), "NaN"),
        (lambda d: d.x.__setitem__((0, 0), float("inf")), "inf"),
        (lambda d: setattr(d, "y", torch.tensor([0, 1, 2, 0])), "label 2"),
        (lambda d: setattr(d, "y", torch.tensor([0.0, 1.0, 0.0, 1.0])), "integer"),
        (
            lambda d: setattr(d, "train_mask", torch.zeros(4, dtype=torch.bool)),
            "train_mask is empty",
        ),
        (lambda d: setattr(d, "train_mask", torch.tensor([1, 0, 0, 0])), "boolean"),
        (lambda d: setattr(d, "test_mask", torch.tensor([True, False, True, True])), "overlap"),
    ],
)
def test_validate_graph_rejects_bad_input(mutate, match):
    data = _toy()
    mutate(data)
    with pytest.raises(ValueError, match=match):
        validate_graph(data, num_classes=2)


def test_validate_graph_checks_split_masks():
    data = _toy()
    del data.train_mask, data.test_mask
    empty = Split(
        torch.zeros(4, dtype=torch.bool),
        torch.ones(4, dtype=torch.bool),
        torch.zeros(4, dtype=torch.bool),
        "empty",
    )
    with pytest.raises(ValueError, match="train_mask is empty"):
        validate_graph(data, 2, split=empty)


def test_split_rejects_bad_seed():
    ds = load_dataset("cora")
    with pytest.raises(ValueError, match="non-negative int"):
        ds.split(-1)


def test_bundled_loader_errors(tmp_path):
    from graphmutual.data.bundled import load_bundled_cora

    with pytest.raises(FileNotFoundError, match="build_bundled_cora.py"):
        load_bundled_cora(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="corrupt"):
        load_bundled_cora(bad)
