r"""One real ogbg-molhiv epoch through the :class:`~graphmutual.train.Trainer`, before and after
the graph-path speed changes, and whether the two runs are the same run.

For each model (one GIN, ``--method independent``; the GCN+GAT+GIN GML cohort) the trainer
runs seed 0 for ``--epochs`` epochs (2 layers x 64, batch 32, one torch thread) twice:

* ``before``: the training path as it was: PyG's ``DataLoader`` for the training and
  evaluation batches (``GraphBatchTask.slicing = False``) and PyTorch's default Adam;
* ``after``: the trainer as it is (:class:`~graphmutual.data.SliceLoader`, Adam with
  ``foreach``).

Reported per run: the process CPU seconds of the training part of an epoch and of the
evaluation (validation + test), the wall seconds the trainer records, and whether the
``after`` run's history (every loss term and every validation/test score of every epoch)
equals the ``before`` run's exactly. Each run's record is written to the json as soon as it
ends, so a partial run is still reportable.

Usage::

    python benchmarks/speed/time_graph_epoch.py --root /tmp/data     # root/ogb/ogbg_molhiv
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"

MODELS = {"gin": dict(students=["gin"], method="independent"),
          "cohort": dict(students=["gcn", "gat", "gin"], method="gml")}


def run(ds, root: str, model: str, variant: str, epochs: int) -> Dict:
    """Train ``model`` with ``variant`` (``before`` / ``after``); return its record."""
    import graphmutual.train.trainer as trainer_mod
    from graphmutual.train import TrainConfig, Trainer

    cfg = TrainConfig(dataset="ogbg-molhiv", root=root, hidden=64, num_layers=2, epochs=epochs,
                      seeds=[0], progress=False, **MODELS[model])
    trainer = Trainer(cfg, dataset=ds)
    task = trainer.task
    cpu = {"train": [], "evaluate": []}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            c = time.process_time()
            out = fn(*args, **kwargs)
            cpu[name].append(time.process_time() - c)
            return out
        return wrapper

    task.train_epoch = timed("train", task.train_epoch)
    task.evaluate = timed("evaluate", task.evaluate)
    make_optimizer = trainer_mod.make_optimizer
    if variant == "before":
        task.slicing = False
        trainer_mod.make_optimizer = lambda m, lr, wd=0.0: torch.optim.Adam(
            m.parameters(), lr=lr, weight_decay=wd)
    try:
        seed_run = trainer.fit_seed(0)
    finally:
        trainer_mod.make_optimizer = make_optimizer
    return {"model": model, "variant": variant, "epochs": epochs,
            "train_cpu_s": cpu["train"], "evaluate_cpu_s": cpu["evaluate"],
            "train_wall_s": seed_run.result["seconds_per_epoch"],
            "history": seed_run.history}


def main(argv: List[str] | None = None) -> Dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True, help="dataset root holding ogb/ogbg_molhiv")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--models", default="gin,cohort")
    p.add_argument("--out", default=str(RESULTS / "graph_cohort_cpu-epoch.json"))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    from graphmutual.bench.environment import environment
    from graphmutual.data import load_dataset

    ds = load_dataset("ogbg-molhiv", a.root)
    cmd = "python benchmarks/speed/time_graph_epoch.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    result: Dict = {"command": cmd.strip(), "runs": [], "same_run": {}}
    out = Path(a.out)
    for model in a.models.split(","):
        records = {}
        for variant in ("before", "after"):
            rec = run(ds, a.root, model, variant, a.epochs)
            records[variant] = rec
            result["runs"].append({k: v for k, v in rec.items() if k != "history"})
            print(json.dumps(result["runs"][-1]), flush=True)
            result["environment"] = environment()
            out.write_text(json.dumps(result, indent=1) + "\n")
        result["same_run"][model] = records["before"]["history"] == records["after"]["history"]
        print(model, "same run:", result["same_run"][model], flush=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
