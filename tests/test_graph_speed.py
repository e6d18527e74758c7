"""Speed changes of the graph training path change nothing but the speed."""
from __future__ import annotations

import copy

import pytest
import torch
from torch_geometric.nn.models import GAT, GCN, GIN

from graphmutual.mutual import MutualEnsemble
from graphmutual.train.trainer import make_optimizer

torch.set_num_threads(1)


def test_trainer_optimizer_is_fused_adam_and_matches_default_adam():
    """``make_optimizer`` is Adam with ``fused=True``: after 10 steps the parameters equal
    those of PyTorch's default Adam up to rounding (not bit for bit), and a list of tensors
    works as well as a module.

    One step on the same gradients agrees to float64 rounding; over 10 training steps
    Adam's normalisation magnifies rounding where a gradient is near zero (its update
    g / sqrt(v) stays of order lr), so the trained parameters agree to 1e-3 of a step."""
    p = torch.randn(100, dtype=torch.float64)
    one = [p.clone().requires_grad_() for _ in range(2)]
    opts = [make_optimizer(one[:1], 0.01, 5e-4),
            torch.optim.Adam(one[1:], lr=0.01, weight_decay=5e-4)]
    for _ in range(3):
        g = torch.randn(100, dtype=torch.float64)
        for t, o in zip(one, opts):
            t.grad = g.clone()
            o.step()
    torch.testing.assert_close(one[0], one[1], rtol=1e-12, atol=1e-12)

    torch.manual_seed(0)
    base = MutualEnsemble([GIN(5, 16, 2, 3), GCN(5, 16, 2, 3), GAT(5, 16, 2, 3, heads=2)],
                          method="gml").double()
    x, y = torch.randn(40, 5, dtype=torch.float64), torch.randint(0, 3, (40,))
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
    assert opt.defaults["fused"] is None and make_optimizer(base, 0.1).defaults["fused"]
    assert make_optimizer(list(base.parameters()), 0.1).defaults["fused"]
    moved = 0.0
    for a, b, p0 in zip(*params, base.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        moved = max(moved, float((a - p0.detach()).abs().max()))
    assert moved > 1e-2  # the comparison is not vacuous: training moved the parameters


def test_loss_without_mask_equals_the_loss_with_every_sample_masked_in():
    """``mask=None`` takes views of the logits instead of gathers: the same terms and
    gradients as an explicit all-samples mask (float64, exact)."""
    torch.manual_seed(1)
    cohort = MutualEnsemble([GIN(4, 8, 1, 3) for _ in range(3)], method="gml").double()
    cohort.set_epoch(20)
    y = torch.randint(0, 3, (30,))
    base = torch.randn(3, 30, 3, dtype=torch.float64)
    runs = []
    for mask in (None, torch.ones(30, dtype=torch.bool), torch.arange(30)):
        logits = base.clone().requires_grad_()
        cohort.zero_grad()
        losses = cohort.loss(logits, y, mask)
        losses["total"].backward()
        runs.append((losses, logits.grad, [p.grad.clone() for p in cohort.alw.parameters()]))
    for losses, grad, alw_grads in runs[1:]:
        assert losses.keys() == runs[0][0].keys()
        for k in losses:
            assert torch.equal(losses[k], runs[0][0][k]), k
        assert torch.equal(grad, runs[0][1])
        for a, b in zip(alw_grads, runs[0][2]):
            assert torch.equal(a, b)
    with pytest.raises(ValueError, match="labels must lie"):
        cohort.loss(base, torch.full((30,), 3))
