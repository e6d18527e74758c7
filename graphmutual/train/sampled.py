r"""Sampled mini-batch training of a node-classification cohort.

Every step samples **one** subgraph around a batch of seed nodes (our
:class:`~graphmutual.data.sampling.NeighborSampler`) and runs **all** students on it, so their
logits align on the seeds; cross-entropy uses the labelled seeds, mimicry and ALW's peer
targets use every seed:

.. math::
    \mathcal{L}_B = \sum_k \Big[\mathrm{CE}\big(z_k[B \cap L], y\big)
    + \lambda(t)\,T^2\, D\big(q_k[B] \,\|\, p_k[B]\big)\Big] + \mathcal{L}_{\mathrm{ALW}}[B \cap L]

**Seed nodes.** By default (``seed_nodes="all"``) an epoch visits *every* node once as a
seed, labelled or not. Full-batch GML applies CE to the labelled nodes and mimicry to all
nodes; drawing seeds uniformly from all nodes makes each batch's loss an unbiased estimate of
exactly that objective (up to the CE's per-batch normalisation), and on semi-supervised
splits (Planetoid, Coauthor: ~2 % labelled) the unlabelled seeds are where the peers teach.
``seed_nodes="train"`` visits only labelled nodes (cheaper epochs on OGB-style splits where
half the nodes are labelled, but mimicry then never sees an unlabelled node).

A batch without a labelled seed takes a **mimicry-only step**: when the cohort's
:meth:`~graphmutual.MutualEnsemble.loss` accepts an empty label mask it is called as usual;
otherwise the step builds the same mimicry and entropy terms from the cohort's public pieces
(:meth:`targets`, :meth:`mimic_scale`) without CE and ALW (ALW is trained on labels only).

**Evaluation** is exact, not sampled: :class:`~graphmutual.nn.inference.LayerwiseInference`
computes every student's logits on all nodes, batch by batch and layer by layer.

**The fused cohort** (``fused="auto"``) runs on the sampled subgraph with **exact per-layer
trimming**: the batch's ``num_sampled_nodes`` (nodes per hop, seeds first) go to
:class:`~graphmutual.nn.FusedCohort`, which normalises on the whole subgraph once and lets
layer :math:`l` of :math:`L` compute only the nodes within :math:`L-1-l` hops of the seeds (the
last layer the seeds only); the seeds' logits equal those of the untrimmed cohort and of the
students run one by one. Students that normalise over a batch's rows (batch norm in training,
as in the MLPs of PyG's ``GIN``) compute every layer on the whole subgraph, the others are
trimmed. ``trim=False`` turns trimming off; cohorts that do not fuse run student by
student on the whole subgraph, as before.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.loader import NodeLoader
from tqdm.auto import tqdm

from graphmutual.data import GraphDataset, Split, validate_graph
from graphmutual.data.sampling import NeighborSampler
from graphmutual.mutual import MutualEnsemble
from graphmutual.mutual.divergence import divergence
from graphmutual.mutual.entropy import confidence_penalty
from graphmutual.nn.inference import LayerwiseInference
from graphmutual.train.metrics import evaluate as score
from graphmutual.train.tasks import (
    Evaluation,
    TrainingTask,
    alw_stats,
    member_probs,
    normalized_features,
)

SEED_NODES = ("all", "train")
#: fan-outs of the first hops when none are given (PyG's examples): ``[15, 10]`` for 2 layers
DEFAULT_FANOUT = (15, 10, 5)


def parse_fanout(text: str) -> list[int]:
    """``"15,10"`` -> ``[15, 10]`` (``-1`` = all neighbours), with a clear error."""
    try:
        out = [int(t) for t in str(text).replace(" ", "").split(",") if t != ""]
    except ValueError:
        raise ValueError(f"fan-out must be comma-separated ints like '15,10', got {text!r}"
                         ) from None
    if not out or any(k < -1 or k == 0 for k in out):
        raise ValueError(f"fan-out must be ints >= 1 or -1 (all), one per layer, got {text!r}")
    return out


def mimicry_only_loss(cohort: MutualEnsemble, logits: Tensor,
                      epoch: Optional[int] = None) -> Dict[str, Tensor]:
    """The cohort's loss terms without labels: mimicry (and the entropy penalty) only."""
    zero = logits.sum() * 0.0
    mimic = [zero] * cohort.num_students
    scale = cohort.mimic_scale(epoch)
    if cohort.weighting != "none" and scale > 0:
        q = cohort.targets(logits)
        mimic = [scale * divergence(logits[k], q[k], cohort.divergence, cohort.temperature,
                                    alpha=cohort.renyi_alpha, balance=cohort.balance)
                 for k in range(cohort.num_students)]
    ent = zero
    if cohort.entropy_mode == "penalty" and cohort.entropy > 0:
        ent = confidence_penalty(logits, cohort.entropy) * cohort.num_students
    out = {"ce": zero, "mimic": torch.stack(mimic).sum(), "entropy": ent, "alw": zero}
    out["total"] = out["mimic"] + out["entropy"]
    for name, m_k in zip(cohort.names, mimic):
        out[f"ce/{name}"] = zero.detach()
        out[f"mimic/{name}"] = m_k.detach()
    out["mimic_scale"] = torch.tensor(scale)
    return out


class SampledNodeRunner:
    r"""Mini-batch neighbour-sampled training and exact layer-wise evaluation of a cohort
    on one graph and one label mask (the engine of :class:`SampledNodeTask`, usable in a
    loop of your own).

    Args:
        data (Data): the graph (kept on CPU; batches move to ``device``).
        train_mask (Tensor): ``[N]`` boolean mask of the labelled (training) nodes.
        fanout (list[int]): neighbours per hop, e.g. ``[15, 10]`` (one per layer).
        batch_size (int): seed nodes per step.
        seed_nodes (str): ``"all"`` (default) or ``"train"``, see the module docs.
        eval_batch_size (int): destination nodes per batch of layer-wise inference.
        device: where the cohort runs.
        sampler_backend (str): ``"graphmutual"`` (our kernel) or ``"pyg"``.
        progress (bool): a tqdm bar over the batches of an epoch.
        trim (bool): run a fused cohort on trimmed layers (default ``True``; exact, see the
            module docs); ``False`` computes every layer on the whole subgraph.
    """

    def __init__(self, data: Data, train_mask: Tensor, fanout: Sequence[int],
                 batch_size: int = 1024, seed_nodes: str = "all",
                 eval_batch_size: int = 8192, device: torch.device | str = "cpu",
                 sampler_backend: str = "graphmutual", progress: bool = False,
                 trim: bool = True) -> None:
        if seed_nodes not in SEED_NODES:
            raise ValueError(f"seed_nodes must be one of {SEED_NODES}, got {seed_nodes!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        n = int(data.num_nodes)
        train_mask = train_mask.cpu()
        if train_mask.dtype != torch.bool or train_mask.numel() != n:
            raise ValueError(f"train_mask must be a boolean [{n}] mask")
        self.data = Data(x=data.x.cpu(), edge_index=data.edge_index.cpu(), y=data.y.cpu(),
                         labelled=train_mask, num_nodes=n)
        self.fanout = list(fanout)
        self.batch_size = batch_size
        self.seed_nodes = seed_nodes
        self.device = torch.device(device)
        self.progress = progress
        self.trim = bool(trim)
        self.sampler = NeighborSampler(self.data, self.fanout, backend=sampler_backend)
        self.inference = LayerwiseInference(self.data.edge_index, n, eval_batch_size)
        self._x_eval: Optional[Tensor] = None

    def set_labelled(self, train_mask: Tensor) -> None:
        """Use another label mask (e.g. the next seed's split) on the same graph."""
        train_mask = train_mask.cpu()
        if train_mask.dtype != torch.bool or train_mask.numel() != self.data.num_nodes:
            raise ValueError(f"train_mask must be a boolean [{self.data.num_nodes}] mask")
        self.data.labelled = train_mask

    def loader(self) -> NodeLoader:
        """This epoch's batches (shuffled with :mod:`torch`'s global generator; the sampler
        draws each batch's seed from it too, so a run is reproducible from its seed)."""
        nodes = None if self.seed_nodes == "all" else self.data.labelled
        return NodeLoader(self.data, node_sampler=self.sampler, input_nodes=nodes,
                          batch_size=self.batch_size, shuffle=True)

    def trims(self, cohort: MutualEnsemble, batch: Data) -> bool:
        """Whether :meth:`seed_logits` hands ``batch``'s nodes per hop to ``cohort``'s fused
        pass, which then trims the layers of every student that allows it (see
        :meth:`~graphmutual.nn.FusedCohort.trim_support`): ``trim`` is on, the cohort is
        fused (``fused="auto"`` or ``True``, every student supported) and the batch carries
        ``num_sampled_nodes`` with its seeds first."""
        hops = getattr(batch, "num_sampled_nodes", None)
        fused = getattr(cohort, "fused_cohort", None)  # a MutualEnsemble's, if built
        if not self.trim or fused is None or not isinstance(hops, (list, tuple)) or not hops:
            return False
        if int(hops[0]) != int(batch.batch_size):
            return False
        return fused.serves(cohort.students) and fused.accepts(
            batch.x, batch.edge_index, num_sampled_nodes=hops)

    def seed_logits(self, cohort: MutualEnsemble, batch: Data) -> Tensor:
        """Every student's logits on the batch's seed nodes, ``[K, batch_size, C]`` (on
        trimmed layers when :meth:`trims`, else on the whole subgraph, then cut)."""
        if self.trims(cohort, batch):
            return cohort(batch.x, batch.edge_index, num_sampled_nodes=batch.num_sampled_nodes)
        return cohort(batch.x, batch.edge_index)[:, :int(batch.batch_size)]

    def step(self, cohort: MutualEnsemble, batch: Data, opt: torch.optim.Optimizer,
             epoch: int) -> Dict[str, Tensor]:
        """One optimisation step on one sampled batch."""
        batch = batch.to(self.device)
        bs = int(batch.batch_size)
        y, lab = batch.y[:bs], batch.labelled[:bs]
        if cohort.schedule == "alternating":
            mimic_mask = torch.zeros(batch.num_nodes, dtype=torch.bool, device=self.device)
            mimic_mask[:bs] = True
            mask = torch.zeros_like(mimic_mask)
            mask[:bs] = lab
            if not bool(lab.any()):
                raise ValueError("the alternating schedule needs a labelled seed in every "
                                 "batch; use seed_nodes='train' or the simultaneous schedule")
            return cohort.alternating_step((batch.x, batch.edge_index), batch.y, mask, opt,
                                           mimic_mask)
        opt.zero_grad(set_to_none=True)
        logits = self.seed_logits(cohort, batch)
        if bool(lab.any()):
            losses = cohort.loss(logits, y, lab)
        else:
            try:  # a cohort whose loss accepts an empty label mask (mimicry-only step)
                losses = cohort.loss(logits, y, lab)
            except ValueError:  # an older cohort, or nothing to learn from in this batch
                losses = mimicry_only_loss(cohort, logits, epoch)
                if cohort.weighting == "none" or cohort.mimic_scale(epoch) <= 0:
                    return losses  # no labels and no mimicry: no step
        losses["total"].backward()
        opt.step()
        return losses

    def train_epoch(self, cohort: MutualEnsemble, opt: torch.optim.Optimizer,
                    epoch: int) -> Dict[str, float]:
        """One pass over the seed nodes; returns the seed-weighted mean of every loss term
        (plus ``batches`` and ``mimicry_only_batches``)."""
        cohort.train()
        cohort.set_epoch(epoch)
        sums: Dict[str, float] = {}
        seen, batches, mimic_only = 0, 0, 0
        loader = self.loader()
        for batch in tqdm(loader, desc=f"epoch {epoch}", disable=not self.progress,
                          leave=False, dynamic_ncols=True):
            losses = self.step(cohort, batch, opt, epoch)
            bs = int(batch.batch_size)
            mimic_only += int(not bool(batch.labelled[:bs].any()))
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * bs
            seen += bs
            batches += 1
        out = {k: v / max(seen, 1) for k, v in sums.items()}
        out["batches"] = float(batches)
        out["mimicry_only_batches"] = float(mimic_only)
        return out

    @torch.no_grad()
    def logits(self, cohort: MutualEnsemble) -> Tensor:
        """Every student's logits on all nodes, ``[K, N, C]``, by exact layer-wise inference."""
        cohort.eval()
        if self._x_eval is None or self._x_eval.device != self.device:
            self._x_eval = self.data.x.to(self.device)
        return self.inference(list(cohort.students), self._x_eval)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(fanout={self.fanout}, batch_size={self.batch_size}, "
                f"seed_nodes={self.seed_nodes!r}, trim={self.trim}, sampler={self.sampler})")


def default_fanout(num_layers: int) -> List[int]:
    """:data:`DEFAULT_FANOUT` cut (or padded with its last value) to ``num_layers`` hops."""
    return [DEFAULT_FANOUT[min(i, len(DEFAULT_FANOUT) - 1)] for i in range(num_layers)]


class SampledNodeTask(TrainingTask):
    r"""Node classification on neighbour-sampled mini-batches (a :class:`TrainingTask`).

    Selected for node datasets when a batch size is given (``graphmutual train --batch-size
    1024 --fanout 15,10``); see the module docs for the loss, the choice of seed nodes and
    the mimicry-only steps. Evaluation is exact layer-wise inference on all nodes.

    Args:
        dataset: a node dataset.
        config: the resolved configuration; ``config.batch_size`` seeds per step (required),
            ``config.fanout`` when the configuration has one.
        device: where the cohort runs (sampling and the graph stay on the CPU).
        fanout: neighbours per hop (default: ``config.fanout``, else
            :func:`default_fanout` of ``config.num_layers``).
        seed_nodes: ``"all"`` (default) or ``"train"``.
        sampler_backend: ``"graphmutual"`` or ``"pyg"``.
    """

    def __init__(self, dataset: GraphDataset, config, device: torch.device,
                 fanout: Optional[Sequence[int]] = None, seed_nodes: str = "all",
                 sampler_backend: str = "graphmutual") -> None:
        if dataset.task != "node":
            raise ValueError(f"{type(self).__name__} trains node tasks; '{dataset.name}' "
                             f"is a {dataset.task} task")
        if not config.batch_size:
            raise ValueError("sampled training needs a batch size (seed nodes per step)")
        validate_graph(dataset.data, dataset.num_classes)
        if config.normalize_features:
            dataset = normalized_features(dataset)
        super().__init__(dataset, config, device)
        fanout = fanout or getattr(config, "fanout", None) or default_fanout(config.num_layers)
        self.fanout = list(fanout)
        self.seed_nodes = seed_nodes
        self.sampler_backend = sampler_backend
        self.runner: Optional[SampledNodeRunner] = None
        self.last_epoch: Dict[str, float] = {}

    def setup(self, seed: int) -> None:
        super().setup(seed)
        s = self.split
        self.split = Split(s.train.cpu(), s.val.cpu(), s.test.cpu(), s.description)
        if self.runner is None:  # the sampler's CSR and the inference CSR: once per graph
            cfg = self.config
            self.runner = SampledNodeRunner(
                self.dataset.data, self.split.train, self.fanout, batch_size=cfg.batch_size,
                seed_nodes=self.seed_nodes,
                eval_batch_size=max(cfg.eval_batch_size or 0, 8192), device=self.device,
                sampler_backend=self.sampler_backend, progress=cfg.progress)
        else:
            self.runner.set_labelled(self.split.train)

    def train_epoch(self, cohort, optimizer, epoch):
        out = self.runner.train_epoch(cohort, optimizer, epoch)
        self.last_epoch = {k: out.pop(k) for k in ("batches", "mimicry_only_batches")}
        return out

    @torch.no_grad()
    def evaluate(self, cohort):
        logits = self.runner.logits(cohort).cpu()
        y, ds = self.runner.data.y, self.dataset
        scores = {
            name: {part: score(p[mask], y[mask], ds.metric, ds.ogb_name)
                   for part, mask in (("val", self.split.val), ("test", self.split.test))}
            for name, p in member_probs(cohort, logits).items()
        }
        return Evaluation(scores, alw_stats(cohort, logits))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.dataset.name!r}, fanout={self.fanout}, "
                f"batch_size={self.config.batch_size}, seed_nodes={self.seed_nodes!r})")
