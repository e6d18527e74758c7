"""Edge features: GINE / GAT students, the graph student's edge encoder, the config switch."""
import dataclasses

import pytest
import torch
from torch_geometric.data import Data, InMemoryDataset

from graphmutual.data import GraphDataset, Split, load_dataset
from graphmutual.nn import GINE, GraphStudent, build_student
from graphmutual.train import ConfigError, TrainConfig, Trainer, build_cohort
from graphmutual.train.export import export_student, load_student

EDGES = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])


@pytest.mark.parametrize("name", ["gin", "gat"])
def test_edge_feature_students_read_edge_attr(name):
    torch.manual_seed(0)
    model = build_student(name, 5, 3, hidden_channels=16, num_layers=2, edge_dim=4).eval()
    x = torch.randn(4, 5)
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    assert model.supports_edge_attr
    assert not torch.allclose(model(x, EDGES, edge_attr=a), model(x, EDGES, edge_attr=b))
    if name == "gin":
        assert isinstance(model, GINE)


def test_gine_exports_and_reloads(tmp_path):
    model = build_student("gin", 5, 3, hidden_channels=8, num_layers=2, edge_dim=4).eval()
    export_student(model, tmp_path / "gine.pt")
    again = load_student(tmp_path / "gine.pt").eval()
    assert isinstance(again, GINE)
    x, e = torch.randn(4, 5), torch.randn(6, 4)
    assert torch.equal(model(x, EDGES, edge_attr=e), again(x, EDGES, edge_attr=e))


def test_edge_feature_errors():
    with pytest.raises(ValueError, match="cannot read edge features"):
        build_student("gcn", 5, 3, edge_dim=4)
    with pytest.raises(ValueError, match="edge_dim must be a positive int"):
        build_student("gin", 5, 3, edge_dim=0)
    gcn = build_student("gcn", 5, 8)
    with pytest.raises(ValueError, match="does not read edge features"):
        GraphStudent(gcn, 8, 2, edge_encoder=torch.nn.Linear(4, 8))
    gin = GraphStudent(build_student("gin", 5, 8, edge_dim=8), 8, 2,
                       edge_encoder=torch.nn.Linear(4, 8))
    assert "edge_features=True" in repr(gin)
    with pytest.raises(ValueError, match="got no edge_attr"):
        gin(torch.randn(4, 5), EDGES)
    with pytest.raises(ConfigError, match="edge_features must be true or false"):
        TrainConfig(edge_features="yes")


def test_cohort_gives_edge_encoders_to_gin_and_gat_only(tmp_dataset_copy):
    from ogb.graphproppred.mol_encoder import BondEncoder

    mutag = load_dataset("mutag", root=str(tmp_dataset_copy("TUDataset/MUTAG")))
    config = TrainConfig(students=["gin", "gat", "gcn"], edge_features=True)
    gin, gat, gcn = build_cohort(mutag, config).students
    assert isinstance(gin.node_model, GINE) and isinstance(gin.edge_encoder, torch.nn.Linear)
    assert gin.edge_encoder.in_features == 4  # MUTAG's one-hot bond types
    assert isinstance(gat.edge_encoder, torch.nn.Linear) and gcn.edge_encoder is None
    assert build_cohort(mutag, TrainConfig(students=["gin"], method="independent")).students[
        0].edge_encoder is None

    bace = load_dataset("ogbg-molbace", root=str(tmp_dataset_copy("ogb/ogbg_molbace")))
    cohort = build_cohort(bace, TrainConfig(students=["gin"], method="independent", hidden=16,
                                            num_layers=2, edge_features=True))
    assert isinstance(cohort.students[0].edge_encoder, BondEncoder)

    with pytest.raises(ValueError, match="none of the students"):
        build_cohort(mutag, TrainConfig(students=["gcn", "mlp"], edge_features=True))

    enzymes = load_dataset("enzymes", root=str(tmp_dataset_copy("TUDataset/ENZYMES")))
    with pytest.raises(ValueError, match="has no edge features"):
        build_cohort(enzymes, config)
    with pytest.raises(ValueError, match="graph tasks only"):
        build_cohort(load_dataset("cora"), config)


class _Graphs(InMemoryDataset):
    def __init__(self, graphs):
        super().__init__(None)
        self._data, self.slices = self.collate(graphs)


def _bond_type_dataset(n=80):
    """Paths of 4 identical nodes; the label is whether a bond of type 1 occurs, so only a
    student that reads the edge features can beat chance."""
    g = torch.Generator().manual_seed(0)
    graphs = []
    for i in range(n):
        label = i % 2
        types = torch.zeros(3, dtype=torch.long)
        if label:
            types[torch.randint(0, 3, (1,), generator=g)] = 1
        attr = torch.nn.functional.one_hot(types.repeat_interleave(2), 2).float()
        graphs.append(Data(x=torch.ones(4, 1), edge_index=EDGES, edge_attr=attr,
                           y=torch.tensor([label])))
    idx = torch.randperm(n, generator=g)
    split = Split(idx[:40], idx[40:60], idx[60:], "synthetic")
    return GraphDataset("bond-type", "graph", _Graphs(graphs), num_features=1, num_classes=2,
                        metric="accuracy", splitter=lambda seed: split)


def test_edge_features_carry_the_signal():
    ds = _bond_type_dataset()
    config = TrainConfig(dataset="bond-type", students=["gin", "gat"], method="gml",
                         epochs=40, lr=0.01, hidden=16, num_layers=2, patience=100,
                         progress=False, seeds=[0])
    seeing = Trainer(dataclasses.replace(config, edge_features=True), dataset=ds).run_seed(0)
    blind = Trainer(config, dataset=ds).run_seed(0)
    # GINE adds the bond embedding to every message; GAT reads edge features only in its
    # attention scores, which cannot help when all node features (hence messages) are equal
    assert seeing["members"]["gin"]["test"] >= 0.9, seeing["members"]
    for student in ("gin", "gat"):
        assert blind["members"][student]["test"] <= 0.6, blind["members"]
