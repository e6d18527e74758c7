"""
6. Configuration files and the command line
===========================================

**What you learn:** how to describe a run in a YAML file, launch it with
``graphmutual train --config``, override settings on the command line, read what a run
leaves behind (``results.json``, the per-epoch log, ``best_student.pt``), resume a run, and
what an input error looks like. Everything runs through :func:`graphmutual.cli.main`, which
takes the same arguments as the ``graphmutual`` command.

**Prerequisites:** :doc:`/quickstart`.

**Time:** about 30 seconds on one CPU core (2 seeds × 20 epochs).
"""

# %%
# A configuration file
# --------------------
# The keys are the fields of :class:`graphmutual.train.TrainConfig` (``-`` and ``_`` are
# interchangeable). Anything left out takes its default; ``None`` values (``epochs``,
# ``lr``, ``hidden``…) mean "the task's default" (node tasks: 200 epochs, lr 0.01,
# hidden 64).
import contextlib
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import torch

from graphmutual.cli import main
from graphmutual.train import TrainConfig

torch.set_num_threads(1)

work = Path(tempfile.mkdtemp(prefix="graphmutual-cli-"))
config = work / "run.yaml"
config.write_text("""\
# bundled Cora (no root needed), a GCN and a graph-free MLP student
dataset: cora
students: [gcn, mlp]
method: gml            # independent | dml | gml
divergence: js         # kl | reverse_kl | js | renyi | balanced
temperature: 2.0
entropy: 0.05          # entropy-enhancement weight beta
warmup: 1
epochs: 20
hidden: 32
seeds: 2               # seeds 0 and 1; "0,3,7" would pick seeds
""")
print(config.read_text())
print("valid keys:", ", ".join(f.name for f in dataclasses.fields(TrainConfig)))

# %%
# Running it
# ----------
# ``main([...])`` is ``graphmutual train --config run.yaml ...``. Command-line options win
# over the file: here ``--method dml`` replaces the file's ``gml``. ``--no-progress`` hides
# the progress bar (it is hidden anyway when the output is not a terminal).
out = work / "run"
status = main(["train", "--config", str(config), "--method", "dml",
               "--output", str(out), "--no-progress"])
print("exit status:", status)

# %%
# The table has one row per *member* — each student and the ensemble — with the best
# validation accuracy and the test accuracy at that epoch, as mean ± standard deviation
# over the two seeds. See :doc:`/quickstart` for how to read it.
#
# What the run leaves behind
# --------------------------
print(sorted(p.name for p in out.iterdir()))
results = json.loads((out / "results.json").read_text())
print("method:", results["config"]["method"], "| divergence:", results["config"]["divergence"],
      "| seeds:", results["seeds"], "| epochs run:", results["epochs_run"])
for member, r in results["members"].items():
    print(f"{member:<10} test per seed {[round(t, 3) for t in r['test']]}, "
          f"best epochs {r['best_epoch']}")

# %%
# The per-epoch log has every loss term and metric (and, with ALW, its temperatures and
# peer weights), one row per epoch:
import pandas as pd  # noqa: E402

log = pd.read_csv(out / "log_seed0.csv")
print(log[["epoch", "loss/total", "loss/ce", "loss/mimic", "val/gcn", "val/mlp"]]
      .iloc[::4].round(3).to_string(index=False))

# %%
# ``best_student.pt`` is the best student on validation, reloadable by plain PyG (see
# :doc:`tutorial_03_bring_your_own_student`):
ckpt = torch.load(out / "best_student.pt", weights_only=True)
print(ckpt["class"], ckpt["meta"])

# %%
# Resuming
# --------
# Checkpoints are written atomically every ``checkpoint_every`` epochs (and at the end),
# with the optimiser and all random-number-generator states. ``--resume`` continues a
# killed run from them to the same result as an uninterrupted run on the CPU; on a finished
# run it has nothing left to train and just reports the stored results:
status = main(["train", "--config", str(config), "--method", "dml",
               "--output", str(out), "--no-progress", "--resume"])

# %%
# Errors
# ------
# Bad input gives one ``error:`` line on stderr and exit status 2 — no traceback (add
# ``--debug`` for one). A typo in a dataset name even gets a suggestion:
with contextlib.redirect_stderr(sys.stdout):
    print("exit status:", main(["train", "--dataset", "coraa", "--no-progress"]))
    bad = work / "bad.yaml"
    bad.write_text("epochz: 3\n")
    print("exit status:", main(["train", "--config", str(bad)]))

# %%
# And ``graphmutual info`` reports versions and kernel backends:
main(["info"])

# %%
# Where next
# ----------
# * Every option of every sub-command: :doc:`/cli`.
# * Other datasets: ``--dataset citeseer --root DATA`` (see :doc:`/installation`), and graph
#   classification: :doc:`tutorial_02_molbace`.
# * The same training inside your own loop: :doc:`tutorial_01_cora_cohort`.
