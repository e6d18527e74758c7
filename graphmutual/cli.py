"""The ``graphmutual`` command line: ``train``, ``datasets``, ``bench``, ``recommend``, ``info``.

Every command turns bad input (unknown names, missing files, corrupt checkpoints or configs,
invalid graphs: the package's own errors, ``ValueError`` and ``OSError`` such as
``FileNotFoundError``) into one clear ``error:`` line and exit status 2, without a
traceback.  Anything else is a bug: a short ``internal error`` line with a hint to rerun
with ``--debug`` (exit status 1), which shows the traceback.  The training defaults are not
restated here: options left out take the task defaults of
:mod:`graphmutual.train.defaults`, the same a Python user gets from
:func:`graphmutual.train.defaults_for`.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any, Callable, List, Optional

#: The CLI's torch thread count (one thread was the fastest for Cora-sized graphs on the
#: 2-core reference machine; benchmarks/PROTOCOL.md).
CLI_THREADS = 1

EXAMPLES = """examples:
  graphmutual train                                   # bundled Cora, gcn,gat,gin, method gml
  graphmutual train --dataset citeseer --root ../shared/datasets --seeds 10
  graphmutual train --dataset mutag --root DATA --students gin,gcn --method dml
  graphmutual train --config run.yaml --output runs/cora --resume
  graphmutual train --dataset proteins --root DATA --batch-size 64 --patience 30
  graphmutual datasets --root DATA                    # names, tasks, metrics, splits
  graphmutual bench --quick                           # the CI smoke suite
  graphmutual recommend --root DATA --user 2 --top 10
  graphmutual info
"""


def _task_default(key: str) -> str:
    """``"node 0.01, graph 0.001"``: the task defaults of ``key``, for ``--help``."""
    from graphmutual.train.defaults import TASK_DEFAULTS

    def fmt(v):
        return "full batch" if v is None and key == "batch_size" else str(v)

    v = {kind: fmt(getattr(d, key)) for kind, d in TASK_DEFAULTS.items()}
    if len(set(v.values())) == 1:
        return next(iter(v.values()))
    parts = []
    for task, (a, b), names in (("node", ("node", "node-raw"), ("Planetoid", "other node")),
                                ("graph", ("graph", "ogb-mol"), ("graph", "OGB molecules"))):
        parts += ([f"{task} {v[a]}"] if v[a] == v[b] else
                  [f"{names[0]} {v[a]}", f"{names[1]} {v[b]}"])
    return ", ".join(parts)


#: ``graphmutual train`` options → :class:`~graphmutual.train.TrainConfig` keys.
TRAIN_OPTIONS = {
    "dataset": "dataset", "root": "root", "students": "students", "method": "method",
    "divergence": "divergence", "temperature": "temperature", "entropy": "entropy",
    "warmup": "warmup", "schedule": "schedule", "epochs": "epochs", "lr": "lr",
    "hidden": "hidden", "layers": "num_layers", "dropout": "dropout",
    "weight_decay": "weight_decay", "batch_size": "batch_size", "fanout": "fanout",
    "patience": "patience",
    "seeds": "seeds", "device": "device", "threads": "threads",
    "deterministic": "deterministic", "output": "output",
}


def _add_debug(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: given after the command it sets the flag, left out it keeps the global one
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the full traceback of an error")


def _add_command(sub: Any, name: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                 help: str, description: str, epilog: Optional[str] = None) -> None:
    """The subcommand ``name``: ``help`` in the command list, ``description`` atop its
    ``--help``, the ``epilog`` examples kept as written; ``add_arguments`` adds its options."""
    raw = {"formatter_class": argparse.RawDescriptionHelpFormatter} if epilog else {}
    add_arguments(sub.add_parser(name, help=help, description=description, epilog=epilog,
                                 **raw))


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    from graphmutual.data import available_datasets
    from graphmutual.mutual import DIVERGENCES, METHODS
    from graphmutual.train import TrainConfig

    cfg = TrainConfig()
    d = p.add_argument_group("data")
    d.add_argument("--dataset", default=None, metavar="NAME",
                   help="one of: " + ", ".join(available_datasets()) + " (default: cora, the "
                        "copy bundled with graphmutual; `graphmutual datasets` shows each "
                        "one's task, metric and split)")
    d.add_argument("--root", default=None,
                   help="directory holding Planetoid/, TUDataset/, ogb/, Amazon/, Coauthor/ "
                        "(default: the data package's default root, $GRAPHMUTUAL_DATA if set; "
                        "bundled Cora needs none)")
    m = p.add_argument_group("cohort and method")
    m.add_argument("--students", default=None,
                   help="comma-separated students: gcn, gat, gin, mlp, sage "
                        f"(default: {','.join(cfg.students)})")
    m.add_argument("--method", choices=METHODS, default=None,
                   help="independent, dml (Deep Mutual Learning) or gml (ALW + entropy "
                        "enhancement; default)")
    m.add_argument("--divergence", choices=sorted(DIVERGENCES), default=None,
                   help="mimicry divergence (default: kl; balanced for gml on Planetoid "
                        "datasets, chosen on validation)")
    m.add_argument("--temperature", type=float, default=None,
                   help=f"T (default: {cfg.temperature})")
    m.add_argument("--entropy", type=float, default=None,
                   help="entropy-enhancement weight beta (default: the method's, gml 0.1)")
    m.add_argument("--warmup", type=int, default=None,
                   help=f"mimicry warm-up epochs (default: {_task_default('warmup')})")
    m.add_argument("--schedule", choices=("simultaneous", "alternating"), default=None)
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=None,
                   help=f"maximum epochs (default: {_task_default('epochs')})")
    t.add_argument("--lr", type=float, default=None,
                   help=f"learning rate (default: {_task_default('lr')})")
    t.add_argument("--hidden", type=int, default=None,
                   help=f"hidden width (default: {_task_default('hidden')})")
    t.add_argument("--layers", type=int, default=None,
                   help=f"layers per student (default: {_task_default('num_layers')})")
    t.add_argument("--dropout", type=float, default=None,
                   help="dropout of every student (default: each student's own, GAT 0.6, "
                        "the others 0.5)")
    t.add_argument("--weight-decay", type=float, default=None,
                   help=f"Adam weight decay (default: {cfg.weight_decay})")
    t.add_argument("--batch-size", type=int, default=None,
                   help=f"graphs per batch on graph datasets (default: "
                        f"{_task_default('batch_size')}); on node datasets: seed nodes per step "
                        "of neighbour-sampled training (default: full batch); with "
                        "--distributed: the global batch, split over the ranks")
    t.add_argument("--fanout", default=None,
                   help="neighbours sampled per hop with --batch-size on node datasets, e.g. "
                        "15,10 (-1 = all; default 15,10,5,... one per layer)")
    t.add_argument("--patience", type=int, default=None,
                   help="stop after this many epochs without a better validation score "
                        f"(default: {_task_default('patience')})")
    t.add_argument("--seeds", default=None,
                   help="a count (10 runs seeds 0-9, as OGB asks) or a list (0,3,7; seed 3 "
                        "alone: 3,); default: 1 (seed 0)")
    t.add_argument("--device", default=None, help="cpu (default), cuda, cuda:N or auto")
    t.add_argument("--threads", type=int, default=None,
                   help=f"torch CPU threads (default: {CLI_THREADS}, the fastest for graphs "
                        "of Cora's size on a 2-core machine; raise it for large graphs)")
    t.add_argument("--deterministic", action="store_true", default=None,
                   help="use deterministic torch kernels")
    t.add_argument("--config", default=None,
                   help="YAML file of settings (command-line options override it)")
    t.add_argument("--distributed", choices=("data", "student"), default=None,
                   help="train on the processes torchrun started: data-parallel (each rank "
                        "a shard of the samples) or student-parallel (each rank some of the "
                        "students); see the 'Distributed training' docs page")
    t.add_argument("--dist-timeout", type=float, default=None, metavar="SECONDS",
                   help="with --distributed: how long a collective waits for the other "
                        "ranks before the job ends with an error (default: 300)")
    o = p.add_argument_group("output")
    o.add_argument("--output", default=None,
                   help="directory for results.json, per-seed logs, checkpoints and "
                        "best_student.pt (default: runs/<dataset>-<method>)")
    o.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --output from its checkpoints")
    o.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_debug(p)


def build_parser() -> argparse.ArgumentParser:
    from graphmutual import __version__

    parser = argparse.ArgumentParser(
        prog="graphmutual",
        description="Collaborative (mutual) learning of graph neural networks.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"graphmutual {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_command(sub, "train", _add_train_arguments,
                 help="train a cohort and report per-student and ensemble metrics",
                 description="Train a cohort of student GNNs by mutual learning on one "
                             "dataset, for one or more seeds, and print val/test mean ± std "
                             "per student and for the ensemble.",
                 epilog=EXAMPLES)
    from graphmutual.recsys.cli import add_arguments as add_recommend_arguments

    _add_command(sub, "recommend", add_recommend_arguments,
                 help="multi-modal social recommendation on Last.fm",
                 description="Train and evaluate fusion-free mutual learning of modality "
                             "branches on Last.fm, or print a user's top-K artists.")
    from graphmutual.bench.cli import EXAMPLES as BENCH_EXAMPLES
    from graphmutual.bench.cli import add_arguments as add_bench_arguments

    _add_command(sub, "bench", add_bench_arguments,
                 help="benchmark suite: independent vs DML vs GML tables",
                 description="Run benchmark presets (datasets × methods × seeds), cache each "
                             "finished run, and aggregate markdown/JSON tables and plots.",
                 epilog=BENCH_EXAMPLES)
    dp = sub.add_parser(
        "datasets", help="the datasets: task, metric, split, and whether present under --root",
        description="List every dataset graphmutual can load, with its task, metric, "
                    "split protocol, and whether its files are present under --root.")
    dp.add_argument("--root", default=None,
                    help="dataset root to look in (default: the data package's default "
                         "root, $GRAPHMUTUAL_DATA if set)")
    _add_debug(dp)
    ip = sub.add_parser("info", help="versions, devices and available kernel backends",
                        description="Print versions, devices and kernel backends.")
    _add_debug(ip)
    return parser


def config_from_args(args: argparse.Namespace):
    """Merge defaults ← YAML ``--config`` ← command-line options into a TrainConfig."""
    from graphmutual.train import TrainConfig, load_yaml_config

    values = load_yaml_config(args.config) if args.config else {}
    for option, key in TRAIN_OPTIONS.items():
        v = getattr(args, option)
        if v is not None:
            values[key] = v
    values.setdefault("threads", CLI_THREADS)
    if args.no_progress or not sys.stderr.isatty():
        values["progress"] = False
    cfg = TrainConfig.from_dict(values)
    if cfg.output is None:
        cfg.output = os.path.join("runs", f"{cfg.dataset.lower()}-{cfg.method}")
    return cfg


def _fmt(mean: float, std: float, n: int, scale: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean * scale:6.2f} ± {std * scale:5.2f}" if n > 1 else f"{mean * scale:6.2f}"


def format_table(results: dict) -> str:
    """The per-member val/test table printed by ``graphmutual train``."""
    n = len(results["seeds"])
    unit = "%" if results["metric"] == "accuracy" else "ROC-AUC ×100"
    lines = [f"{results['dataset']} — {results['metric']} ({unit}), {n} seed(s), "
             f"{results['seconds_per_epoch_mean']:.3f} s/epoch",
             f"{'member':<14} {'val':>15} {'test':>15}", "-" * 46]
    for m, d in results["members"].items():
        lines.append(f"{m:<14} {_fmt(d['val_mean'], d['val_std'], n, 100):>15} "
                     f"{_fmt(d['test_mean'], d['test_std'], n, 100):>15}")
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from graphmutual.train import Trainer

    # the command owns its process: flush denormals to zero, as the bench workers do (long
    # CPU runs otherwise slow down epoch after epoch; see graphmutual.bench.worker)
    torch.set_flush_denormal(True)
    cfg = config_from_args(args)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    from graphmutual.train import distributed

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if args.distributed is None and distributed.launched_by_torchrun() and world > 1:
        raise ValueError(f"torchrun started {world} processes, but --distributed is not set: "
                         "add --distributed data or --distributed student")
    if args.distributed is not None:
        results = distributed.run_distributed(
            cfg, args.distributed, resume=args.resume,
            timeout=args.dist_timeout or distributed.DEFAULT_TIMEOUT)
        main = distributed.is_main_process()
        distributed.finish()
        if not main:
            return 0
    else:
        trainer = Trainer(cfg)
        from graphmutual.train.tasks import built_features

        features = built_features(trainer.dataset)
        if features:  # built or transformed by the package: say so before training
            print(f"{trainer.dataset.name}: input features: {features}", flush=True)
        results = trainer.run(resume=args.resume)
    print(format_table(results))
    print(f"input features: {results['input_features']}")
    for line in results["warnings"]:
        print(f"warning: {line}", file=sys.stderr)
    print(f"results written to {os.path.join(cfg.output, 'results.json')}")
    return 0


def _present(name: str, root) -> bool:
    """Whether the files of registered dataset ``name`` are under ``root``."""
    from pathlib import Path

    from graphmutual.data import DATASETS

    spec = DATASETS[name]
    if spec.family == "bundled":
        return True
    if spec.family in ("ogbg", "ogbn"):
        folder = Path(root) / "ogb" / spec.source_name.replace("-", "_")
    else:
        folder = Path(root) / spec.family / spec.source_name
    return folder.is_dir() and any(folder.iterdir())


def cmd_datasets(args: argparse.Namespace) -> int:
    from pathlib import Path

    from graphmutual.data import DATASETS, default_root

    root = Path(args.root).expanduser() if args.root else default_root()
    if args.root and not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist or is not a directory")
    rows = [(name, spec.task, spec.metric,
             "bundled" if spec.family == "bundled" else
             ("yes" if _present(name, root) else "no"), spec.split)
            for name, spec in DATASETS.items()]
    head = ("name", "task", "metric", "present", "split")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
    print(f"dataset root: {root}")
    for r in [head] + rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)) + "  " + r[4])
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import platform

    import torch
    import torch_geometric

    import graphmutual

    print(f"graphmutual      {graphmutual.__version__}")
    print(f"python           {platform.python_version()} ({platform.machine()})")
    print(f"torch            {torch.__version__} (threads: {torch.get_num_threads()})")
    print(f"torch_geometric  {torch_geometric.__version__}")
    try:
        import ogb

        print(f"ogb              {ogb.__version__}")
    except ImportError:
        print("ogb              not installed")
    cuda = torch.cuda.is_available()
    print(f"cuda             {'available: ' + torch.cuda.get_device_name(0) if cuda else 'no'}")
    from graphmutual.data import default_root

    print(f"data root        {default_root()}")
    try:
        from graphmutual.ops import backend

        print("kernel backends:")
        for name, status in backend.available_backends(build=True).items():
            print(f"  {name:<14} {status}")
        print(f"in use (cpu)     {backend.current_backend('cpu')}")
        if cuda:
            print(f"in use (cuda)    {backend.current_backend('cuda')}")
    except Exception as exc:  # info must never crash
        print(f"kernel backends: unavailable ({exc})")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    from graphmutual.train import CheckpointError
    from graphmutual.train.distributed import DistributedError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return cmd_train(args)
        if args.command == "datasets":
            return cmd_datasets(args)
        if args.command == "bench":
            from graphmutual.bench.cli import run as run_bench

            return run_bench(args)
        if args.command == "recommend":
            from graphmutual.recsys.cli import run as run_recommend

            return run_recommend(args)
        return cmd_info(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, CheckpointError, FloatingPointError,
            DistributedError) as exc:
        # bad input, a missing, unreadable or unwritable file (OSError: FileNotFoundError,
        # PermissionError, a full disk...), a diverged run, a dead or hung rank of a
        # distributed job: the package's messages
        if args.debug:
            raise
        print(f"graphmutual {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: never dressed up as a one-line input error
        if args.debug:
            raise
        print(f"graphmutual {args.command}: internal error ({type(exc).__name__}: {exc}); "
              "this is a bug -- rerun with --debug to see the traceback", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
