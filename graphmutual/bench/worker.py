"""Run the seeds of one configuration in this (fresh) process and cache each result.

Invoked by the runner as ``python -m graphmutual.bench.worker JOB.json``. One process per
configuration means its peak resident set size (``resource.getrusage(RUSAGE_SELF)
.ru_maxrss``) is that configuration's peak memory: it includes the Python interpreter,
torch, PyG and the dataset (reported separately as ``rss_baseline_mb``, measured after
loading the dataset and before training). torch is pinned to one thread
(``torch.set_num_threads(1)``) so that parallel workers do not oversubscribe the cores,
and flushes denormal floats to zero (``torch.set_flush_denormal(True)``): values below
1.2e-38 become 0, which changes no metric but keeps long CPU runs from slowing down as
values decay into the denormal range (a matmul on denormals is ~200x slower without it,
``benchmarks/results/denormal_cpu.md``; what was seen on ogbg-molhiv is in
``benchmarks/PROTOCOL.md``).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

#: How the memory columns are measured (written into every result).
MEMORY_METHOD = ("peak RSS of the worker process (resource.getrusage ru_maxrss); includes "
                 "the interpreter, torch/PyG and the dataset")
#: History columns kept in the cached JSON (per epoch).
HISTORY_PREFIXES = ("alw/", "val/", "test/", "loss/total")


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (ru_maxrss is KiB on Linux, B on macOS)."""
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


#: Sub-packages whose source determines a run's result (hashed into ``code_fingerprint``).
RESULT_PACKAGES = ("data", "mutual", "nn", "ops", "train")


def code_fingerprint() -> str:
    """SHA-256 (12 hex digits) of the graphmutual sources that determine a result.

    Stored in every run (not in the cache key): the tables list the fingerprints of the
    runs they aggregate, so runs made by different training code are visible.
    """
    import hashlib

    import graphmutual

    base = Path(graphmutual.__file__).parent
    h = hashlib.sha256()
    for pkg in RESULT_PACKAGES:
        for f in sorted((base / pkg).rglob("*.py")):
            h.update(str(f.relative_to(base)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def count_parameters(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def history_columns(rows: List[Dict[str, Any]]) -> Dict[str, List[float]]:
    """The per-epoch columns of a run's history (:attr:`SeedRun.history
    <graphmutual.train.trainer.SeedRun>`) that the plots and tables use, rounded to 5
    digits (the epoch exactly); a column missing from some epoch gets NaN there."""
    keys = sorted({k for row in rows for k in row
                   if k == "epoch" or k.startswith(HISTORY_PREFIXES)},
                  key=lambda k: (k != "epoch", k))
    cols: Dict[str, List[float]] = {}
    for k in keys:
        for row in rows:
            v = row.get(k)
            x = float(v) if isinstance(v, (int, float)) else float("nan")
            cols.setdefault(k, []).append(x if k == "epoch" else round(x, 5))
    return cols


def _epoch_reporter(spec, epochs: int, on_epoch: Optional[Callable[[Dict[str, Any]], None]]
                    ) -> Callable[[Dict[str, Any]], None]:
    """A ``Trainer.run_seed`` epoch hook that reports ``spec``'s progress."""
    def report(row: Dict[str, Any]) -> None:
        event = {"epoch": int(row["epoch"]) + 1, "epochs": epochs, "dataset": spec.dataset,
                 "variant": spec.variant, "seed": spec.seed}
        if on_epoch is not None:
            on_epoch(event)
        else:
            print(json.dumps(event), flush=True)
    return report


def run_job(job: Dict[str, Any],
            on_done: Optional[Callable[[Dict[str, Any]], None]] = None,
            on_epoch: Optional[Callable[[Dict[str, Any]], None]] = None) -> int:
    """Run ``job`` = {root, cache, threads, specs: [RunSpec dicts of one configuration]}.

    ``on_done`` is called after each finished seed with ``{"done": variant, "dataset",
    "seed", "wall_seconds"}`` and ``on_epoch`` after each epoch with ``{"epoch", "epochs",
    "dataset", "variant", "seed"}`` (in-process use). Without them (a subprocess worker)
    both are printed as one JSON line each on stdout: ``{"epoch": ...}`` per epoch and
    ``{"done": ...}`` per seed, which the runner reads.
    """
    import torch

    torch.set_num_threads(int(job.get("threads", 1)))
    flush_denormal = torch.set_flush_denormal(True)  # False where the CPU cannot
    from graphmutual.bench.cache import RunCache
    from graphmutual.bench.presets import RunSpec
    from graphmutual.data import load_dataset
    from graphmutual.train import TrainConfig, Trainer

    cache = RunCache(job["cache"])
    specs = [RunSpec(s["dataset"], s["variant"], s["seed"], s["config"]) for s in job["specs"]]
    dataset = load_dataset(specs[0].dataset, job.get("root"))
    baseline = peak_rss_mb()
    fingerprint = code_fingerprint()
    for spec in specs:
        if cache.get(spec) is not None:
            continue
        cfg = TrainConfig.from_dict({**spec.config, "root": job.get("root"),
                                     "seeds": [spec.seed], "progress": False})
        trainer = Trainer(cfg, dataset=dataset)
        report_epoch = _epoch_reporter(spec, trainer.epochs, on_epoch)
        t0 = time.perf_counter()
        run = trainer.fit_seed(spec.seed, on_epoch=report_epoch)
        wall = time.perf_counter() - t0
        res, cohort = run.result, run.cohort
        params = {n: count_parameters(s) for n, s in zip(cohort.names, cohort.students)}
        params["cohort"] = count_parameters(cohort)
        cache.put(spec, {
            "dataset": spec.dataset, "variant": spec.variant, "seed": spec.seed,
            "config": spec.config, "task": dataset.task, "metric": dataset.metric,
            "students": list(cohort.names), "split": res["split"],
            "members": res["members"], "epochs_run": res["epochs_run"],
            "epochs_max": trainer.epochs,
            "seconds_per_epoch": res["seconds_per_epoch"], "wall_seconds": wall,
            "params": params, "peak_rss_mb": peak_rss_mb(), "rss_baseline_mb": baseline,
            "memory_method": MEMORY_METHOD, "torch_threads": torch.get_num_threads(),
            "flush_denormal": flush_denormal,
            "torch_version": torch.__version__, "code_fingerprint": fingerprint,
            "history": history_columns(run.history),
        })
        done = {"done": spec.variant, "dataset": spec.dataset, "seed": spec.seed,
                "wall_seconds": wall}
        if on_done is not None:
            on_done(done)
        else:
            print(json.dumps(done), flush=True)
    return 0


def main(argv: List[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m graphmutual.bench.worker JOB.json", file=sys.stderr)
        return 2
    return run_job(json.loads(Path(argv[0]).read_text()))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
