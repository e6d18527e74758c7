"""Accuracy parity: GML on ogbg-molhiv (2 x 64) trained with fused and with unfused graph
students, same seed, a few epochs; prints each member's best validation/test ROC-AUC.

Dropout masks differ between the two paths, so "equal" means "about equal". Wall times
printed here are not a speed measurement on a shared machine (see bench_graph_cohort.py).

Usage::

    python benchmarks/speed/check_graph_fused_training.py fused   --root /tmp/data
    python benchmarks/speed/check_graph_fused_training.py unfused --root /tmp/data
"""
from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["fused", "unfused"])
    p.add_argument("--root", required=True, help="dataset root holding ogb/ogbg_molhiv")
    p.add_argument("--epochs", type=int, default=2)
    a = p.parse_args()
    from graphmutual.nn import fused as fused_module
    from graphmutual.train.config import TrainConfig
    from graphmutual.train.trainer import Trainer

    torch.set_num_threads(1)
    if a.mode == "unfused":  # MutualEnsemble(fused="auto") then runs students one by one
        fused_module.FusedCohort.try_build = classmethod(lambda cls, students: None)
    cfg = TrainConfig(dataset="ogbg-molhiv", root=a.root, students=["gcn", "gat", "gin"],
                      method="gml", hidden=64, num_layers=2, epochs=a.epochs, seeds=[0],
                      progress=False, threads=1)
    t0 = time.time()
    res = Trainer(cfg).run_seed(0)
    print(json.dumps({"mode": a.mode, "wall_s": round(time.time() - t0, 1),
                      "members": res["members"]}, indent=1))


if __name__ == "__main__":
    main()
