"""``graphmutual bench``: run a benchmark suite, resume it, aggregate tables and plots.

Wiring (done in :mod:`graphmutual.cli`)::

    bp = sub.add_parser("bench", ...)
    graphmutual.bench.cli.add_arguments(bp)
    ...
    return graphmutual.bench.cli.run(args)
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from graphmutual.bench.presets import (
    DEFAULT_STUDENTS,
    GRAPH_PRESETS,
    NODE_PRESETS,
    QUICK_DATASETS,
    QUICK_EPOCHS,
    VARIANTS,
)

#: Where tables, JSON, plots and the run cache go without ``--output``: relative to the
#: working directory, like ``graphmutual train``'s ``runs/<dataset>-<method>`` -- never into
#: the package's source tree or a repository path. The repository's checked-in tables are
#: made with ``--output benchmarks/results/bench`` (``benchmarks/reproduce.sh``).
DEFAULT_OUTPUT = os.path.join("runs", "bench")
QUICK_OUTPUT = os.path.join("runs", "bench-quick")

EXAMPLES = f"""presets: node = {', '.join(NODE_PRESETS)}; graph = {', '.join(GRAPH_PRESETS)}
methods: main = independent,dml,gml; ablations = {', '.join(v for v in VARIANTS
                                                            if v.startswith('gml'))}

examples:
  graphmutual bench --quick                           # CI smoke test: cora + mutag, 5 epochs
  graphmutual bench --root ../shared/datasets --datasets cora,citeseer --name node
  graphmutual bench --root DATA --datasets cora --output benchmarks/results/bench  # in a checkout
  graphmutual bench --root DATA --datasets cora --methods ablations --name ablation-cora
  graphmutual bench --root DATA --datasets mutag --students gcn,gat,gin,mlp --seeds 5
  graphmutual bench --root DATA --datasets citeseer --methods gml --set t_min=1.0
  graphmutual bench --root DATA --datasets coauthor-cs --seeds 3,4,5   # seeds 3-5; '3' = 0-2
  graphmutual bench --root DATA --datasets cora,citeseer --methods gml --sweep t_min=0.5,1.0
  graphmutual bench --name node --aggregate-only      # re-make tables/plots from the cache

Without --output everything goes to ./runs/bench (./runs/bench-quick with --quick) under the
current directory: tables NAME.md/NAME.json, plots/, and the run cache runs/ that resumes and
reuses finished runs across suites.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``graphmutual bench``'s options to ``p``."""
    s = p.add_argument_group("suite")
    s.add_argument("--datasets", default=None,
                   help="comma-separated dataset names or groups node, graph, all "
                        "(default: all; --quick: cora,mutag)")
    s.add_argument("--methods", default="main",
                   help="comma-separated method variants or groups main, ablations, all "
                        "(default: main = independent,dml,gml)")
    s.add_argument("--students", default=",".join(DEFAULT_STUDENTS),
                   help="comma-separated students: gcn, gat, gin, mlp, sage "
                        "(default: gcn,gat,gin)")
    s.add_argument("--mlp", action="store_true", help="add an MLP student to the cohort")
    s.add_argument("--seeds", default=None,
                   help="a count (10 = seeds 0-9) or a list (0,3,7; seed 3 alone: 3,); "
                        "default 10, --quick 1")
    s.add_argument("--quick", action="store_true",
                   help=f"smoke test: {','.join(QUICK_DATASETS)}, {QUICK_EPOCHS} epochs, one "
                        f"seed, written to {QUICK_OUTPUT}")
    t = p.add_argument_group("training overrides (enter the cache key; default: task defaults)")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--hidden", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--patience", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                   help="any other TrainConfig key for every run, e.g. --set t_min=1.0 "
                        "(repeatable; values are read as YAML). The variant's name gets "
                        "the settings appended (gml@t_min=1.0), so a sweep stays apart "
                        "in the tables")
    t.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="like --set, but one variant per value (and per combination when "
                        "repeated), e.g. --sweep t_min=0.5,0.75,1.0; the report's "
                        "validation table is what to choose on")
    d = p.add_argument_group("data and execution")
    d.add_argument("--root", default=None,
                   help="dataset root holding Planetoid/, TUDataset/, ogb/, ... (default: "
                        "$GRAPHMUTUAL_DATA; bundled Cora needs none)")
    d.add_argument("--data-cache", default="~/.cache/graphmutual/bench-data",
                   help="writable copy of the needed raw dataset folders, so the shared root "
                        "is never written to (default: %(default)s; '' to use --root as is)")
    d.add_argument("--jobs", type=int, default=1,
                   help="worker subprocesses at a time (0: run in this process, no "
                        "per-configuration memory figure)")
    d.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    d.add_argument("--seeds-per-job", type=int, default=5,
                   help="seeds one worker process runs before it exits (default 5)")
    o = p.add_argument_group("output")
    o.add_argument("--output", default=None,
                   help=f"directory for tables, JSON and plots (default: ./{DEFAULT_OUTPUT} "
                        f"in the current directory; --quick: ./{QUICK_OUTPUT})")
    o.add_argument("--cache", default=None,
                   help="directory of per-run JSON files (default: OUTPUT/runs)")
    o.add_argument("--name", default=None,
                   help="suite name, the prefix of the written files (default: suite; "
                        "--quick: quick)")
    o.add_argument("--aggregate-only", action="store_true",
                   help="run nothing: make tables and plots from the runs already cached")
    o.add_argument("--no-plots", action="store_true", help="skip the matplotlib figures")
    o.add_argument("--no-progress", action="store_true",
                   help="hide the progress bar (finished runs, and each running "
                   "job's dataset, variant, seed and epoch) and print one line per "
                   "finished run instead; also the default when stderr is not a terminal")


def _split(text: Optional[str]) -> List[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _positive(name: str, value: Optional[int]) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"--{name.replace('_', '-')} must be a positive integer (got {value})")


#: TrainConfig keys ``--set`` may not change: the suite sets them (or they do not change
#: the result).
_RESERVED = ("dataset", "students", "method", "seeds", "root", "output", "progress",
             "resume", "threads")


def parse_settings(items: Sequence[str]) -> Dict[str, Any]:
    """``["t_min=1.0", "warmup=20"]`` → ``{"t_min": 1.0, "warmup": 20}``, checked.

    Values are parsed as YAML scalars; keys must be :class:`~graphmutual.train.TrainConfig`
    fields and the result must make a valid configuration (``ValueError`` otherwise).
    """
    import dataclasses

    import yaml

    from graphmutual.train import TrainConfig
    from graphmutual.train.config import ConfigError

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE (got {item!r})")
        if key in _RESERVED:
            raise ValueError(f"--set {key}=... is not allowed: the suite sets '{key}' "
                             "(use --datasets/--methods/--students/--seeds/--threads)")
        if key not in fields:
            raise ValueError(f"--set: unknown TrainConfig key '{key}'; choose from "
                             f"{', '.join(sorted(fields - set(_RESERVED)))}")
        try:
            out[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {key}: cannot parse {text!r} ({exc})") from None
    try:
        TrainConfig.from_dict({"dataset": "cora", **out})
    except (ConfigError, TypeError) as exc:
        raise ValueError(f"--set: {exc}") from None
    return out


def sweep_settings(items: Sequence[str]) -> List[Dict[str, Any]]:
    """``["t_min=0.5,1", "warmup=0,20"]`` → the 4 combinations as settings dicts (checked).

    No items give ``[{}]`` (one run of the suite without extra settings).
    """
    import itertools

    axes: List[List[Dict[str, Any]]] = []
    for item in items:
        key, sep, text = item.partition("=")
        values = [v for v in text.split(",") if v.strip()]
        if not sep or not values:
            raise ValueError(f"--sweep expects KEY=V1,V2,... (got {item!r})")
        axes.append([parse_settings([f"{key}={v}"]) for v in values])
    return [dict(kv for d in combo for kv in d.items()) for combo in itertools.product(*axes)]


def seed_summary(seeds: Sequence[int]) -> str:
    """Seeds as short text, consecutive seeds as ranges: ``[0, 1, 2, 7]`` → ``0-2, 7``."""
    runs: List[List[int]] = []
    for seed in sorted(set(seeds)):
        if runs and seed == runs[-1][1] + 1:
            runs[-1][1] = seed
        else:
            runs.append([seed, seed])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _needs_root(dataset: str) -> bool:
    return dataset != "cora"


def run(args: argparse.Namespace) -> int:
    """Run (or resume) the suite described by ``args``; write tables, JSON and plots.

    Returns 0 when every run finished, 1 when some failed (the tables then hold the rest).

    Raises:
        ValueError: unknown dataset/method/student names, invalid numbers.
        FileNotFoundError: a ``--root`` that does not exist.
    """
    from graphmutual.bench.aggregate import aggregate, format_markdown
    from graphmutual.bench.cache import RunCache
    from graphmutual.bench.environment import (
        command_line,
        environment,
        environment_markdown,
    )
    from graphmutual.bench.presets import expand_suite, resolve_datasets
    from graphmutual.bench.report import write_json, write_text
    from graphmutual.bench.runner import run_suite, writable_root
    from graphmutual.nn.students import STUDENTS
    from graphmutual.train import parse_seeds

    for name in ("epochs", "hidden", "patience", "batch_size", "threads", "seeds_per_job"):
        _positive(name, getattr(args, name))
    if args.jobs < 0:
        raise ValueError(f"--jobs must be >= 0 (got {args.jobs}; 0 runs in-process)")
    if args.lr is not None and not args.lr > 0:
        raise ValueError(f"--lr must be > 0 (got {args.lr})")
    students = [s.lower() for s in _split(args.students)]
    if args.mlp and "mlp" not in students:
        students.append("mlp")
    unknown = [s for s in students if s not in STUDENTS]
    if unknown or not students:
        raise ValueError(f"unknown student(s) {unknown or args.students!r}; choose from "
                         f"{', '.join(sorted(STUDENTS))}")
    root = args.root or os.environ.get("GRAPHMUTUAL_DATA") or None
    quick = args.quick
    datasets = resolve_datasets(_split(args.datasets) or
                                (list(QUICK_DATASETS) if quick else ["all"]))
    skipped: List[str] = []
    if root is None:
        if quick:  # CI without data: keep what runs from the bundled copy
            skipped = [d for d in datasets if _needs_root(d)]
            datasets = [d for d in datasets if not _needs_root(d)]
            if not datasets:
                raise ValueError("--quick without --root can run bundled cora only")
    seeds = parse_seeds(args.seeds if args.seeds is not None else (1 if quick else 10))
    overrides: Dict[str, Any] = {"epochs": args.epochs or (QUICK_EPOCHS if quick else None),
                                 "hidden": args.hidden, "lr": args.lr,
                                 "patience": args.patience, "batch_size": args.batch_size}
    settings = parse_settings(args.settings)
    specs = []
    for combo in sweep_settings(args.sweep):
        specs += expand_suite(datasets, _split(args.methods), students, seeds, overrides,
                              settings={**settings, **combo})

    output = Path(args.output or (QUICK_OUTPUT if quick else DEFAULT_OUTPUT))
    cache = RunCache(args.cache or output / "runs")
    name = args.name or ("quick" if quick else "suite")
    order = list(dict.fromkeys(s.variant for s in specs))
    # say what will run before anything does: `--seeds 3` is a count (seeds 0-2), and a
    # suite of hours should not reveal a misread only in its report
    what = "runs to aggregate from the cache" if args.aggregate_only else "runs planned"
    print(f"bench: {len(specs)} {what}: datasets {', '.join(datasets)}; methods "
          f"{', '.join(order)}; seeds {seed_summary(seeds)}", file=sys.stderr)
    print(f"bench: output {output}"
          + ("" if args.output else " (the default under the working directory; --output "
             "to change)"), file=sys.stderr)
    if not args.aggregate_only:
        data_root = writable_root(root, datasets, args.data_cache or None)
        report = run_suite(specs, cache, data_root, jobs=args.jobs, threads=args.threads,
                           seeds_per_job=args.seeds_per_job, progress=not args.no_progress
                           and sys.stderr.isatty())
        print(f"bench: {report.total} runs: {report.cached} cached, {report.ran} ran, "
              f"{len(report.failed)} job(s) failed", file=sys.stderr)
        failed = report.failed
    else:
        failed = []
    runs = [r for r in (cache.get(s) for s in specs) if r is not None]
    if not runs:
        print("bench: no finished runs to aggregate", file=sys.stderr)
        return 1
    agg = aggregate(runs)
    info = environment()
    missing = len(specs) - len(runs)
    cmd = command_line()
    if args.aggregate_only:  # show the command that runs the suite; say how tables were made
        cmd = cmd.replace(" --aggregate-only", "")
    header = "\n".join([
        f"# graphmutual bench — {name}", "",
        "Command:", "", "```", cmd, "```", "",
        *(["(These tables were re-made from the cached runs with `--aggregate-only` added.)",
           ""] if args.aggregate_only else []),
        f"Suite: datasets {', '.join(datasets)}; methods {', '.join(order)}; students "
        f"{', '.join(students)}; seeds {', '.join(map(str, seeds))}; overrides "
        f"{ {k: v for k, v in overrides.items() if v is not None} or 'none (task defaults)'}"
        + (f"; settings {settings}" if settings else "")
        + (f"; swept {', '.join(args.sweep)}." if args.sweep else "."),
        f"Finished runs: {len(runs)} of {len(specs)}"
        + (f" ({missing} missing: interrupted or failed)." if missing else "."),
        *([f"Skipped (no --root): {', '.join(skipped)}."] if skipped else []),
        "",
        "Test metric at each member's best validation epoch; `best student` = the student "
        "with the best validation metric in each seed; mean ± unbiased std over seeds. "
        "s/epoch = training time per epoch (no evaluation), one torch thread per worker. "
        "Peak RSS = peak resident set size of the worker process (getrusage), including "
        "the interpreter, torch/PyG and the dataset. Protocol: benchmarks/PROTOCOL.md.",
        "", "Hardware and software:", "", environment_markdown(info),
    ])
    prints = sorted({r.get("code_fingerprint", "unrecorded") for r in runs})
    header += ("\n\nCode fingerprint(s) of graphmutual's data/mutual/nn/ops/train sources "
               f"behind these runs: {', '.join(prints)}"
               + (" — more than one: the runs come from different code." if len(prints) > 1
                  else "."))
    md = format_markdown(agg, order, header)
    write_text(output / f"{name}.md", md)
    write_json(output / f"{name}.json", sort_keys=True, obj={
        "command": cmd, "aggregate_only": bool(args.aggregate_only), "environment": info,
        "datasets": datasets,
        "methods": order, "students": students, "seeds": seeds,
        "overrides": overrides, "settings": settings, "sweep": args.sweep,
        "finished": len(runs), "planned": len(specs),
        "results": agg,
    })
    print(md)
    if not args.no_plots:
        try:
            from graphmutual.bench.plots import make_plots

            paths = make_plots(agg, runs, output / "plots", name, order)
            print(f"bench: {len(paths)} plot(s) in {output / 'plots'}", file=sys.stderr)
        except ImportError as exc:
            print(f"bench: plots skipped ({exc}); pip install matplotlib", file=sys.stderr)
    print(f"bench: tables in {output / (name + '.md')}, JSON in {output / (name + '.json')}",
          file=sys.stderr)
    for job, err in failed:
        print(f"bench: FAILED {job}: {err.strip().splitlines()[-1]}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: Optional[List[str]] = None) -> int:
    """Stand-alone entry point, ``python -m graphmutual.bench.cli`` (the same as
    ``graphmutual bench``, which :mod:`graphmutual.cli` wires through :func:`add_arguments`
    and :func:`run`)."""
    parser = argparse.ArgumentParser(prog="graphmutual bench", epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"graphmutual bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
