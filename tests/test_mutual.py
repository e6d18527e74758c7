"""The mutual-learning method: divergences, ALW, entropy enhancement, MutualEnsemble."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from graphmutual import MutualEnsemble
from graphmutual.mutual import (
    AdaptiveLogitWeighting,
    alw_loss,
    confidence_penalty,
    divergence,
    peer_targets,
    smooth_target,
)
from graphmutual.mutual.alw import uniform_peer_weights

P = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
Q = torch.tensor([[0.25, 0.75], [0.5, 0.5]])


def logits_of(p):
    return p.log()


def kl_rows(a, b):
    return (a * (a / b).log()).sum(-1)


# ---------------------------------------------------------------- divergences
def test_kl_matches_hand_computed_values():
    # KL(q || p) row 0: .25 ln(.25/.5) + .75 ln(.75/.5)
    row0 = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    row1 = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    got = divergence(logits_of(P), Q, "kl", reduction="none")
    assert torch.allclose(got, torch.tensor([row0, row1]), atol=1e-6)
    # batchmean = sum / N, the same as F.kl_div(..., reduction="batchmean")
    ref = F.kl_div(P.log(), Q, reduction="batchmean")
    assert torch.allclose(divergence(logits_of(P), Q, "kl"), ref, atol=1e-6)


def test_reverse_kl_js_and_balanced_values():
    rev = divergence(logits_of(P), Q, "reverse_kl", reduction="none")
    assert torch.allclose(rev, kl_rows(P, Q), atol=1e-6)
    m = 0.5 * (P + Q)
    js = divergence(logits_of(P), Q, "js", reduction="none")
    assert torch.allclose(js, 0.5 * kl_rows(Q, m) + 0.5 * kl_rows(P, m), atol=1e-6)
    bal = divergence(logits_of(P), Q, "balanced", balance=0.3, reduction="none")
    assert torch.allclose(bal, 0.3 * kl_rows(Q, P) + 0.7 * kl_rows(P, Q), atol=1e-6)


def test_renyi_hand_value_and_kl_limit():
    a = 0.5
    ref = torch.log((Q**a * P ** (1 - a)).sum(-1)) / (a - 1)
    got = divergence(logits_of(P), Q, "renyi", alpha=a, reduction="none")
    assert torch.allclose(got, ref, atol=1e-6)
    near_one = divergence(logits_of(P), Q, "renyi", alpha=1.0 + 1e-4, reduction="none")
    assert torch.allclose(near_one, kl_rows(Q, P), atol=1e-3)
    assert torch.allclose(divergence(logits_of(P), Q, "renyi", alpha=1.0, reduction="none"),
                          kl_rows(Q, P), atol=1e-6)


@pytest.mark.parametrize("kind", ["kl", "reverse_kl", "js", "renyi", "balanced"])
def test_divergence_properties(kind):
    torch.manual_seed(0)
    z = torch.randn(16, 5)
    q_same = z.softmax(-1)
    # zero for identical distributions, positive otherwise
    assert divergence(z, q_same, kind).abs() < 1e-5
    q = torch.randn(16, 5).softmax(-1)
    assert divergence(z, q, kind) > 0


def test_js_symmetric_and_bounded():
    torch.manual_seed(1)
    a, b = torch.randn(8, 4), torch.randn(8, 4)
    ab = divergence(a, b.softmax(-1), "js", reduction="none")
    ba = divergence(b, a.softmax(-1), "js", reduction="none")
    assert torch.allclose(ab, ba, atol=1e-6)
    assert (ab <= math.log(2) + 1e-6).all()


def test_temperature_factor_and_weights():
    torch.manual_seed(2)
    z, q = torch.randn(6, 3), torch.randn(6, 3).softmax(-1)
    t = 3.0
    manual = F.kl_div(F.log_softmax(z / t, -1), q, reduction="batchmean") * t * t
    assert torch.allclose(divergence(z, q, "kl", temperature=t), manual, atol=1e-6)
    w = torch.tensor([1.0, 0, 0, 0, 0, 0])
    per = divergence(z, q, "kl", reduction="none")
    assert torch.allclose(divergence(z, q, "kl", sample_weight=w), per[0], atol=1e-6)


def test_target_is_detached():
    z = torch.randn(4, 3, requires_grad=True)
    peer = torch.randn(4, 3, requires_grad=True)
    divergence(z, peer.softmax(-1)).backward()
    assert peer.grad is None and z.grad is not None


def test_divergence_bad_input():
    with pytest.raises(ValueError, match="unknown divergence"):
        divergence(torch.randn(2, 3), torch.rand(2, 3), "hellinger")
    with pytest.raises(ValueError, match="must both be"):
        divergence(torch.randn(2, 3), torch.rand(2, 4))
    with pytest.raises(ValueError, match="temperature"):
        divergence(torch.randn(2, 3), torch.rand(2, 3), temperature=0)


# ------------------------------------------------------------------------ ALW
def test_alw_weights_are_a_distribution_over_peers_and_tau_bounded():
    torch.manual_seed(0)
    alw = AdaptiveLogitWeighting(3, t_min=0.5, t_max=2.0)
    # make the MLP non-trivial so bounds are exercised
    with torch.no_grad():
        for p in alw.parameters():
            p.normal_(0, 3.0)
    logits = torch.randn(3, 50, 4) * 5
    alpha, tau = alw(logits)
    assert alpha.shape == (50, 3, 3) and tau.shape == (3, 50)
    assert torch.allclose(alpha.sum(-1), torch.ones(50, 3), atol=1e-6)
    assert (alpha.diagonal(dim1=1, dim2=2) == 0).all()
    assert (tau >= 0.5).all() and (tau <= 2.0).all()


def test_alw_starts_uniform_at_init_temperature():
    alw = AdaptiveLogitWeighting(4, t_min=1.0, t_max=3.0, init_temperature=2.0)
    alpha, tau = alw(torch.randn(4, 10, 5))
    assert torch.allclose(alpha[0], uniform_peer_weights(4), atol=1e-6)
    assert torch.allclose(tau, torch.full_like(tau, 2.0), atol=1e-5)


def test_alw_learns_to_trust_the_accurate_peer():
    torch.manual_seed(0)
    n, c = 200, 4
    y = torch.randint(0, c, (n,))
    good = F.one_hot(y, c).float() * 4 + torch.randn(n, c) * 0.3   # confident, right
    bad = torch.randn(n, c) * 0.1                                    # uncertain, random
    logits = torch.stack([good, bad, bad.clone()])
    alw = AdaptiveLogitWeighting(3)
    opt = torch.optim.Adam(alw.parameters(), lr=0.05)
    for _ in range(100):
        alpha, tau = alw(logits)
        loss = alw_loss(peer_targets(logits, alpha, tau), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    alpha, _ = alw(logits)
    # student 1 should rely on student 0 (good) far more than on student 2 (bad)
    assert alpha[:, 1, 0].mean() > 0.8


def test_peer_targets_uniform_is_dml_mean():
    z = torch.randn(3, 5, 4)
    q = peer_targets(z, uniform_peer_weights(3), 1.0)
    p = z.softmax(-1)
    assert torch.allclose(q[0], (p[1] + p[2]) / 2, atol=1e-6)
    assert torch.allclose(q.sum(-1), torch.ones(3, 5), atol=1e-6)


# ------------------------------------------------------------- entropy terms
def test_entropy_penalty_and_target_smoothing():
    uniform = torch.zeros(2, 4)
    assert torch.allclose(confidence_penalty(uniform, 0.5), torch.tensor(-0.5 * math.log(4)))
    q = torch.tensor([[1.0, 0.0]])
    assert torch.allclose(smooth_target(q, 0.2), torch.tensor([[0.9, 0.1]]))


# ---------------------------------------------------------------- ensemble
class Linear(nn.Module):
    def __init__(self, i, o, name):
        super().__init__()
        self.lin = nn.Linear(i, o)
        self.name = name

    def forward(self, x, edge_index=None):
        return self.lin(x)


def make_cohort(method="gml", **kw):
    torch.manual_seed(0)
    return MutualEnsemble([Linear(5, 3, "a"), Linear(5, 3, "b"), Linear(5, 3, "c")],
                          method=method, **kw)


def test_forward_shape_and_loss_terms():
    cohort = make_cohort()
    x, y = torch.randn(10, 5), torch.randint(0, 3, (10,))
    logits = cohort(x, None)
    assert logits.shape == (3, 10, 3)
    losses = cohort.loss(logits, y, torch.arange(10) < 6)
    for key in ("total", "ce", "mimic", "entropy", "alw", "ce/a", "mimic/c"):
        assert key in losses
    parts = losses["ce"] + losses["mimic"] + losses["entropy"] + losses["alw"]
    assert torch.allclose(losses["total"], parts)
    assert losses["entropy"] < 0 and losses["alw"] > 0


def test_no_gradient_reaches_a_peer_through_its_target():
    from graphmutual.mutual import divergence as div

    cohort = make_cohort("dml")
    x = torch.randn(10, 5)
    logits = cohort(x)
    q = cohort.targets(logits)
    # student a's mimicry term: gradient into a, exactly zero into its peers
    grads = torch.autograd.grad(div(logits[0], q[0]), [s.lin.weight for s in cohort.students],
                                retain_graph=True,
                                allow_unused=True)
    assert grads[0].abs().sum() > 0
    assert all(g is None or g.abs().sum() == 0 for g in grads[1:])
    # and the cohort's whole mimicry loss gives each student only its own term's gradient
    total = cohort.loss(logits, torch.zeros(10, dtype=torch.long))["mimic"]
    g_total = torch.autograd.grad(total, cohort.students[1].lin.weight, retain_graph=True)[0]
    g_own = torch.autograd.grad(div(logits[1], q[1]), cohort.students[1].lin.weight)[0]
    assert torch.allclose(g_total, g_own, atol=1e-6)


def test_alw_is_trained_only_by_its_own_label_signal():
    cohort = make_cohort("gml", entropy=0.0)
    logits = cohort(torch.randn(10, 5))
    losses = cohort.loss(logits, torch.randint(0, 3, (10,)))
    cohort.zero_grad()
    losses["mimic"].backward(retain_graph=True)
    # mimicry gradients into ALW would let it collapse the target onto the student
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in cohort.alw.parameters())
    losses["alw"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in cohort.alw.parameters())


def test_presets():
    assert make_cohort("independent").loss(
        make_cohort("independent")(torch.randn(4, 5)), torch.zeros(4, dtype=torch.long)
    )["mimic"] == 0
    dml = make_cohort("dml")
    assert dml.alw is None and dml.entropy == 0 and dml.weighting == "uniform"
    gml = make_cohort("gml")
    assert gml.alw is not None and gml.entropy > 0
    assert "method=gml" in repr(gml)


def test_warmup_ramps_mimicry():
    cohort = make_cohort("dml", warmup=10)
    assert cohort.mimic_scale(0) < 0.01
    assert 0 < cohort.mimic_scale(5) < 1
    assert cohort.mimic_scale(10) == pytest.approx(1.0)


def test_alternating_schedule_updates_every_student():
    cohort = make_cohort("dml", schedule="alternating")
    before = [s.lin.weight.clone() for s in cohort.students]
    opt = torch.optim.SGD(cohort.parameters(), lr=0.1)
    cohort.alternating_step((torch.randn(10, 5),), torch.randint(0, 3, (10,)), None, opt)
    assert all(not torch.equal(b, s.lin.weight) for b, s in zip(before, cohort.students))


def test_predict_mean_and_alw():
    cohort = make_cohort()
    logits = cohort(torch.randn(7, 5))
    mean = cohort.predict(logits, "mean")
    assert torch.allclose(mean, logits.softmax(-1).mean(0))
    weighted = cohort.predict(logits, "alw")
    assert torch.allclose(weighted.sum(-1), torch.ones(7), atol=1e-6)
    with pytest.raises(ValueError, match="unknown ensemble"):
        cohort.predict(logits, "median")


def test_mismatched_class_count_is_a_clear_error():
    cohort = MutualEnsemble([Linear(5, 3, "a"), Linear(5, 4, "b")], method="dml")
    with pytest.raises(ValueError, match="disagree on the output shape"):
        cohort(torch.randn(6, 5))


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown method"):
        make_cohort("distill")
    with pytest.raises(ValueError, match="at least 2 students"):
        MutualEnsemble([Linear(5, 3, "a")], method="dml")
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        MutualEnsemble([lambda x: x, Linear(5, 3, "a")])
    cohort = make_cohort()
    logits = cohort(torch.randn(4, 5))
    none = torch.zeros(4, dtype=torch.bool)
    with pytest.raises(ValueError, match="selects no sample and there is no mimicry"):
        cohort.loss(logits, torch.zeros(4, dtype=torch.long), none, mimic_mask=none)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        cohort.loss(logits, torch.full((4,), 7))


# ---------------------------------------------------------------- shared mimicry loss
def test_warmup_ramp_is_the_sigmoid_ramp():
    from graphmutual.mutual import warmup_ramp

    assert warmup_ramp(3, 0) == 1.0
    assert warmup_ramp(0, 10) == pytest.approx(math.exp(-5))
    assert warmup_ramp(5, 10) == pytest.approx(math.exp(-5 * 0.25))
    assert warmup_ramp(10, 10) == warmup_ramp(50, 10) == 1.0
    assert warmup_ramp(-3, 10) == warmup_ramp(0, 10)


@pytest.mark.parametrize("method,kw", [("gml", {}), ("dml", {"divergence": "js"}),
                                       ("gml", {"entropy_mode": "target"})])
def test_cohort_loss_is_the_shared_mimicry_loss(method, kw):
    from graphmutual.mutual import MimicryLoss

    cohort = make_cohort(method, warmup=4, **kw)
    x, y = torch.randn(12, 5), torch.randint(0, 3, (12,))
    logits = cohort(x)
    mask = torch.arange(12) < 5
    got = cohort.loss(logits, y, mask, epoch=2)
    m = cohort.mimicry
    assert isinstance(m, MimicryLoss) and m.reduction == "sum"
    terms = MimicryLoss(weighting=cohort.weighting, divergence=cohort.divergence,
                        warmup=4, entropy=cohort.entropy, entropy_mode=cohort.entropy_mode)(
        logits, y, mask, epoch=2, alw=cohort.alw)
    assert torch.equal(got["mimic"], terms.mimic_total)
    assert torch.equal(got["entropy"], terms.entropy)
    assert torch.equal(got["alw"], terms.alw)
    # the sum convention: K students' terms add up, as their cross-entropies do
    q = cohort.targets(logits)
    ramp = math.exp(-5 * 0.5 ** 2)
    by_hand = sum(ramp * divergence(logits[k], q[k], cohort.divergence) for k in range(3))
    assert torch.allclose(got["mimic"], by_hand, atol=1e-6)
    assert got["mimic_scale"] == pytest.approx(ramp)


def test_cohort_settings_are_the_mimicry_settings():
    cohort = make_cohort("dml")
    cohort.mimic_weight = 0.5
    assert cohort.mimicry.mimic_weight == 0.5 and cohort.mimic_scale(0) == 0.5
    assert "MimicryLoss(weighting=uniform, divergence=kl" in repr(cohort.mimicry)


def test_peer_mask_silences_absent_teachers():
    from graphmutual.mutual import MimicryLoss

    torch.manual_seed(0)
    logits = torch.randn(3, 6, 4)
    present = torch.ones(6, 3, dtype=torch.bool)
    present[0, 2] = False          # peer 2 cannot teach on row 0
    present[1, 1:] = False         # on row 1 only peer 0 can: student 0 has no teacher
    loss = MimicryLoss(weighting="uniform", reduction="mean")
    pt = loss.targets(logits, peer_mask=present)
    soft = logits.softmax(-1)
    assert torch.allclose(pt.target[0, 0], soft[1, 0])                 # only peer 1 left
    assert torch.allclose(pt.target[1, 0], soft[0, 0])                 # peer 0 alone
    assert torch.allclose(pt.target[0, 3], (soft[1, 3] + soft[2, 3]) / 2)
    assert not pt.has_teacher[1, 0] and pt.has_teacher[1, 1:].all()
    terms = loss(logits, torch.zeros(6, dtype=torch.long), torch.ones(6, dtype=torch.bool),
                 peer_mask=present)
    w = pt.has_teacher[:, 0].float()
    own = divergence(logits[0], pt.target[0], sample_weight=w)
    assert torch.allclose(terms.mimic[0], own)
    assert torch.allclose(terms.mimic_total, torch.stack(terms.mimic).mean())
    with pytest.raises(ValueError, match="peer_mask must be"):
        loss.targets(logits, peer_mask=present.t())
    with pytest.raises(ValueError, match="needs the ALW module"):
        MimicryLoss(weighting="adaptive")(logits, torch.zeros(6, dtype=torch.long),
                                          torch.ones(6, dtype=torch.bool))


# ---------------------------------------------------------------- mimicry-only steps
def test_batch_without_labels_takes_a_mimicry_only_step():
    cohort = make_cohort("gml")
    x = torch.randn(8, 5)
    logits = cohort(x)
    none = torch.zeros(8, dtype=torch.bool)
    out = cohort.loss(logits, torch.full((8,), -1), none)  # unlabelled rows may hold -1
    assert out["ce"] == 0 and out["alw"] == 0 and out["ce/a"] == 0
    assert out["mimic"] > 0
    out["total"].backward()
    assert all(s.lin.weight.grad.abs().sum() > 0 for s in cohort.students)
    # an index mask selecting nothing behaves the same; mimicry on a subset only
    out2 = cohort.loss(logits, torch.zeros(8, dtype=torch.long),
                       torch.empty(0, dtype=torch.long), mimic_mask=torch.arange(8) < 3)
    assert out2["ce"] == 0 and out2["mimic"] > 0


def test_no_labels_and_no_mimicry_is_an_error():
    y = torch.zeros(5, dtype=torch.long)
    none = torch.zeros(5, dtype=torch.bool)
    for cohort, mimic_mask in [(make_cohort("gml"), none),
                               (make_cohort("gml"), torch.empty(0, dtype=torch.long)),
                               (make_cohort("independent"), None),
                               (make_cohort("dml", mimic_weight=0.0), None)]:
        with pytest.raises(ValueError, match="nothing to learn from"):
            cohort.loss(cohort(torch.randn(5, 5)), y, none, mimic_mask=mimic_mask)
    cohort = make_cohort("dml")
    with pytest.raises(ValueError, match="mimic_mask has 3 entries for 5 samples"):
        cohort.loss(cohort(torch.randn(5, 5)), y, None, mimic_mask=none[:3])


# ---------------------------------------------------------------- input validation
def gcn_cohort(**kw):
    from torch_geometric.nn.models import GCN

    torch.manual_seed(0)
    return MutualEnsemble([GCN(4, 8, 2, 3), GCN(4, 8, 2, 3)], method="dml", **kw)


def ring(n=6):
    src = torch.arange(n)
    return torch.stack([torch.cat([src, (src + 1) % n]), torch.cat([(src + 1) % n, src])])


@pytest.mark.parametrize("fused", ["auto", False])
def test_bad_inputs_give_clear_errors(fused):
    cohort = gcn_cohort(fused=fused)
    x, ei = torch.randn(6, 4), ring()
    cases = [
        (x.masked_fill(torch.eye(6, 4, dtype=torch.bool), float("nan")), ei,
         r"x holds 4 NaN/inf value\(s\) in 4 row\(s\).*nan_to_num"),
        (torch.where(x > 0, x, torch.tensor(float("inf"))), ei, "NaN/inf"),
        (x, ei.float(), r"integer node indices \(torch.long\), got torch.float32.*"
                        r"edge_index.long\(\)"),
        (x, torch.cat([ei, torch.tensor([[0], [6]])], 1),
         r"edge_index \(for x with 6 nodes\) has entries out of range: found \[0, 6\]"),
        (x, torch.cat([ei, torch.tensor([[-1], [0]])], 1), "out of range"),
        (x.double(), ei, r"x is torch.float64 but the students' parameters are "
                         r"torch.float32; convert the features with x.float\(\)"),
        (x, ei.t(), r"shape \[2, E\].*edge_index.t\(\)"),
    ]
    for xi, eii, match in cases:  # checked before either path runs (no kernel needed)
        with pytest.raises(ValueError, match=match):
            cohort(xi, eii)
    if fused is False:  # the fused kernels' first build is slow; test_fused covers them
        assert cohort(x, ei).shape == (2, 6, 3)
        assert cohort.double()(x.double(), ei).dtype == torch.float64


def test_inputs_are_checked_once_per_graph(monkeypatch):
    import graphmutual.mutual.inputs as inputs

    calls = []
    real = inputs.check_features
    monkeypatch.setattr(inputs, "check_features", lambda *a: calls.append(1) or real(*a))
    cohort = gcn_cohort(fused=False)
    x, ei = torch.randn(6, 4), ring()
    for _ in range(3):
        cohort(x, ei)
    assert len(calls) == 1
    cohort(x.clone(), ei)                      # a new tensor is checked
    assert len(calls) == 2
    x[0, 0] = float("nan")                     # so is an in-place change of a checked one
    with pytest.raises(ValueError, match="NaN"):
        cohort(x, ei)
    import copy
    import pickle
    assert copy.deepcopy(cohort)._guard._key is None
    pickle.loads(pickle.dumps(cohort))         # weak references never reach a pickle


# ---------------------------------------------------------------- graph-free students
@pytest.mark.parametrize("norm", [None, "batch_norm", "layer_norm", "graph_norm"])
def test_pyg_mlp_is_called_without_the_graph(norm):
    from torch_geometric.nn.models import GCN
    from torch_geometric.nn.models import MLP as PyGMLP

    torch.manual_seed(0)
    mlp = PyGMLP(in_channels=4, hidden_channels=8, out_channels=3, num_layers=2, norm=norm)
    cohort = MutualEnsemble([GCN(4, 8, 2, 3), mlp], method="gml")
    assert cohort.graph_free == [False, True]
    assert "graph_free=['MLP']" in repr(cohort)
    x, ei, y = torch.randn(6, 4), ring(), torch.tensor([0, 1, 2, 0, 1, 2])
    logits = cohort(x, ei)
    cohort.loss(logits, y)["total"].backward()
    assert mlp.lins[0].weight.grad.abs().sum() > 0
    cohort.eval()
    assert torch.equal(cohort(x, ei)[1], mlp(x))
    # a batch vector reaches the MLP's graph-wise norms; the graph never does
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    assert torch.equal(cohort(x, ei, batch=batch)[1], mlp(x, batch=batch))
    # the alternating schedule calls students one by one: the same rule applies
    cohort.train()
    opt = torch.optim.SGD(cohort.parameters(), lr=0.1)
    cohort.alternating_step((x, ei), y, None, opt)


def test_graph_free_detection_and_override():
    from graphmutual.mutual import is_graph_free

    class FeaturesOnly(nn.Module):
        def forward(self, x, scale: float = 1.0):
            return x * scale

    class TakesAdjacency(nn.Module):
        def forward(self, x, adj):
            return x

    class Marked(TakesAdjacency):
        graph_free = True

    assert is_graph_free(FeaturesOnly())
    assert not is_graph_free(TakesAdjacency())
    assert is_graph_free(Marked())
    assert not is_graph_free(Linear(5, 3, "a"))  # forward(x, edge_index=None)
    cohort = MutualEnsemble([Linear(5, 3, "a"), Linear(5, 3, "b")], method="dml",
                            graph_free=[True, None])
    assert cohort.graph_free == [True, False]
    with pytest.raises(ValueError, match="one entry per student"):
        MutualEnsemble([Linear(5, 3, "a"), Linear(5, 3, "b")], graph_free=[True])


def test_autocast_allows_other_input_dtypes():
    cohort = gcn_cohort(fused=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = cohort(torch.randn(6, 4).bfloat16(), ring())
    assert out.shape == (2, 6, 3)


def test_a_gnn_marked_graph_free_never_takes_the_fused_path():
    from torch_geometric.nn.models import GCN

    torch.manual_seed(0)
    students = [GCN(4, 8, 2, 3), GCN(4, 8, 2, 3)]
    cohort = MutualEnsemble(students, method="dml", graph_free=[False, True])
    assert cohort._fused is None  # the fused path would pass it the graph
    assert MutualEnsemble(students, method="dml")._fused is not None
    with pytest.raises(ValueError, match=r"fused=True cannot call the GNN students \['GCN'\]"):
        MutualEnsemble(students, method="dml", graph_free=[False, True], fused=True)
