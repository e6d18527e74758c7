r"""Distributed mutual learning on :mod:`torch.distributed`: data-parallel and student-parallel.

Two ways to spread a cohort of :math:`K` students over :math:`W` processes (ranks), both
launched by ``torchrun`` and built on ``torch.distributed`` (``gloo`` on CPU, ``nccl`` on
GPUs):

**Data-parallel** (``mode="data"``). Every rank holds the whole cohort, wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel`, and computes the loss on its shard of
the samples; DDP averages the gradients. For a node task rank :math:`r` takes a contiguous
:math:`1/W` of the labelled nodes :math:`\mathcal{L}_r` and of the other nodes
:math:`\mathcal{U}_r` (full-batch message passing still needs the whole graph on every rank:
data-parallel pays off for graph batches and sampled training, not for full-batch nodes).
Each rank's terms are re-weighted so that the average over ranks is exactly the
single-process loss, for any shard sizes:

.. math::
    \mathcal{L}^{(r)} = W\frac{|\mathcal{L}_r|}{|\mathcal{L}|}\big(\mathrm{CE}_r
        + \mathcal{L}_{\mathrm{ALW},r}\big)
      + W\frac{|\mathcal{S}_r|}{N}\big(\mathrm{mimic}_r + \mathrm{entropy}_r\big),
    \qquad \tfrac1W\textstyle\sum_r \nabla\mathcal{L}^{(r)} = \nabla\mathcal{L},

with :math:`\mathcal{S}_r = \mathcal{L}_r \cup \mathcal{U}_r`. For a graph task each rank
draws its part of every batch through a :class:`~torch.utils.data.DistributedSampler`
(``batch_size`` is the *global* batch, split evenly over the ranks, so a run on :math:`W`
ranks sees the batches a single process sees). Losses and metrics are reduced across ranks.

**Student-parallel** (``mode="student"``; :class:`StudentParallel`). Rank :math:`r` holds
only its students :math:`\mathcal{K}_r` (one per GPU is the common case; the others are
moved to the ``meta`` device, so a cohort larger than one device fits). Each step every rank
runs its students on the same batch, the logits are exchanged by ``all_gather`` (detached:
peers' logits are targets, never differentiated), and the full ``[K, N, C]`` tensor — local
rows with their autograd history, remote rows detached — goes into
:meth:`MutualEnsemble.loss <graphmutual.mutual.MutualEnsemble.loss>`, so mimicry and ALW
see the whole cohort and ``backward`` reaches the local students only. The loss itself,
:math:`O(KNC)`, is computed on every rank (it is tiny next to the students' message passing);
ALW's parameters are replicated and their gradients all-reduced
(:meth:`StudentParallel.sync_gradients`). Each student draws its dropout from its own stream
(seeded per step and student from the shared generator), so a run gives the same result
on any number of ranks.

**Sampled node training** (``batch_size`` on a node task, as
:class:`~graphmutual.train.sampled.SampledNodeTask`; ``fanout`` neighbours per hop, evaluation
by exact layer-wise inference). Every epoch draws the single-process permutation of the seed
nodes (the same numbers of the global generator, so the same order on every rank); global
batch :math:`B` of ``batch_size`` seeds is that of one process.

* *Data-parallel*: rank :math:`r` takes its share :math:`B_r` of every global batch (an even
  split; every rank runs the same number of steps, a share may be empty), samples its own
  subgraph around it and computes the single-process loss terms on its seeds, re-weighted as
  above: CE and ALW by :math:`W|B_r \cap \mathcal{L}|/|B \cap \mathcal{L}|`, mimicry and
  entropy by :math:`W|B_r|/|B|`. One all-reduce per step averages the gradients, so the step
  is the single-process step on :math:`B` whenever the seeds' logits do not depend on the
  split (all neighbours, ``fanout=-1``; otherwise each rank's subgraph is an independent
  sample). Each rank evaluates an even share of the students layer-wise; the logits are
  all-gathered.
* *Student-parallel*: every rank draws the *same* subgraph (same global generator) and runs
  its students on it; the seeds' logits are all-gathered
  (:meth:`StudentParallel.forward_seeds`). Dropout comes from a stream seeded by
  ``(seed, epoch, step)``, so the batches, and with dropout 0 the whole run, are the
  single-process run's. Each rank evaluates its students layer-wise; the logits are gathered.

Both modes write checkpoints from rank 0 only, atomically
(:func:`~graphmutual.train.checkpoint.save_checkpoint`), in the single-process
:class:`~graphmutual.train.Trainer`'s layout (full cohort state, an optimizer state over the
full cohort's parameters), and ``resume=True`` continues from them. Every collective runs
under the process group's timeout: a rank that dies or hangs ends the job on the others
with a :class:`DistributedError`, not a hang.

Launch (2 processes on one machine)::

    torchrun --standalone --nproc-per-node 2 -m graphmutual train --distributed student \
        --dataset cora --students gcn,gat --output runs/dist

(or ``-m graphmutual.train.distributed --mode student ...``, this module's entry point).
Sampled: add ``--batch-size 1024 --fanout 15,10``.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from graphmutual.data import GraphDataset, load_dataset, validate_graph
from graphmutual.mutual import MutualEnsemble
from graphmutual.train.checkpoint import (
    CheckpointError,
    atomic_write_bytes,
    load_checkpoint,
    save_checkpoint,
)
from graphmutual.train.cohort import build_cohort
from graphmutual.train.config import TrainConfig
from graphmutual.train.defaults import resolve_config
from graphmutual.train.export import export_student
from graphmutual.train.health import chance_level, never_learned
from graphmutual.train.metrics import evaluate
from graphmutual.train.state import TrainState, rng_state, seed_everything
from graphmutual.train.tasks import alw_stats, member_probs, members
from graphmutual.train.tracker import Best, BestTracker
from graphmutual.train.trainer import Trainer, make_optimizer, normalized_features, summarize

MODES = ("data", "student")
#: Seconds a collective may wait for the other ranks before the job ends with an error.
DEFAULT_TIMEOUT = 300.0
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class DistributedError(RuntimeError):
    """A collective failed or timed out: another rank died, hung or disagreed."""


# --------------------------------------------------------------------------- set-up
@dataclass(frozen=True)
class DistContext:
    """Who this process is in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str
    timeout: float

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """``True`` when ``torchrun`` (or an equivalent launcher) set the rendezvous variables."""
    return all(v in os.environ for v in ("RANK", "WORLD_SIZE"))


def is_main_process() -> bool:
    """``True`` on rank 0 of an initialised process group, and when there is none."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def finish() -> None:
    """Leave the process group (if any) at the end of a job."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def init_distributed(backend: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT,
                     device: str = "auto") -> DistContext:
    """Join the process group described by ``torchrun``'s environment variables.

    Args:
        backend: ``"gloo"`` or ``"nccl"``; ``None`` picks ``nccl`` for CUDA and ``gloo``
            otherwise.
        timeout: seconds a collective waits for the other ranks before failing.
        device: ``"auto"`` (``cuda:LOCAL_RANK`` when CUDA is available, else CPU), ``"cpu"``
            or ``"cuda"``.
    """
    if not dist.is_available():
        raise DistributedError("this torch build has no torch.distributed support")
    missing = [v for v in TORCHRUN_VARS if v not in os.environ]
    if missing and not dist.is_initialized():
        raise ValueError(
            f"the distributed environment is not set ({', '.join(missing)} missing); launch "
            "with torchrun, e.g. `torchrun --standalone --nproc-per-node 2 -m graphmutual "
            "train --distributed student ...`"
        )
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds (got {timeout})")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda' (got {device!r})")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available here")
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    backend = backend or ("nccl" if use_cuda else "gloo")
    if backend == "nccl" and not use_cuda:
        raise ValueError("the nccl backend needs CUDA devices; use gloo on the CPU")
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout))
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev,
                       dist.get_backend(), float(timeout))


def _collective_error(exc: BaseException, rank: int, world_size: int,
                      timeout: Optional[float] = None) -> DistributedError:
    limit = f" (collective timeout {timeout:g} s)" if timeout else ""
    text = str(exc).strip()
    first = text.splitlines()[0].split(". This is typically")[0][:300] if text else \
        type(exc).__name__
    return DistributedError(
        f"rank {rank}/{world_size}: a collective operation failed{limit}; another rank "
        f"probably died or hung (see its log). {type(exc).__name__}: {first}"
    )


def partition(num_students: int, world_size: int) -> List[List[int]]:
    """Contiguous, balanced blocks of students per rank: 5 over 2 → ``[[0, 1, 2], [3, 4]]``."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1 (got {world_size})")
    if num_students < world_size:
        raise ValueError(
            f"student-parallel needs at least one student per rank: {num_students} "
            f"student(s) over {world_size} ranks; use fewer processes or mode='data'"
        )
    return [t.tolist() for t in torch.arange(num_students).tensor_split(world_size)]


# ------------------------------------------------------------------ student-parallel
class StudentParallel(nn.Module):
    r"""Hold this rank's students of a :class:`~graphmutual.mutual.MutualEnsemble`.

    ``forward`` returns the whole cohort's logits ``[K, N, C]``: rows of local students carry
    gradients, the others are the peers' all-gathered (detached) logits. Use it like the
    cohort::

        sp = StudentParallel(cohort, device)          # after init_process_group
        opt = torch.optim.Adam(sp.local_parameters(), lr=0.01)
        losses = sp.loss(sp(data.x, data.edge_index), data.y, data.train_mask)
        losses["total"].backward()
        sp.sync_gradients()                           # all-reduce ALW's gradients
        opt.step()

    Args:
        cohort: the full cohort, built identically (same seed) on every rank. Students of
            other ranks are moved to the ``meta`` device (their memory is released).
        device: where this rank's students and ALW live.
        group: the process group (default: the world).
    """

    def __init__(self, cohort: MutualEnsemble, device: Optional[torch.device] = None,
                 group: Optional[Any] = None) -> None:
        super().__init__()
        if not dist.is_initialized():
            raise ValueError("StudentParallel needs torch.distributed to be initialised "
                             "(call init_distributed() or init_process_group first)")
        if cohort.schedule != "simultaneous":
            raise ValueError(
                f"student-parallel supports the simultaneous schedule only (got "
                f"'{cohort.schedule}'): the alternating schedule updates students one after "
                "another, which leaves all but one rank idle"
            )
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self.cohort = cohort
        self.owners = partition(cohort.num_students, self.world_size)
        self.local: List[int] = self.owners[self.rank]
        #: the full cohort's parameter names, in ``cohort.parameters()`` order
        self.param_names: List[str] = [n for n, _ in cohort.named_parameters()]
        device = torch.device(device) if device is not None else torch.device("cpu")
        self.device = device
        for k, student in enumerate(cohort.students):
            student.to(device if k in self.local else torch.device("meta"))
        if cohort.alw is not None:
            cohort.alw.to(device)

    @property
    def names(self) -> List[str]:
        return self.cohort.names

    @property
    def num_students(self) -> int:
        return self.cohort.num_students

    def local_named_parameters(self) -> List[Tuple[str, nn.Parameter]]:
        """This rank's trainable parameters (its students' and ALW's), in cohort order."""
        prefixes = tuple(f"students.{k}." for k in self.local) + ("alw.",)
        return [(n, p) for n, p in self.cohort.named_parameters() if n.startswith(prefixes)]

    def local_parameters(self) -> List[nn.Parameter]:
        return [p for _, p in self.local_named_parameters()]

    # ---------------------------------------------------------------- forward
    def forward(self, *args, **kwargs) -> Tensor:
        outs = self._local_outputs(*args, **kwargs)
        return self.cohort.stack(self._exchange(self.cohort.stack(outs), outs))

    def forward_seeds(self, num_seeds: int, *args, **kwargs) -> Tensor:
        """Like :meth:`forward`, but only the first ``num_seeds`` rows of every student's
        output (the seed nodes of a sampled batch) are computed into the result and
        exchanged: ``[K, num_seeds, C]``."""
        outs = [o[:num_seeds] for o in self._local_outputs(*args, **kwargs)]
        return self.cohort.stack(self._exchange(self.cohort.stack(outs), outs))

    def _local_outputs(self, *args, **kwargs) -> List[Tensor]:
        """This rank's students' outputs (each with its own dropout stream in training)."""
        base = None
        if self.training:  # one draw from the shared generator: identical on every rank
            base = int(torch.randint(0, 2 ** 62, (), dtype=torch.int64))
        outs = []
        for k in self.local:
            student = self.cohort.students[k]
            if base is None:
                outs.append(student(*args, **kwargs))
                continue
            devices = [self.device] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed((base + 7919 * k) % 2 ** 63)
                outs.append(student(*args, **kwargs))
        return outs

    def _exchange(self, local: Tensor, outs: List[Tensor]) -> List[Tensor]:
        """All-gather the detached local logits; put the local (differentiable) rows back."""
        width = max(len(o) for o in self.owners)
        buf = local.detach()
        if buf.size(0) < width:
            pad = buf.new_zeros((width - buf.size(0),) + tuple(buf.shape[1:]))
            buf = torch.cat([buf, pad])
        gathered = [torch.empty_like(buf) for _ in range(self.world_size)]
        try:
            dist.all_gather(gathered, buf.contiguous(), group=self.group)
        except RuntimeError as exc:
            raise _collective_error(exc, self.rank, self.world_size) from exc
        full: List[Tensor] = []
        for r, ks in enumerate(self.owners):
            for i, _ in enumerate(ks):
                full.append(outs[i] if r == self.rank else gathered[r][i])
        return full

    def loss(self, logits: Tensor, *args, **kwargs) -> Dict[str, Tensor]:
        """:meth:`MutualEnsemble.loss` of the full logits (gradients reach local rows only)."""
        return self.cohort.loss(logits, *args, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        self.cohort.set_epoch(epoch)

    def sync_gradients(self) -> None:
        """Average the replicated ALW parameters' gradients over the ranks (one all-reduce)."""
        if self.cohort.alw is None or self.world_size == 1:
            return
        params = [p for p in self.cohort.alw.parameters() if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        try:
            dist.all_reduce(flat, group=self.group)
        except RuntimeError as exc:
            raise _collective_error(exc, self.rank, self.world_size) from exc
        flat /= self.world_size
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n

    # ----------------------------------------------------------- checkpoints
    def local_state_dict(self) -> Dict[str, Tensor]:
        """State of this rank's students and ALW, keyed as in ``cohort.state_dict()``."""
        prefixes = tuple(f"students.{k}." for k in self.local) + ("alw.",)
        return {k: v.detach().cpu() for k, v in self.cohort.state_dict().items()
                if k.startswith(prefixes)}

    def full_state_dict(self) -> Optional[Dict[str, Tensor]]:
        """The whole cohort's state on rank 0 (``None`` elsewhere); a collective call."""
        parts = _gather_to_main(self.local_state_dict(), self.group)
        if parts is None:
            return None
        full: Dict[str, Tensor] = {}
        for part in parts:
            full.update(part)
        return full

    def load_full_state_dict(self, state: Dict[str, Tensor]) -> None:
        """Load this rank's part of a full cohort state (e.g. a Trainer checkpoint)."""
        prefixes = tuple(f"students.{k}." for k in self.local) + ("alw.",)
        mine = {k: v for k, v in state.items() if k.startswith(prefixes)}
        expected = set(self.local_state_dict())
        if set(mine) != expected:
            missing = sorted(expected - set(mine))[:3]
            extra = sorted(set(mine) - expected)[:3]
            raise ValueError(f"the checkpoint does not match this cohort (missing {missing}, "
                             f"unexpected {extra})")
        own = {k: v for k, v in self.cohort.state_dict().items() if k.startswith(prefixes)}
        with torch.no_grad():
            for k, v in mine.items():
                own[k].copy_(v)

    def full_optimizer_state(self, optimizer: torch.optim.Optimizer) -> Optional[Dict]:
        """This rank's optimizer state re-indexed over the *full* cohort's parameters (the
        single-process layout), merged on rank 0 (``None`` elsewhere); a collective call."""
        sd = optimizer.state_dict()
        index = {n: i for i, n in enumerate(self.param_names)}
        names = [n for n, _ in self.local_named_parameters()]
        local = {index[names[i]]: s for i, s in sd["state"].items()}
        parts = _gather_to_main(local, self.group)
        if parts is None:
            return None
        state: Dict[int, Any] = {}
        for part in parts:
            state.update(part)
        group = {k: v for k, v in sd["param_groups"][0].items() if k != "params"}
        group["params"] = list(range(len(self.param_names)))
        return {"state": dict(sorted(state.items())), "param_groups": [group]}

    def load_full_optimizer_state(self, optimizer: torch.optim.Optimizer, state: Dict) -> None:
        """Load this rank's part of a full-cohort optimizer state (one parameter group)."""
        if len(state["param_groups"]) != 1 or len(state["param_groups"][0]["params"]) != len(
                self.param_names):
            raise ValueError("the optimizer state does not match this cohort's parameters")
        index = {n: i for i, n in enumerate(self.param_names)}
        names = [n for n, _ in self.local_named_parameters()]
        group = dict(state["param_groups"][0])
        group["params"] = list(range(len(names)))
        local = {i: state["state"][index[n]] for i, n in enumerate(names)
                 if index[n] in state["state"]}
        optimizer.load_state_dict({"state": local, "param_groups": [group]})

    def extra_repr(self) -> str:
        return f"rank={self.rank}, world_size={self.world_size}, local_students={self.local}"


def _gather_to_main(obj: Any, group: Optional[Any] = None) -> Optional[List[Any]]:
    """Gather one (tensor-holding) object per rank to rank 0, in rank order."""
    world = dist.get_world_size(group)
    out: Optional[List[Any]] = [None] * world if dist.get_rank(group) == 0 else None
    try:
        dist.gather_object(obj, out, dst=0, group=group)
    except RuntimeError as exc:
        raise _collective_error(exc, dist.get_rank(group), world) from exc
    return out


def alw_stat_keys(cohort: MutualEnsemble) -> List[str]:
    """The history columns of :func:`~graphmutual.train.tasks.alw_stats` (none without
    ALW): ``alw/tau/<name>`` and ``alw/weight/<name>`` of every student."""
    if cohort.alw is None:
        return []
    return [f"alw/{k}/{name}" for name in cohort.names for k in ("tau", "weight")]


# -------------------------------------------------------------------- data-parallel
def node_shard(train: Tensor, num_nodes: int, rank: int, world_size: int) -> Tuple[Tensor, int]:
    """Rank ``rank``'s nodes: its contiguous share of the labelled nodes, then of the rest.

    Returns ``(index, num_labelled)``: the first ``num_labelled`` entries of ``index`` are
    labelled. Raises when there are fewer labelled nodes than ranks.
    """
    lab = train.nonzero().view(-1) if train.dtype == torch.bool else train.view(-1)
    if lab.numel() < world_size:
        raise ValueError(f"{lab.numel()} labelled node(s) cannot be shared by {world_size} "
                         "ranks (every rank needs at least one)")
    rest = torch.ones(num_nodes, dtype=torch.bool, device=lab.device)
    rest[lab] = False
    unl = rest.nonzero().view(-1)
    mine_lab = lab.tensor_split(world_size)[rank]
    mine_unl = unl.tensor_split(world_size)[rank]
    return torch.cat([mine_lab, mine_unl]), mine_lab.numel()


def sharded_node_loss(cohort: MutualEnsemble, logits: Tensor, y: Tensor, index: Tensor,
                      num_labelled: int, total_labelled: int, world_size: int
                      ) -> Dict[str, Tensor]:
    r"""One rank's data-parallel node loss, weighted so that the ranks' *mean* is the
    single-process loss (see the module docs).

    Args:
        cohort: the cohort (its :meth:`~graphmutual.mutual.MutualEnsemble.loss` is used).
        logits: the full-graph logits ``[K, N, C]``.
        y: labels ``[N]``.
        index: this rank's nodes from :func:`node_shard`; the first ``num_labelled`` are
            labelled.
        num_labelled: labelled nodes in ``index``.
        total_labelled: labelled nodes over all ranks.
        world_size: number of ranks :math:`W`.

    Returns:
        The loss terms, each weighted as it enters ``total``: ``ce``, ``alw`` (and
        ``ce/<name>``) by :math:`W|\mathcal{L}_r|/|\mathcal{L}|`, ``mimic``, ``entropy``
        (and ``mimic/<name>``) by :math:`W|\mathcal{S}_r|/N`; ``total`` is their sum.
        ``all_reduce`` of a term divided by :math:`W` is the single-process term.
    """
    n = logits.size(1)
    w_lab = world_size * num_labelled / total_labelled
    w_all = world_size * index.numel() / n
    losses = cohort.loss(logits[:, index], y[index],
                         torch.arange(num_labelled, device=index.device))
    return weight_terms(losses, w_lab, w_all)


def term_kind(key: str) -> Optional[str]:
    """How a loss term is averaged: ``"labelled"`` (a mean over the labelled samples: CE
    and ALW), ``"all"`` (a mean over all samples: mimicry and entropy) or ``None`` (not a
    mean over samples, e.g. ``mimic_scale``). ``total`` is ``"all"``'s and ``"labelled"``'s
    sum and re-built by :func:`weight_terms`."""
    if key.startswith(("ce", "alw")):
        return "labelled"
    if key in ("mimic", "total") or key.startswith(("mimic/", "entropy")):
        return "all"
    return None


def weight_terms(losses: Dict[str, Tensor], w_lab: float, w_all: float) -> Dict[str, Tensor]:
    """Scale the labelled-sample means of ``losses`` by ``w_lab``, the all-sample means by
    ``w_all`` (:func:`term_kind`), and re-build ``total`` from the scaled terms."""
    out: Dict[str, Tensor] = {}
    for key, value in losses.items():
        kind = term_kind(key)
        out[key] = w_lab * value if kind == "labelled" else w_all * value if kind else value
    out["total"] = out["ce"] + out["mimic"] + out["entropy"] + out["alw"]  # the cohort's order
    return out


class EpochShardSampler(torch.utils.data.DistributedSampler):
    """A :class:`~torch.utils.data.DistributedSampler` whose epoch order is the
    single-process trainer's: the permutation a shuffling ``DataLoader`` with a generator
    seeded ``seed + epoch`` draws (the loader takes one number from the generator before
    its sampler does, so plain ``DistributedSampler`` shuffles differently). Rank ``r`` takes
    every ``W``-th index from ``r``, padded like ``DistributedSampler``, so batch ``i`` of all
    ranks together is batch ``i`` of one process with a ``W`` times larger batch."""

    def __init__(self, dataset, num_replicas: int, rank: int, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True,
                         seed=seed, drop_last=False)

    def __iter__(self):
        from torch.utils.data import DataLoader

        n = len(self.dataset)
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        perm = next(iter(DataLoader(range(n), batch_size=n, shuffle=True, generator=gen)))
        perm = perm.tolist()
        perm += perm[:self.total_size - n]
        return iter(perm[self.rank:self.total_size:self.num_replicas])


# ----------------------------------------------------------------------- the loop
class DistributedTrainer:
    """Train a cohort on several processes, data- or student-parallel.

    The loop mirrors :class:`~graphmutual.train.Trainer` (same task defaults, model
    selection on validation, early stopping, history, checkpoint layout), so a run on
    :math:`W` ranks reproduces a single-process run (see the module docs for the
    tolerance). Rank 0 writes every file.

    Args:
        config: the run configuration (``device`` is ignored: each rank uses ``ctx.device``).
        mode: ``"data"`` or ``"student"``.
        ctx: the process's :class:`DistContext` (from :func:`init_distributed`).
        dataset: an already loaded dataset (else ``config.dataset`` is loaded).
    """

    def __init__(self, config: TrainConfig, mode: str, ctx: DistContext,
                 dataset: Optional[GraphDataset] = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown distributed mode '{mode}'; choose one of {list(MODES)}")
        if config.schedule != "simultaneous":
            raise ValueError("distributed training supports the simultaneous schedule only")
        self.config, self.mode, self.ctx = config, mode, ctx
        self.dataset = dataset if dataset is not None else load_dataset(config.dataset,
                                                                        config.root)
        self.resolved = resolve_config(config, self.dataset)
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        self.epochs = self.resolved.epochs
        self.lr = self.resolved.lr
        self.patience = self.resolved.patience
        self.batch_size = self.resolved.batch_size
        self.output = Path(config.output) if config.output else None
        #: neighbour-sampled node training (``batch_size`` seed nodes per global step)
        self.sampled = self.dataset.task == "node" and bool(self.batch_size)
        self._runner = None
        if self.dataset.task == "node":
            validate_graph(self.dataset.data, self.dataset.num_classes)
            if self.resolved.normalize_features:
                self.dataset = normalized_features(self.dataset)
            if self.sampled:
                from graphmutual.train.sampled import default_fanout

                self.fanout = list(self.resolved.fanout
                                   or default_fanout(self.resolved.num_layers))
        elif mode == "data":
            if config.transductive:
                raise ValueError("transductive graph training is not supported data-parallel "
                                 "(use mode='student')")
            if self.batch_size % ctx.world_size:
                raise ValueError(f"the global batch size {self.batch_size} must be divisible "
                                 f"by the number of ranks ({ctx.world_size})")
        self.device = ctx.device

    # ------------------------------------------------------------- collectives
    def _fail(self, exc: BaseException) -> DistributedError:
        return _collective_error(exc, self.ctx.rank, self.ctx.world_size, self.ctx.timeout)

    def _all_reduce(self, t: Tensor) -> Tensor:
        try:
            dist.all_reduce(t)
        except RuntimeError as exc:
            raise self._fail(exc) from exc
        return t

    def _broadcast(self, t: Tensor) -> Tensor:
        try:
            dist.broadcast(t, src=0)
        except RuntimeError as exc:
            raise self._fail(exc) from exc
        return t

    def _gather_rows(self, t: Tensor) -> Tensor:
        """Concatenate every rank's rows of ``t`` (sizes may differ) in rank order."""
        n = torch.tensor([t.size(0)], device=t.device)
        sizes = [torch.zeros_like(n) for _ in range(self.ctx.world_size)]
        width = None
        try:
            dist.all_gather(sizes, n)
            width = int(max(int(s) for s in sizes))
            pad = t.new_zeros((width - t.size(0),) + tuple(t.shape[1:]))
            buf = torch.cat([t, pad])
            out = [torch.empty_like(buf) for _ in sizes]
            dist.all_gather(out, buf)
        except RuntimeError as exc:
            raise self._fail(exc) from exc
        return torch.cat([o[:int(s)] for o, s in zip(out, sizes)])

    # ----------------------------------------------------------------- epochs
    def _reduce_losses(self, losses: Dict[str, Tensor]) -> Dict[str, float]:
        """Loss terms as floats, averaged over the ranks in data-parallel mode."""
        keys = sorted(losses)
        vals = torch.stack([losses[k].detach().float().cpu() for k in keys])
        if self.mode == "data":
            vals = self._all_reduce(vals.to(self.device)).cpu() / self.ctx.world_size
        return {k: float(v) for k, v in zip(keys, vals)}

    def _node_epoch(self, model, cohort, opt, data, split, epoch) -> Dict[str, float]:
        model.train()
        cohort.set_epoch(epoch)
        opt.zero_grad(set_to_none=True)
        logits = model(data.x, data.edge_index)
        if self.mode == "student":
            losses = cohort.loss(logits, data.y, split.train)
            losses["total"].backward()
            model.sync_gradients()
            opt.step()
            return self._reduce_losses(losses)
        index, n_lab = self._shard
        losses = sharded_node_loss(cohort, logits, data.y, index, n_lab, self._num_labelled,
                                   self.ctx.world_size)
        losses["total"].backward()
        opt.step()
        return self._reduce_losses(losses)

    def _graph_loader(self, index: Tensor, epoch: Optional[int], seed: int):
        from torch_geometric.loader import DataLoader

        subset = self.dataset.data[index]
        if epoch is None:  # evaluation: a contiguous share, no padding
            mine = torch.arange(len(subset)).tensor_split(self.ctx.world_size)[self.ctx.rank]
            if self.mode == "student":
                mine = torch.arange(len(subset))
            return DataLoader(subset[mine], batch_size=self.resolved.eval_batch_size)
        if self.mode == "student":  # every rank sees the same (single-process) batches
            gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
            return DataLoader(subset, batch_size=self.batch_size, shuffle=True, generator=gen)
        sampler = EpochShardSampler(subset, num_replicas=self.ctx.world_size,
                                    rank=self.ctx.rank, seed=seed * 100_003)
        sampler.set_epoch(epoch)
        # a generator of its own, as the trainer's loader has: the loader's seed draw must
        # not consume the global generator (it drives dropout)
        return DataLoader(subset, batch_size=self.batch_size // self.ctx.world_size,
                          sampler=sampler, generator=torch.Generator().manual_seed(epoch))

    def _graph_epoch(self, model, cohort, opt, split, epoch, seed) -> Dict[str, float]:
        model.train()
        cohort.set_epoch(epoch)
        totals: Dict[str, float] = {}
        batches = 0
        for batch in self._graph_loader(split.train, epoch, seed):
            batch = batch.to(self.device)
            opt.zero_grad(set_to_none=True)
            logits = model(batch.x, batch.edge_index, batch=batch.batch,
                           edge_attr=batch.get("edge_attr"))
            losses = cohort.loss(logits, batch.y)
            losses["total"].backward()
            if self.mode == "student":
                model.sync_gradients()
            opt.step()
            for k, v in self._reduce_losses(losses).items():
                totals[k] = totals.get(k, 0.0) + v
            batches += 1
        return {k: v / max(batches, 1) for k, v in totals.items()}

    @torch.no_grad()
    def _evaluate(self, model, cohort, data, split
                  ) -> Tuple[Dict[str, Dict[str, float]], Dict[str, float]]:
        """``(scores, stats)`` as the single-process task computes them: every member's
        val/test score and ALW's per-student statistics (:func:`alw_stats`; of the whole
        graph on node tasks, of the first validation batch on graph tasks). Rank 0's values
        are the ones used (the caller broadcasts them)."""
        ds = self.dataset
        model.eval()
        if self.sampled:
            return self._evaluate_sampled(model, cohort, split)
        net = model.module if self.mode == "data" else model
        out: Dict[str, Dict[str, float]] = {}
        if ds.task == "node":
            logits = net(data.x, data.edge_index)
            for name, p in member_probs(cohort, logits).items():
                out[name] = {part: evaluate(p[m], data.y[m], ds.metric, ds.ogb_name)
                             for part, m in (("val", split.val), ("test", split.test))}
            return out, alw_stats(cohort, logits)
        stats: Dict[str, float] = {}
        if self.mode == "data" and cohort.alw is not None and self.ctx.is_main:
            # the single-process task's first validation batch (this rank's share may differ);
            # a loader with a generator of its own: opening it draws no global random number
            from torch_geometric.loader import DataLoader

            first = next(iter(DataLoader(self.dataset.data[split.val],
                                         batch_size=self.resolved.eval_batch_size,
                                         generator=torch.Generator())), None)
            if first is not None:
                first = first.to(self.device)
                stats = alw_stats(cohort, net(first.x, first.edge_index, batch=first.batch,
                                              edge_attr=first.get("edge_attr")))
        for part, index in (("val", split.val), ("test", split.test)):
            probs: Dict[str, List[Tensor]] = {}
            ys = []
            for batch in self._graph_loader(index, None, 0):
                batch = batch.to(self.device)
                logits = net(batch.x, batch.edge_index, batch=batch.batch,
                             edge_attr=batch.get("edge_attr"))
                if part == "val" and not stats and self.mode == "student":
                    stats = alw_stats(cohort, logits)  # of the first validation batch
                for name, p in member_probs(cohort, logits).items():
                    probs.setdefault(name, []).append(p)
                ys.append(batch.y)
            names = members(cohort)
            y = torch.cat(ys) if ys else torch.empty(0, dtype=torch.long, device=self.device)
            stacked = [torch.cat(probs[n]) if ys else
                       torch.empty(0, ds.num_classes, device=self.device) for n in names]
            if self.mode == "data":
                y = self._gather_rows(y)
                stacked = [self._gather_rows(p) for p in stacked]
            for name, p in zip(names, stacked):
                out.setdefault(name, {})[part] = evaluate(p.cpu(), y.cpu(), ds.metric,
                                                          ds.ogb_name)
        return out, stats

    # ------------------------------------------------------------ sampled nodes
    def _setup_sampling(self, split) -> None:
        """The sampler's and the layer-wise inference's CSR (built once per graph, as
        :class:`~graphmutual.train.sampled.SampledNodeTask` does) and this seed's labels."""
        from torch_geometric.loader import NodeLoader

        from graphmutual.train.sampled import SampledNodeRunner

        n = self.dataset.data.num_nodes
        train = split.train.cpu()
        if train.dtype != torch.bool:
            train = torch.zeros(n, dtype=torch.bool).index_fill_(0, train.long(), True)
        if self._runner is None:
            self._runner = SampledNodeRunner(
                self.dataset.data, train, self.fanout, batch_size=self.batch_size,
                eval_batch_size=max(self.resolved.eval_batch_size or 0, 8192),
                device=self.device)
            # data-parallel batches are built from our own seed chunks with its filter_fn
            self._node_loader = NodeLoader(self._runner.data, node_sampler=self._runner.sampler,
                                           batch_size=1)
            self._x_eval = self._runner.data.x.to(self.device)
        else:
            self._runner.set_labelled(train)

    @contextmanager
    def _private_rng(self, seed: int) -> Iterator[None]:
        """Run a block on generators seeded by ``seed`` and leave the global ones as they
        were (so that what differs between ranks never puts their generators out of step)."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed % 2 ** 63)
            yield

    def _sampled_epoch(self, model, cohort, opt, epoch: int, seed: int) -> Dict[str, float]:
        """One epoch of neighbour-sampled training; the seed-weighted mean loss terms, as
        :meth:`SampledNodeRunner.train_epoch <graphmutual.train.sampled.SampledNodeRunner.\
train_epoch>` returns them."""
        model.train()
        cohort.set_epoch(epoch)
        show = self.config.progress and self.ctx.is_main
        if self.mode == "data":
            return self._sampled_data_epoch(cohort, opt, epoch, show)
        sums: Dict[str, float] = {}
        seen = 0
        # every rank iterates the same loader with the same global generator: same batches
        loader = tqdm(self._runner.loader(), desc=f"epoch {epoch}", disable=not show,
                      leave=False, dynamic_ncols=True)
        for step, batch in enumerate(loader):
            stream = ((seed * 1_000_003 + epoch) * 1_000_003 + step) % 2 ** 63
            losses = self._student_step(model, cohort, opt, batch, epoch, stream)
            bs = int(batch.batch_size)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * bs
            seen += bs
        return {k: v / max(seen, 1) for k, v in sums.items()}

    def _student_step(self, model, cohort, opt, batch, epoch: int,
                      stream: int) -> Dict[str, Tensor]:
        """Student-parallel: this rank's students on the shared batch, the seeds' logits
        all-gathered, the single-process step's loss (a mimicry-only step without labels)."""
        from graphmutual.train.sampled import mimicry_only_loss

        batch = batch.to(self.device)
        bs = int(batch.batch_size)
        y, lab = batch.y[:bs], batch.labelled[:bs]
        opt.zero_grad(set_to_none=True)
        # dropout from a stream of (seed, epoch, step): the global generator, which draws the
        # batches, advances as in a single process
        with self._private_rng(stream):
            logits = model.forward_seeds(bs, batch.x, batch.edge_index)
        if bool(lab.any()):
            losses = cohort.loss(logits, y, lab)
        else:
            try:
                losses = cohort.loss(logits, y, lab)
            except ValueError:  # no labels and no mimicry: nothing to learn, no step
                losses = mimicry_only_loss(cohort, logits, epoch)
                if cohort.weighting == "none" or cohort.mimic_scale(epoch) <= 0:
                    return losses
        losses["total"].backward()
        model.sync_gradients()
        opt.step()
        return losses

    def _sampled_data_epoch(self, cohort, opt, epoch: int, show: bool) -> Dict[str, float]:
        from torch.utils.data import DataLoader

        n = self._runner.data.num_nodes
        # the permutation of the single-process runner's epoch, the same on every rank: its
        # shuffling NodeLoader, iterated through tqdm.auto (which opens one more iterator of
        # it on creation: one more draw of the global generator), draws exactly these numbers
        perm = next(iter(tqdm(DataLoader(range(n), batch_size=n, shuffle=True),
                              disable=True)))
        chunks = perm.split(self.batch_size)
        sums: Dict[str, float] = {}
        counts: Dict[str, int] = {}
        seen = 0
        for step, chunk in enumerate(tqdm(chunks, desc=f"epoch {epoch}", disable=not show,
                                          leave=False, dynamic_ncols=True)):
            losses = self._data_step(cohort, opt, chunk, epoch, step)
            b = chunk.numel()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * b
                counts[k] = counts.get(k, 0) + b
            seen += b
        parts = self._all_gather_objects((sums, counts))
        world = self.ctx.world_size
        out: Dict[str, float] = {}
        for k in sorted(set().union(*(p[0] for p in parts))):
            total = sum(p[0].get(k, 0.0) for p in parts)
            if term_kind(k):  # rank means re-weighted by weight_terms: their mean is exact
                out[k] = total / (world * max(seen, 1))
            else:
                out[k] = total / max(sum(p[1].get(k, 0) for p in parts), 1)
        return out

    def _data_step(self, cohort, opt, chunk: Tensor, epoch: int, step: int
                   ) -> Dict[str, Tensor]:
        r"""Data-parallel: this rank's share of the global batch ``chunk``, its own sampled
        subgraph, the loss re-weighted so that the ranks' mean gradient is the single-process
        batch's (:func:`weight_terms`), gradients averaged by one all-reduce."""
        world, rank = self.ctx.world_size, self.ctx.rank
        # one draw per step on every rank (the generators stay in step); rank 0 samples
        # with it, as the single-process sampler does, the others with offsets of it
        base = int(torch.randint(0, 2 ** 62, (1,)))
        mine = chunk.tensor_split(world)[rank]
        labelled = self._runner.data.labelled
        w_lab = world * int(labelled[mine].sum()) / max(int(labelled[chunk].sum()), 1)
        w_all = world * mine.numel() / chunk.numel()
        opt.zero_grad(set_to_none=True)
        losses: Dict[str, Tensor] = {}
        if mine.numel():
            own = (base + rank * 0x9E3779B97F4A7C15) % 2 ** 62
            with self._private_rng(own):  # this rank's sample and dropout masks
                batch = self._sample(mine, own).to(self.device)
                bs = mine.numel()
                logits = cohort(batch.x, batch.edge_index)[:, :bs]
            y, lab = batch.y[:bs], batch.labelled[:bs]
            try:
                raw = cohort.loss(logits, y, lab)
            except ValueError:
                if bool(lab.any()):
                    raise
                raw = None  # no labels and no mimicry on this rank's seeds: no gradient
            if raw is not None:
                losses = weight_terms(raw, w_lab, w_all)
                losses["total"].backward()
        self._all_reduce_grads(list(cohort.parameters()))
        opt.step()
        return losses

    def _sample(self, seeds: Tensor, seed: int):
        """The sampled subgraph around ``seeds`` as a NodeLoader batch (seeds first)."""
        from torch_geometric.sampler import SamplerOutput

        from graphmutual.ops import sample_neighbors

        sampler = self._runner.sampler
        out = sample_neighbors(sampler.csr, seeds, sampler.num_neighbors,
                               replace=sampler.replace, seed=seed)
        return self._node_loader.filter_fn(SamplerOutput(
            node=out.node, row=out.row, col=out.col, edge=out.edge,
            num_sampled_nodes=out.num_sampled_nodes, num_sampled_edges=out.num_sampled_edges,
            metadata=(seeds, None)))

    def _all_reduce_grads(self, params: List[nn.Parameter]) -> None:
        """Average the gradients over the ranks in one all-reduce; a parameter no rank has
        a gradient for keeps ``grad=None`` (Adam then skips it, as in a single process)."""
        if self.ctx.world_size == 1 or not params:
            return
        ref = params[0]
        flat = torch.cat([p.grad.reshape(-1) if p.grad is not None else
                          torch.zeros(p.numel(), dtype=ref.dtype, device=ref.device)
                          for p in params]
                         + [torch.tensor([float(p.grad is not None) for p in params],
                                         dtype=ref.dtype, device=ref.device)])
        self._all_reduce(flat)
        has = flat[-len(params):].tolist()
        offset = 0
        for p, h in zip(params, has):
            k = p.numel()
            p.grad = (flat[offset:offset + k] / self.ctx.world_size).view_as(p).clone() \
                if h > 0 else None
            offset += k

    def _all_gather_objects(self, obj: Any) -> List[Any]:
        out: List[Any] = [None] * self.ctx.world_size
        try:
            dist.all_gather_object(out, obj)
        except RuntimeError as exc:
            raise self._fail(exc) from exc
        return out

    @torch.no_grad()
    def _evaluate_sampled(self, model, cohort, split):
        """Exact layer-wise inference on all nodes, each rank on a block of the students
        (student-parallel: its own; data-parallel: every rank holds the whole cohort and
        takes an even share of it), the logits all-gathered."""
        ds, runner = self.dataset, self._runner
        world, rank = self.ctx.world_size, self.ctx.rank
        owners = (model.owners if self.mode == "student" else
                  [t.tolist() for t in torch.arange(cohort.num_students).tensor_split(world)])
        mine = owners[rank]
        if mine:
            local = runner.inference([cohort.students[k] for k in mine], self._x_eval)
        else:  # more ranks than students
            local = self._x_eval.new_zeros((0, runner.data.num_nodes, ds.num_classes))
        width = max(len(o) for o in owners)
        if local.size(0) < width:
            local = torch.cat([local, local.new_zeros((width - local.size(0),)
                                                      + tuple(local.shape[1:]))])
        parts = [torch.empty_like(local) for _ in range(world)]
        try:
            dist.all_gather(parts, local.contiguous())
        except RuntimeError as exc:
            raise self._fail(exc) from exc
        logits = torch.cat([parts[r][:len(ks)] for r, ks in enumerate(owners)])
        y = runner.data.y
        scores = {name: {part: evaluate(p.cpu()[m], y[m], ds.metric, ds.ogb_name)
                         for part, m in (("val", split.val), ("test", split.test))}
                  for name, p in member_probs(cohort, logits).items()}
        return scores, alw_stats(cohort, logits)

    def _validate_checkpoint(self, path: Path) -> TrainState:
        """Restore ``path`` into a whole cohort (on the CPU) and its optimiser, with the
        single-process trainer's one-line :class:`CheckpointError` when the file is not a
        seed checkpoint or was written for another cohort or configuration."""
        full = build_cohort(self.dataset, self.resolved)
        state = TrainState(BestTracker(members(full), self.patience))
        state.restore(path, full, torch.optim.Adam(full.parameters(), lr=self.lr))
        return state

    def _restore(self, path: Path, model, cohort, opt, names: List[str]) -> TrainState:
        """Load a seed checkpoint (the single-process layout) into this rank's cohort and
        optimiser; also restores the random generators."""
        if self.mode == "data":
            state = TrainState(BestTracker(names, self.patience))
            state.restore(path, cohort, opt)
            return state
        state = self._validate_checkpoint(path)  # checks it against the whole cohort
        raw = load_checkpoint(path)
        model.load_full_state_dict(raw["cohort"])
        model.load_full_optimizer_state(opt, raw["optimizer"])
        return state

    def _check_interrupted_seeds(self) -> None:
        """Before any work on ``resume``: every unfinished seed's checkpoint must fit this
        run's cohort (as :meth:`Trainer._check_interrupted_seeds
        <graphmutual.train.Trainer._check_interrupted_seeds>`)."""
        if self.output is None:
            return
        for seed in self.resolved.seeds:
            ckpt = self._checkpoint_path(seed)
            if not (self.output / f"seed{seed}.json").exists() and ckpt.exists():
                self._validate_checkpoint(ckpt)

    # the single-process trainer's: the settings recorded in seed{N}.json, and the check of
    # a finished seed's file against them on resume
    _settings = Trainer._settings
    _finished_seed = Trainer._finished_seed

    # --------------------------------------------------------------- one seed
    def _checkpoint_path(self, seed: int) -> Optional[Path]:
        return self.output / "checkpoints" / f"seed{seed}.pt" if self.output else None

    def run_seed(self, seed: int, resume: bool = False) -> Dict:
        """Train one cohort with ``seed`` on every rank; return its per-member results."""
        cfg, ds, ctx = self.config, self.dataset, self.ctx
        seed_everything(seed, cfg.deterministic)
        split = ds.split(seed)
        cohort = build_cohort(ds, self.resolved)
        if self.mode == "student":
            model = StudentParallel(cohort, ctx.device)
            params = model.local_parameters()
        elif self.sampled:  # gradients all-reduced by _all_reduce_grads, not by DDP
            model = cohort.to(ctx.device)
            params = list(cohort.parameters())
        else:
            from torch.nn.parallel import DistributedDataParallel as DDP

            cohort.to(ctx.device)
            if ctx.device.type == "cuda" and ds.task == "graph":
                cohort = nn.SyncBatchNorm.convert_sync_batchnorm(cohort)
            model = DDP(cohort, device_ids=[ctx.device] if ctx.device.type == "cuda" else None)
            params = list(cohort.parameters())
        opt = make_optimizer(params, self.lr, cfg.weight_decay)  # as the Trainer
        names = members(cohort)
        best = {m: Best() for m in names}
        best_states: Dict[str, Dict] = {}
        history: List[Dict] = []
        train_seconds: List[float] = []
        start_epoch, since_best = 0, 0
        ckpt = self._checkpoint_path(seed)
        if resume and ckpt is not None and ckpt.exists():
            restored = self._restore(ckpt, model, cohort, opt, names)
            best_states = restored.tracker.best_states
            if self.mode == "student":
                best_states = {m: s for m, s in best_states.items()
                               if cohort.names.index(m) in model.local}
            best = restored.tracker.best
            history, train_seconds = restored.history, restored.train_seconds
            start_epoch, since_best = restored.next_epoch, restored.tracker.since_best

        data = None
        if self.sampled:
            self._setup_sampling(split)
            split = type(split)(split.train.cpu(), split.val.cpu(), split.test.cpu(),
                                split.description)
        elif ds.task == "node":
            data = ds.data.to(ctx.device)
            split = type(split)(split.train.to(ctx.device), split.val.to(ctx.device),
                                split.test.to(ctx.device), split.description)
            if self.mode == "data":
                self._shard = node_shard(split.train, data.num_nodes, ctx.rank, ctx.world_size)
                self._num_labelled = int(split.train.sum()) if split.is_mask \
                    else split.train.numel()
        bar = tqdm(range(start_epoch, self.epochs), desc=f"{ds.name} seed {seed} ({self.mode})",
                   disable=not (cfg.progress and ctx.is_main), leave=False,
                   dynamic_ncols=True, initial=start_epoch, total=self.epochs)
        for epoch in bar:
            if since_best >= self.patience:
                break
            t0 = time.perf_counter()
            if self.sampled:
                losses = self._sampled_epoch(model, cohort, opt, epoch, seed)
            elif ds.task == "node":
                losses = self._node_epoch(model, cohort, opt, data, split, epoch)
            else:
                losses = self._graph_epoch(model, cohort, opt, split, epoch, seed)
            train_seconds.append(time.perf_counter() - t0)
            if not math.isfinite(losses["total"]):
                raise FloatingPointError(f"the loss became {losses['total']} at epoch {epoch} "
                                         f"(seed {seed})")
            scores, stats = self._evaluate(model, cohort, data, split)
            # rank 0's scores drive model selection on every rank (no divergent control flow)
            stat_keys = alw_stat_keys(cohort)
            flat = torch.tensor([scores[m][p] for m in names for p in ("val", "test")]
                                + [stats.get(k, 0.0) for k in stat_keys],
                                dtype=torch.float64, device=ctx.device)
            flat = self._broadcast(flat).cpu().tolist()
            scores = {m: {"val": flat[2 * i], "test": flat[2 * i + 1]}
                      for i, m in enumerate(names)}
            stats = dict(zip(stat_keys, flat[2 * len(names):]))
            improved = False
            for m in names:
                if scores[m]["val"] > best[m].val:
                    best[m] = Best(scores[m]["val"], scores[m]["test"], epoch)
                    improved = True
                    if m in cohort.names:
                        k = cohort.names.index(m)
                        if self.mode == "data" or k in model.local:
                            best_states[m] = copy.deepcopy(
                                {n: t.detach().cpu() for n, t in
                                 cohort.students[k].state_dict().items()})
            since_best = 0 if improved else since_best + 1
            history.append({"epoch": epoch, **{f"loss/{k}": v for k, v in losses.items()},
                            **{f"{p}/{m}": scores[m][p] for m in names
                               for p in ("val", "test")}, **stats})
            bar.set_postfix(loss=f"{losses['total']:.3f}")
            last = epoch + 1 >= self.epochs or since_best >= self.patience
            if ckpt is not None and ((epoch + 1) % cfg.checkpoint_every == 0 or last):
                self._save(ckpt, model, cohort, opt, best, best_states, history,
                           train_seconds, epoch, since_best)
        bar.close()
        if self.mode == "student":
            parts = _gather_to_main(best_states)
            best_states = {k: v for p in parts for k, v in p.items()} if parts else {}
        self._last_cohort, self._last_best_states = cohort, best_states
        result = {
            "seed": seed,
            "split": split.description,
            "epochs_run": len(history),
            "seconds_per_epoch": float(np.mean(train_seconds)) if train_seconds else 0.0,
            "members": {m: vars(best[m]) for m in names},
            "students": list(cohort.names),
            "settings": self._settings(),
            "distributed": {"mode": self.mode, "world_size": ctx.world_size,
                            "backend": ctx.backend},
        }
        try:  # the validation labels, for the chance level of the health check
            y_val = (self._runner.data.y[split.val] if self.sampled
                     else data.y[split.val] if data is not None
                     else self.dataset.data[split.val].y)
        except (AttributeError, IndexError, TypeError):
            y_val = None
        result["warnings"] = never_learned(cohort.names, result, history, ds.num_classes,
                                           chance_level(ds.metric, y_val))
        self.history = history
        if self.output is not None and ctx.is_main:
            self._write_history(seed, history)
        return result

    def _save(self, path, model, cohort, opt, best, best_states, history, train_seconds,
              epoch, since_best) -> None:
        if self.mode == "student":
            state = model.full_state_dict()
            opt_state = model.full_optimizer_state(opt)
            parts = _gather_to_main(best_states)
            best_states = {k: v for p in parts for k, v in p.items()} if parts else {}
        else:
            state, opt_state = cohort.state_dict(), opt.state_dict()
        if self.ctx.is_main:
            save_checkpoint({
                "cohort": state, "optimizer": opt_state,
                "best": {m: vars(b) for m, b in best.items()}, "best_states": best_states,
                "history": history, "train_seconds": train_seconds, "epoch": epoch,
                "since_best": since_best, "rng": rng_state(),
                "distributed": {"mode": self.mode, "world_size": self.ctx.world_size},
            }, path)

    # ``log_seed{N}.csv`` is written as the single-process trainer writes it (it reads only
    # ``self.output``), so both kinds of run leave the same per-epoch log.
    _write_history = Trainer._write_history

    def _export(self, res: Dict, best_val: float) -> float:
        """Rank 0: export this seed's validation-best student to ``best_student.pt`` if it
        beats ``best_val`` (the best exported so far); return the new best."""
        states = self._last_best_states
        found = max(((res["members"][n]["val"], -i, n) for i, n in enumerate(res["students"])
                     if n in states), default=None)
        if found is None or found[0] <= best_val:
            return best_val
        name = found[2]
        k = res["students"].index(name)
        student = self._last_cohort.students[k]
        if any(p.is_meta for p in student.parameters()):  # another rank trained it
            student = build_cohort(self.dataset, self.resolved).students[k]
        student.load_state_dict(states[name])
        export_student(student, self.output / "best_student.pt", meta={
            "name": name, "seed": res["seed"], "dataset": self.dataset.name,
            "val": res["members"][name]["val"], "test": res["members"][name]["test"],
            "normalize_features": self.dataset.task == "node"
            and self.resolved.normalize_features,
            "distributed": self.mode,
        })
        return found[0]

    def _peak_rss_per_rank(self) -> List[float]:
        """Every rank's peak resident memory so far (MiB; ``ru_maxrss``), in rank order."""
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        mine = torch.tensor([kib / 1024.0], dtype=torch.float64, device=self.device)
        return [round(float(v), 1) for v in self._gather_rows(mine).cpu()]

    # -------------------------------------------------------------- all seeds
    def run(self, resume: bool = False) -> Dict:
        """Run every seed; every rank returns the summary, rank 0 writes ``results.json``."""
        per_seed = []
        best_val = -math.inf  # of the exported student so far
        if resume:
            self._check_interrupted_seeds()
        for seed in self.config.seeds:
            done = self.output / f"seed{seed}.json" if self.output else None
            if resume and done is not None and done.exists():
                res = self._finished_seed(done)
                per_seed.append(res)
                best_val = max([best_val] + [res["members"][s]["val"]
                                             for s in res.get("students", [])])
                continue
            res = self.run_seed(seed, resume=resume)
            per_seed.append(res)
            if self.output is not None and self.ctx.is_main:
                best_val = self._export(res, best_val)
            if done is not None and self.ctx.is_main:
                atomic_write_bytes(done, lambda f, r=res: f.write(json.dumps(r, indent=2)
                                                                  .encode()))
        results = summarize(per_seed, self.config, self.dataset)
        results["distributed"] = {"mode": self.mode, "world_size": self.ctx.world_size,
                                  "backend": self.ctx.backend,
                                  "peak_rss_mib": self._peak_rss_per_rank()}
        if self.output is not None and self.ctx.is_main:
            atomic_write_bytes(self.output / "results.json",
                               lambda f: f.write(json.dumps(results, indent=2).encode()))
        return results


def run_distributed(config: TrainConfig, mode: str, dataset: Optional[GraphDataset] = None,
                    resume: bool = False, timeout: float = DEFAULT_TIMEOUT,
                    backend: Optional[str] = None) -> Dict:
    """Join the ``torchrun`` job, train ``config`` in ``mode`` and return the summary.

    Collective failures (a dead or hung rank) are raised as :class:`DistributedError`.
    """
    device = "cpu" if config.device == "cpu" else "auto" if config.device == "auto" else "cuda"
    ctx = init_distributed(backend, timeout, device)
    try:
        return DistributedTrainer(config, mode, ctx, dataset).run(resume=resume)
    except DistributedError:
        raise
    except RuntimeError as exc:  # gloo/nccl errors surface as RuntimeError subclasses
        if isinstance(exc, getattr(dist, "DistBackendError", ())) or "Gloo" in str(exc) \
                or "NCCL" in str(exc) or "Connection" in str(exc):
            raise _collective_error(exc, ctx.rank, ctx.world_size, ctx.timeout) from exc
        raise


# ------------------------------------------------------------------------ entry point
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m graphmutual.train.distributed",
        description="Distributed mutual learning; launch with torchrun, e.g. `torchrun "
                    "--standalone --nproc-per-node 2 -m graphmutual.train.distributed "
                    "--mode student --dataset cora`.")
    p.add_argument("--mode", choices=MODES, required=True,
                   help="data: DDP over the whole cohort, each rank on its shard; "
                        "student: each rank holds some students, logits all-gathered")
    p.add_argument("--config", default=None, help="YAML file of TrainConfig fields")
    p.add_argument("--dataset", default=None)
    p.add_argument("--root", default=None)
    p.add_argument("--students", default=None, help="comma-separated, e.g. gcn,gat,gin")
    p.add_argument("--method", default=None, choices=("independent", "dml", "gml"))
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--hidden", type=int, default=None)
    p.add_argument("--dropout", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None,
                   help="graph tasks: the global batch, split evenly over the ranks; node "
                        "tasks: seed nodes per global step of neighbour-sampled training")
    p.add_argument("--fanout", default=None,
                   help="with --batch-size on node tasks: neighbours sampled per hop, e.g. "
                        "15,10 (-1 = all)")
    p.add_argument("--seeds", default=None, help="N (seeds 0..N-1) or a list '0,3'")
    p.add_argument("--device", default=None, help="cpu (default), cuda or auto")
    p.add_argument("--threads", type=int, default=None, help="torch threads per rank")
    p.add_argument("--checkpoint-every", type=int, default=None)
    p.add_argument("--output", default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"seconds a collective waits for the other ranks (default "
                        f"{DEFAULT_TIMEOUT:g})")
    p.add_argument("--backend", choices=("gloo", "nccl"), default=None)
    p.add_argument("--no-progress", action="store_true")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    from graphmutual.train.config import load_yaml_config

    values: Dict[str, Any] = load_yaml_config(args.config) if args.config else {}
    for key in ("dataset", "root", "students", "method", "epochs", "lr", "hidden", "dropout",
                "batch_size", "fanout", "seeds", "device", "threads", "checkpoint_every",
                "output"):
        v = getattr(args, key)
        if v is not None:
            values[key] = int(v) if key == "seeds" and str(v).isdigit() else v
    if args.no_progress:
        values["progress"] = False
    return TrainConfig.from_dict(values)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_flush_denormal(True)  # as `graphmutual train` does
    try:
        cfg = config_from_args(args)
        results = run_distributed(cfg, args.mode, resume=args.resume, timeout=args.timeout,
                                  backend=args.backend)
    except DistributedError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 3
    except (ValueError, FileNotFoundError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    if is_main_process():
        for name, m in results["members"].items():
            print(f"{name:14s} test {m['test_mean']:.4f}  val {m['val_mean']:.4f}")
        print(f"seconds/epoch {results['seconds_per_epoch_mean']:.4f} "
              f"({args.mode}-parallel, {dist.get_world_size()} rank(s))", flush=True)
    finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
