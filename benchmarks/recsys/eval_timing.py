"""Time full-ranking evaluation of all users (all items ranked, training items masked).

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/recsys/eval_timing.py --root ../shared/datasets

For each dataset and model, times :func:`graphmutual.recsys.train.evaluate` on the test split
(propagation + chunked scoring + masking of train and validation items + top-K + metrics)
from a cold eval cache, ``--repeats`` times, for several user-batch sizes. Untrained weights:
the cost does not depend on their values. Writes ``benchmarks/results/recsys_eval_timing.md``
and ``.json`` with the command, the hardware and the load average.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from graphmutual.bench.environment import environment, load_average, report_header
from graphmutual.recsys.data import load_dataset
from graphmutual.recsys.metrics import auto_batch_size
from graphmutual.recsys.model import build_model
from graphmutual.recsys.train import RecTrainConfig, evaluate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_recsys import RESULTS, write  # noqa: E402

CASES = [  # dataset, row name, model kind, branches, modalities to load
    ("lastfm-2k", "LightGCN", "lightgcn", None, []),
    ("lastfm-2k", "ours (id, tags)", "mutual", ["id", "tags"], ["tags"]),
    ("lfm2k-multimodal", "LightGCN", "lightgcn", None, []),
    ("lfm2k-multimodal", "ours (whisper, text)", "mutual", ["whisper", "text"],
     ["whisper", "text"]),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch-sizes", default="auto,128,256,512,1024")
    p.add_argument("--out-dir", default=str(RESULTS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [None if b == "auto" else int(b) for b in args.batch_sizes.split(",")]
    load_start = load_average()
    rows = []
    for dataset, name, kind, branches, mods in CASES:
        data = load_dataset(dataset, args.root, seed=0, modalities=mods)
        model = build_model(kind, data, branches=branches)
        model.eval()
        for bs in sizes:
            cfg = RecTrainConfig(eval_batch_size=bs)
            times = []
            for _ in range(args.repeats + 1):  # the first call warms up allocators
                model.train(False)  # clears the cached propagation: time it too
                t0 = time.perf_counter()
                res = evaluate(model, data, "test", cfg)
                times.append(time.perf_counter() - t0)
            times = times[1:]
            rows.append({"dataset": dataset, "model": name, "users": int(res["num_users"]),
                         "items": data.num_items,
                         "batch_size": bs or f"auto ({auto_batch_size(data.num_items)})",
                         "median_s": statistics.median(times), "min_s": min(times),
                         "max_s": max(times), "times_s": times})
            print(rows[-1], flush=True)
    info = environment()
    md = report_header("Full-ranking evaluation time (all test users, all items)", info,
                       load_at_start=load_start)
    md += (f"\nWhat is timed: `graphmutual.recsys.train.evaluate(model, data, 'test')` from a cold "
           f"cache — one propagation, then users in chunks of `batch size`: float32 score "
           f"matmul `[B, d·M] @ [d·M, I]`, training and validation items set to −inf by "
           f"precomputed CSR row/column indices, `topk(20)`, hits and Recall/NDCG/Precision/Hit "
           f"@10/20. Never a dense users × items matrix in one piece. {args.repeats} timed "
           f"repeats after one warm-up.\n\n"
           "| dataset | model | users | items | batch size | median (s) | min (s) | max (s) |\n"
           "|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        md += (f"| {r['dataset']} | {r['model']} | {r['users']} | {r['items']} | "
               f"{r['batch_size']} | {r['median_s']:.3f} | {r['min_s']:.3f} | "
               f"{r['max_s']:.3f} |\n")
    write("eval_timing", md, {"command": sys.argv, "environment": info, "rows": rows},
          Path(args.out_dir))


if __name__ == "__main__":
    main()
