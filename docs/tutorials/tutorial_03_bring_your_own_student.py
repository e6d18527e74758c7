"""
3. Bring your own student, and export the best one
==================================================

**What you learn:** that a student is *any* ``torch.nn.Module`` returning logits
``[N, C]``; how to mix a built-in GraphSAGE with a hand-written MLP that never sees the
graph (graph-free deployment), pick the best student on validation, export it with
:func:`graphmutual.train.export_student` and reload it — with graphmutual's
:func:`~graphmutual.train.load_student`, or with plain PyG.

**Prerequisites:** :doc:`tutorial_01_cora_cohort`.

**Time:** about 30 seconds on one CPU core.
"""

# %%
# The student contract
# --------------------
# A cohort calls every student with the same inputs — here ``(x, edge_index)`` — and
# stacks the outputs, so each student only has to return logits of the same shape. A model
# that does not need the graph simply ignores ``edge_index``:
import tempfile
from pathlib import Path

import torch
from torch import nn

from graphmutual import MutualEnsemble
from graphmutual.data import load_dataset
from graphmutual.nn import build_student
from graphmutual.train import export_student, load_student

torch.set_num_threads(1)
torch.manual_seed(0)


class FeatureMLP(nn.Module):
    """A graph-free student: two linear layers on the node features only."""

    name = "mlp"  # the cohort uses this as the display name

    def __init__(self, in_channels: int, hidden: int, out_channels: int, dropout: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_channels, hidden), nn.ReLU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, out_channels))

    def forward(self, x, edge_index=None):  # edge_index is accepted and ignored
        return self.net(x)


# %%
# The cohort
# ----------
# :func:`graphmutual.nn.build_student` builds a built-in student by name (``gcn``, ``gat``,
# ``gin``, ``mlp``, ``sage``) with PyG's constructor conventions and records its
# constructor arguments, so that an exported copy can be rebuilt later. We pair a
# GraphSAGE with our MLP: the MLP learns from the labels *and* from GraphSAGE's
# graph-aware predictions on all nodes — knowledge it could not get from features alone.
data = load_dataset("cora").data
sage = build_student("sage", in_channels=1433, out_channels=7, hidden_channels=64)
mlp = FeatureMLP(1433, 64, 7)
cohort = MutualEnsemble([sage, mlp], method="dml", temperature=2.0)
print(cohort.names, sage)

# %%
# Training, keeping the best weights of each student
# --------------------------------------------------
optimizer = torch.optim.Adam(cohort.parameters(), lr=0.01, weight_decay=5e-4)
best = {name: (-1.0, None, None) for name in cohort.names}  # val, test, state_dict

for _epoch in range(60):
    cohort.train()
    optimizer.zero_grad()
    logits = cohort(data.x, data.edge_index)
    cohort.loss(logits, data.y, data.train_mask)["total"].backward()
    optimizer.step()

    cohort.eval()
    with torch.no_grad():
        pred = cohort(data.x, data.edge_index).argmax(-1)  # [K, N]
    for k, name in enumerate(cohort.names):
        val = float((pred[k][data.val_mask] == data.y[data.val_mask]).float().mean())
        test = float((pred[k][data.test_mask] == data.y[data.test_mask]).float().mean())
        if val > best[name][0]:
            state = {n: t.clone() for n, t in cohort.students[k].state_dict().items()}
            best[name] = (val, test, state)

for name, (val, test, _) in best.items():
    print(f"{name:<5} best val {100 * val:.1f}  test at that epoch {100 * test:.1f}")

# %%
# For comparison: the same MLP trained on the labels alone (no peers) — the gap is what
# mutual learning with a graph-aware peer buys a graph-free model.
torch.manual_seed(0)
alone = FeatureMLP(1433, 64, 7)
opt = torch.optim.Adam(alone.parameters(), lr=0.01, weight_decay=5e-4)
best_alone = (-1.0, 0.0)
for _epoch in range(60):
    alone.train()
    opt.zero_grad()
    loss = nn.functional.cross_entropy(alone(data.x)[data.train_mask], data.y[data.train_mask])
    loss.backward()
    opt.step()
    alone.eval()
    with torch.no_grad():
        pred = alone(data.x).argmax(-1)
    val = float((pred[data.val_mask] == data.y[data.val_mask]).float().mean())
    if val > best_alone[0]:
        best_alone = (val, float((pred[data.test_mask] == data.y[data.test_mask]).float().mean()))
print(f"MLP alone: best val {100 * best_alone[0]:.1f}  test {100 * best_alone[1]:.1f}")

# %%
# Exporting
# ---------
# :func:`~graphmutual.train.export_student` writes the class, the constructor arguments,
# the weights and any metadata as plain data (loadable with ``weights_only=True``). For a
# built-in student the recorded class is the **PyG base class**, so the file does not depend
# on graphmutual at all.
out = Path(tempfile.mkdtemp(prefix="graphmutual-export-"))
for k, name in enumerate(cohort.names):
    cohort.students[k].load_state_dict(best[name][2])
    export_student(cohort.students[k], out / f"{name}.pt",
                   meta={"val_acc": best[name][0], "test_acc": best[name][1]})
best_name = max(best, key=lambda n: best[n][0])
print("exported:", sorted(p.name for p in out.iterdir()), "- best on validation:", best_name)

# %%
# Reloading
# ---------
# With graphmutual, :func:`~graphmutual.train.load_student` rebuilds a built-in student from
# the file alone:
sage_again = load_student(out / "sage.pt")
print(type(sage_again).__module__, type(sage_again).__name__)

# %%
# Without graphmutual, plain PyG is enough:
import torch_geometric  # noqa: E402

ckpt = torch.load(out / "sage.pt", weights_only=True)
print(ckpt["class"], ckpt["kwargs"], ckpt["meta"])
plain = torch_geometric.nn.models.GraphSAGE(**ckpt["kwargs"])
plain.load_state_dict(ckpt["state_dict"])

# %%
# A custom module has no recorded constructor arguments, so you build it yourself and pass
# it in; ``load_student`` fills in the weights:
mlp_again = load_student(out / "mlp.pt", model=FeatureMLP(1433, 64, 7))

# %%
# Graph-free inference
# --------------------
# The MLP needs only node features — no edges, no neighbour sampling — which is what makes
# it cheap to deploy (e.g. for new nodes that arrive without links).
plain.eval()
mlp_again.eval()
with torch.no_grad():
    acc_sage = (plain(data.x, data.edge_index).argmax(-1) == data.y)[data.test_mask].float().mean()
    acc_mlp = (mlp_again(data.x).argmax(-1) == data.y)[data.test_mask].float().mean()
print(f"reloaded GraphSAGE test accuracy {100 * float(acc_sage):.1f}")
print(f"reloaded MLP (features only) test accuracy {100 * float(acc_mlp):.1f}")

# %%
# Where next
# ----------
# * ``graphmutual train --students sage,mlp`` does all of this (early stopping, seeds, and
#   ``best_student.pt`` in the run directory): :doc:`tutorial_06_config_and_cli`.
# * Students for graph-level tasks (pooling heads): :doc:`tutorial_02_molbace`.
# * API details: :func:`graphmutual.nn.build_student`, :class:`graphmutual.nn.GraphStudent`,
#   :func:`graphmutual.train.export_student`.
