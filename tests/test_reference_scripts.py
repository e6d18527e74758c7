"""The plain-PyG reference scripts in benchmarks/reference/ (no graphmutual model or loop)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

REFERENCE = Path(__file__).resolve().parents[1] / "benchmarks" / "reference"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"reference_{name}", REFERENCE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _toy_batch(num_features: int):
    # two graphs: a triangle (nodes 0-2) and an edge (nodes 3-4)
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 0, 3, 4], [1, 0, 2, 1, 0, 2, 4, 3]])
    x = torch.randn(5, num_features)
    batch = torch.tensor([0, 0, 0, 1, 1])
    return x, edge_index, batch


@pytest.mark.parametrize("model", ["gin", "gcn", "gat"])
@pytest.mark.parametrize("layout", [dict(), dict(head="mlp", plain_last=True, norm="none")])
def test_tunet_shapes_and_layouts(model, layout):
    tu = _load("tu")
    torch.manual_seed(0)
    net = tu.TUNet(model, 7, 16, 2, 3, dropout=0.5, pool="mean", heads=4, **layout)
    x, edge_index, batch = _toy_batch(7)
    net.eval()
    out = net(x, edge_index, batch)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    has_bn = any(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules())
    assert has_bn == (layout.get("norm", "batch_norm") == "batch_norm")
    assert isinstance(net.head, torch.nn.Linear) == ("head" not in layout)


def test_tunet_rejects_bad_shapes():
    tu = _load("tu")
    with pytest.raises(ValueError, match="divisible"):
        tu.TUNet("gat", 7, 10, 2, 3, dropout=0.0, pool="mean", heads=4)
    with pytest.raises(ValueError, match="layers"):
        tu.TUNet("gin", 7, 16, 0, 3, dropout=0.0, pool="mean", heads=4)


def test_tu_script_uses_graphmutual_folds_and_resumes(tmp_dataset_copy, tmp_path):
    from graphmutual.data.splits import stratified_kfold_split

    tu = _load("tu")
    root = tmp_dataset_copy("TUDataset/MUTAG")
    out = tmp_path / "mutag.json"
    argv = ["--dataset", "MUTAG", "--root", str(root), "--folds", "3", "--epochs", "2",
            "--hidden", "16", "--out", str(out)]
    assert tu.main(argv) == 0
    rec = json.loads(out.read_text())
    (run,) = rec["runs"]
    ds = tu.load(str(root), "MUTAG")
    assert run["split"] == stratified_kfold_split(ds._data.y.view(-1), 3).description
    assert len(run["curve"]) == 2 and 0 <= run["best"]["epoch"] < 2
    assert run["best"]["val"] == max(c["val"] for c in run["curve"])
    # the continuous-attribute-free MUTAG has 7 one-hot label columns, left as they are
    assert ds.num_features == 7 and set(ds._data.x.unique().tolist()) <= {0.0, 1.0}
    # rerunning with the same --out skips the finished fold
    before = out.read_text()
    assert tu.main(argv) == 0 and out.read_text() == before


def test_ogb_script_runs_one_epoch_with_bond_features(tmp_dataset_copy, tmp_path):
    mol = _load("ogb_mol")
    root = tmp_dataset_copy("ogb/ogbg_molbace")
    out = tmp_path / "bace.json"
    assert mol.main(["--dataset", "ogbg-molbace", "--root", str(root), "--seeds", "0",
                     "--epochs", "1", "--hidden", "16", "--bond", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    best = rec["runs"][0]["best"]
    assert 0.0 <= best["test"] <= 1.0 and best["epoch"] == 0
    with pytest.raises(ValueError, match="edge-feature"):
        mol.MolNet("gcn", 16, 2, 0.5, "mean", bond=True, heads=4)


def test_ogb_script_graphmutual_model_switches(tmp_dataset_copy, tmp_path):
    """--fixed-eps freezes GIN's eps at 0; --softmax2 trains two logits with cross-entropy and
    scores the class-1 probability."""
    mol = _load("ogb_mol")
    net = mol.MolNet("gin", 16, 2, 0.5, "mean", bond=False, heads=1, train_eps=False, out=2)
    assert all(not isinstance(c.eps, torch.nn.Parameter) for c in net.convs)
    assert all(isinstance(c.eps, torch.nn.Parameter)
               for c in mol.MolNet("gin", 16, 2, 0.5, "mean", bond=False, heads=1).convs)
    root = tmp_dataset_copy("ogb/ogbg_molbace")
    out = tmp_path / "bace.json"
    assert mol.main(["--dataset", "ogbg-molbace", "--root", str(root), "--seeds", "0",
                     "--epochs", "1", "--hidden", "16", "--fixed-eps", "--softmax2",
                     "--out", str(out)]) == 0
    best = json.loads(out.read_text())["runs"][0]["best"]
    assert 0.0 <= best["test"] <= 1.0


def test_make_tables_best_member_is_chosen_per_seed_on_validation(tmp_path):
    tables = _load("make_tables")
    for seed, (a, b) in enumerate([((0.8, 0.70), (0.7, 0.90)), ((0.6, 0.50), (0.9, 0.60))]):
        run = tmp_path / f"run-s{seed}"
        run.mkdir()
        members = {name: {"val": [v], "test": [t], "best_epoch": [3]}
                   for name, (v, t) in (("gin", a), ("gin_2", b))}
        members["ensemble"] = {"val": [0.99], "test": [0.99], "best_epoch": [3]}  # not a student
        (run / "results.json").write_text(json.dumps(
            {"seeds": [seed], "members": members, "seconds_per_epoch": [1.0]}))
    vals = tables.graphmutual_values(str(tmp_path / "run-s*"), "best")
    assert vals == {0: (0.8, 0.70, 3, 1.0), 1: (0.9, 0.60, 3, 1.0)}
    assert tables.graphmutual_values(str(tmp_path / "run-s*"), "gin_2")[0][0] == 0.7
