"""Recommendation benchmarks on Last.fm: model comparison, hetrec anchors, missing modality.

Usage (from the repository root, one thread: ``OMP_NUM_THREADS=1``)::

    python benchmarks/recsys/run_recsys.py multimodal --epochs 400 --patience 15
    python benchmarks/recsys/run_recsys.py hetrec --only lightgcn,ours --seeds 0,1,2,3,4
    python benchmarks/recsys/run_recsys.py missing --epochs 100 --patience 1000  # fixed budget
    python benchmarks/recsys/run_recsys.py missing --modality text --tag text ...  # hide text
    python benchmarks/recsys/run_recsys.py multimodal --only ours --set mutual=0.5 --tag m05

Every model trains to convergence: at most ``--epochs`` epochs with early stopping on
validation NDCG@10 (``--patience`` evaluations, every 2 epochs); the best-validation weights
are tested. ``--patience >= --epochs`` gives a fixed budget (still testing the best
validation epoch). Writes ``benchmarks/results/recsys_<suite>[_<tag>].{md,json}`` with the
exact command, the hardware (:func:`graphmutual.bench.environment.environment`), the load
average and every measured number
(validation curves in the JSON). Data root: ``--root`` or ``$GRAPHMUTUAL_DATA``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional

import torch

from graphmutual.bench.environment import environment, load_average, report_header
from graphmutual.bench.report import write_report
from graphmutual.recsys.data import load_dataset
from graphmutual.recsys.metrics import format_table
from graphmutual.recsys.missing import missing_modality_experiment
from graphmutual.recsys.model import build_model
from graphmutual.recsys.train import RecTrainConfig, fit
from graphmutual.stats import mean_std

RESULTS = Path(__file__).resolve().parents[1] / "results"
ANCHORS = {  # ../shared/ANCHORS.md, RecBole-GNN Last.fm protocol
    "BPR-MF (RecBole-GNN)": {"recall@10": 0.1761, "ndcg@10": 0.1674, "precision@10": 0.0858},
    "LightGCN (RecBole-GNN)": {"recall@10": 0.2064, "ndcg@10": 0.1972, "precision@10": 0.1009},
    "MHCN (RecBole-GNN)": {"recall@10": 0.2123, "ndcg@10": 0.2068, "precision@10": 0.1042},
    "SEPT (RecBole-GNN)": {"recall@10": 0.2127, "ndcg@10": 0.2057, "precision@10": 0.1044},
}
KEYS = [f"{m}@{k}" for k in (10, 20) for m in ("recall", "ndcg", "precision", "hit")]

# (key for --only, row name, model kind, branches or None, overrides of RecTrainConfig,
#  social)
MM_VARIANTS = [
    ("bprmf", "BPR-MF", "bprmf", None, {}, False),
    ("lightgcn", "LightGCN", "lightgcn", None, {}, False),
    ("lightgcn-social", "LightGCN + social", "lightgcn-social", None, {}, True),
    ("fused", "fused (whisper‖text, social)", "fused", ["whisper", "text"], {}, True),
    ("ours-nomutual", "ours w/o mutual (whisper, text)", "mutual", ["whisper", "text"],
     {"mutual": 0.0}, True),
    ("ours-nosocial", "ours w/o social (whisper, text)", "mutual", ["whisper", "text"], {},
     False),
    ("ours", "ours (whisper, text)", "mutual", ["whisper", "text"], {}, True),
]
HETREC_VARIANTS = [
    ("lightgcn", "LightGCN", "lightgcn", None, {}, False),
    ("ours-nomutual", "ours w/o mutual (id, tags)", "mutual", ["id", "tags"], {"mutual": 0.0},
     True),
    ("ours", "ours (id, tags)", "mutual", ["id", "tags"], {}, True),
]


def parse_sets(items: List[str]) -> Dict[str, object]:
    """``["lr=0.001", "weighting=adaptive"]`` → typed overrides of :class:`RecTrainConfig`
    (and the model keys ``layers``, ``dim``, ``social_weight``)."""
    fields = {f.name: f.type for f in dataclasses.fields(RecTrainConfig)}
    out: Dict[str, object] = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got '{item}'")
        if key in MODEL_KEYS:
            out[key] = MODEL_KEYS[key](val)
            continue
        if key not in fields:
            raise ValueError(f"unknown --set key '{key}'; choose from "
                             f"{sorted(list(fields) + list(MODEL_KEYS))}")
        typ = str(fields[key])
        if "bool" in typ:
            out[key] = val.lower() in ("1", "true", "yes")
        elif "int" in typ:
            out[key] = int(val)
        elif "float" in typ:
            out[key] = float(val)
        else:
            out[key] = val
    return out


MODEL_KEYS = {"layers": int, "dim": int, "social_weight": float}


def split_sets(sets: Dict[str, object]) -> tuple[Dict[str, object], Dict[str, object]]:
    """(training overrides, model overrides)."""
    train = {k: v for k, v in sets.items() if k not in MODEL_KEYS}
    model = {k: v for k, v in sets.items() if k in MODEL_KEYS}
    return train, model


def run_variants(dataset: str, variants, seeds: List[int], base: RecTrainConfig, root,
                 model_kw: Optional[Dict] = None) -> Dict[str, Dict]:
    out: Dict[str, Dict] = {}
    for _, name, kind, branches, over, social in variants:
        runs = []
        for seed in seeds:
            mods = [b for b in (branches or []) if b != "id"]
            data = load_dataset(dataset, root, seed=seed, modalities=mods, social=social)
            kw = dict(model_kw or {})
            model = build_model(kind, data, branches=branches, dim=int(kw.get("dim", 64)),
                                num_layers=int(kw.get("layers", 3)),
                                social_weight=float(kw.get("social_weight", 1.0)), seed=seed)
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
                         "epochs_run": len(res.history), "history": res.history})
        out[name] = {"mean": summarise(runs), "runs": runs}
    return out


def summarise(runs: List[Dict], split: str = "test") -> Dict[str, float]:
    """Mean over seeds of every metric in ``KEYS``, plus ``<metric>_std`` where more than
    one seed counts (:func:`graphmutual.stats.mean_std`: unbiased std, non-finite values
    left out)."""
    out: Dict[str, float] = {}
    for k in KEYS:
        mean, std, n = mean_std(r[split][k] for r in runs)
        out[k] = mean
        if n > 1:
            out[f"{k}_std"] = std
    return out


def write(suite: str, md: str, payload: Dict, out_dir: Path = RESULTS) -> None:
    """Write ``recsys_<suite>.md`` and ``.json`` into ``out_dir`` (atomically) and print the
    markdown. Values JSON cannot hold are written as text."""
    write_report(out_dir / f"recsys_{suite}", md, json.loads(json.dumps(payload, default=str)))
    print(md)


def header(title: str, args, base: RecTrainConfig, model_kw: Dict, extra: str,
           load_start: str) -> str:
    stop = ("early stopping on validation NDCG@10 (patience "
            f"{base.patience} evaluations)" if base.patience < base.epochs else
            "no early stopping (fixed budget)")
    return report_header(title, environment(), load_at_start=load_start, notes=(
        f"Training: BPR, {base.num_negatives} sampled negatives, Adam lr {base.lr}, batch "
        f"{base.batch_size}, L2 {base.reg}, d={model_kw.get('dim', 64)}, "
        f"{model_kw.get('layers', 3)} layers, at most {base.epochs} epochs, "
        f"validation every {base.eval_every} epochs, {stop}, best-validation-epoch weights "
        f"tested. Mutual learning: {base.divergence}, T={base.temperature}, "
        f"λ={base.mutual} ramped over {base.warmup} epochs, {base.weighting} peer weights "
        f"({'DML' if base.weighting == 'uniform' else 'ALW'}) unless stated. {extra}"
    )) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("suite", choices=("multimodal", "hetrec", "missing"))
    p.add_argument("--root", default=None)
    p.add_argument("--seeds", default="0")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--patience", type=int, default=10,
                   help="evaluations without improvement before stopping; >= --epochs "
                        "means a fixed budget")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", default=None, help="comma-separated variant keys to run "
                   "(bprmf, lightgcn, lightgcn-social, fused, ours-nomutual, ours-nosocial, ours)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a RecTrainConfig field (lr, reg, mutual, weighting, ...) "
                        "or a model key (layers, dim, social_weight); repeatable")
    p.add_argument("--tag", default="", help="suffix of the result files "
                   "(recsys_<suite>_<tag>.md), e.g. for tuning runs")
    p.add_argument("--out-dir", default=str(RESULTS))
    p.add_argument("--fractions", default="0,0.25,0.5,0.75",
                   help="missing suite: shares of items that lose the modality")
    p.add_argument("--modality", default="whisper", choices=("whisper", "text"),
                   help="missing suite: the modality hidden (default whisper, the audio)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    train_kw, model_kw = split_sets(parse_sets(args.set))
    base = RecTrainConfig(**{"epochs": args.epochs, "patience": args.patience,
                             "eval_every": 2, "progress": False, **train_kw})
    name = args.suite + (f"_{args.tag}" if args.tag else "")
    out_dir = Path(args.out_dir)
    load_start = load_average()
    t0 = time.time()
    if args.suite in ("multimodal", "hetrec"):
        dataset = "lfm2k-multimodal" if args.suite == "multimodal" else "lastfm-2k"
        variants = MM_VARIANTS if args.suite == "multimodal" else HETREC_VARIANTS
        if args.only:
            keys = args.only.split(",")
            unknown = set(keys) - {v[0] for v in variants}
            if unknown:
                raise SystemExit(f"unknown --only keys {sorted(unknown)}; choose from "
                                 f"{[v[0] for v in variants]}")
            variants = [v for v in variants if v[0] in keys]
        res = run_variants(dataset, variants, seeds, base, args.root, model_kw)
        rows = {n: r["mean"] for n, r in res.items()}
        for n, r in res.items():
            for b in r["runs"][0]["branches"]:
                rows[f"↳ {n}: branch {b} alone"] = summarise(
                    [{"test": x["branches"][b]} for x in r["runs"]])
        split = ("fixed 8:1:1 split of the MMRec files (x_label)" if args.suite == "multimodal"
                 else f"random 8:1:1 per-user split, seeds {seeds} (one split per seed)")
        md = header(f"Recommendation: {dataset}", args, base, model_kw,
                    f"Split: {split}. Test ranking: full ranking over all items, training "
                    f"and validation items masked; users without test items excluded. "
                    f"Mean over seeds {seeds}" + (" ± sample std." if len(seeds) > 1 else "."),
                    load_start)
        md += format_table(rows) + "\n\n"
        if args.suite == "hetrec":
            md += ("Anchors (RecBole-GNN, ../shared/ANCHORS.md; their hyper-parameter "
                   "search and split, not rerun here):\n\n" + format_table(
                       ANCHORS, ks=(10,), metrics=("recall", "ndcg", "precision")) + "\n\n")
        md += ("| model | valid NDCG@10 | best epoch(s) | epochs run | s/epoch | "
               "test ranking (s) |\n|---|---|---|---|---|---|\n")
        for n, r in res.items():
            md += (f"| {n} | {statistics.mean(x['valid']['ndcg@10'] for x in r['runs']):.4f} | "
                   f"{[x['best_epoch'] for x in r['runs']]} | "
                   f"{[x['epochs_run'] for x in r['runs']]} | "
                   f"{statistics.mean(x['seconds_per_epoch'] for x in r['runs']):.2f} | "
                   f"{statistics.mean(x['eval_seconds'] for x in r['runs']):.2f} |\n")
        md += f"\nTotal wall time {time.time() - t0:.0f} s.\n"
        write(name, md, {"command": sys.argv, "environment": environment(), "results": res},
              out_dir)
    else:
        data = load_dataset("lfm2k-multimodal", args.root, modalities=["whisper", "text"])
        res = missing_modality_experiment(data, args.modality, branches=["whisper", "text"],
                                          cfg=base, seed=seeds[0],
                                          dim=int(model_kw.get("dim", 64)),
                                          num_layers=int(model_kw.get("layers", 3)),
                                          fractions=[float(f) for f in
                                                     args.fractions.split(",")])
        what = {"whisper": "audio (whisper)", "text": "text (tag embedding)"}[args.modality]
        md = header(f"Missing modality: lfm2k-multimodal, {args.modality} hidden for a share "
                    "of items", args, base, model_kw, "Both models use the friend graph. The "
                    f"{what} modality is removed for {args.fractions} of the items (train "
                    "and test). ", load_start)
        md += ("| model | hidden | NDCG@10 | Recall@10 | Recall@20 | NDCG@10 relative to 0 % "
               "| best epoch |\n|---|---|---|---|---|---|---|\n")
        for n, by_frac in res.items():
            for frac, r in by_frac.items():
                md += (f"| {n} | {int(100 * frac)} % | {r['ndcg@10']:.4f} | "
                       f"{r['recall@10']:.4f} | {r['recall@20']:.4f} | "
                       f"{r['relative_ndcg@10']:.3f} | {r['best_epoch']} |\n")
        md += f"\nTotal wall time {time.time() - t0:.0f} s.\n"
        write(name, md, {"command": sys.argv, "environment": environment(), "results": res},
              out_dir)


if __name__ == "__main__":
    main()
