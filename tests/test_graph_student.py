"""GraphStudent with a graph-free node model (PyG's MLP): called with x and batch only."""
import pytest
import torch
from torch_geometric.nn.models import MLP

from graphmutual.nn import GraphStudent
from graphmutual.nn.signature import is_graph_free


def _two_graphs():
    torch.manual_seed(0)
    x = torch.randn(7, 5)
    edge_index = torch.tensor([[0, 1, 2, 4, 5], [1, 2, 0, 5, 6]])
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    return x, edge_index, batch


@pytest.mark.parametrize("norm", ["batch_norm", "layer_norm", "graph_norm"])
def test_mlp_node_model_gets_batch_not_edge_index(norm):
    x, edge_index, batch = _two_graphs()
    mlp = MLP([5, 8, 8], norm=norm)
    student = GraphStudent(mlp, 8, 3).eval()
    assert student.graph_free and is_graph_free(mlp)
    out = student(x, edge_index, batch)
    expected = student.head(student.pool(mlp(x, batch=batch), batch))
    assert out.shape == (2, 3)
    torch.testing.assert_close(out, expected)
    # the graph is ignored: another edge set gives the same logits
    torch.testing.assert_close(student(x, edge_index.flip(0)[:, :2], batch), out)


def test_graph_norm_is_per_graph():
    """With graph_norm, graph 0's logits must not depend on graph 1's nodes -- they would if
    the MLP got edge_index (or nothing) as its batch and normalised over both graphs."""
    x, edge_index, batch = _two_graphs()
    student = GraphStudent(MLP([5, 8, 8], norm="graph_norm"), 8, 3).eval()
    out = student(x, edge_index, batch)
    x2 = x.clone()
    x2[3:] = 100 * torch.randn(4, 5)
    torch.testing.assert_close(student(x2, edge_index, batch)[0], out[0])
