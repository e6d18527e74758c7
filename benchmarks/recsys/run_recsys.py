"""Recommendation benchmarks on Last.fm: model comparison, hetrec anchors, missing modality.

Usage (from the repository root)::

    python benchmarks/recsys/run_recsys.py multimodal --epochs 60
    python benchmarks/recsys/run_recsys.py hetrec --seeds 0,1,2,3,4 --epochs 60
    python benchmarks/recsys/run_recsys.py missing --epochs 30

Writes ``benchmarks/results/recsys_<suite>.{md,json}`` with the exact command, the hardware
(``lscpu``) and every measured number. Data root: ``--root`` or ``$GRAPHMUTUAL_DATA``.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, List

import torch

from graphmutual.recsys.data import load_dataset
from graphmutual.recsys.metrics import format_table
from graphmutual.recsys.missing import missing_modality_experiment
from graphmutual.recsys.model import build_model
from graphmutual.recsys.train import RecTrainConfig, fit

RESULTS = Path(__file__).resolve().parents[1] / "results"
ANCHORS = {  # ../shared/ANCHORS.md, RecBole-GNN Last.fm protocol
    "BPR-MF (RecBole-GNN)": {"recall@10": 0.1761, "ndcg@10": 0.1674, "precision@10": 0.0858},
    "LightGCN (RecBole-GNN)": {"recall@10": 0.2064, "ndcg@10": 0.1972, "precision@10": 0.1009},
    "MHCN (RecBole-GNN)": {"recall@10": 0.2123, "ndcg@10": 0.2068, "precision@10": 0.1042},
    "SEPT (RecBole-GNN)": {"recall@10": 0.2127, "ndcg@10": 0.2057, "precision@10": 0.1044},
}
KEYS = [f"{m}@{k}" for k in (10, 20) for m in ("recall", "ndcg", "precision", "hit")]

# (row name, model kind, branches or None, overrides of RecTrainConfig, social)
MM_VARIANTS = [
    ("BPR-MF", "bprmf", None, {}, False),
    ("LightGCN", "lightgcn", None, {}, False),
    ("LightGCN + social", "lightgcn-social", None, {}, True),
    ("fused (whisper‖text, social)", "fused", ["whisper", "text"], {}, True),
    ("ours w/o mutual (whisper, text)", "mutual", ["whisper", "text"], {"mutual": 0.0}, True),
    ("ours w/o social (whisper, text)", "mutual", ["whisper", "text"], {}, False),
    ("ours (whisper, text)", "mutual", ["whisper", "text"], {}, True),
]
HETREC_VARIANTS = [
    ("LightGCN", "lightgcn", None, {}, False),
    ("ours w/o mutual (id, tags)", "mutual", ["id", "tags"], {"mutual": 0.0}, True),
    ("ours (id, tags)", "mutual", ["id", "tags"], {}, True),
]


def hardware() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        out = platform.processor()
    keep = ("Model name", "CPU(s):", "Thread(s) per core", "Core(s) per socket", "Socket(s)",
            "L3 cache", "Architecture")
    return "\n".join(line for line in out.splitlines() if line.strip().startswith(keep))


def run_variants(dataset: str, variants, seeds: List[int], base: RecTrainConfig, root,
                 ) -> Dict[str, Dict]:
    out: Dict[str, Dict] = {}
    for name, kind, branches, over, social in variants:
        runs = []
        for seed in seeds:
            mods = [b for b in (branches or []) if b != "id"]
            data = load_dataset(dataset, root, seed=seed, modalities=mods, social=social)
            model = build_model(kind, data, branches=branches)
            cfg = replace(base, seed=seed, **over)
            res = fit(model, data, cfg)
            print(f"{name} seed {seed}: best epoch {res.best_epoch}, "
                  f"NDCG@10 {res.test['ndcg@10']:.4f}, R@10 {res.test['recall@10']:.4f}, "
                  f"{res.seconds_per_epoch:.2f} s/epoch, eval {res.eval_seconds:.2f} s",
                  flush=True)
            runs.append({"seed": seed, "best_epoch": res.best_epoch, "test": res.test,
                         "valid": res.valid, "branches": res.branches,
                         "seconds": res.seconds, "seconds_per_epoch": res.seconds_per_epoch,
                         "eval_seconds": res.eval_seconds,
                         "epochs_run": len(res.history)})
        agg = {k: statistics.mean(r["test"][k] for r in runs) for k in KEYS}
        if len(runs) > 1:
            agg.update({f"{k}_std": statistics.stdev(r["test"][k] for r in runs) for k in KEYS})
        out[name] = {"mean": agg, "runs": runs}
    return out


def write(suite: str, md: str, payload: Dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"recsys_{suite}.md").write_text(md)
    (RESULTS / f"recsys_{suite}.json").write_text(json.dumps(payload, indent=1, default=str))
    print(md)


def header(title: str, args, base: RecTrainConfig, extra: str) -> str:
    return (
        f"# {title}\n\nCommand: `{' '.join(['python'] + sys.argv)}`\n\n"
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU only; the 2 "
        f"cores were shared with other jobs, so timings are upper bounds.\n\n"
        f"```\n{hardware()}\n```\n\n"
        f"Training: BPR, {base.num_negatives} sampled negatives, Adam lr {base.lr}, batch "
        f"{base.batch_size}, L2 {base.reg}, d=64, 3 layers, at most {base.epochs} epochs, "
        f"validation every {base.eval_every} epochs, early stopping on validation NDCG@10 "
        f"(patience {base.patience} evaluations), best-epoch weights tested. Mutual "
        f"learning: KL, T={base.temperature}, λ={base.mutual} ramped over {base.warmup} "
        f"epochs, uniform peer weights (DML) unless stated. {extra}\n\n"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("suite", choices=("multimodal", "hetrec", "missing"))
    p.add_argument("--root", default=None)
    p.add_argument("--seeds", default="0")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--only", default=None, help="comma-separated row names to run")
    p.add_argument("--fractions", default="0,0.25,0.5,0.75",
                   help="missing suite: shares of items that lose the modality")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    base = RecTrainConfig(epochs=args.epochs, patience=args.patience, eval_every=2,
                          progress=False, max_minutes=args.max_minutes)
    t0 = time.time()
    if args.suite in ("multimodal", "hetrec"):
        dataset = "lfm2k-multimodal" if args.suite == "multimodal" else "lastfm-2k"
        variants = MM_VARIANTS if args.suite == "multimodal" else HETREC_VARIANTS
        if args.only:
            names = set(args.only.split(","))
            variants = [v for v in variants if v[0] in names]
        res = run_variants(dataset, variants, seeds, base, args.root)
        rows = {name: r["mean"] for name, r in res.items()}
        for name, r in res.items():
            for b in r["runs"][0]["branches"]:
                rows[f"↳ {name}: branch {b} alone"] = {
                    k: statistics.mean(x["branches"][b][k] for x in r["runs"]) for k in KEYS}
        split = ("fixed 8:1:1 split of the MMRec files (x_label)" if args.suite == "multimodal"
                 else f"random 8:1:1 per-user split, seeds {seeds} (one split per seed)")
        md = header(f"Recommendation: {dataset}", args, base,
                    f"Split: {split}. Test ranking: full ranking over all items, training "
                    f"and validation items masked; users without test items excluded.")
        md += format_table(rows) + "\n\n"
        if args.suite == "hetrec":
            md += ("Anchors (RecBole-GNN, ../shared/ANCHORS.md; their hyper-parameter "
                   "search and split, not rerun here):\n\n" + format_table(
                       ANCHORS, ks=(10,), metrics=("recall", "ndcg", "precision")) + "\n\n")
        md += "| model | best epoch(s) | s/epoch | test ranking (s) |\n|---|---|---|---|\n"
        for name, r in res.items():
            md += (f"| {name} | {[x['best_epoch'] for x in r['runs']]} | "
                   f"{statistics.mean(x['seconds_per_epoch'] for x in r['runs']):.2f} | "
                   f"{statistics.mean(x['eval_seconds'] for x in r['runs']):.2f} |\n")
        md += f"\nTotal wall time {time.time() - t0:.0f} s.\n"
        write(args.suite, md, {"command": sys.argv, "hardware": hardware(), "results": res})
    else:
        data = load_dataset("lfm2k-multimodal", args.root, modalities=["whisper", "text"])
        res = missing_modality_experiment(data, "whisper", branches=["whisper", "text"],
                                          cfg=base, seed=seeds[0],
                                          fractions=[float(f) for f in
                                                     args.fractions.split(",")])
        md = header("Missing modality: lfm2k-multimodal, whisper hidden for a share of items",
                    args, base, "Both models use the friend graph. The audio (whisper) "
                    f"modality is removed for {args.fractions} of the items (train and test). ")
        md += ("| model | hidden | NDCG@10 | Recall@10 | Recall@20 | NDCG@10 relative to 0 % |"
               "\n|---|---|---|---|---|---|\n")
        for name, by_frac in res.items():
            for frac, r in by_frac.items():
                md += (f"| {name} | {int(100 * frac)} % | {r['ndcg@10']:.4f} | "
                       f"{r['recall@10']:.4f} | {r['recall@20']:.4f} | "
                       f"{r['relative_ndcg@10']:.3f} |\n")
        md += f"\nTotal wall time {time.time() - t0:.0f} s.\n"
        write("missing", md, {"command": sys.argv, "hardware": hardware(), "results": res})


if __name__ == "__main__":
    main()
