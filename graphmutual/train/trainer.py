"""The trainer: node tasks full-batch, graph tasks in mini-batches.

For every seed the trainer builds a fresh cohort, trains it with early stopping, and keeps,
for every *member* (each student, the mean ensemble and — with ALW — the ALW-weighted
ensemble), the test metric at that member's best validation epoch (model selection on
validation only). State is checkpointed atomically every ``checkpoint_every`` epochs with
all random-number-generator states, so ``resume=True`` continues a killed run to the same
result as an uninterrupted one on the CPU.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from graphmutual.data import GraphDataset, load_dataset, validate_graph
from graphmutual.mutual import MutualEnsemble
from graphmutual.train.checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint
from graphmutual.train.cohort import build_cohort, config_value, task_defaults
from graphmutual.train.config import TrainConfig
from graphmutual.train.export import export_student
from graphmutual.train.metrics import evaluate

ENSEMBLE = "ensemble"
ENSEMBLE_ALW = "ensemble_alw"


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally switch torch to deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def normalized_features(dataset: GraphDataset) -> GraphDataset:
    """A shallow copy of a node dataset with row-normalised features (rows sum to 1)."""
    from torch_geometric.transforms import NormalizeFeatures

    data = NormalizeFeatures()(dataset.data.clone())
    return dataclasses.replace(dataset, data=data)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"invalid device '{name}' (use cpu, cuda, cuda:0 or auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available here")
    return device


def _rng_state() -> Dict:
    """All generator states as tensors and plain containers (``weights_only``-loadable)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                  float(gauss)],
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss_next],
    }


def _set_rng_state(state: Dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(int(v) for v in internal.tolist()), gauss_next))


@dataclass
class Best:
    val: float = -math.inf
    test: float = float("nan")
    epoch: int = -1


class Trainer:
    """Train a cohort on a dataset under the dataset's protocol, for several seeds.

    Args:
        config: the run configuration.
        dataset: an already loaded dataset (else ``config.dataset`` is loaded from
            ``config.root``).
    """

    def __init__(self, config: TrainConfig, dataset: Optional[GraphDataset] = None) -> None:
        self.config = config
        self.dataset = dataset if dataset is not None else load_dataset(config.dataset,
                                                                        config.root)
        self.device = resolve_device(config.device)
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        d = task_defaults(self.dataset)
        self.epochs = config_value(config, "epochs", d)
        self.lr = config_value(config, "lr", d)
        self.patience = config_value(config, "patience", d)
        self.batch_size = config_value(config, "batch_size", d)
        self.output = Path(config.output) if config.output else None
        self._transductive = None  # (split, flagged graphs) of the last transductive split
        self.normalize_features = False
        if self.dataset.task == "node":
            validate_graph(self.dataset.data, self.dataset.num_classes)
            self.normalize_features = bool(config_value(config, "normalize_features", d))
            if self.normalize_features:
                self.dataset = normalized_features(self.dataset)

    # ----------------------------------------------------------------- members
    def members(self, cohort: MutualEnsemble) -> List[str]:
        extra = [ENSEMBLE] if cohort.num_students > 1 else []
        if cohort.alw is not None:
            extra.append(ENSEMBLE_ALW)
        return list(cohort.names) + extra

    def _probs(self, cohort: MutualEnsemble, logits: torch.Tensor) -> Dict[str, torch.Tensor]:
        out = {n: logits[k].softmax(-1) for k, n in enumerate(cohort.names)}
        if cohort.num_students > 1:
            out[ENSEMBLE] = cohort.predict(logits, "mean")
        if cohort.alw is not None:
            out[ENSEMBLE_ALW] = cohort.predict(logits, "alw")
        return out

    @staticmethod
    def alw_stats(cohort: MutualEnsemble, logits: torch.Tensor) -> Dict[str, float]:
        """Mean ALW temperature of each student and mean weight its peers give it."""
        if cohort.alw is None:
            return {}
        alpha, tau = cohort.alw(logits)
        k = cohort.num_students
        trust = alpha.sum(dim=(0, 1)) / (alpha.size(0) * (k - 1))  # mean over n and k != j
        out = {}
        for j, name in enumerate(cohort.names):
            out[f"alw/tau/{name}"] = float(tau[j].mean())
            out[f"alw/weight/{name}"] = float(trust[j])
        return out

    # --------------------------------------------------------------- node task
    def _node_epoch(self, cohort, opt, data, split, epoch):
        cohort.train()
        cohort.set_epoch(epoch)
        if cohort.schedule == "alternating":
            losses = cohort.alternating_step((data.x, data.edge_index), data.y, split.train, opt)
        else:
            opt.zero_grad(set_to_none=True)
            losses = cohort.loss(cohort(data.x, data.edge_index), data.y, split.train)
            losses["total"].backward()
            opt.step()
        return {k: float(v.detach()) for k, v in losses.items()}

    @torch.no_grad()
    def _node_eval(self, cohort, data, split):
        cohort.eval()
        logits = cohort(data.x, data.edge_index)
        probs = self._probs(cohort, logits)
        ds = self.dataset
        out = {"_alw": self.alw_stats(cohort, logits)}
        for name, p in probs.items():
            out[name] = {
                part: evaluate(p[mask], data.y[mask], ds.metric, ds.ogb_name)
                for part, mask in (("val", split.val), ("test", split.test))
            }
        return out

    # -------------------------------------------------------------- graph task
    def _graph_loader(self, index, shuffle, generator=None):
        from torch_geometric.loader import DataLoader

        bs = self.batch_size if shuffle else max(self.batch_size, 256)
        return DataLoader(self.dataset.data[index], batch_size=bs, shuffle=shuffle,
                          generator=generator)

    def _transductive_loader(self, split, generator):
        r"""Training batches that also carry the unlabelled (validation + test) graphs.

        Each batch holds one shuffled chunk of the training graphs and an equal share of the
        unlabelled ones, so an epoch has as many steps as an inductive one and every batch
        has labelled graphs.  The unlabelled graphs are copies whose ``y`` is ``-1`` and
        whose ``labelled`` flag is false: their labels never reach the loss.
        """
        from torch_geometric.loader import DataLoader

        # built once per split; keyed on the split object itself (held, so its id is not reused)
        if self._transductive is None or self._transductive[0] is not split:
            def flagged(index, labelled: bool):
                out = []
                for g in self.dataset.data[index]:
                    g = g.clone()
                    if not labelled:
                        g.y = torch.full_like(g.y, -1)
                    g.labelled = torch.tensor([labelled])
                    out.append(g)
                return out

            held_out = torch.cat([split.val, split.test])
            self._transductive = (split, flagged(split.train, True) + flagged(held_out, False))
        graphs = self._transductive[1]
        n_lab = len(split.train)
        n_unl = len(graphs) - n_lab
        steps = math.ceil(n_lab / self.batch_size)
        lab = torch.randperm(n_lab, generator=generator).tensor_split(steps)
        unl = (torch.randperm(n_unl, generator=generator) + n_lab).tensor_split(steps)
        batches = [torch.cat([a, b]).tolist() for a, b in zip(lab, unl)]
        return DataLoader(graphs, batch_sampler=batches)

    def _graph_epoch(self, cohort, opt, split, epoch, seed):
        cohort.train()
        cohort.set_epoch(epoch)
        # the shuffling depends on (seed, epoch) only, so a resumed run sees the same batches
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        totals: Dict[str, float] = {}
        batches = 0
        transductive = self.config.transductive and cohort.weighting != "none"
        loader = (self._transductive_loader(split, gen) if transductive
                  else self._graph_loader(split.train, True, gen))
        for batch in loader:
            batch = batch.to(self.device)
            inputs = (batch.x, batch.edge_index)
            kwargs = {"batch": batch.batch, "edge_attr": batch.get("edge_attr")}
            mask = batch.labelled if transductive else None
            if cohort.schedule == "alternating":
                losses = cohort.alternating_step(inputs, batch.y, mask, opt, kwargs=kwargs)
            else:
                opt.zero_grad(set_to_none=True)
                losses = cohort.loss(cohort(*inputs, **kwargs), batch.y, mask)
                losses["total"].backward()
                opt.step()
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach())
            batches += 1
        return {k: v / max(batches, 1) for k, v in totals.items()}

    @torch.no_grad()
    def _graph_eval(self, cohort, split):
        cohort.eval()
        ds = self.dataset
        out: Dict[str, Dict[str, float]] = {"_alw": {}}
        for part, index in (("val", split.val), ("test", split.test)):
            probs: Dict[str, List[torch.Tensor]] = {}
            ys = []
            for batch in self._graph_loader(index, False):
                batch = batch.to(self.device)
                logits = cohort(batch.x, batch.edge_index, batch=batch.batch,
                                edge_attr=batch.get("edge_attr"))
                if part == "val" and not out["_alw"]:
                    out["_alw"] = self.alw_stats(cohort, logits)
                for name, p in self._probs(cohort, logits).items():
                    probs.setdefault(name, []).append(p)
                ys.append(batch.y)
            y = torch.cat(ys)
            for name, ps in probs.items():
                out.setdefault(name, {})[part] = evaluate(torch.cat(ps), y, ds.metric,
                                                          ds.ogb_name)
        return out

    # --------------------------------------------------------------- one seed
    def _checkpoint_path(self, seed: int) -> Optional[Path]:
        return self.output / "checkpoints" / f"seed{seed}.pt" if self.output else None

    def run_seed(self, seed: int, resume: bool = False,
                 on_epoch: Optional[Callable[[Dict], None]] = None) -> Dict:
        """Train one cohort with ``seed``; return its per-member results.

        Args:
            seed: the random seed (and, for datasets with per-seed splits, the split).
            resume: continue from this seed's checkpoint when there is one.
            on_epoch: called after every epoch with that epoch's history row (``epoch``,
                ``loss/*``, ``val/*``, ``test/*``, ``alw/*``), e.g. to report progress
                from a process without a terminal.
        """
        cfg, ds = self.config, self.dataset
        seed_everything(seed, cfg.deterministic)
        split = ds.split(seed)
        cohort = build_cohort(ds, cfg).to(self.device)
        opt = torch.optim.Adam(cohort.parameters(), lr=self.lr, weight_decay=cfg.weight_decay)
        members = self.members(cohort)
        best = {m: Best() for m in members}
        best_states: Dict[str, Dict] = {}
        history: List[Dict] = []
        train_seconds: List[float] = []
        start_epoch, since_best = 0, 0
        ckpt = self._checkpoint_path(seed)

        if resume and ckpt is not None and ckpt.exists():
            state = load_checkpoint(ckpt)
            cohort.load_state_dict(state["cohort"])
            opt.load_state_dict(state["optimizer"])
            best = {m: Best(**b) for m, b in state["best"].items()}
            best_states = state["best_states"]
            history = state["history"]
            train_seconds = state["train_seconds"]
            start_epoch, since_best = state["epoch"] + 1, state["since_best"]
            _set_rng_state(state["rng"])

        data = ds.data.to(self.device) if ds.task == "node" else None
        if data is not None:
            split = type(split)(split.train.to(self.device), split.val.to(self.device),
                                split.test.to(self.device), split.description)
        bar = tqdm(range(start_epoch, self.epochs), desc=f"{ds.name} seed {seed}",
                   disable=not cfg.progress, leave=False, dynamic_ncols=True,
                   initial=start_epoch, total=self.epochs)
        for epoch in bar:
            if since_best >= self.patience:
                break
            t0 = time.perf_counter()
            if ds.task == "node":
                losses = self._node_epoch(cohort, opt, data, split, epoch)
            else:
                losses = self._graph_epoch(cohort, opt, split, epoch, seed)
            train_seconds.append(time.perf_counter() - t0)
            if not math.isfinite(losses["total"]):
                raise FloatingPointError(
                    f"the loss became {losses['total']} at epoch {epoch} (seed {seed}); "
                    "lower the learning rate or check the input features"
                )
            scores = (self._node_eval(cohort, data, split) if ds.task == "node"
                      else self._graph_eval(cohort, split))
            improved = False
            for m in members:
                v = scores[m]["val"]
                if v > best[m].val:
                    best[m] = Best(v, scores[m]["test"], epoch)
                    improved = True
                    if m in cohort.names:
                        k = cohort.names.index(m)
                        best_states[m] = copy.deepcopy(cohort.students[k].state_dict())
            since_best = 0 if improved else since_best + 1
            row = {"epoch": epoch, **{f"loss/{k}": v for k, v in losses.items()},
                   **{f"{p}/{m}": scores[m][p] for m in members for p in ("val", "test")},
                   **scores["_alw"]}
            history.append(row)
            if on_epoch is not None:
                on_epoch(row)
            lead = ENSEMBLE if ENSEMBLE in scores else members[0]
            bar.set_postfix(loss=f"{losses['total']:.3f}",
                            val=f"{scores[lead]['val']:.3f}")
            last = epoch + 1 >= self.epochs or since_best >= self.patience
            if ckpt is not None and ((epoch + 1) % cfg.checkpoint_every == 0 or last):
                save_checkpoint({
                    "cohort": cohort.state_dict(), "optimizer": opt.state_dict(),
                    "best": {m: vars(b) for m, b in best.items()},
                    "best_states": best_states, "history": history,
                    "train_seconds": train_seconds, "epoch": epoch,
                    "since_best": since_best, "rng": _rng_state(),
                }, ckpt)
        bar.close()

        result = {
            "seed": seed,
            "split": split.description,
            "epochs_run": len(history),
            "seconds_per_epoch": float(np.mean(train_seconds)) if train_seconds else 0.0,
            "members": {m: vars(best[m]) for m in members},
        }
        self._last_cohort, self._last_best_states = cohort, best_states
        if self.output is not None:
            self._write_history(seed, history)
        return result

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
    def run(self, resume: bool = False) -> Dict:
        """Run every seed of the configuration and summarise (mean ± unbiased std)."""
        per_seed = []
        best_export = None
        for seed in self.config.seeds:
            done = self.output / f"seed{seed}.json" if self.output else None
            if resume and done is not None and done.exists():
                per_seed.append(json.loads(done.read_text()))
                continue
            res = self.run_seed(seed, resume=resume)
            per_seed.append(res)
            cohort = self._last_cohort
            for k, name in enumerate(cohort.names):
                val = res["members"][name]["val"]
                if name in self._last_best_states and (best_export is None
                                                        or val > best_export[0]):
                    best_export = (val, seed, k, name)
            if self.output is not None:
                if best_export is not None and best_export[1] == seed:
                    _, _, k, name = best_export
                    student = cohort.students[k]
                    student.load_state_dict(self._last_best_states[name])
                    export_student(student, self.output / "best_student.pt", meta={
                        "name": name, "seed": seed, "dataset": self.dataset.name,
                        "val": res["members"][name]["val"],
                        "normalize_features": self.normalize_features,
                        "test": res["members"][name]["test"],
                    })
                atomic_write_bytes(done, lambda f, r=res: f.write(json.dumps(r, indent=2)
                                                                  .encode()))
        results = summarize(per_seed, self.config, self.dataset)
        if self.output is not None:
            atomic_write_bytes(self.output / "results.json",
                               lambda f: f.write(json.dumps(results, indent=2).encode()))
        return results


def summarize(per_seed: List[Dict], config: TrainConfig, dataset: GraphDataset) -> Dict:
    """Collect per-seed results into ``results.json``'s layout."""
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
        "members": members,
        "seconds_per_epoch": spe,
        "seconds_per_epoch_mean": float(np.mean(spe)) if spe else 0.0,
        "epochs_run": [r["epochs_run"] for r in per_seed],
    }
