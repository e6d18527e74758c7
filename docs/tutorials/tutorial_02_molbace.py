"""
2. Graph classification on ogbg-molbace with the OGB Evaluator
==============================================================

**What you learn:** how a cohort works on *graph-level* tasks — students that pool node
embeddings into one prediction per molecule, mini-batches from a PyG ``DataLoader``, the
official OGB scaffold split and ROC-AUC from OGB's ``Evaluator``.

**Prerequisites:** :doc:`tutorial_01_cora_cohort`. The ogbg-molbace files (0.1 MB) under a
dataset root: ``$GRAPHMUTUAL_DATA`` (or the repository's ``shared/datasets``). On a machine
with internet access, OGB downloads them into any empty root. Without the data this page
explains what it would do and skips training.

**Time:** about a minute on one CPU core (3 short epochs; real runs use 100).
"""

# %%
# Finding the data
# ----------------
# OGB writes a ``processed/`` folder next to ``raw/`` on first use, so we work on a
# temporary *copy* of the dataset folder and never write into a shared dataset root.
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch_geometric.loader import DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)


def find_dataset_root(*subdirs):
    """``$GRAPHMUTUAL_DATA``, else a ``shared/datasets`` next to or above this directory."""
    candidates = [os.environ.get("GRAPHMUTUAL_DATA")]
    here = Path.cwd().resolve()
    candidates += [p / "shared" / "datasets" for p in (here, *here.parents)]
    for c in candidates:
        if c and all((Path(c) / s).is_dir() for s in subdirs):
            return Path(c)
    return None


source = find_dataset_root("ogb/ogbg_molbace")
if source is None:
    print("ogbg-molbace not found: set GRAPHMUTUAL_DATA to a dataset root holding "
          "ogb/ogbg_molbace (or run where OGB can download it). Skipping training.")
    root = None
else:
    root = Path(tempfile.mkdtemp(prefix="graphmutual-molbace-"))
    shutil.copytree(source / "ogb" / "ogbg_molbace", root / "ogb" / "ogbg_molbace",
                    ignore=shutil.ignore_patterns("processed"))
    print(f"using a copy of {source / 'ogb' / 'ogbg_molbace'}")

# %%
# Loading the dataset and its split
# ---------------------------------
# :func:`graphmutual.data.load_dataset` wraps ``PygGraphPropPredDataset``: labels become a
# 2-class problem (``y`` in {0, 1}), and ``split(seed)`` returns OGB's official scaffold
# split — the same for every seed, as OGB prescribes. ``atom_features`` says the node
# features are OGB's integer atom descriptors, which need an ``AtomEncoder``.
if root is not None:
    from graphmutual.data import load_dataset

    dataset = load_dataset("ogbg-molbace", root, download=False)
    split = dataset.split(0)
    print(dataset)
    print(f"graphs: {dataset.num_graphs}, train/val/test: {split.sizes()}, "
          f"metric: {dataset.metric}, OGB name: {dataset.ogb_name}")

# %%
# Graph-level students
# --------------------
# :func:`graphmutual.train.build_students` builds, for a graph task, a
# :class:`~graphmutual.nn.GraphStudent` per name: ``AtomEncoder`` → node model (GIN, GCN) →
# mean pooling → MLP head. Each maps a batch to logits ``[num_graphs, 2]`` — the student
# contract is the same as for nodes, one row per sample. Small widths keep this page fast;
# the benchmark default is hidden 300, 5 layers.
if root is not None:
    from graphmutual import MutualEnsemble
    from graphmutual.train import build_students

    students = build_students(dataset, ["gin", "gcn"], hidden=64, num_layers=2)
    cohort = MutualEnsemble(students, method="gml", names=["gin", "gcn"])
    optimizer = torch.optim.Adam(cohort.parameters(), lr=1e-3)
    print(students[0])

    graphs = dataset.data
    loader = DataLoader(graphs[split.train], batch_size=64, shuffle=True)
    val_loader = DataLoader(graphs[split.val], batch_size=256)
    test_loader = DataLoader(graphs[split.test], batch_size=256)

# %%
# The OGB Evaluator
# -----------------
# OGB's :class:`ogb.graphproppred.Evaluator` checks the input shapes strictly and computes
# the official metric. For a binary task it expects ``y_true`` and ``y_pred`` of shape
# ``[num_graphs, 1]``; we pass the probability of class 1.
if root is not None:
    from ogb.graphproppred import Evaluator

    evaluator = Evaluator(dataset.ogb_name)
    print(evaluator.expected_input_format)

    @torch.no_grad()
    def evaluate(loader):
        cohort.eval()
        probs, ys = [], []
        for batch in loader:
            logits = cohort(batch.x, batch.edge_index, batch=batch.batch)  # [K, B, 2]
            per_member = [z.softmax(-1) for z in logits] + [cohort.predict(logits)]
            probs.append(torch.stack(per_member))  # [K + 1, B, 2]
            ys.append(batch.y)
        probs, y = torch.cat(probs, 1), torch.cat(ys)
        names = cohort.names + ["ensemble"]
        return {name: evaluator.eval({"y_true": y.view(-1, 1),
                                      "y_pred": p[:, 1:]})["rocauc"]
                for name, p in zip(names, probs)}

# %%
# Training
# --------
# The loop is the node-level loop with a ``DataLoader``. Every graph in the batch is
# labelled, so ``mask=None``; mimicry runs on the same graphs.
if root is not None:
    import time

    EPOCHS = 3
    for epoch in range(EPOCHS):
        start = time.perf_counter()
        cohort.train()
        cohort.set_epoch(epoch)
        total = 0.0
        for batch in loader:
            optimizer.zero_grad()
            logits = cohort(batch.x, batch.edge_index, batch=batch.batch)
            losses = cohort.loss(logits, batch.y)
            losses["total"].backward()
            optimizer.step()
            total += losses["total"].detach().item() * batch.num_graphs
        val = evaluate(val_loader)
        print(f"epoch {epoch}: loss {total / len(split.train):.3f}  val ROC-AUC "
              + "  ".join(f"{k} {v:.3f}" for k, v in val.items())
              + f"  ({time.perf_counter() - start:.1f} s)")
    test = evaluate(test_loader)
    print("test ROC-AUC after the last epoch: "
          + "  ".join(f"{k} {v:.3f}" for k, v in test.items()))
    shutil.rmtree(root, ignore_errors=True)

# %%
# Three epochs are far too few for a meaningful ROC-AUC; the point is the pipeline. For a
# real run with model selection on validation (test ROC-AUC at each member's best
# validation epoch), 10 seeds and checkpoints, use the trainer:
#
# .. code-block:: bash
#
#    graphmutual train --dataset ogbg-molbace --root "$GRAPHMUTUAL_DATA" \
#        --students gin,gcn --seeds 10
#
# Where next
# ----------
# * Deploy one student alone, or a graph-free MLP: :doc:`tutorial_03_bring_your_own_student`.
# * The same run from a configuration file: :doc:`tutorial_06_config_and_cli`.
# * Benchmark protocol and results: :doc:`/benchmarks`.
