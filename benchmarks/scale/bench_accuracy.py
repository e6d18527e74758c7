"""Accuracy of sampled vs full-batch GML (GCN+GAT+GIN) with the same code and seeds.

Both runs go through :class:`graphmutual.train.Trainer` (best validation epoch per member,
the dataset's task defaults, the same split per seed); the sampled run uses
:class:`graphmutual.train.sampled.SampledNodeTask` (``--seed-nodes all``: every node a seed
once per epoch, ``--batch-size`` seeds per step, ``--fanout``) and exact layer-wise
evaluation after every epoch.

A sampled epoch takes ``N / batch-size`` optimizer steps where a full-batch epoch takes one,
so on a graph where a batch reaches most nodes in two hops (Coauthor CS) the sampled run can
be given fewer epochs (``--sampled-epochs``) and its mimicry warm-up, counted in epochs,
scaled with them (``--sampled-warmup``). Without these options both modes run the task's
default epochs and warm-up.

Every finished ``(mode, seed)`` run is written at once to ``<out>.json`` / ``<out>.md``. With
``--resume`` a call keeps the rows already in ``<out>.json`` and skips the runs whose settings
and seed are recorded there, so a long benchmark can be run in pieces (without it, the files
are started afresh)::

    python benchmarks/scale/bench_accuracy.py --dataset cora --seeds 0,1,2 \
        --out benchmarks/results/scale_accuracy_cora
    python benchmarks/scale/bench_accuracy.py --dataset coauthor-cs --root DATA \
        --modes sampled --batch-size 1024 --fanout 10,5 --sampled-epochs 12 \
        --sampled-warmup 3 --seeds 0 --resume --out benchmarks/results/scale_accuracy_cs
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
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MODES = ("fullbatch", "sampled")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="cora")
    p.add_argument("--root", default=None, help="dataset root (default: bundled Cora)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--fanout", default="10,10")
    p.add_argument("--seed-nodes", default="all", choices=("all", "train"),
                   help="sampled seeds: every node once per epoch, or the labelled ones")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs of both modes (default: the task's)")
    p.add_argument("--sampled-epochs", type=int, default=None,
                   help="epochs of the sampled mode (default: --epochs)")
    p.add_argument("--sampled-warmup", type=int, default=None,
                   help="mimicry warm-up epochs of the sampled mode (default: the task's)")
    p.add_argument("--modes", default="fullbatch,sampled")
    p.add_argument("--out", required=True)
    p.add_argument("--history", action="store_true",
                   help="also append every epoch's losses and scores to "
                        "<out>.<mode>-seed<N>.jsonl as it ends (a run cut short still shows "
                        "its curve)")
    p.add_argument("--resume", action="store_true",
                   help="keep the runs already in <out>.json and skip those done")
    args = p.parse_args(argv)
    modes = args.modes.split(",")
    bad = [m for m in modes if m not in MODES]
    if bad:
        p.error(f"--modes must be from {MODES}, got {bad}")
    args.modes = modes
    for name in ("epochs", "sampled_epochs", "batch_size"):
        v = getattr(args, name)
        if v is not None and v <= 0:
            p.error(f"--{name.replace('_', '-')} must be a positive integer, got {v}")
    if args.sampled_warmup is not None and args.sampled_warmup < 0:
        p.error(f"--sampled-warmup must be >= 0, got {args.sampled_warmup}")
    return args


def setup_of(mode: str, args: argparse.Namespace, fan: List[int]) -> Dict[str, Any]:
    """The settings that decide a run besides its seed (the task defaults fill the rest)."""
    if mode == "fullbatch":
        return dict(epochs=args.epochs, warmup=None)
    return dict(epochs=args.sampled_epochs or args.epochs, warmup=args.sampled_warmup,
                batch_size=args.batch_size, fanout=list(fan), seed_nodes=args.seed_nodes)


def label_of(mode: str, setup: Dict[str, Any], resolved: Dict[str, Any]) -> str:
    """A short table label: the mode and its concrete epochs / warm-up (and sampling)."""
    s = f"{mode}, {resolved['epochs']} ep, warm-up {resolved['warmup']}"
    if mode == "sampled":
        s += (f", fan-out {setup['fanout']}, {setup['batch_size']} seeds/step"
              f" ({setup['seed_nodes']})")
    return s


def load_rows(path: Path) -> List[Dict[str, Any]]:
    """Rows of an earlier call (JSON only; a file that is not ours is an error, not lost)."""
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
        for r in rows:
            r["mode"], r["seed"], r["setup"], r["members"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"{path} is not a bench_accuracy result with per-run settings "
                         f"({type(exc).__name__}: {exc}); choose another --out") from None
    return rows


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)

    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    from graphmutual.data import load_dataset
    from graphmutual.train import TrainConfig, Trainer, resolve_config
    from graphmutual.train.sampled import SampledNodeTask, parse_fanout

    ds = load_dataset(args.dataset, args.root)
    fan = parse_fanout(args.fanout)
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out + ".json")
    rows = load_rows(out) if args.resume else []
    command = "python benchmarks/scale/bench_accuracy.py " + " ".join(sys.argv[1:])
    for mode in args.modes:
        setup = setup_of(mode, args, fan)
        for seed in seeds:
            if any(r["mode"] == mode and r["seed"] == seed and r["setup"] == setup
                   for r in rows):
                print(f"{mode} seed {seed}: already in {out}, skipped", flush=True)
                continue
            sampled = mode == "sampled"
            cfg = TrainConfig(dataset=args.dataset, root=args.root,
                              students=["gcn", "gat", "gin"], method="gml", seeds=[seed],
                              epochs=setup["epochs"], warmup=setup["warmup"], progress=False,
                              batch_size=args.batch_size if sampled else None)
            resolved = resolve_config(cfg, ds)
            task = None
            if sampled:
                task = SampledNodeTask(ds, resolved, torch.device("cpu"), fanout=fan,
                                       seed_nodes=args.seed_nodes)
            on_epoch = None
            if args.history:
                hist = Path(f"{args.out}.{mode}-seed{seed}.jsonl")
                hist.write_text(json.dumps(dict(setup=setup, command=command)) + "\n")

                def on_epoch(r: Dict[str, Any], hist: Path = hist) -> None:
                    with hist.open("a", encoding="utf-8") as f:
                        f.write(json.dumps(r) + "\n")
            t, c = time.perf_counter(), time.process_time()
            res = Trainer(cfg, ds, task=task).fit_seed(seed, on_epoch=on_epoch).result
            row = dict(mode=mode, seed=seed, setup=setup,
                       label=label_of(mode, setup, dict(epochs=resolved.epochs,
                                                        warmup=resolved.warmup)),
                       epochs_run=res["epochs_run"],
                       train_seconds_per_epoch=round(res["seconds_per_epoch"], 2),
                       wall_seconds=round(time.perf_counter() - t, 1),
                       cpu_seconds=round(time.process_time() - c, 1),
                       command=command,
                       members={m: {"val": v["val"], "test": v["test"], "epoch": v["epoch"]}
                                for m, v in res["members"].items()})
            print(json.dumps(row), flush=True)
            if args.resume:  # rows another call added meanwhile are kept too
                rows = load_rows(out)
            rows.append(row)
            write(args, rows)
    if args.resume and rows:  # nothing left to run: the tables are still rewritten
        write(args, load_rows(out))


def _cell(values: List[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


def write(args: argparse.Namespace, rows: List[Dict[str, Any]]) -> None:
    """``<out>.json`` (every run) and ``<out>.md`` (test and validation tables per setting)."""
    import torch

    meta = dict(commands=list(dict.fromkeys(r["command"] for r in rows)),
                cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                torch=torch.__version__, dataset=args.dataset)
    _atomic_write(Path(args.out + ".json"), json.dumps(dict(meta=meta, rows=rows), indent=1)
                  + "\n")
    members = list(rows[0]["members"])
    lines = [f"# Sampled vs full-batch GML accuracy: {args.dataset}", "",
             "Commands (each adds its runs to the same files):", ""]
    lines += [f"    {c}" for c in meta["commands"]]
    lines += ["", f"{meta['cores']}-core CPU, one torch thread, torch {meta['torch']}. "
              "GCN+GAT+GIN, GML with the dataset's task defaults except the epochs and "
              "warm-up named in each row; accuracy (%) at each member's best validation "
              "epoch, mean ± std over seeds. Sampled: exact layer-wise evaluation after "
              "every epoch; `all` = every node a seed once per epoch. CPU s/run is the "
              "process CPU time of training and evaluation (the JSON also has each run's "
              "wall time, which on a shared machine depends on its load)."]
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["label"], []).append(r)
    for part in ("test", "val"):
        lines += ["", f"{part.capitalize()} accuracy:", "",
                  "| run | seeds | " + " | ".join(members) + " | CPU s/run |",
                  "|---|---|" + "---:|" * (len(members) + 1)]
        for label, rs in groups.items():
            rs = sorted(rs, key=lambda r: r["seed"])
            cells = [_cell([100 * r["members"][m][part] for r in rs]) for m in members]
            cpu = statistics.mean(r["cpu_seconds"] for r in rs)
            lines.append(f"| {label} | {','.join(str(r['seed']) for r in rs)} | "
                         + " | ".join(cells) + f" | {cpu:.0f} |")
    _atomic_write(Path(args.out + ".md"), "\n".join(lines) + "\n")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
