"""The trainer: a thin loop over a training task, a best-epoch tracker and a checkpoint state.

For every seed the trainer builds a fresh cohort and lets its task
(:mod:`graphmutual.train.tasks`: full-batch node or mini-batched graph classification)
train it epoch by epoch.  A :class:`~graphmutual.train.tracker.BestTracker` keeps, for every
*member* (each student, the mean ensemble and -- with ALW -- the ALW-weighted ensemble), the
test metric at that member's best validation epoch (model selection on validation only)
and stops early.  A :class:`~graphmutual.train.state.TrainState` is checkpointed atomically
every ``checkpoint_every`` epochs with all random-number-generator states, so
``resume=True`` continues a killed run to the same result as an uninterrupted one on the
CPU.  Across seeds the validation-best student is exported to ``best_student.pt``.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from graphmutual.data import GraphDataset, load_dataset
from graphmutual.mutual import MutualEnsemble
from graphmutual.train.checkpoint import atomic_write_bytes
from graphmutual.train.cohort import build_cohort
from graphmutual.train.config import TrainConfig
from graphmutual.train.defaults import ResolvedConfig, resolve_config
from graphmutual.train.export import export_student, preprocess_steps
from graphmutual.train.health import chance_level, never_learned
from graphmutual.train.state import TrainState, seed_everything
from graphmutual.train.tasks import (
    ENSEMBLE,
    ENSEMBLE_ALW,
    TrainingTask,
    input_features,
    make_task,
    members,
    normalized_features,
)
from graphmutual.train.tracker import Best, BestTracker

log = logging.getLogger(__name__)

__all__ = ["ENSEMBLE", "ENSEMBLE_ALW", "Best", "SeedRun", "Trainer", "make_optimizer",
           "normalized_features", "resolve_device", "seed_everything", "summarize"]


def make_optimizer(params: Union[torch.nn.Module, Iterable[torch.Tensor]], lr: float,
                   weight_decay: float = 0.0) -> torch.optim.Adam:
    r"""The trainer's optimizer: Adam over ``params`` (a module's parameters, or an iterable
    of tensors) with L2 weight decay, :math:`g \leftarrow g + \lambda\theta`.

    ``fused=True``: one fused kernel per step over all parameters (a graph cohort has ~60
    small tensors; PyTorch's default on the CPU is a Python loop over them). The same update
    as the default Adam up to rounding (``tests/test_graph_speed.py``); every trainer (single
    process, distributed, sampled) builds its Adam here, so runs stay comparable bit for bit
    across them. Falls back to ``foreach=True`` where the parameters' device has no fused
    Adam.
    """
    if isinstance(params, torch.nn.Module):
        params = params.parameters()
    params = list(params)
    fused = all(p.device.type in _FUSED_ADAM_DEVICES and p.is_floating_point() for p in params)
    if fused:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)


#: devices with a fused Adam kernel in PyTorch 2.x
_FUSED_ADAM_DEVICES = ("cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"invalid device '{name}' (use cpu, cuda, cuda:0 or auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available here")
    return device


@dataclass
class SeedRun:
    """What :meth:`Trainer.fit_seed` returns.

    Args:
        result: the seed's ``seed{N}.json`` record (``seed``, ``split``, ``epochs_run``,
            ``seconds_per_epoch``, ``members``: ``{member: {"val", "test", "epoch"}}``,
            ``students``).
        cohort: the trained cohort (weights of the last epoch).
        tracker: the best epochs, with each student's weights at its best epoch.
        history: one row per epoch (``epoch``, ``loss/*``, ``val/*``, ``test/*``, ``alw/*``).
    """

    result: Dict[str, Any]
    cohort: MutualEnsemble
    tracker: BestTracker
    history: List[Dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Train a cohort on a dataset under the dataset's protocol, for several seeds.

    Args:
        config: the run configuration (resolved once, :attr:`resolved`).
        dataset: an already loaded dataset (else ``config.dataset`` is loaded from
            ``config.root``).
        task: the training task (default: :func:`~graphmutual.train.tasks.make_task` picks
            full-batch node or mini-batched graph training from ``dataset.task``).
    """

    def __init__(self, config: TrainConfig, dataset: Optional[GraphDataset] = None,
                 task: Optional[TrainingTask] = None) -> None:
        self.config = config
        self.dataset = dataset if dataset is not None else load_dataset(config.dataset,
                                                                        config.root)
        self.resolved: ResolvedConfig = resolve_config(config, self.dataset)
        self.device = resolve_device(self.resolved.device)
        self.task = task if task is not None else make_task(self.dataset, self.resolved,
                                                            self.device)
        self.output = Path(config.output) if config.output else None

    # the resolved values the loop uses (kept as attributes for existing callers)
    @property
    def epochs(self) -> int:
        return self.resolved.epochs

    @property
    def lr(self) -> float:
        return self.resolved.lr

    @property
    def patience(self) -> int:
        return self.resolved.patience

    @property
    def batch_size(self) -> Optional[int]:
        return self.resolved.batch_size

    @property
    def normalize_features(self) -> bool:
        return self.resolved.normalize_features and self.dataset.task == "node"

    def members(self, cohort: MutualEnsemble) -> List[str]:
        return members(cohort)

    # --------------------------------------------------------------- one seed
    def _checkpoint_path(self, seed: int) -> Optional[Path]:
        return self.output / "checkpoints" / f"seed{seed}.pt" if self.output else None

    def fit_seed(self, seed: int, resume: bool = False,
                 on_epoch: Optional[Callable[[Dict], None]] = None) -> SeedRun:
        """Train one cohort with ``seed``; return its results, cohort, tracker and history.

        Args:
            seed: the random seed (and, for datasets with per-seed splits, the split).
            resume: continue from this seed's checkpoint when there is one.
            on_epoch: called after every epoch with that epoch's history row (``epoch``,
                ``loss/*``, ``val/*``, ``test/*``, ``alw/*``), e.g. to report progress
                from a process without a terminal.
        """
        cfg, task = self.resolved, self.task
        seed_everything(seed, cfg.deterministic)
        task.setup(seed)
        cohort = build_cohort(self.dataset, cfg).to(self.device)
        opt = make_optimizer(cohort, cfg.lr, cfg.weight_decay)
        names = members(cohort)
        state = TrainState(BestTracker(names, cfg.patience))
        ckpt = self._checkpoint_path(seed)
        if resume and ckpt is not None and ckpt.exists():
            state.restore(ckpt, cohort, opt)
        tracker = state.tracker

        bar = tqdm(range(state.next_epoch, cfg.epochs), desc=f"{self.dataset.name} seed {seed}",
                   disable=not cfg.progress, leave=False, dynamic_ncols=True,
                   initial=state.next_epoch, total=cfg.epochs)
        for epoch in bar:
            if tracker.should_stop:
                break
            t0 = time.perf_counter()
            losses = task.train_epoch(cohort, opt, epoch)
            state.train_seconds.append(time.perf_counter() - t0)
            if not math.isfinite(losses["total"]):
                raise FloatingPointError(
                    f"the loss became {losses['total']} at epoch {epoch} (seed {seed}); "
                    "lower the learning rate or check the input features"
                )
            ev = task.evaluate(cohort)
            tracker.update(epoch, ev.scores, cohort)
            row = {"epoch": epoch, **{f"loss/{k}": v for k, v in losses.items()},
                   **{f"{p}/{m}": ev.scores[m][p] for m in names for p in ("val", "test")},
                   **ev.stats}
            state.history.append(row)
            state.epoch = epoch
            if on_epoch is not None:
                on_epoch(row)
            lead = ENSEMBLE if ENSEMBLE in ev.scores else names[0]
            bar.set_postfix(loss=f"{losses['total']:.3f}",
                            val=f"{ev.scores[lead]['val']:.3f}")
            last = epoch + 1 >= cfg.epochs or tracker.should_stop
            if ckpt is not None and ((epoch + 1) % cfg.checkpoint_every == 0 or last):
                state.save(ckpt, cohort, opt)
        bar.close()

        spe = state.train_seconds
        result: Dict[str, Any] = {
            "seed": seed,
            "split": task.split.description,
            "epochs_run": len(state.history),
            "seconds_per_epoch": float(np.mean(spe)) if spe else 0.0,
            "members": tracker.results(),
            "students": list(cohort.names),
            "settings": self._settings(),
        }
        chance = chance_level(self.dataset.metric, task.val_labels())
        result["warnings"] = never_learned(cohort.names, result, state.history,
                                           self.dataset.num_classes, chance)
        for line in result["warnings"]:
            log.warning("%s: %s", self.dataset.name, line)
        if self.output is not None:
            self._write_history(seed, state.history)
        return SeedRun(result, cohort, tracker, state.history)

    def run_seed(self, seed: int, resume: bool = False,
                 on_epoch: Optional[Callable[[Dict], None]] = None) -> Dict:
        """:meth:`fit_seed`'s ``result`` (the per-member results of one seed)."""
        return self.fit_seed(seed, resume=resume, on_epoch=on_epoch).result

    def _write_history(self, seed: int, history: List[Dict]) -> None:
        import csv
        import io

        buf = io.StringIO()
        keys = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
        atomic_write_bytes(self.output / f"log_seed{seed}.csv",
                           lambda f: f.write(buf.getvalue().encode()))

    # -------------------------------------------------------------- all seeds
    def _settings(self) -> Dict[str, Any]:
        """The resolved settings that decide a seed's result (stored in ``seed{N}.json``,
        so that ``resume`` can refuse to mix runs of different settings)."""
        skip = ("root", "seeds", "device", "threads", "checkpoint_every", "output",
                "progress")
        return {k: v for k, v in self.resolved.to_dict().items() if k not in skip}

    def _check_interrupted_seeds(self) -> None:
        """Before any work on ``resume``: every checkpoint of a seed not yet finished must
        fit this run's cohort (a clear :class:`~graphmutual.train.CheckpointError` naming
        the file otherwise, rather than one after the finished seeds were read)."""
        if self.output is None:
            return
        for seed in self.resolved.seeds:
            ckpt = self._checkpoint_path(seed)
            if not (self.output / f"seed{seed}.json").exists() and ckpt.exists():
                cohort = build_cohort(self.dataset, self.resolved).to(self.device)
                opt = make_optimizer(cohort, self.resolved.lr)
                TrainState(BestTracker(members(cohort), self.resolved.patience)).restore(
                    ckpt, cohort, opt)

    def _finished_seed(self, path: Path) -> Dict[str, Any]:
        """A finished seed's ``seed{N}.json``, checked against this run's settings."""
        from graphmutual.train.config import ConfigError

        try:
            res = json.loads(path.read_text(encoding="utf-8"))
            res["members"]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"'{path}' is not a finished seed's result ({type(exc).__name__}); delete it "
                "to rerun that seed") from None
        stored = res.get("settings")
        if stored is not None and stored != self._settings():
            now = self._settings()
            diff = sorted(k for k in set(stored) | set(now) if stored.get(k) != now.get(k))
            raise ConfigError(
                f"'{path}' was trained with other settings ({', '.join(diff)}); resume with "
                "the settings of that run, or choose another --output")
        return res

    def _export(self, run: SeedRun, name: str) -> None:
        res = run.result
        k = run.cohort.names.index(name)
        student = run.cohort.students[k]
        student.load_state_dict(run.tracker.best_states[name])
        export_student(student, self.output / "best_student.pt", meta={
            "name": name, "seed": res["seed"], "dataset": self.dataset.name,
            "val": res["members"][name]["val"], "test": res["members"][name]["test"],
            "normalize_features": self.normalize_features,
            "input_features": self.task.input_features,
        }, preprocess=preprocess_steps(self.dataset, self.normalize_features))

    def run(self, resume: bool = False) -> Dict:
        """Run every seed of the configuration and summarise (mean ± unbiased std).

        ``best_student.pt`` holds the student with the highest validation score over all
        seeds (the earliest seed wins a tie); with ``resume=True`` the seeds finished before
        the interruption take part in that choice through their ``seed{N}.json``.
        """
        if resume:
            self._check_interrupted_seeds()
        per_seed = []
        best_val = -math.inf  # of the exported student so far
        for seed in self.resolved.seeds:
            done = self.output / f"seed{seed}.json" if self.output else None
            if resume and done is not None and done.exists():
                res = self._finished_seed(done)
                per_seed.append(res)
                best_val = max(best_val, _best_student_val(res))
                continue
            run = self.fit_seed(seed, resume=resume)
            res = run.result
            per_seed.append(res)
            if self.output is None:
                continue
            best = run.tracker.best_student(run.cohort.names)
            if best is not None and best[1] > best_val:
                best_val = best[1]
                self._export(run, best[0])
            atomic_write_bytes(done, lambda f, r=res: f.write(json.dumps(r, indent=2)
                                                              .encode()))
        results = summarize(per_seed, self.config, self.dataset)
        results["input_features"] = self.task.input_features  # the task's own words
        if self.output is not None:
            atomic_write_bytes(self.output / "results.json",
                               lambda f: f.write(json.dumps(results, indent=2).encode()))
        return results


def _best_student_val(result: Dict[str, Any]) -> float:
    """The best student validation score recorded in a ``seed{N}.json``."""
    students = result.get("students")
    if students is None:  # written before the file listed its students
        students = [m for m in result["members"] if m not in (ENSEMBLE, ENSEMBLE_ALW)]
    vals = [result["members"][s]["val"] for s in students if s in result["members"]]
    return max(vals, default=-math.inf)


def summarize(per_seed: List[Dict], config: TrainConfig, dataset: GraphDataset) -> Dict:
    """Collect per-seed results into ``results.json``'s layout.

    Besides the per-member scores it records the configuration as given (``config``) and as
    resolved for ``dataset`` (``resolved``), the input features the students saw, and the
    warnings of students that never learned (:mod:`graphmutual.train.health`).
    """
    resolved = (config if isinstance(config, ResolvedConfig)
                else resolve_config(config, dataset))
    members: Dict[str, Dict[str, List]] = {}
    for res in per_seed:
        for m, b in res["members"].items():
            d = members.setdefault(m, {"test": [], "val": [], "best_epoch": []})
            d["test"].append(b["test"])
            d["val"].append(b["val"])
            d["best_epoch"].append(b["epoch"])
    for d in members.values():
        for part in ("test", "val"):
            arr = np.asarray(d[part], dtype=float)
            d[f"{part}_mean"] = float(arr.mean())
            d[f"{part}_std"] = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    spe = [r["seconds_per_epoch"] for r in per_seed]
    return {
        "dataset": dataset.name,
        "task": dataset.task,
        "metric": dataset.metric,
        "seeds": [r["seed"] for r in per_seed],
        "splits": [r["split"] for r in per_seed],
        "config": config.to_dict(),
        "resolved": resolved.to_dict(),
        "input_features": input_features(dataset, resolved),
        "members": members,
        "seconds_per_epoch": spe,
        "seconds_per_epoch_mean": float(np.mean(spe)) if spe else 0.0,
        "epochs_run": [r["epochs_run"] for r in per_seed],
        # students that showed no sign of learning (graphmutual.train.health)
        "warnings": [w for r in per_seed for w in r.get("warnings", [])],
    }
