r"""Training tasks: one object per kind of training, all with the same small interface.

A task knows how to run one epoch of a cohort on its data and how to score every *member*
(each student, the mean ensemble and, with ALW, the ALW-weighted ensemble) on the
validation and test parts of the split.  The :class:`~graphmutual.train.Trainer` loop only
talks to this interface:

.. code-block:: python

    task.setup(seed)                                   # the seed's split, data on device
    losses = task.train_epoch(cohort, optimizer, epoch)   # {"total": ..., "ce/gcn": ...}
    ev = task.evaluate(cohort)                         # Evaluation(scores, stats)
    ev.scores == {"gcn": {"val": 0.79, "test": 0.81}, ..., "ensemble": {...}}

Built in: :class:`FullBatchNodeTask` (node classification, the whole graph per step) and
:class:`GraphBatchTask` (graph classification in mini-batches).  A new kind of training,
e.g. a ``SampledNodeTask`` with neighbour sampling, subclasses :class:`TrainingTask`,
implements :meth:`~TrainingTask.setup`, :meth:`~TrainingTask.train_epoch` and
:meth:`~TrainingTask.evaluate` (use :func:`member_probs` and :func:`alw_stats` to score the
members the same way), and is passed to the trainer as ``Trainer(config, task=...)`` or
registered in :data:`TASKS` under a name that :func:`make_task` selects.  To keep a killed
and resumed run identical to an uninterrupted one, draw all randomness of an epoch either
from the global torch generator (checkpointed by the trainer) or from a generator seeded by
``(seed, epoch)`` as :class:`GraphBatchTask` does.
"""
from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor

from graphmutual.data import GraphDataset, Split, validate_graph
from graphmutual.mutual import MutualEnsemble
from graphmutual.train.defaults import ResolvedConfig
from graphmutual.train.metrics import evaluate as score

ENSEMBLE = "ensemble"
ENSEMBLE_ALW = "ensemble_alw"
#: What :meth:`TrainingTask.evaluate` returns per member: ``{"val": v, "test": t}``.
Scores = Dict[str, Dict[str, float]]


@dataclass
class Evaluation:
    """The result of :meth:`TrainingTask.evaluate`.

    Args:
        scores: ``{member: {"val": v, "test": t}}`` for every member of :func:`members`.
        stats: extra per-epoch columns of the history (e.g. ``"alw/tau/gcn"``).
    """

    scores: Scores
    stats: Dict[str, float] = field(default_factory=dict)


def members(cohort: MutualEnsemble) -> List[str]:
    """The scored members of ``cohort``: its students, then ``"ensemble"`` (2+ students)
    and ``"ensemble_alw"`` (with ALW)."""
    extra = [ENSEMBLE] if cohort.num_students > 1 else []
    if cohort.alw is not None:
        extra.append(ENSEMBLE_ALW)
    return list(cohort.names) + extra


def member_probs(cohort: MutualEnsemble, logits: Tensor) -> Dict[str, Tensor]:
    """Class probabilities ``[N, C]`` of every member from the cohort's logits ``[K, N, C]``."""
    out = {n: logits[k].softmax(-1) for k, n in enumerate(cohort.names)}
    if cohort.num_students > 1:
        out[ENSEMBLE] = cohort.predict(logits, "mean")
    if cohort.alw is not None:
        out[ENSEMBLE_ALW] = cohort.predict(logits, "alw")
    return out


def alw_stats(cohort: MutualEnsemble, logits: Tensor) -> Dict[str, float]:
    r"""Mean ALW temperature :math:`\bar\tau_j` of each student and the mean weight
    :math:`\frac{1}{N(K-1)}\sum_{n}\sum_{k \ne j}\alpha_{n,k,j}` its peers give it."""
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


def _step(cohort: MutualEnsemble, optimizer: torch.optim.Optimizer, inputs, y: Tensor,
          mask: Optional[Tensor], kwargs: Optional[Dict] = None) -> Dict[str, Tensor]:
    """One optimisation step of the cohort on one batch (either schedule)."""
    if cohort.schedule == "alternating":
        return cohort.alternating_step(inputs, y, mask, optimizer, kwargs=kwargs)
    optimizer.zero_grad(set_to_none=True)
    losses = cohort.loss(cohort(*inputs, **(kwargs or {})), y, mask)
    losses["total"].backward()
    optimizer.step()
    return losses


class TrainingTask(ABC):
    """One kind of training of a cohort on a dataset (see the module docstring).

    Args:
        dataset: the loaded dataset.
        config: the resolved run configuration.
        device: where the cohort and the batches live.
    """

    def __init__(self, dataset: GraphDataset, config: ResolvedConfig,
                 device: torch.device) -> None:
        self.dataset = dataset
        self.config = config
        self.device = torch.device(device)
        self.seed: Optional[int] = None
        self.split: Optional[Split] = None

    @property
    def input_features(self) -> str:
        """A one-line description of the node features the cohort is given."""
        return input_features(self.dataset, self.config)

    def setup(self, seed: int) -> None:
        """Prepare the split of ``seed`` (called before the first epoch of every seed)."""
        self.seed = seed
        self.split = self.dataset.split(seed)

    def val_labels(self) -> Optional[Tensor]:
        """The labels of the validation part of the split (for the chance level of
        :mod:`graphmutual.train.health`); ``None`` when the task cannot tell."""
        return None

    @abstractmethod
    def train_epoch(self, cohort: MutualEnsemble, optimizer: torch.optim.Optimizer,
                    epoch: int) -> Dict[str, float]:
        """Train ``cohort`` for one epoch; return the epoch's mean losses (``"total"``
        and the cohort's loss terms) as floats."""

    @abstractmethod
    def evaluate(self, cohort: MutualEnsemble) -> Evaluation:
        """Score every member on the validation and test parts of the split."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dataset.name!r})"


class FullBatchNodeTask(TrainingTask):
    """Node classification on the whole graph: one step per epoch, the label mask selects
    the training nodes, and mimicry acts on every node (transductive, as in GCN/GAT).

    Features are row-normalised (:class:`torch_geometric.transforms.NormalizeFeatures`)
    when ``config.normalize_features`` is true.
    """

    def __init__(self, dataset: GraphDataset, config: ResolvedConfig,
                 device: torch.device) -> None:
        if dataset.task != "node":
            raise ValueError(f"{type(self).__name__} trains node tasks; '{dataset.name}' "
                             f"is a {dataset.task} task")
        validate_graph(dataset.data, dataset.num_classes)
        if config.normalize_features:
            dataset = normalized_features(dataset)
        super().__init__(dataset, config, device)
        self.data = dataset.data.to(self.device)

    def setup(self, seed: int) -> None:
        super().setup(seed)
        s = self.split
        self.split = Split(s.train.to(self.device), s.val.to(self.device),
                           s.test.to(self.device), s.description)

    def val_labels(self):
        return self.data.y[self.split.val].cpu()

    def train_epoch(self, cohort, optimizer, epoch):
        cohort.train()
        cohort.set_epoch(epoch)
        data = self.data
        losses = _step(cohort, optimizer, (data.x, data.edge_index), data.y, self.split.train)
        return {k: float(v.detach()) for k, v in losses.items()}

    @torch.no_grad()
    def evaluate(self, cohort):
        cohort.eval()
        data, ds = self.data, self.dataset
        logits = cohort(data.x, data.edge_index)
        scores = {
            name: {part: score(p[mask], data.y[mask], ds.metric, ds.ogb_name)
                   for part, mask in (("val", self.split.val), ("test", self.split.test))}
            for name, p in member_probs(cohort, logits).items()
        }
        return Evaluation(scores, alw_stats(cohort, logits))


class GraphBatchTask(TrainingTask):
    r"""Graph classification in mini-batches of ``config.batch_size`` graphs.

    The shuffling of an epoch depends on ``(seed, epoch)`` only, so a resumed run sees
    the same batches.  With ``config.transductive`` (and mimicry) each training batch also
    carries an equal share of the unlabelled validation and test graphs, whose labels are
    replaced by ``-1`` and masked out of the loss.

    The graph-specific variants of mutual learning (off by default; see
    :mod:`graphmutual.mutual.graphviews`) run in :meth:`variant_step`:

    * ``config.node_mimic`` :math:`\lambda_V > 0` (with mimicry): the loss gains
      :math:`\lambda_V \sum_k \lambda(t)\,T^2 D(q^V_k \| p^V_k)` over every node of the
      batch, the peers' mimicry of each other's node-level distributions;
    * ``config.view_drop`` :math:`p > 0`: student :math:`k` sees its own view of each batch
      (:func:`~graphmutual.mutual.graphviews.drop_view`, drawn from a generator seeded by
      ``(seed, epoch)``, apart from the shuffling's), for its cross-entropy and mimicry;
    * ``config.alw_holdout`` :math:`f > 0` (with ALW): a fraction :math:`f` of the
      training graphs, fixed per seed, leaves the cross-entropy and is the only data ALW's
      loss sees; the students still mimic each other on it;
    * ``config.boost`` :math:`\beta > 0` (with mimicry): student :math:`k`'s cross-entropy
      weighs each graph its peers' mixture misclassifies by :math:`1 + \beta`
      (:func:`~graphmutual.mutual.graphviews.boost_weights`).
    """

    def __init__(self, dataset: GraphDataset, config: ResolvedConfig,
                 device: torch.device) -> None:
        if dataset.task != "graph":
            raise ValueError(f"{type(self).__name__} trains graph tasks; '{dataset.name}' "
                             f"is a {dataset.task} task")
        super().__init__(dataset, config, device)
        self._transductive = None  # (split, flagged graphs) of the last transductive split
        self._holdout = None  # (split, flagged graphs) of the last ALW hold-out split
        if config.schedule == "alternating" and self._variants_on():
            raise ValueError("node_mimic, view_drop, alw_holdout and boost need the simultaneous "
                             "schedule (got schedule='alternating')")
        if config.transductive and config.alw_holdout:
            raise ValueError("alw_holdout and transductive cannot be combined")

    def _variants_on(self) -> bool:
        c = self.config
        return bool(c.node_mimic or c.view_drop or c.alw_holdout or c.boost)

    #: Cut the training and evaluation batches straight from the in-memory dataset's
    #: storage (:class:`~graphmutual.data.SliceLoader`, where
    #: :func:`~graphmutual.data.can_slice` allows it) rather than with PyG's ``DataLoader``
    #: (per-graph ``separate`` + ``Batch.from_data_list``). Both give the same batches and
    #: draw the same random numbers, so a run is the same either way; slicing is faster.
    slicing: bool = True

    def _loader(self, index, shuffle: bool, generator=None):
        from graphmutual.data import graph_loader

        bs = self.config.batch_size if shuffle else self.config.eval_batch_size
        return graph_loader(self.dataset.data, index, bs, shuffle=shuffle, generator=generator,
                            slicing=self.slicing)

    def _transductive_loader(self, generator):
        r"""Training batches that also carry the unlabelled (validation + test) graphs.

        Each batch holds one shuffled chunk of the training graphs and an equal share of the
        unlabelled ones, so an epoch has as many steps as an inductive one and every batch
        has labelled graphs.  The unlabelled graphs are copies whose ``y`` is ``-1`` and
        whose ``labelled`` flag is false: their labels never reach the loss.
        """
        from torch_geometric.loader import DataLoader

        from graphmutual.data import can_slice

        split = self.split
        if self.slicing and can_slice(self.dataset.data) is None:
            return self._sliced_transductive_loader(generator)
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
        steps = math.ceil(n_lab / self.config.batch_size)
        lab = torch.randperm(n_lab, generator=generator).tensor_split(steps)
        unl = (torch.randperm(n_unl, generator=generator) + n_lab).tensor_split(steps)
        batches = [torch.cat([a, b]).tolist() for a, b in zip(lab, unl)]
        return DataLoader(graphs, batch_sampler=batches)

    def _sliced_transductive_loader(self, generator):
        """:meth:`_transductive_loader`'s batches (the same graphs, order, labels, flags and
        random draws) cut from the dataset's storage instead of collated from copies."""
        from graphmutual.data import SliceLoader

        split = self.split
        n_lab = len(split.train)
        index = torch.cat([split.train, split.val, split.test])
        steps = math.ceil(n_lab / self.config.batch_size)
        lab = torch.randperm(n_lab, generator=generator).tensor_split(steps)
        unl = (torch.randperm(len(index) - n_lab, generator=generator) + n_lab) \
            .tensor_split(steps)
        loader = SliceLoader(self.dataset.data, index,
                             batches=[torch.cat([a, b]).tolist() for a, b in zip(lab, unl)])
        for pos, batch in loader.with_positions():
            labelled = pos < n_lab
            batch.y = torch.where(labelled.view((-1,) + (1,) * (batch.y.dim() - 1)),
                                  batch.y, -1)
            batch.labelled = labelled
            batch._slice_dict["labelled"] = torch.arange(len(pos) + 1)
            batch._inc_dict["labelled"] = torch.zeros(len(pos), dtype=torch.long)
            yield batch

    def _holdout_loader(self, generator):
        """Shuffled training batches whose graphs carry a ``holdout`` flag: a fraction
        ``config.alw_holdout`` of the training graphs (at least one, fixed per seed)."""
        from torch_geometric.loader import DataLoader

        split = self.split
        if self._holdout is None or self._holdout[0] is not split:
            n = len(split.train)
            pick = torch.Generator().manual_seed(self.seed * 7_919 + 17)
            count = min(max(1, round(self.config.alw_holdout * n)), n - 1)
            held = torch.zeros(n, dtype=torch.bool)
            held[torch.randperm(n, generator=pick)[:count]] = True
            graphs = []
            for g, h in zip(self.dataset.data[split.train], held.tolist()):
                g = g.clone()
                g.holdout = torch.tensor([h])
                graphs.append(g)
            self._holdout = (split, graphs)
        return DataLoader(self._holdout[1], batch_size=self.config.batch_size, shuffle=True,
                          generator=generator)

    def val_labels(self):
        return torch.cat([b.y.reshape(-1) for b in self._loader(self.split.val, False)])

    def variant_step(self, cohort: MutualEnsemble, optimizer: torch.optim.Optimizer, batch,
                     mask: Optional[Tensor], view_gen: torch.Generator) -> Dict[str, Tensor]:
        """One step with the graph variants of ``config`` (see the class docstring)."""
        from contextlib import nullcontext

        from graphmutual.mutual.graphviews import (
            NodeEmbeddingTap,
            boost_weights,
            drop_view,
            node_logits,
        )

        c = self.config
        node = c.node_mimic > 0 and cohort.weighting != "none"
        alw_mask = None
        if c.alw_holdout > 0 and cohort.alw is not None:
            alw_mask = batch.holdout.view(-1)  # (never with transductive batches)
            mask = ~alw_mask
        edge_attr = batch.get("edge_attr")
        optimizer.zero_grad(set_to_none=True)
        tap = NodeEmbeddingTap(cohort.students) if node else nullcontext()
        with tap:
            if c.view_drop > 0 or node:
                # student by student: each sees its own view, or the tap reads each one's
                # node embeddings (the fused pass never calls a node model)
                cohort.check_inputs(batch.x, batch.edge_index)
                outs = []
                for k in range(cohort.num_students):
                    x, ei, ea = (drop_view(batch.x, batch.edge_index, edge_attr, c.view_drop,
                                           view_gen) if c.view_drop > 0
                                 else (batch.x, batch.edge_index, edge_attr))
                    outs.append(cohort.call_student(k, x, ei, batch=batch.batch,
                                                    edge_attr=ea))
                logits = cohort.stack(outs)
            else:
                logits = cohort(batch.x, batch.edge_index, batch=batch.batch,
                                edge_attr=edge_attr)
        ce_weight = (boost_weights(logits, batch.y, cohort.mimicry, c.boost, cohort.alw)
                     if c.boost > 0 and cohort.weighting != "none" else None)
        losses = cohort.loss(logits, batch.y, mask, alw_mask=alw_mask, ce_weight=ce_weight)
        if node:
            terms = cohort.mimicry.peer_terms(
                node_logits(list(cohort.students), tap.embeddings), cohort.epoch, cohort.alw)
            node_term = c.node_mimic * torch.stack(terms).sum()
            losses["node_mimic"] = node_term
            losses["total"] = losses["total"] + node_term
        losses["total"].backward()
        optimizer.step()
        return losses

    def train_epoch(self, cohort, optimizer, epoch):
        cohort.train()
        cohort.set_epoch(epoch)
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        totals: Dict[str, float] = {}
        batches = 0
        transductive = self.config.transductive and cohort.weighting != "none"
        holdout = self.config.alw_holdout > 0 and cohort.alw is not None
        variants = self._variants_on()
        view_gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch + 500_000_003)
        loader = (self._transductive_loader(gen) if transductive
                  else self._holdout_loader(gen) if holdout
                  else self._loader(self.split.train, True, gen))
        for batch in loader:
            batch = batch.to(self.device)
            mask = batch.labelled if transductive else None
            if variants:
                losses = self.variant_step(cohort, optimizer, batch, mask, view_gen)
            else:
                kwargs = {"batch": batch.batch, "edge_attr": batch.get("edge_attr")}
                losses = _step(cohort, optimizer, (batch.x, batch.edge_index), batch.y, mask,
                               kwargs)
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach())
            batches += 1
        return {k: v / max(batches, 1) for k, v in totals.items()}

    @torch.no_grad()
    def evaluate(self, cohort):
        cohort.eval()
        ds = self.dataset
        scores: Scores = {}
        stats: Dict[str, float] = {}
        for part, index in (("val", self.split.val), ("test", self.split.test)):
            probs: Dict[str, List[Tensor]] = {}
            ys = []
            for batch in self._loader(index, False):
                batch = batch.to(self.device)
                logits = cohort(batch.x, batch.edge_index, batch=batch.batch,
                                edge_attr=batch.get("edge_attr"))
                if part == "val" and not stats:
                    stats = alw_stats(cohort, logits)  # of the first validation batch
                for name, p in member_probs(cohort, logits).items():
                    probs.setdefault(name, []).append(p)
                ys.append(batch.y)
            y = torch.cat(ys)
            for name, ps in probs.items():
                scores.setdefault(name, {})[part] = score(torch.cat(ps), y, ds.metric,
                                                          ds.ogb_name)
        return Evaluation(scores, stats)


def built_features(dataset: GraphDataset) -> Optional[str]:
    """How the data package built or transformed ``dataset``'s node features (e.g. one-hot
    degrees for a graph dataset without any), or ``None`` when they are the raw ones.

    Read from ``dataset.input_features`` when the dataset has that field (``"raw..."``
    means the dataset's own features), else from the loader's ``notes`` when they
    describe ``x``.
    """
    described = getattr(dataset, "input_features", None)
    if described is not None:
        return None if str(described).startswith("raw") else str(described)
    notes = dataset.notes or ""
    return notes if notes.startswith("x =") or "node features" in notes else None


def input_features(dataset: GraphDataset, config: ResolvedConfig) -> str:
    """In words, the node features a run with ``config`` gives the students: what the data
    package built (:func:`built_features`) or the dataset's own, row-normalised on node
    tasks with ``config.normalize_features``."""
    base = built_features(dataset) or "the dataset's node features"
    if dataset.task == "node" and config.normalize_features:
        return f"{base}, row-normalised"
    return base


def normalized_features(dataset: GraphDataset) -> GraphDataset:
    """A shallow copy of a node dataset with row-normalised features (rows sum to 1)."""
    from torch_geometric.transforms import NormalizeFeatures

    data = NormalizeFeatures()(dataset.data.clone())
    return dataclasses.replace(dataset, data=data)


#: Task classes by dataset task (``GraphDataset.task``), used by :func:`make_task`.
TASKS: Dict[str, Callable[..., TrainingTask]] = {"node": FullBatchNodeTask,
                                                 "graph": GraphBatchTask}


def make_task(dataset: GraphDataset, config: ResolvedConfig,
              device: torch.device) -> TrainingTask:
    """The :data:`TASKS` entry for ``dataset.task``, built for ``config``."""
    if dataset.task == "node" and config.batch_size:  # --batch-size on a node dataset
        from graphmutual.train.sampled import SampledNodeTask

        return SampledNodeTask(dataset, config, device)
    try:
        cls = TASKS[dataset.task]
    except KeyError:
        raise ValueError(f"no training task for '{dataset.task}' datasets; known: "
                         f"{sorted(TASKS)}") from None
    return cls(dataset, config, device)
