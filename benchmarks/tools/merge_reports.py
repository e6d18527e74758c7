"""Pool the per-seed results of several ``graphmutual bench`` reports into one table.

    python benchmarks/tools/merge_reports.py benchmarks/results/bench/graph-proteins.json \\
        benchmarks/results/bench/graph-proteins-folds4-10.json --name graph-proteins-10folds

For suites whose seeds (splits, CV folds) ran in different sessions and whose per-run
cache is no longer there: the reports' JSON keep every per-seed value, so the pooled mean ±
unbiased std over all seeds is exact. A seed may appear in one report only, and the same
method must have the same configuration in every report (otherwise this stops with an
error). Writes ``NAME.md`` and ``NAME.json`` next to the inputs (or into ``--output``);
the markdown lists the source reports with their commands and code fingerprints.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from graphmutual.bench.aggregate import format_markdown, merge_aggregates
from graphmutual.bench.environment import command_line
from graphmutual.bench.report import write_json, write_text


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reports", nargs="+", type=Path, help="report JSON files (NAME.json)")
    p.add_argument("--name", required=True, help="name of the pooled report")
    p.add_argument("--output", type=Path, default=None,
                   help="directory to write into (default: the first report's)")
    args = p.parse_args(argv)
    if len(args.reports) < 2:
        p.error("give at least two reports to pool")
    loaded = []
    for path in args.reports:
        if not path.is_file():
            p.error(f"no such report: {path}")
        try:
            loaded.append(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            p.error(f"{path} is not valid JSON ({exc})")
        if "results" not in loaded[-1]:
            p.error(f"{path} is not a graphmutual bench report (no 'results')")
    try:
        merged = merge_aggregates(*(r["results"] for r in loaded))
    except ValueError as exc:
        print(f"merge_reports: error: {exc}", file=sys.stderr)
        return 2
    order = list(dict.fromkeys(m for r in loaded for m in r["methods"]))
    sources = ["Pooled from these reports (per-seed values concatenated, statistics "
               "recomputed):", ""]
    for path, r in zip(args.reports, loaded):
        prints = sorted({f for ds in r["results"]["datasets"].values()
                         for v in ds["variants"].values() for f in v["code_fingerprints"]})
        sources.append(f"- `{path.name}`: seeds {', '.join(map(str, r['seeds']))}; "
                       f"`{r['command']}`; run {r['environment'].get('date (UTC)', '?')}; "
                       f"code {', '.join(prints)}")
    header = "\n".join([f"# graphmutual bench — {args.name}", "", "Command:", "", "```",
                        command_line(), "```", "", *sources, "",
                        "Hardware and software: see each source report."])
    out = args.output or args.reports[0].parent
    md = format_markdown(merged, order, header)
    write_text(out / f"{args.name}.md", md)
    write_json(out / f"{args.name}.json", sort_keys=True, obj={
        "command": command_line(), "sources": [str(p) for p in args.reports],
        "methods": order, "seeds": sorted({s for r in loaded for s in r["seeds"]}),
        "results": merged})
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
