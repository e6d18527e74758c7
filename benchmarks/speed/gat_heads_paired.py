r"""Paired comparison of GAT head counts from ``graphmutual bench`` sweeps of ``gat_heads``.

Reads the JSON of suites run with ``--sweep gat_heads=...`` (one per dataset; e.g.
``--students gat --methods independent --sweep gat_heads=8,4,2``:
``benchmarks/results/bench/check-gat-heads-{mutag,enzymes,molbace}.json``) and compares
every head count with the baseline (``--baseline``, default 8: the GAT paper's and the
student's default) **seed by seed** (TU datasets: the same CV fold; OGB: the same seed
and split): mean paired difference :math:`\bar d` (x100), its standard error
:math:`s_d/\sqrt{n}`, a two-sided 95 % t interval and wins-ties-losses, on validation (what
to choose on) and on test.

Usage::

    python benchmarks/speed/gat_heads_paired.py \
        benchmarks/results/bench/check-gat-heads-{mutag,enzymes,molbace}.json

Writes ``benchmarks/results/bench/check-gat-heads-paired.{md,json}`` (``--out``).  For GML
cohorts (``check-gat-heads-gml-*.json``) compare several members, e.g. ``--members
"gat,best student,ensemble" --out .../check-gat-heads-gml-paired``.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Dict, List

from graphmutual.bench.environment import command_line

ROOT = Path(__file__).resolve().parents[2]

def _t975(df: int) -> float:
    """Two-sided 95 % quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t  # SciPy comes with scikit-learn, a dependency

    return float(t.ppf(0.975, df))


def _heads(variant: str) -> int:
    return int(variant.split("gat_heads=")[1].split(",")[0])


def paired(base: List[float], other: List[float]) -> Dict[str, float]:
    """Paired statistics of ``other - base`` (x100)."""
    d = [100 * (o - b) for b, o in zip(base, other)]
    n = len(d)
    mean = statistics.fmean(d)
    sd = statistics.stdev(d) if n > 1 else float("nan")
    se = sd / math.sqrt(n)
    half = _t975(n - 1) * se
    eps = 1e-9
    return {"n": n, "mean": mean, "sd": sd, "se": se, "lo": mean - half, "hi": mean + half,
            "wins": sum(x > eps for x in d), "ties": sum(abs(x) <= eps for x in d),
            "losses": sum(x < -eps for x in d)}


def _values(run: Dict, member: str, split: str, seeds: List[int]) -> List[float]:
    """``member``'s ``split`` metric of ``run`` (a bench variant) on ``seeds``, in order."""
    v = run["members"][member][split]["values"]
    return [v[run["seeds"].index(s)] for s in seeds]


def main(argv: List[str] | None = None) -> Dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("suites", nargs="+", help="bench JSON files of gat_heads sweeps")
    p.add_argument("--baseline", type=int, default=8)
    p.add_argument("--members", default="gat",
                   help="comma-separated members of the cohort (gat, best student, ensemble)")
    p.add_argument("--note", default="", help="a paragraph written under the title")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench"
                                        / "check-gat-heads-paired"))
    a = p.parse_args(argv)
    members = [m.strip() for m in a.members.split(",") if m.strip()]
    rows = []
    commands = []
    for path in a.suites:
        suite = json.loads(Path(path).read_text())
        commands.append((path, suite["command"]))
        for name, res in suite["results"]["datasets"].items():
            variants = {_heads(v): r for v, r in res["variants"].items() if "gat_heads=" in v}
            if a.baseline not in variants:
                raise SystemExit(f"{path}: no gat_heads={a.baseline} variant for {name}")
            base = variants[a.baseline]
            seeds = base["seeds"]
            for member in members:
                for h, r in sorted(variants.items(), reverse=True):
                    common = [s for s in seeds if s in r["seeds"]]
                    row = {"dataset": name, "metric": res["metric"], "member": member,
                           "heads": h, "n": len(common), "params": r["params"]["cohort"],
                           "s_per_epoch": r["seconds_per_epoch"]["mean"],
                           "fingerprints": r.get("code_fingerprints", [])}
                    for split in ("val", "test"):
                        mine = _values(r, member, split, common)
                        row[split] = 100 * statistics.fmean(mine)
                        row[split + "_sd"] = 100 * statistics.stdev(mine)
                        if h != a.baseline:
                            row[split + "_diff"] = paired(
                                _values(base, member, split, common), mine)
                    rows.append(row)
    cmd = command_line(None if argv is None else [__file__, *argv])
    lines = [f"# GAT heads on graph tasks: paired comparison against {a.baseline} heads", "",
             f"Command: `{cmd.strip()}`", ""]
    if a.note:
        lines += [a.note, ""]
    lines += [
             "Suites: " + "; ".join(f"`{Path(s).name}`: `{c}`" for s, c in commands) + ".",
             "", "Graph task defaults otherwise (3 layers x 64, GAT dropout 0.1, mean "
             "pooling, batch 32, lr 1e-3; TU datasets 100 epochs per CV fold, OGB molecules "
             "50 epochs per seed); each member's metric at its best validation epoch "
             "(`best student`: the member with the best validation metric of each seed; "
             "`ensemble`: the mean of the students' probabilities). `diff` = mean over "
             f"seeds/folds of (this - {a.baseline} heads), x100, with its standard error and "
             "a 95 % t interval; W-T-L = seeds where this head count is better / equal / "
             "worse. Hardware and code fingerprints are in the suites' own files.", "",
             "| dataset (metric) | member | heads | n | params | s/epoch | val | test | "
             "val diff (95 % CI) | val W-T-L | test diff (95 % CI) | test W-T-L |",
             "|---|---|---:|---:|---:|---:|---|---|---|---|---|---|"]
    for r in rows:
        cells = []
        for split in ("val", "test"):
            d = r.get(split + "_diff")
            if d is None:
                cells += ["(baseline)", ""]
            else:
                cells += [f"{d['mean']:+.2f} ± {d['se']:.2f} ({d['lo']:+.2f}, {d['hi']:+.2f})",
                          f"{d['wins']}-{d['ties']}-{d['losses']}"]
        lines.append(f"| {r['dataset']} ({r['metric']}) | {r['member']} | {r['heads']} | "
                     f"{r['n']} | "
                     f"{r['params']:,} | {r['s_per_epoch']:.3f} | {r['val']:.2f} ± "
                     f"{r['val_sd']:.2f} | {r['test']:.2f} ± {r['test_sd']:.2f} | "
                     + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    result = {"command": cmd.strip(), "baseline": a.baseline, "rows": rows}
    Path(a.out + ".json").write_text(json.dumps(result, indent=1) + "\n")
    Path(a.out + ".md").write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    main()
