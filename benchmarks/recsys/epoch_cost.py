"""Seconds per training epoch, with and without the symmetric-SpMM backward shortcut.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/recsys/epoch_cost.py --root ../shared/datasets

``shortcut off`` sets ``model.adj_symmetric = False``: the backward of every propagation
layer then goes through autograd's ``csr @ dense`` backward (which transposes the CSR matrix
each call), as before the change. Same seed, data and batches in both modes. Writes
``benchmarks/results/recsys_epoch_cost.{md,json}`` with the command, the hardware and the load.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from graphmutual.bench.environment import environment, load_average, report_header
from graphmutual.recsys.data import load_dataset
from graphmutual.recsys.model import build_model
from graphmutual.recsys.train import RecTrainConfig, fit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_recsys import RESULTS, write  # noqa: E402

CASES = [("lastfm-2k", "LightGCN", "lightgcn", None, []),
         ("lastfm-2k", "ours (id, tags)", "mutual", ["id", "tags"], ["tags"]),
         ("lfm2k-multimodal", "LightGCN", "lightgcn", None, []),
         ("lfm2k-multimodal", "ours (whisper, text)", "mutual", ["whisper", "text"],
          ["whisper", "text"])]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=None)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out-dir", default=str(RESULTS))
    args = p.parse_args()
    torch.set_num_threads(1)
    load_start = load_average()
    rows = []
    for dataset, name, kind, branches, mods in CASES:
        data = load_dataset(dataset, args.root, seed=0, modalities=mods)
        for shortcut in (True, False):
            model = build_model(kind, data, branches=branches, seed=0)
            model.adj_symmetric = shortcut and model.adj_symmetric
            cfg = RecTrainConfig(epochs=args.epochs, eval_every=10**6, progress=False)
            res = fit(model, data, cfg, per_branch=False)
            rows.append({"dataset": dataset, "model": name, "shortcut": shortcut,
                         "s_per_epoch": res.seconds_per_epoch})
            print(rows[-1], flush=True)
    info = environment()
    md = report_header("Training cost per epoch (one thread)", info, load_at_start=load_start)
    md += (f"\nBatch 2048, 8 negatives, d=64, 3 layers, mean over {args.epochs} epochs (no "
           f"evaluation inside). Both modes include the flat `index_select` gathers.\n\n"
           "| dataset | model | symmetric backward | s/epoch |\n|---|---|---|---|\n")
    for r in rows:
        md += (f"| {r['dataset']} | {r['model']} | {'on' if r['shortcut'] else 'off'} | "
               f"{r['s_per_epoch']:.2f} |\n")
    write("epoch_cost", md, {"command": sys.argv, "environment": info, "rows": rows},
          Path(args.out_dir))


if __name__ == "__main__":
    main()
