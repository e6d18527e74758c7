"""Accuracy of sampled vs full-batch GML (GCN+GAT+GIN) with the same code, seeds and epochs.

Both runs go through :class:`graphmutual.train.Trainer` (best validation epoch per member,
the dataset's task defaults); the sampled run uses
:class:`graphmutual.train.sampled.SampledNodeTask` (every node a seed once per epoch,
``--batch-size`` seeds per step, ``--fanout``) and exact layer-wise evaluation.

    python benchmarks/scale/bench_accuracy.py --dataset cora --seeds 0,1,2 \
        --out benchmarks/results/scale_accuracy_cora
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="cora")
    p.add_argument("--root", default=None, help="dataset root (default: bundled Cora)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--fanout", default="10,10")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--modes", default="fullbatch,sampled")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    from graphmutual.data import load_dataset
    from graphmutual.train import TrainConfig, Trainer, resolve_config
    from graphmutual.train.sampled import SampledNodeTask, parse_fanout

    ds = load_dataset(args.dataset, args.root)
    fan = parse_fanout(args.fanout)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for mode in args.modes.split(","):
        for seed in seeds:
            cfg = TrainConfig(dataset=args.dataset, root=args.root,
                              students=["gcn", "gat", "gin"], method="gml", seeds=[seed],
                              epochs=args.epochs, progress=False,
                              batch_size=args.batch_size if mode == "sampled" else None)
            task = None
            if mode == "sampled":
                task = SampledNodeTask(ds, resolve_config(cfg, ds), torch.device("cpu"),
                                       fanout=fan)
            t, c = time.perf_counter(), time.process_time()
            run = Trainer(cfg, ds, task=task).fit_seed(seed)
            res = run.result
            row = dict(mode=mode, seed=seed, epochs_run=res["epochs_run"],
                       wall_seconds=round(time.perf_counter() - t, 1),
                       cpu_seconds=round(time.process_time() - c, 1),
                       members={m: {"val": v["val"], "test": v["test"], "epoch": v["epoch"]}
                                for m, v in res["members"].items()})
            print(json.dumps(row), flush=True)
            rows.append(row)
            write(args, rows, fan)


def write(args, rows, fan) -> None:
    import torch

    meta = dict(command="python benchmarks/scale/bench_accuracy.py " + " ".join(sys.argv[1:]),
                cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                torch=torch.__version__, fanout=fan, batch_size=args.batch_size)
    Path(args.out + ".json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1) + "\n")
    members = [m for m in rows[0]["members"]]
    lines = [f"# Sampled vs full-batch GML accuracy: {args.dataset}", "",
             f"Command: `{meta['command']}`  ",
             f"{meta['cores']}-core CPU, one torch thread, torch {meta['torch']}. GCN+GAT+GIN, "
             "GML with the dataset's task defaults; test accuracy (%) at each member's best "
             f"validation epoch, mean ± std over seeds. Sampled: fan-out {fan}, "
             f"{args.batch_size} seeds per step, every node a seed once per epoch, exact "
             "layer-wise evaluation.", "",
             "| mode | seeds | " + " | ".join(members) + " | CPU s/run |",
             "|---|---|" + "---:|" * (len(members) + 1)]
    for mode in dict.fromkeys(r["mode"] for r in rows):
        rs = [r for r in rows if r["mode"] == mode]
        cells = []
        for m in members:
            v = [100 * r["members"][m]["test"] for r in rs]
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            cells.append(f"{statistics.mean(v):.2f} ± {sd:.2f}")
        cpu = statistics.mean(r["cpu_seconds"] for r in rs)
        lines.append(f"| {mode} | {','.join(str(r['seed']) for r in rs)} | "
                     + " | ".join(cells) + f" | {cpu:.0f} |")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
