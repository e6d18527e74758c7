"""Merge the per-seed runs of several ``run_recsys.py`` result files into one table.

Usage (from the repository root)::

    python benchmarks/recsys/combine_seeds.py --out hetrec --anchors \\
        benchmarks/results/recsys_hetrec_lightgcn.json benchmarks/results/recsys_hetrec_ours-s0.json

An input ``path::label`` appends `` [label]`` to the row names of that file (to keep
configurations apart). Rows with the same name are merged (a seed present twice is an
error); the mean ± sample std
over seeds is written to ``benchmarks/results/recsys_<out>.{md,json}`` with the source
files and their commands. Nothing is retrained.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_recsys import ANCHORS, KEYS, RESULTS, summarise, write  # noqa: E402

from graphmutual.recsys.metrics import format_table  # noqa: E402

__all__ = ["KEYS", "merge", "summarise", "main"]


def merge(payloads: List[Dict], labels: Optional[List[str]] = None
          ) -> Dict[str, List[Dict]]:
    rows: Dict[str, List[Dict]] = {}
    for pay, label in zip(payloads, labels or [""] * len(payloads)):
        for name, res in pay["results"].items():
            name = f"{name} [{label}]" if label else name
            have = {r["seed"] for r in rows.get(name, [])}
            for run in res["runs"]:
                if run["seed"] in have:
                    raise ValueError(f"seed {run['seed']} of '{name}' appears twice")
                rows.setdefault(name, []).append(run)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="+")
    p.add_argument("--out", required=True, help="result name: recsys_<out>.md")
    p.add_argument("--out-dir", default=str(RESULTS))
    p.add_argument("--anchors", action="store_true", help="append the hetrec anchors")
    p.add_argument("--split", choices=("test", "valid"), default="test",
                   help="summarise the test metrics or the validation metrics at the best "
                        "epoch (the ones model selection may look at)")
    args = p.parse_args()
    paths = [f.split("::")[0] for f in args.inputs]
    labels = [f.split("::")[1] if "::" in f else "" for f in args.inputs]
    payloads = [json.loads(Path(f).read_text()) for f in paths]
    rows = merge(payloads, labels)
    table = {name: summarise(runs, args.split) for name, runs in rows.items()}
    for name, runs in rows.items():  # per-branch rows (each branch ranked alone, test)
        if args.split != "test":
            break
        for b in runs[0].get("branches") or {}:
            table[f"↳ {name}: branch {b} alone"] = summarise(
                [{"test": r["branches"][b]} for r in runs])
    md = (f"# Merged seeds: {', '.join(rows)}\n\n"
          f"Command: `{' '.join(['python'] + sys.argv)}`\n\n"
          "Merged from (each with its own command, hardware and protocol):\n\n")
    for f, pay in zip(paths, payloads):
        md += f"- `{f}`: `{' '.join(['python'] + pay['command'])}`\n"
    md += (f"\n**{args.split} split** metrics (best validation epoch), mean ± sample std over "
           "the seeds listed below.\n\n" + format_table(table) + "\n\n")
    if args.anchors:
        md += ("Anchors (RecBole-GNN, ../shared/ANCHORS.md; not rerun here):\n\n"
               + format_table(ANCHORS, ks=(10,), metrics=("recall", "ndcg", "precision"))
               + "\n\n")
    md += "| model | seeds | best epochs | s/epoch |\n|---|---|---|---|\n"
    for name, runs in rows.items():
        md += (f"| {name} | {[r['seed'] for r in runs]} | {[r['best_epoch'] for r in runs]} | "
               f"{statistics.mean(r['seconds_per_epoch'] for r in runs):.2f} |\n")
    write(args.out, md, {"command": sys.argv, "inputs": args.inputs, "table": table,
                         "results": {n: {"mean": table[n], "runs": r}
                                     for n, r in rows.items()}}, Path(args.out_dir))


if __name__ == "__main__":
    main()
