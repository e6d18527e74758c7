"""Paired win counts of method variants against baselines, from ``graphmutual bench`` reports.

    python benchmarks/tools/paired_wins.py benchmarks/results/bench/graph-variants-mutag.json \\
        benchmarks/results/bench/graph-variants-mutag-node-mimic.json ... \\
        --baselines independent,dml,gml --name graph-variants-mutag-paired

The bench's own comparison pairs a variant only with baselines run under the same
``@settings`` suffix (``gml@lr=0.01`` with ``dml@lr=0.01``); a variant such as
``gml@node_mimic=1.0`` has no such partner.  This script compares every variant of the given
reports with the named baselines (matched by method name after removing the settings that
all variants share) on the seeds both finished: mean validation and test metric of the
best student (chosen per seed on validation) and of the mean ensemble, and per seed the
wins-ties-losses ``W-T-L`` of the variant.  Choose on the validation columns.  Writes
``NAME.md`` next to the first report (or into ``--output``).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from graphmutual.bench.environment import command_line

MEMBERS = ("best student", "ensemble")


def _common_suffix(names: List[str]) -> List[str]:
    """The ``@key=value`` settings every variant name carries."""
    parts = [set(n.split("@")[1:]) for n in names]
    return sorted(set.intersection(*parts)) if parts else []


def _label(name: str, shared: List[str]) -> str:
    base, *settings = name.split("@")
    return "@".join([base] + [s for s in settings if s not in shared])


def _values(entry: Dict, member: str, part: str) -> Dict[int, float]:
    vals = entry["members"].get(member, {}).get(part, {}).get("values", [])
    return {s: v for s, v in zip(entry["seeds"], vals)
            if v is not None and math.isfinite(v)}


def _wtl(a: Dict[int, float], b: Dict[int, float]) -> Tuple[str, int]:
    common = sorted(set(a) & set(b))
    w = sum(a[s] > b[s] + 1e-9 for s in common)
    losses = sum(a[s] < b[s] - 1e-9 for s in common)
    return f"{w}-{len(common) - w - losses}-{losses}", len(common)


def _mean(d: Dict[int, float], seeds: Optional[List[int]] = None) -> str:
    xs = [d[s] for s in (seeds if seeds is not None else d) if s in d]
    if not xs:
        return "–"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{100 * statistics.mean(xs):.1f} ± {100 * sd:.1f}"


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reports", nargs="+", type=Path, help="report JSON files (NAME.json)")
    p.add_argument("--baselines", default="independent,dml,gml",
                   help="comma-separated method names to compare with")
    p.add_argument("--name", required=True, help="name of the written table")
    p.add_argument("--output", type=Path, default=None)
    args = p.parse_args(argv)
    variants: Dict[str, Dict[str, Dict]] = {}
    for path in args.reports:
        if not path.is_file():
            p.error(f"no such report: {path}")
        report = json.loads(path.read_text(encoding="utf-8"))
        for ds, entry in report["results"]["datasets"].items():
            for name, v in entry["variants"].items():
                variants.setdefault(ds, {})[name] = dict(v, metric=entry["metric"])
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    lines = [f"# Paired comparison of method variants — {args.name}", "",
             "Command:", "", "```", command_line(), "```", "",
             "Sources: " + ", ".join(f"`{p.name}`" for p in args.reports)
             + " (their commands, hardware and code fingerprints are in those files).", "",
             "Per seed (TU: CV fold), the best student is the student with the best validation "
             "metric; `ensemble` is the mean of the students' probabilities. Mean ± unbiased "
             "std over the seeds the variant finished. `W-T-L` = the variant's wins, ties and "
             "losses against the baseline on the seeds both finished (`n`), on validation "
             "(what to choose on) and on test.", ""]
    for ds, entries in variants.items():
        shared = _common_suffix(list(entries))
        labels = {n: _label(n, shared) for n in entries}
        base = {b: n for n, lab in labels.items() for b in baselines if lab == b}
        metric = "acc" if next(iter(entries.values()))["metric"] == "accuracy" else "ROC-AUC"
        lines += [f"## {ds} ({metric}); settings of every row: "
                  + (", ".join(f"`{s}`" for s in shared) or "none"), ""]
        for member in MEMBERS:
            head = ["variant", "seeds", "val", "test"]
            for b in baselines:
                head += [f"vs {b} val", f"vs {b} test"]
            lines += [f"### {member}", "", "| " + " | ".join(head) + " |",
                      "|" + "---|" * len(head)]
            for n, e in entries.items():
                val, test = _values(e, member, "val"), _values(e, member, "test")
                row = [labels[n], str(len(e["seeds"])), _mean(val), _mean(test)]
                for b in baselines:
                    if b not in base or base[b] == n:
                        row += ["–", "–"]
                        continue
                    ref = entries[base[b]]
                    wv, nv = _wtl(val, _values(ref, member, "val"))
                    wt, nt = _wtl(test, _values(ref, member, "test"))
                    row += [f"{wv} (n={nv})", f"{wt} (n={nt})"]
                lines.append("| " + " | ".join(row) + " |")
            lines.append("")
    out_dir = args.output or args.reports[0].parent
    out = out_dir / f"{args.name}.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
