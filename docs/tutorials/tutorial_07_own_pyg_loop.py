"""
7. graphmutual in your own PyG loop
===================================

**What you learn:** how to put graphmutual into a training script you already have: a
cohort of *stock* PyG models, including a graph-free
:class:`torch_geometric.nn.models.MLP` with layer norm; the settings ``graphmutual train``
uses, from ``graphmutual.defaults_for``; training on sampled subgraphs, where some
batches hold no labelled node (a mimicry-only step); and exporting the best node student
and a graph-level student, reloading each in one call, with a check that the reloaded
model predicts exactly what the trained one did.

**Prerequisites:** :doc:`tutorial_01_cora_cohort` (the core API). Tutorial 3 shows a
hand-written student; here every student is a PyG model.

**Time:** about 40 seconds on one CPU core.
"""

# %%
# Setup
# -----
import random
import tempfile
import time
from pathlib import Path

import torch
import torch_geometric
from torch_geometric.loader import DataLoader, NodeLoader
from torch_geometric.nn.models import GCN, GIN, MLP
from torch_geometric.transforms import NormalizeFeatures

from graphmutual import MutualEnsemble, defaults_for
from graphmutual.data import load_dataset
from graphmutual.data.sampling import NeighborSampler
from graphmutual.nn import GraphStudent
from graphmutual.train import (
    TrainConfig,
    export_student,
    load_student,
    load_transform,
    preprocess_steps,
    resolve_config,
)

torch.set_num_threads(1)
torch.manual_seed(0)
random.seed(0)
start = time.process_time()

# %%
# The defaults of ``graphmutual train``, in your loop
# ---------------------------------------------------
# ``graphmutual.defaults_for`` (:func:`graphmutual.train.defaults_for`) returns
# the defaults the command line uses for a dataset, by registered name or for a loaded
# dataset. For Cora, a Planetoid dataset: learning rate 0.01, weight decay 5e-4, 200
# epochs, width 64, 2 layers, a 50-epoch mimicry warm-up, row-normalised features, and for
# GML the balanced forward/reverse KL divergence. The API reference of
# :mod:`graphmutual.train.defaults` gives the reason for each.
dataset = load_dataset("cora")  # the copy bundled with graphmutual
d = defaults_for(dataset)
print(d)
print("MutualEnsemble kwargs:", d.ensemble_kwargs("gml"))

# %%
# ``MutualEnsemble``'s own defaults are the plain ones (KL, no warm-up); passing
# ``**d.ensemble_kwargs("gml")`` gives the CLI's. To see that it really is the CLI's
# setting, resolve the configuration of ``graphmutual train --dataset cora`` the way the
# trainer does (:func:`~graphmutual.train.resolve_config`) and compare:
cli = resolve_config(TrainConfig(dataset="cora"), dataset)
ours = d.ensemble_kwargs("gml")
print("graphmutual train --dataset cora uses:",
      {k: v for k, v in cli.ensemble_kwargs().items() if k in ours})
assert all(cli.ensemble_kwargs()[k] == v for k, v in ours.items())
assert (cli.lr, cli.weight_decay, cli.epochs, cli.hidden, cli.num_layers) == (
    d.lr, d.weight_decay, d.epochs, d.hidden, d.num_layers)

# %%
# The command line row-normalises Planetoid features (``d.normalize_features``); we do the
# same with PyG's transform, so the students see the inputs ``graphmutual train`` gives
# them.
raw = dataset.data
data = NormalizeFeatures()(raw.clone()) if d.normalize_features else raw.clone()
F_IN, C = dataset.num_features, dataset.num_classes

# %%
# Stock PyG students, one of them graph-free
# ------------------------------------------
# A GCN and an MLP, built with PyG's own constructors at the CLI's width, depth and
# dropout (0.5, as ``graphmutual train`` builds them): the GCN sees the graph, the MLP only
# the node features, and mutual learning passes the GCN's graph knowledge to the MLP. The
# MLP uses ``norm="layer_norm"``. The cohort detects that it takes no graph (PyG's
# ``MLP``, or any module whose ``forward`` has no ``edge_index`` parameter) and calls it as
# ``mlp(x)``: its second argument is ``batch``, and feeding it ``edge_index`` would break
# layer norm. Pass ``graph_free=[...]`` to decide yourself.


def make_students():
    return [
        GCN(F_IN, d.hidden, d.num_layers, C, dropout=0.5),
        MLP(in_channels=F_IN, hidden_channels=d.hidden, out_channels=C,
            num_layers=d.num_layers, dropout=0.5, norm="layer_norm"),
    ]


NAMES = ["gcn", "mlp"]
cohort = MutualEnsemble(make_students(), names=NAMES, **d.ensemble_kwargs("gml"))
print(cohort)
print("called without the graph:", [n for n, g in zip(cohort.names, cohort.graph_free) if g])

# %%
# An ordinary full-batch PyG loop
# -------------------------------
# Four lines are graphmutual's: the cohort, ``set_epoch`` (drives the warm-up),
# ``cohort.loss`` and reading one row of the ``[K, N, C]`` logits per student. We keep
# each student's weights at its best validation epoch, as ``graphmutual train`` does.
optimizer = torch.optim.Adam(cohort.parameters(), lr=d.lr, weight_decay=d.weight_decay)


@torch.no_grad()
def accuracies(logits, mask):
    """Accuracy of each student's logits ``[K, N, C]`` on ``mask``."""
    pred = logits.argmax(-1)
    return [float((p[mask] == data.y[mask]).float().mean()) for p in pred]


best = {n: (-1.0, 0.0, None) for n in NAMES}  # val, test, weights
for epoch in range(d.epochs):
    cohort.train()
    cohort.set_epoch(epoch)
    optimizer.zero_grad()
    logits = cohort(data.x, data.edge_index)  # [K, N, C]
    cohort.loss(logits, data.y, data.train_mask)["total"].backward()
    optimizer.step()

    cohort.eval()
    with torch.no_grad():
        logits = cohort(data.x, data.edge_index)
    for k, (name, val, test) in enumerate(zip(
            NAMES, accuracies(logits, data.val_mask), accuracies(logits, data.test_mask))):
        if val > best[name][0]:
            weights = {p: t.clone() for p, t in cohort.students[k].state_dict().items()}
            best[name] = (val, test, weights)

for name, (val, test, _) in best.items():
    print(f"{name:<5} best val {100 * val:.1f}  test at that epoch {100 * test:.1f}")

# %%
# For comparison, the same MLP trained on the labels alone, with the same loop and model
# selection: the gap is what its graph-aware peer taught it. The setting is transductive:
# the MLP mimics the GCN on every node, the test nodes included (their features, never
# their labels); on nodes it never saw in training, expect a smaller gain.
torch.manual_seed(0)
alone = make_students()[1]
opt_alone = torch.optim.Adam(alone.parameters(), lr=d.lr, weight_decay=d.weight_decay)
best_alone = (-1.0, 0.0)
for _epoch in range(d.epochs):
    alone.train()
    opt_alone.zero_grad()
    out = alone(data.x)
    torch.nn.functional.cross_entropy(out[data.train_mask], data.y[data.train_mask]).backward()
    opt_alone.step()
    alone.eval()
    with torch.no_grad():
        out = alone(data.x)[None]
    val, test = accuracies(out, data.val_mask)[0], accuracies(out, data.test_mask)[0]
    if val > best_alone[0]:
        best_alone = (val, test)
print(f"mlp alone best val {100 * best_alone[0]:.1f}  test at that epoch "
      f"{100 * best_alone[1]:.1f}")

# %%
# Mini-batches, and batches without a labelled node
# -------------------------------------------------
# On a large graph you train on sampled subgraphs. graphmutual's
# :class:`~graphmutual.data.sampling.NeighborSampler` plugs into PyG's
# :class:`~torch_geometric.loader.NodeLoader` the way PyG's own sampler does inside
# ``NeighborLoader``, and needs neither ``pyg-lib`` nor ``torch-sparse``. Each batch holds 64
# *seed* nodes drawn from all nodes, first, and up to 10 + 10x10 sampled neighbours.
# Only 140 of Cora's 2,708 nodes carry a training label, so about one batch in thirty has
# no labelled seed at all. ``cohort.loss`` then takes a *mimicry-only* step: no
# cross-entropy, the students learn from each other's predictions on the seeds (the warm-up
# ramp starts at :math:`e^{-5}`, never at 0). Only a cohort without mimicry
# (``method="independent"``) has nothing to learn from such a batch: ``cohort.loss`` raises
# a ``ValueError`` there, so skip the batch yourself.
loader = NodeLoader(data, node_sampler=NeighborSampler(data, [10, 10], seed=0),
                    batch_size=64, shuffle=True)

torch.manual_seed(0)
# one epoch here is ~43 optimiser steps, not one: a shorter warm-up (in epochs) fits
sampled = MutualEnsemble(make_students(), names=NAMES,
                         **{**d.ensemble_kwargs("gml"), "warmup": 3})
optimizer = torch.optim.Adam(sampled.parameters(), lr=d.lr, weight_decay=d.weight_decay)
ce_alone = []  # the cross-entropy of the mimicry-only steps
best_sampled = {n: (-1.0, 0.0) for n in NAMES}  # val, test
for epoch in range(8):
    sampled.train()
    sampled.set_epoch(epoch)
    for batch in loader:
        seed = torch.zeros(batch.num_nodes, dtype=torch.bool)
        seed[:batch.batch_size] = True
        labelled = seed & batch.train_mask  # the loss sees labels of seeds only
        optimizer.zero_grad()
        logits = sampled(batch.x, batch.edge_index)
        losses = sampled.loss(logits, batch.y, labelled, mimic_mask=seed)
        losses["total"].backward()
        optimizer.step()
        if not labelled.any():
            ce_alone.append(float(losses["ce"].detach()))

    sampled.eval()  # evaluation needs no sampling on a graph this small
    with torch.no_grad():
        logits = sampled(data.x, data.edge_index)
    for name, val, test in zip(NAMES, accuracies(logits, data.val_mask),
                               accuracies(logits, data.test_mask)):
        if val > best_sampled[name][0]:
            best_sampled[name] = (val, test)
print(f"{len(ce_alone)} mimicry-only steps, cross-entropy on them: {set(ce_alone)}")
for name, (val, test) in best_sampled.items():
    print(f"{name:<5} sampled training: best val {100 * val:.1f}  test {100 * test:.1f}")

# %%
# Eight short epochs with about three labelled seeds per batch are not the tuned full-batch
# run above, and the numbers are lower; the loop, not the score, is the point here.

# %%
# Export and reload a node student
# --------------------------------
# :func:`~graphmutual.train.export_student` records a stock PyG model as its PyG class
# with its constructor arguments (read back from the model), its weights, and the
# preprocessing its inputs went through: :func:`~graphmutual.train.preprocess_steps`
# lists ``NormalizeFeatures`` here, as in a ``best_student.pt`` written by
# ``graphmutual train``.
out = Path(tempfile.mkdtemp(prefix="graphmutual-tutorial7-"))
steps = preprocess_steps(dataset, normalize_features=d.normalize_features)
for k, name in enumerate(NAMES):
    cohort.students[k].load_state_dict(best[name][2])
    export_student(cohort.students[k], out / f"{name}.pt", preprocess=steps,
                   meta={"dataset": "cora", "val_acc": best[name][0]})
best_name = max(best, key=lambda n: best[n][0])
print("exported", sorted(p.name for p in out.iterdir()), "- best on validation:", best_name)

# %%
# Reloading takes one call for the model and one for its preprocessing, applied to the
# *raw* data. The reloaded student predicts exactly what the trained one did:
cohort.eval()
with torch.no_grad():  # call_student passes the graph only to students that take one
    trained_logits = cohort.call_student(NAMES.index(best_name), data.x, data.edge_index)

model = load_student(out / f"{best_name}.pt").eval()
prepared = load_transform(out / f"{best_name}.pt")(raw.clone())
with torch.no_grad():
    reloaded_logits = (model(prepared.x) if isinstance(model, MLP)
                       else model(prepared.x, prepared.edge_index))
assert torch.allclose(reloaded_logits, trained_logits, atol=1e-6)
print(f"reloaded {type(model).__name__}: same predictions, test accuracy "
      f"{100 * accuracies(reloaded_logits[None], data.test_mask)[0]:.1f}")

# %%
# Plain PyG can do the same without graphmutual; the graph-free MLP (layer norm included)
# needs only node features at inference:
ckpt = torch.load(out / "mlp.pt", weights_only=True)
print(ckpt["class"], ckpt["kwargs"], ckpt["preprocess"])
mlp = getattr(torch_geometric.nn.models, ckpt["class"].rsplit(".", 1)[1])(**ckpt["kwargs"])
mlp.load_state_dict(ckpt["state_dict"])
mlp.eval()
with torch.no_grad():
    same = torch.equal(mlp(NormalizeFeatures()(raw.clone()).x),
                       cohort.students[NAMES.index("mlp")](data.x))
print("plain-PyG MLP predicts the same:", same)
assert same

# %%
# Graph-level students
# --------------------
# For graph classification a :class:`~graphmutual.nn.GraphStudent` puts a pooling readout
# and a small head on a node-level model. We train a cohort of two on synthetic graphs
# (PyG's :class:`~torch_geometric.datasets.FakeDataset`: the class shifts the node
# features, so the task is easy; the file, not the score, is the point) with the
# graph-task defaults, which ``defaults_for`` reads from the registry without loading any
# data (``"mutag"``: lr 0.001, 3 layers, batch 32, mean pooling, a 10-epoch warm-up).
g = defaults_for("mutag")
print(g)
graphs = torch_geometric.datasets.FakeDataset(num_graphs=192, avg_num_nodes=16,
                                              avg_degree=3, num_channels=8, num_classes=2,
                                              task="graph")
train_graphs, val_graphs = graphs[:128], graphs[128:]


def graph_student(node_cls):
    node_model = node_cls(8, g.hidden, g.num_layers, dropout=0.5)  # node embeddings [N, H]
    return GraphStudent(node_model, g.hidden, 2, pool=g.pool)


gcohort = MutualEnsemble([graph_student(GIN), graph_student(GCN)], names=["gin", "gcn"],
                         **g.ensemble_kwargs("gml"))
optimizer = torch.optim.Adam(gcohort.parameters(), lr=g.lr, weight_decay=g.weight_decay)
for epoch in range(15):
    gcohort.train()
    gcohort.set_epoch(epoch)
    for batch in DataLoader(train_graphs, batch_size=g.batch_size, shuffle=True):
        optimizer.zero_grad()
        logits = gcohort(batch.x, batch.edge_index, batch.batch)  # [K, graphs, C]
        gcohort.loss(logits, batch.y)["total"].backward()
        optimizer.step()


@torch.no_grad()
def graph_logits(model, loader):
    model.eval()
    return torch.cat([model(b.x, b.edge_index, b.batch) for b in loader])


val_loader = DataLoader(val_graphs, batch_size=64)
y_val = torch.cat([b.y for b in val_loader])
gin = gcohort.students[0]
trained_logits = graph_logits(gin, val_loader)
print(f"GIN graph student validation accuracy "
      f"{100 * float((trained_logits.argmax(-1) == y_val).float().mean()):.1f}")

# %%
# Export, then reload the whole graph student -- node model, pooling, head -- in one call:
export_student(gin, out / "graph_gin.pt", meta={"dataset": "FakeDataset"})
gin_again = load_student(out / "graph_gin.pt")
assert torch.equal(graph_logits(gin_again, val_loader), trained_logits)
print("reloaded", gin_again, "- same predictions")

# %%
# What plain PyG can rebuild: the file's ``children["node_model"]`` is a PyG model
# described like the node students above; the readout is PyG's ``global_mean_pool`` and
# the head ``Linear -> ReLU -> Linear`` (weights ``head.*``). Only the composition is
# graphmutual's (see :mod:`graphmutual.train.export`).
ckpt = torch.load(out / "graph_gin.pt", weights_only=True)
print(ckpt["class"], ckpt["kwargs"])
print("node model:", ckpt["children"]["node_model"]["class"],
      ckpt["children"]["node_model"]["kwargs"])
print(f"total {time.process_time() - start:.0f} s")

# %%
# Where next
# ----------
# * The same run from the command line, with early stopping, seeds and
#   ``best_student.pt``: ``graphmutual train --dataset cora --students gcn,sage,mlp``
#   (:doc:`tutorial_06_config_and_cli`).
# * Real graph-classification data and OGB molecules: :doc:`tutorial_02_molbace`.
# * API details: :func:`graphmutual.train.defaults_for`, :class:`graphmutual.MutualEnsemble`
#   (``graph_free``, mimicry-only steps in ``loss``), :func:`graphmutual.train.load_student`.
