"""
1. A GCN + GAT + GIN cohort on Cora, in your own PyG loop
=========================================================

**What you learn:** how to wrap three PyTorch Geometric models in a
:class:`~graphmutual.MutualEnsemble`, train them together with your own training loop, read
the named loss terms, and evaluate every student and the ensemble — the whole core API.

**Prerequisites:** PyTorch and PyG basics (``Data``, ``edge_index``, a training loop).
Read :doc:`/concepts` for the method. No download: Cora ships inside graphmutual.

**Time:** about a minute on one CPU core.
"""

# %%
# Setup
# -----
# We keep the run small and deterministic: one CPU thread, a fixed seed.
import time

import torch
from torch_geometric.nn.models import GAT, GCN, GIN

from graphmutual import MutualEnsemble
from graphmutual.data import load_dataset

torch.set_num_threads(1)
torch.manual_seed(0)

# %%
# The data
# --------
# ``load_dataset("cora")`` without a root returns the compact copy of Cora bundled with the
# package, wrapped in a :class:`~graphmutual.data.GraphDataset`. ``.data`` is an ordinary
# :class:`torch_geometric.data.Data` with the Planetoid public split as masks: 140 labelled
# training nodes, 500 validation and 1,000 test nodes.
dataset = load_dataset("cora")
data = dataset.data
print(dataset)
print(data)
print(f"labelled: {int(data.train_mask.sum())}, val: {int(data.val_mask.sum())}, "
      f"test: {int(data.test_mask.sum())}")

# %%
# The cohort
# ----------
# Any modules mapping ``(x, edge_index)`` to logits ``[N, C]`` can be students; here three
# stock PyG models. ``method="gml"`` turns on adaptive logit weighting (ALW) and entropy
# enhancement; ``"dml"`` would be plain Deep Mutual Learning, ``"independent"`` no exchange
# at all. A short ``warmup`` lets the students learn a little from the labels before they
# start listening to each other.
F_IN, C = dataset.num_features, dataset.num_classes
students = [
    GCN(F_IN, 64, num_layers=2, out_channels=C, dropout=0.5),
    GAT(F_IN, 64, num_layers=2, out_channels=C, heads=8, dropout=0.6),
    GIN(F_IN, 64, num_layers=2, out_channels=C, dropout=0.5),
]
cohort = MutualEnsemble(students, method="gml", warmup=10, names=["gcn", "gat", "gin"])
print(cohort)

# %%
# ALW has parameters of its own (a tiny MLP and per-student biases); one optimiser over
# ``cohort.parameters()`` trains the students and ALW together.
optimizer = torch.optim.Adam(cohort.parameters(), lr=0.01, weight_decay=5e-4)


@torch.no_grad()
def evaluate():
    """Accuracy of every student and of the two ensembles on val and test."""
    cohort.eval()
    logits = cohort(data.x, data.edge_index)  # [K, N, C]
    probs = {name: z.softmax(-1) for name, z in zip(cohort.names, logits)}
    probs["ensemble"] = cohort.predict(logits)  # mean of the students' probabilities
    probs["ensemble_alw"] = cohort.predict(logits, how="alw")  # ALW-weighted
    out = {}
    for name, p in probs.items():
        pred = p.argmax(-1)
        out[name] = tuple(float((pred[m] == data.y[m]).float().mean())
                          for m in (data.val_mask, data.test_mask))
    return out


# %%
# The training loop
# -----------------
# This is an ordinary PyG loop. The only additions are ``cohort.set_epoch`` (drives the
# warm-up of the mimicry weight) and ``cohort.loss``, which returns a dictionary of named
# terms: ``total`` to back-propagate, the sums ``ce``, ``mimic``, ``entropy``, ``alw`` and the
# per-student terms. Mimicry uses *all* nodes (the unlabelled ones are where peers teach
# most); cross-entropy uses the 140 labelled ones.
#
# We keep, for every member, the test accuracy at its best validation epoch — model
# selection on validation only.
EPOCHS = 60
best = {}  # member -> (best val, test at that epoch, epoch)
start = time.perf_counter()
for epoch in range(EPOCHS):
    cohort.train()
    cohort.set_epoch(epoch)
    optimizer.zero_grad()
    logits = cohort(data.x, data.edge_index)
    losses = cohort.loss(logits, data.y, data.train_mask)
    losses["total"].backward()
    optimizer.step()

    for name, (val, test) in evaluate().items():
        if name not in best or val > best[name][0]:
            best[name] = (val, test, epoch)
    if epoch % 10 == 0 or epoch == EPOCHS - 1:
        terms = "  ".join(f"{k} {losses[k].detach().item():.3f}"
                          for k in ("total", "ce", "mimic", "entropy", "alw"))
        print(f"epoch {epoch:3d}  {terms}  λ(t)={float(losses['mimic_scale']):.2f}")
print(f"{EPOCHS} epochs in {time.perf_counter() - start:.1f} s")

# %%
# ``ce`` falls as the students fit the labels; ``mimic`` is zero at first (the warm-up
# weight λ(t) starts near 0) and then measures how much the students still disagree with
# their peer targets. ``entropy`` is the (negative) confidence penalty, ``alw`` the loss
# that trains ALW: how well each weighted peer mixture predicts the labels.
#
# Results
# -------
print(f"{'member':<14}{'best val':>10}{'test':>8}{'epoch':>7}")
for name, (val, test, epoch) in best.items():
    print(f"{name:<14}{100 * val:>10.1f}{100 * test:>8.1f}{epoch:>7d}")

# %%
# What ALW learned
# ----------------
# ``cohort.peer_weights`` returns ALW's peer weights ``alpha[i, k, j]`` (how much student
# ``k`` listens to peer ``j`` on node ``i``) and temperatures ``tau[j, i]``. Averaged over
# nodes:
cohort.eval()
with torch.no_grad():
    logits = cohort(data.x, data.edge_index)
    alpha, tau = cohort.peer_weights(logits)
print("mean peer weight alpha[k <- j] (rows: student k, columns: peer j)")
for k, name in enumerate(cohort.names):
    row = "  ".join(f"{float(a):.2f}" for a in alpha[:, k, :].mean(0))
    print(f"  {name:<4} {row}")
for j, name in enumerate(cohort.names):
    print(f"temperature of {name}: mean {float(tau[j].mean()):.2f}, "
          f"range {float(tau[j].min()):.2f}-{float(tau[j].max()):.2f}")

# %%
# With only 60 epochs these numbers are a smoke test, not a benchmark: the published
# comparison (10 seeds, 200 epochs, independent vs. DML vs. GML) is on the
# :doc:`/benchmarks` page and is produced by ``graphmutual train --seeds 10``.
#
# Where next
# ----------
# * Train the same cohort from the command line with early stopping, checkpoints and
#   10 seeds: :doc:`/quickstart` and :doc:`tutorial_06_config_and_cli`.
# * Swap in your own students — GraphSAGE, an MLP, any ``nn.Module`` — and export the best
#   one: :doc:`tutorial_03_bring_your_own_student`.
# * Try ``method="dml"``, ``divergence="js"`` or ``entropy_mode="target"`` and compare; the
#   options are explained in :doc:`/concepts`.
