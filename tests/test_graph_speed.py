"""Speed changes of the graph training path change nothing but the speed."""
from __future__ import annotations

import copy

import torch
from torch_geometric.nn.models import GAT, GCN, GIN

from graphmutual.mutual import MutualEnsemble
from graphmutual.train.trainer import make_optimizer

torch.set_num_threads(1)


def test_trainer_optimizer_is_bit_identical_to_default_adam():
    torch.manual_seed(0)
    base = MutualEnsemble([GIN(5, 16, 2, 3), GCN(5, 16, 2, 3), GAT(5, 16, 2, 3, heads=2)],
                          method="gml")
    x, y = torch.randn(40, 5), torch.randint(0, 3, (40,))
    edge_index = torch.randint(0, 40, (2, 160))
    params = []
    for fast in (True, False):
        cohort = copy.deepcopy(base)
        opt = (make_optimizer(cohort, 0.01, 5e-4) if fast else
               torch.optim.Adam(cohort.parameters(), lr=0.01, weight_decay=5e-4))
        for _ in range(10):
            opt.zero_grad()
            cohort.loss(cohort(x, edge_index), y)["total"].backward()
            opt.step()
        params.append([p.detach().clone() for p in cohort.parameters()])
    assert opt.defaults["foreach"] is None and make_optimizer(base, 0.1).defaults["foreach"]
    for a, b in zip(*params):
        assert torch.equal(a, b)
