"""Run a suite: skip cached runs, run the rest in worker subprocesses, show progress."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO, Tuple, Union

from tqdm.auto import tqdm

from graphmutual.bench.cache import RunCache
from graphmutual.bench.presets import RunSpec
from graphmutual.data import DATASETS


@dataclass
class SuiteReport:
    """What :func:`run_suite` did."""

    total: int = 0
    cached: int = 0
    ran: int = 0
    failed: List[Tuple[str, str]] = field(default_factory=list)  # (job, error tail)


def dataset_dirs(name: str) -> List[str]:
    """Folders (relative to a data root) that dataset ``name`` is loaded from."""
    spec = DATASETS[name]
    if spec.family == "bundled":
        return []
    if spec.family in ("ogbg", "ogbn"):
        return [f"ogb/{spec.source_name.replace('-', '_')}"]
    return [f"{spec.family}/{spec.source_name}"]


def writable_root(root: Optional[Union[str, Path]], datasets: Sequence[str],
                  data_cache: Optional[Union[str, Path]]) -> Optional[str]:
    """A private data root that the loaders may write ``processed/`` into.

    The datasets' raw folders under ``root`` (without any ``processed/``) are copied under
    ``data_cache`` (once; later calls reuse the copy) and that copy is returned, so a shared
    or read-only dataset folder is never written to. ``data_cache=None`` uses ``root`` as
    is. ``root=None`` stays ``None`` (bundled Cora only).
    """
    if root is None:
        return None
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist or is not a directory")
    if data_cache is None:
        return str(root)
    dest = Path(data_cache).expanduser()
    if dest.resolve() == root.resolve():
        return str(root)
    for name in datasets:
        for rel in dataset_dirs(name):
            src = root / rel
            if not src.exists():
                continue  # the loader raises a clear error (or downloads) later
            shutil.copytree(src, dest / rel, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("processed"))
    dest.mkdir(parents=True, exist_ok=True)
    return str(dest)


def make_jobs(specs: Sequence[RunSpec], cache: RunCache, seeds_per_job: int) -> List[List[RunSpec]]:
    """Pending specs grouped by configuration, in chunks of ``seeds_per_job`` seeds.

    Jobs are ordered chunk by chunk (every configuration's first seeds, then the next), so
    an interrupted suite already has comparable seeds for every method.
    """
    groups: Dict[str, List[RunSpec]] = {}
    for s in specs:
        if cache.get(s) is None:
            key = json.dumps({k: v for k, v in s.key_dict().items() if k != "seed"},
                             sort_keys=True)
            groups.setdefault(key, []).append(s)
    chunked = [[g[i:i + seeds_per_job] for i in range(0, len(g), seeds_per_job)]
               for g in groups.values()]
    jobs = []
    for rank in range(max((len(c) for c in chunked), default=0)):
        jobs.extend(c[rank] for c in chunked if rank < len(c))
    return jobs


def _payload(job: List[RunSpec], root: Optional[str], cache: RunCache,
             threads: int) -> Dict:
    return {"root": root, "cache": str(cache.root), "threads": threads,
            "specs": [{"dataset": s.dataset, "variant": s.variant, "seed": s.seed,
                       "config": s.config} for s in job]}


class SuiteProgress:
    """A tqdm bar over a suite's runs whose postfix shows each running job's epoch.

    Without the bar (``enabled=False``: ``--no-progress``, or stderr is not a terminal, as
    under ``nohup``) every finished run is reported as one plain line on ``log`` instead,
    e.g. ``bench: run 4/9 finished: mutag/gml seed 3 (2.1 min)``, so a long suite's log
    shows where it is. Thread-safe: one runner thread per worker subprocess reports into it.
    """

    def __init__(self, total: int, initial: int, enabled: bool = True,
                 log: Optional[TextIO] = None) -> None:
        self.bar = tqdm(total=total, initial=initial, desc="bench", unit="run",
                        disable=not enabled, dynamic_ncols=True)
        self.finished = initial  # the bar's own count stays put while it is disabled
        self.log = None if enabled else (log if log is not None else sys.stderr)
        self._lock = threading.Lock()
        self._running: Dict[int, str] = {}

    def run_done(self, event: Dict) -> None:
        """Count one finished run; ``event`` is the worker's ``{"done": variant, "dataset",
        "seed", "wall_seconds"}``."""
        with self._lock:
            self.bar.update(1)
            self.finished += 1
            if self.log is not None:
                print(f"bench: run {self.finished}/{self.bar.total} finished: "
                      f"{event['dataset']}/{event['done']} seed {event['seed']} "
                      f"({event['wall_seconds'] / 60:.1f} min)", file=self.log, flush=True)

    def epoch(self, job: int, event: Dict) -> None:
        """Show ``event`` (a worker's ``{"epoch", "epochs", "dataset", ...}``) for ``job``."""
        text = (f"{event['dataset']}/{event['variant']} seed {event['seed']} "
                f"epoch {event['epoch']}/{event['epochs']}")
        with self._lock:
            self._running[job] = text
            self.bar.set_postfix_str("; ".join(self._running[k] for k in sorted(self._running)))

    def job_done(self, job: int) -> None:
        with self._lock:
            self._running.pop(job, None)

    def close(self) -> None:
        self.bar.close()


def _handle_worker_line(line: str, job: int, progress: SuiteProgress) -> None:
    """Act on one stdout line of a worker (see :func:`graphmutual.bench.worker.run_job`)."""
    if not line.startswith("{"):
        return
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return
    if "done" in event:
        progress.run_done(event)
    elif "epoch" in event:
        progress.epoch(job, event)


def _run_job(job: List[RunSpec], index: int, root: Optional[str], cache: RunCache,
             threads: int, progress: SuiteProgress) -> Optional[str]:
    """Run one job in a subprocess; return an error text or ``None``."""
    payload = _payload(job, root, cache, threads)
    with tempfile.TemporaryDirectory(prefix="gm-bench-job-") as tmp:
        path = Path(tmp) / "job.json"
        path.write_text(json.dumps(payload))
        err_path = Path(tmp) / "stderr.txt"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        with err_path.open("w") as err:
            proc = subprocess.Popen([sys.executable, "-m", "graphmutual.bench.worker",
                                     str(path)], stdout=subprocess.PIPE, stderr=err,
                                    text=True, env=env)
            assert proc.stdout is not None
            for line in proc.stdout:
                _handle_worker_line(line, index, progress)
            rc = proc.wait()
        progress.job_done(index)
        if rc != 0:
            tail = err_path.read_text()[-2000:]
            return f"worker exited with status {rc}:\n{tail}"
    return None


def run_suite(specs: Sequence[RunSpec], cache: RunCache, root: Optional[str] = None,
              jobs: int = 1, threads: int = 1, seeds_per_job: int = 5,
              progress: bool = True) -> SuiteReport:
    """Run every spec that is not cached yet; finished runs land in ``cache``.

    Args:
        specs: the suite (see :func:`~graphmutual.bench.presets.expand_suite`).
        cache: where finished runs are stored (and looked up).
        root: a writable data root (see :func:`writable_root`).
        jobs: worker subprocesses at a time; ``0`` runs everything in this process (no
            subprocess: faster to start, but peak memory is then this process's).
        threads: torch threads per worker.
        seeds_per_job: seeds run by one worker process before it exits.
        progress: show a tqdm bar over the suite's runs, with each running job's
            dataset, variant, seed and epoch; without it, one line on stderr per
            finished run.
    """
    if jobs < 0 or threads < 1 or seeds_per_job < 1:
        raise ValueError("jobs must be >= 0, threads and seeds_per_job positive")
    report = SuiteReport(total=len(specs))
    work = make_jobs(specs, cache, seeds_per_job)
    pending = sum(len(j) for j in work)
    report.cached = report.total - pending
    progress_bar = SuiteProgress(report.total, report.cached, enabled=progress)
    if jobs == 0:
        from graphmutual.bench.worker import run_job

        for j in work:
            run_job(_payload(j, root, cache, threads), on_done=progress_bar.run_done,
                    on_epoch=lambda event: progress_bar.epoch(0, event))
        progress_bar.close()
        report.ran = pending
        return report
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [(j, pool.submit(_run_job, j, i, root, cache, threads, progress_bar))
                   for i, j in enumerate(work)]
        for j, fut in futures:
            error = fut.result()
            if error is not None:
                name = f"{j[0].dataset}/{j[0].variant} seeds {[s.seed for s in j]}"
                report.failed.append((name, error))
                tqdm.write(f"bench: {name} failed: {error.strip().splitlines()[-1]}",
                           file=sys.stderr)
    progress_bar.close()
    report.ran = sum(1 for s in specs if cache.get(s) is not None) - report.cached
    return report
