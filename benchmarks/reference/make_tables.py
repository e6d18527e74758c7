"""Tables of the plain-PyG reference next to graphmutual runs of the same shape.

Reads the reference JSON files (``benchmarks/reference/{ogb_mol,tu}.py --out``), the
``results.json`` of ``graphmutual train`` runs (one directory per seed), and the
independent rows of the package's existing bench tables, and prints a Markdown table of
validation and test means ± std (ddof 1) with the published anchor beside them.

    python benchmarks/reference/make_tables.py --row "plain PyG GIN=ref.json" \
        --row "graphmutual GIN=runs/gm-molbace-e50-s*" --anchor "GIN (published)=73.5 ± 5.2"
"""
from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np


def reference_values(path: Path) -> Dict[int, Tuple[float, float, int, float]]:
    """seed → (val, test, best epoch, s/epoch) from a reference script's JSON."""
    rec = json.loads(path.read_text())
    return {r["seed"]: (r["best"]["val"], r["best"]["test"], r["best"]["epoch"],
                        r["seconds_per_epoch"]) for r in rec["runs"]}


def graphmutual_values(pattern: str, member: str) -> Dict[int, Tuple[float, float, int, float]]:
    """seed → (val, test, best epoch, s/epoch) from ``graphmutual train`` output folders;
    ``member`` ``"best"`` takes, per seed, the student with the best validation metric."""
    out = {}
    for folder in sorted(glob.glob(pattern)):
        f = Path(folder) / "results.json"
        if not f.exists():
            f = Path(folder)
            if not f.is_file():
                continue
        rec = json.loads(f.read_text())
        for k, seed in enumerate(rec["seeds"]):
            name = member
            if member == "best":  # the student with the best validation metric of this seed
                students = [n for n in rec["members"] if not n.startswith("ensemble")]
                name = max(students, key=lambda n: rec["members"][n]["val"][k])
            m = rec["members"][name]
            out[seed] = (m["val"][k], m["test"][k], m["best_epoch"][k],
                         rec["seconds_per_epoch"][k])
    return out


def bench_values(path: str, dataset: str, method: str, member: str
                 ) -> Dict[int, Tuple[float, float, int, float]]:
    """seed → (val, test, nan, nan) from a ``graphmutual bench`` results JSON."""
    rec = json.loads(Path(path).read_text())
    var = rec["results"]["datasets"][dataset]["variants"][method]
    m = var["members"][member]
    seeds = rec["seeds"]
    return {s: (m["val"]["values"][k], m["test"]["values"][k], -1, float("nan"))
            for k, s in enumerate(seeds)}


def fmt(values: List[float]) -> str:
    v = np.asarray(values) * 100
    if len(v) == 1:
        return f"{v[0]:.2f}"
    return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}"


def _row(label: str, vals: Dict[int, Tuple[float, float, int, float]]) -> str:
    seeds = sorted(vals)
    if not seeds:
        return f"| {label} | 0 | – | – | – | – |"
    val = [vals[s][0] for s in seeds]
    test = [vals[s][1] for s in seeds]
    epochs = [vals[s][2] for s in seeds if vals[s][2] >= 0]
    sec = [vals[s][3] for s in seeds if np.isfinite(vals[s][3])]
    seed_txt = (f"{seeds[0]}–{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1))
                and len(seeds) > 1 else ",".join(map(str, seeds)))
    best_epoch = f"{np.mean(epochs) + 1:.0f}" if epochs else "–"
    seconds = f"{np.mean(sec):.2f}" if sec else "–"
    return (f"| {label} | {len(seeds)} ({seed_txt}) | {fmt(val)} | {fmt(test)} | "
            f"{best_epoch} | {seconds} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ref", action="append", default=[], metavar="LABEL=JSON")
    p.add_argument("--gm", action="append", default=[], metavar="LABEL=GLOB[@member]")
    p.add_argument("--bench", action="append", default=[],
                   metavar="LABEL=JSON@dataset@method@member")
    p.add_argument("--anchor", action="append", default=[], metavar="LABEL=TEXT")
    p.add_argument("--only-seeds", default=None,
                   help="keep only these seeds/folds in every row (e.g. 0,1,2)")
    args = p.parse_args(argv)
    keep = {int(s) for s in args.only_seeds.split(",")} if args.only_seeds else None

    def row(label, vals):
        if keep is not None:
            vals = {s: v for s, v in vals.items() if s in keep}
        return _row(label, vals)

    print("| run | seeds/folds | validation | test | mean best epoch | s/epoch (train) |")
    print("|---|---|---|---|---|---|")
    for spec in args.ref:
        label, path = spec.split("=", 1)
        print(row(label, reference_values(Path(path))))
    for spec in args.gm:
        label, rest = spec.split("=", 1)
        pattern, _, member = rest.partition("@")
        print(row(label, graphmutual_values(pattern, member or "gin")))
    for spec in args.bench:
        label, rest = spec.split("=", 1)
        parts = rest.split("@")  # the bench's variant names may hold "@" themselves
        path, dataset, method, member = parts[0], parts[1], "@".join(parts[2:-1]), parts[-1]
        print(row(label, bench_values(path, dataset, method, member)))
    for spec in args.anchor:
        label, text = spec.split("=", 1)
        print(f"| {label} | – | – | {text} | – | – |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
