"""Export and reload of every kind of student (issue 20) and the safety of loading (issue 18 #1).

Every reload is checked by predictions: the reloaded model must give exactly the logits of
the exported one.  Stock PyG models are reloaded with plain PyG as the README shows.
"""
import os
import warnings

import pytest
import torch
import torch_geometric
from torch_geometric.data import Data
from torch_geometric.nn import models as pyg

from graphmutual.nn import GraphStudent, build_student
from graphmutual.nn.students import STUDENTS
from graphmutual.train import CheckpointError, export_student, load_student
from graphmutual.train.checkpoint import save_checkpoint
from graphmutual.train.export import FORMAT, load_transform

torch.set_num_threads(1)

N, F, C = 12, 6, 3


def graph(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(N, F, generator=g)
    edge_index = torch.randint(0, N, (2, 40), generator=g)
    return x, edge_index


def same_predictions(a, b, *inputs, **kw):
    a.eval()
    b.eval()
    with torch.no_grad():
        return torch.equal(a(*inputs, **kw), b(*inputs, **kw))


def plain_pyg_reload(path):
    """The README recipe: no graphmutual import needed."""
    ckpt = torch.load(path, weights_only=True)
    module, _, name = ckpt["class"].rpartition(".")
    assert module == "torch_geometric.nn.models"
    model = getattr(torch_geometric.nn.models, name)(**ckpt["kwargs"])
    model.load_state_dict(ckpt["state_dict"])
    return model


# ------------------------------------------------------------------- node students
@pytest.mark.parametrize("name", sorted(STUDENTS))
def test_every_builtin_student_round_trips(tmp_path, name):
    torch.manual_seed(0)
    student = build_student(name, F, C, hidden_channels=8, num_layers=2)
    export_student(student, tmp_path / "s.pt")
    x, ei = graph()
    inputs = (x,) if name == "mlp" else (x, ei)
    again = load_student(tmp_path / "s.pt")
    assert same_predictions(student, again, *inputs)
    assert same_predictions(student, plain_pyg_reload(tmp_path / "s.pt"), *inputs)


STOCK = {
    "gcn": lambda: pyg.GCN(F, 8, 2, C),
    "gcn-options": lambda: pyg.GCN(F, 8, 3, C, dropout=0.3, act="leaky_relu",
                                   act_kwargs={"negative_slope": 0.1}, norm="batch_norm",
                                   improved=True, add_self_loops=False, bias=False),
    "gcn-no-out": lambda: pyg.GCN(F, 8, 2),
    "gat": lambda: pyg.GAT(F, 8, 2, C, heads=4),
    "gatv2": lambda: pyg.GAT(F, 8, 2, C, heads=2, v2=True, concat=False),
    "gin": lambda: pyg.GIN(F, 8, 3, C, train_eps=True, norm="layer_norm"),
    "sage": lambda: pyg.GraphSAGE(F, 8, 2, C, aggr="max", project=True),
    "sage-jk": lambda: pyg.GraphSAGE(F, 8, 3, C, jk="cat"),
    "edgecnn": lambda: pyg.EdgeCNN(F, 8, 2, C),
    "mlp": lambda: pyg.MLP([F, 8, C]),
    "mlp-layer-norm": lambda: pyg.MLP(in_channels=F, hidden_channels=8, out_channels=C,
                                      num_layers=3, norm="layer_norm", dropout=0.2, act="gelu"),
    "mlp-graph-norm": lambda: pyg.MLP([F, 8, C], norm="graph_norm", dropout=[0.1, 0.0]),
}


@pytest.mark.parametrize("case", sorted(STOCK))
def test_stock_pyg_models_record_their_constructor_arguments(tmp_path, case):
    """Issue 20: ``export_student`` on a user-built PyG model wrote ``kwargs: None``."""
    torch.manual_seed(1)
    model = STOCK[case]()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        export_student(model, tmp_path / "m.pt")
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    assert ckpt["kwargs"] is not None and ckpt["format"] == FORMAT
    x, ei = graph(1)
    inputs = (x,) if case.startswith("mlp") else (x, ei)
    assert same_predictions(model, plain_pyg_reload(tmp_path / "m.pt"), *inputs)
    assert same_predictions(model, load_student(tmp_path / "m.pt"), *inputs)


def test_trained_weights_and_batch_norm_statistics_travel(tmp_path):
    torch.manual_seed(2)
    model = pyg.GCN(F, 8, 2, C, norm="batch_norm")
    x, ei = graph(2)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        model(x, ei).sum().backward()
        opt.step()
    export_student(model, tmp_path / "m.pt")
    assert same_predictions(model, load_student(tmp_path / "m.pt"), x, ei)


def test_a_model_whose_arguments_cannot_be_recorded_loads_into_a_given_model(tmp_path):
    class Custom(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(F, C)

        def forward(self, x, edge_index=None):
            return self.lin(x)

    model = Custom()
    with pytest.warns(UserWarning, match="could not be recorded"):
        export_student(model, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="pass it as `model=`"):
        load_student(tmp_path / "c.pt")
    again = load_student(tmp_path / "c.pt", model=Custom())
    assert same_predictions(model, again, graph()[0])
    with pytest.raises(CheckpointError, match=r"c\.pt.*another configuration.*lin\.weight"):
        load_student(tmp_path / "c.pt", model=torch.nn.Sequential(torch.nn.Linear(F, C)))


# ------------------------------------------------------------------ graph students
def graph_batch(edge_dim=None, atoms=False):
    g = torch.Generator().manual_seed(3)
    x = (torch.randint(0, 2, (N, 9), generator=g) if atoms else torch.rand(N, F, generator=g))
    ei = torch.randint(0, N, (2, 30), generator=g)
    batch = torch.tensor([0] * 5 + [1] * 7)
    if edge_dim is None:
        return Data(x=x, edge_index=ei, batch=batch)
    attr = (torch.randint(0, 2, (30, 3), generator=g) if atoms
            else torch.rand(30, edge_dim, generator=g))
    return Data(x=x, edge_index=ei, batch=batch, edge_attr=attr)


def graph_students():
    from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder

    H = 8
    return {
        "gcn-mean": lambda: (GraphStudent(build_student("gcn", F, H, H, 2), H, C), {}),
        "gin-add": lambda: (GraphStudent(build_student("gin", F, H, H, 3, norm="batch_norm"),
                                         H, C, pool="add", dropout=0.2, name="gin"), {}),
        "gine-linear-edges": lambda: (GraphStudent(
            build_student("gin", F, H, H, 2, edge_dim=H), H, C, pool="max",
            edge_encoder=torch.nn.Linear(4, H)), {"edge_dim": 4}),
        "gat-ogb-encoders": lambda: (GraphStudent(
            build_student("gat", H, H, H, 2, edge_dim=H, heads=2), H, C,
            encoder=AtomEncoder(H), edge_encoder=BondEncoder(H)), {"edge_dim": 3, "atoms": True}),
        "stock-pyg-node-model": lambda: (GraphStudent(pyg.GraphSAGE(F, H, 2), H, C), {}),
    }


@pytest.mark.parametrize("case", sorted(graph_students()))
def test_graph_students_reload_in_one_call(tmp_path, case):
    """Issue 20: ``load_student`` raised ``CheckpointError`` on every ``GraphStudent``."""
    torch.manual_seed(4)
    student, opts = graph_students()[case]()
    export_student(student, tmp_path / "g.pt")
    again = load_student(tmp_path / "g.pt")
    assert isinstance(again, GraphStudent) and again.name == student.name
    d = graph_batch(**opts)
    kw = {"batch": d.batch, "edge_attr": d.edge_attr}
    assert same_predictions(student, again, d.x, d.edge_index, **kw)


def test_graph_student_parts_rebuild_with_plain_pyg(tmp_path):
    """The documented manual route: node model, pooling and head from plain PyG/torch."""
    torch.manual_seed(5)
    student = GraphStudent(build_student("gin", F, 8, 8, 2), 8, C, pool="add")
    export_student(student, tmp_path / "g.pt")
    ckpt = torch.load(tmp_path / "g.pt", weights_only=True)
    node = ckpt["children"]["node_model"]
    node_model = getattr(pyg, node["class"].rpartition(".")[2])(**node["kwargs"])
    h = ckpt["kwargs"]["hidden_channels"]
    head = torch.nn.Sequential(torch.nn.Linear(h, h), torch.nn.ReLU(),
                               torch.nn.Linear(h, ckpt["kwargs"]["out_channels"]))
    sd = ckpt["state_dict"]
    node_model.load_state_dict({k[11:]: v for k, v in sd.items() if k.startswith("node_model.")})
    head.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("head.")})
    pool = getattr(torch_geometric.nn, f"global_{ckpt['kwargs']['pool']}_pool")
    d = graph_batch()
    student.eval()
    node_model.eval()
    with torch.no_grad():
        manual = head(pool(node_model(d.x, d.edge_index), d.batch))
        assert torch.equal(manual, student(d.x, d.edge_index, batch=d.batch))


# ------------------------------------------------------------------- preprocessing
def test_preprocessing_travels_with_the_student(tmp_path):
    torch.manual_seed(6)
    student = build_student("gcn", F, C, 8, 2)
    export_student(student, tmp_path / "s.pt", meta={"normalize_features": True})
    ckpt = torch.load(tmp_path / "s.pt", weights_only=True)
    assert ckpt["preprocess"] == [{"name": "NormalizeFeatures", "kwargs": {}}]
    x, ei = graph()
    data = load_transform(tmp_path / "s.pt")(Data(x=x.clone(), edge_index=ei))
    assert torch.allclose(data.x.sum(-1), torch.ones(N))
    # explicit steps (one-hot degree of a featureless graph dataset)
    export_student(student, tmp_path / "d.pt",
                   preprocess=[{"name": "OneHotDegree", "kwargs": {"max_degree": 10}}])
    out = load_transform(tmp_path / "d.pt")(Data(edge_index=ei, num_nodes=N))
    assert out.x.shape == (N, 11)
    export_student(student, tmp_path / "none.pt")
    assert torch.equal(load_transform(tmp_path / "none.pt")(Data(x=x)).x, x)
    with pytest.raises(ValueError, match="unknown preprocessing step"):
        export_student(student, tmp_path / "bad.pt", preprocess=[{"name": "os.system"}])


def test_featureless_dataset_records_how_its_features_are_built(tmp_dataset_copy, tmp_path):
    """IMDB-BINARY has no node features: the one-hot degrees travel with the student."""
    from graphmutual.data import load_dataset
    from graphmutual.train.export import preprocess_steps

    ds = load_dataset("imdb-binary", tmp_dataset_copy("TUDataset/IMDB-BINARY"))
    steps = preprocess_steps(ds)
    assert steps == [{"name": "OneHotDegree", "kwargs": {"max_degree": 135}}]
    student = GraphStudent(build_student("gin", ds.num_features, 8, 8, 2), 8, ds.num_classes)
    export_student(student, tmp_path / "g.pt", preprocess=steps)
    g = ds.data[3]  # built by the dataset's own transform
    bare = Data(edge_index=g.edge_index, num_nodes=g.num_nodes)  # what a user has
    assert torch.equal(load_transform(tmp_path / "g.pt")(bare).x, g.x)
    assert preprocess_steps(load_dataset("cora"), normalize_features=True) == [
        {"name": "NormalizeFeatures", "kwargs": {}}]


def test_standardised_attributes_travel_with_the_student(tmp_dataset_copy, tmp_path):
    """ENZYMES: the training statistics of the standardised attributes travel with the
    student, so a raw graph from the TU files is scaled exactly like the training graphs."""
    from torch_geometric.datasets import TUDataset

    from graphmutual.data import load_dataset
    from graphmutual.train.export import preprocess_steps

    root = tmp_dataset_copy("TUDataset/ENZYMES")
    ds = load_dataset("enzymes", root)
    steps = preprocess_steps(ds)
    assert [s["name"] for s in steps] == ["StandardizeColumns"]
    assert len(steps[0]["kwargs"]["mean"]) == len(steps[0]["kwargs"]["std"]) == 18
    student = GraphStudent(build_student("gin", ds.num_features, 8, 8, 2), 8, ds.num_classes)
    export_student(student, tmp_path / "e.pt", preprocess=steps)
    raw = TUDataset(str(root / "TUDataset"), "ENZYMES", use_node_attr=True)[5]
    assert not torch.allclose(raw.x, ds.data[5].x)  # the raw file is not standardised
    out = load_transform(tmp_path / "e.pt")(raw.clone())
    torch.testing.assert_close(out.x, ds.data[5].x)
    torch.testing.assert_close(out.x[:, 18:], raw.x[:, 18:])  # one-hot labels untouched


def test_standardize_columns_checks_its_statistics():
    from graphmutual.data.transforms import StandardizeColumns

    with pytest.raises(ValueError, match="as many means as stds"):
        StandardizeColumns([0.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="positive finite stds"):
        StandardizeColumns([0.0], [0.0])
    with pytest.raises(ValueError, match=r"\[N, >= 2\]"):
        StandardizeColumns([0.0, 0.0], [1.0, 1.0])(Data(x=torch.zeros(3, 1)))


# -------------------------------------------------------------------------- safety
def crafted(tmp_path, marker, **fields):
    state = {"format": FORMAT, "class": "subprocess.Popen",
             "kwargs": {"args": ["touch", str(marker)]}, "state_dict": {}, **fields}
    path = tmp_path / "evil.pt"
    save_checkpoint(state, path)  # strings and dicts only: passes weights_only=True
    return path


@pytest.mark.parametrize("fields", [
    {},
    {"format": "graphmutual-student/1"},
    {"class": "os.system", "kwargs": {"command": "touch MARKER"}},
    {"class": "torch_geometric.nn.models.GCN.__init__.__globals__.os.system"},
    {"class": "graphmutual.nn.graph.GraphStudent", "kwargs": {"hidden_channels": 2,
     "out_channels": 2}, "children": {"node_model": {"class": "subprocess.Popen",
                                                      "kwargs": {"args": ["touch", "M"]}}}},
], ids=["popen", "popen-v1", "os-system", "dotted-path", "child"])
def test_load_student_never_constructs_a_class_outside_the_allow_list(tmp_path, fields):
    """Issue 18 #1: a file of strings and dicts made ``load_student`` run a command."""
    marker = tmp_path / "pwned"
    fields = {k: (v.replace("MARKER", str(marker)) if isinstance(v, str) else v)
              for k, v in fields.items()}
    if "kwargs" in fields and "command" in fields["kwargs"]:
        fields["kwargs"] = {"command": f"touch {marker}"}
    path = crafted(tmp_path, marker, **fields)
    with pytest.raises(CheckpointError, match="does not construct|not described") as err:
        load_student(path)
    assert not marker.exists()
    assert "\n" not in str(err.value) and "weights_only" not in str(err.value)


def test_allowed_class_with_object_arguments_is_refused(tmp_path):
    path = tmp_path / "f.pt"
    save_checkpoint({"format": FORMAT, "class": "torch_geometric.nn.models.GCN",
                     "kwargs": {"in_channels": torch.ones(1), "hidden_channels": 2,
                                "num_layers": 1}, "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="only plain values"):
        load_student(path)


class Evil:
    """Unpickling this calls ``os.mkdir(marker)``: the classic pickle payload."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickled_code_is_refused_without_advice_to_disable_weights_only(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"format": FORMAT, "class": "x", "kwargs": Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as err:
        load_student(tmp_path / "evil.pt")
    message = str(err.value)
    assert not marker.exists()
    assert "evil.pt" in message and "never loads" in message and "mkdir" in message
    assert "weights_only" not in message and "\n" not in message


def test_not_an_export_is_a_clear_error(tmp_path):
    save_checkpoint({"cohort": {}}, tmp_path / "seed0.pt")
    with pytest.raises(CheckpointError, match="seed0.pt' is not an exported graphmutual"):
        load_student(tmp_path / "seed0.pt")
