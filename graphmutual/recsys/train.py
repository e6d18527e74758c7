r"""Training: BPR with sampled negatives plus mutual learning between modality branches.

For a batch row :math:`(u, i^+, i^-_1, \dots, i^-_n)` every branch :math:`m` gives candidate
scores :math:`z^m = (s^m(u, i^+), s^m(u, i^-_1), \dots)` — a ranking distribution
:math:`p^m = \mathrm{softmax}(z^m / T)` over the :math:`C = n + 1` candidates, the "classes"
of :mod:`graphmutual.mutual`. The loss is

.. math::
    \mathcal{L} = \frac{1}{M}\sum_m \Big[\underbrace{\frac{1}{n}\sum_j
      -\log\sigma(z^m_0 - z^m_j)}_{\text{BPR}}
    + \lambda(t)\,T^2\,D\big(q^m \,\|\, p^m\big)
    - \beta\,\overline{H(\mathrm{softmax}(z^m))}\Big]
    + \gamma \lVert E_{\text{batch}} \rVert^2
    + \mathcal{L}_{\text{gate}} \;(+\, \mathcal{L}_{\text{ALW}}).

The peer terms are :class:`graphmutual.mutual.MimicryLoss`, the module
:class:`~graphmutual.MutualEnsemble` uses: peer targets
:math:`q^m = \sum_{j \ne m} \alpha_{m \leftarrow j}\, \mathrm{softmax}(z^j / \tau_j)` from
detached peer scores (uniform :math:`\alpha`, :math:`\tau = T`: DML; or ALW's per-row
weights and temperatures, bounded below by ALW's tuned default
:data:`~graphmutual.mutual.alw.DEFAULT_T_MIN`), the divergence :math:`D`, the sigmoid
warm-up :math:`\lambda(t) = \lambda\,\exp(-5(1 - \min(t / t_w, 1))^2)` (epochs counted from
0, as the trainer does) and entropy enhancement :math:`\beta` (default: the preset of the
weighting, 0 for DML and GML's 0.1 for ALW).

**Mean over branches.** The branches' BPR losses are averaged, so the peer terms are
averaged too (``reduction="mean"``): each branch's ranking and mimicry terms keep the
:math:`1 : \lambda(t)` balance that the cohort's summed cross-entropy and mimicry have,
while the regulariser, the gate and ALW keep the weight they had against one BPR loss.

A peer whose modality is missing for the row's positive item does not teach on that row
(its :math:`\alpha` is set to zero and the rest renormalised, ``peer_mask``); it still
*learns* from the others, which is what lets a branch stay useful for items that lack its
modality. The gate of the combined prediction is trained by BPR on the combination of
*detached* branch scores, and ALW by its own label signal (the positive, candidate 0, must
win under the peer mixture, on rows where every peer can teach), so neither can be gamed
by the mimicry term.

:func:`fit` trains with early stopping on a validation metric (default NDCG@10), keeps the
best weights (and an atomically written checkpoint when ``checkpoint_dir`` is given) and
reports the test metrics at the best epoch. ``device`` (``"cpu"``, ``"cuda"``,
``"cuda:N"`` or ``"auto"``) is resolved as the trainer resolves it; negatives are drawn on
the CPU (one seeded generator, the same samples on every device) and moved.

Results in ``benchmarks/results/recsys_*`` were produced before this module shared the
cohort's mimicry loss (linear ramp, ALW :math:`T_{\min} = 0.5`, no entropy term); see the
tutorial for how much a short run moves.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from graphmutual.mutual.alw import AdaptiveLogitWeighting
from graphmutual.mutual.divergence import check_divergence
from graphmutual.mutual.mimicry import PRESETS, WEIGHTING_PRESET, MimicryLoss, MimicryTerms
from graphmutual.recsys.data import RecData
from graphmutual.recsys.metrics import evaluate_full_ranking
from graphmutual.recsys.model import MultiBranchRec
from graphmutual.train.checkpoint import save_checkpoint
from graphmutual.train.config import ConfigError
from graphmutual.train.trainer import resolve_device


@dataclass
class RecTrainConfig:
    """Hyper-parameters of :func:`fit` (see the module docstring for the loss).

    ``entropy=None`` takes the entropy weight of the weighting's preset
    (:data:`graphmutual.mutual.PRESETS`: 0 for ``uniform``/DML, 0.1 for ``adaptive``/GML).
    Invalid values raise :class:`~graphmutual.train.ConfigError`.
    """

    epochs: int = 300
    batch_size: int = 2048
    lr: float = 5e-3
    reg: float = 1e-4
    num_negatives: int = 8
    mutual: float = 1.0
    divergence: str = "kl"
    temperature: float = 1.0
    weighting: str = "uniform"  # "uniform" (DML) or "adaptive" (ALW)
    entropy: Optional[float] = None
    warmup: int = 5
    eval_every: int = 2
    patience: int = 10
    monitor: str = "ndcg@10"
    mask_valid_at_test: bool = True
    eval_batch_size: Optional[int] = None  # None: auto (about 2M scores per block)
    seed: int = 0
    device: str = "cpu"
    max_minutes: Optional[float] = None
    progress: bool = True
    checkpoint_dir: Optional[str] = None

    def __post_init__(self) -> None:
        try:
            check_divergence(self.divergence)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.weighting not in ("uniform", "adaptive"):
            raise ConfigError(
                f"weighting must be 'uniform' or 'adaptive' (got {self.weighting})")
        if self.num_negatives < 1:
            raise ConfigError("num_negatives must be >= 1")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch_size must be >= 1")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0 (got {self.temperature})")
        if self.entropy is not None and self.entropy < 0:
            raise ConfigError(f"entropy must be >= 0 (got {self.entropy})")
        try:
            resolve_device(self.device)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def mimicry(self) -> MimicryLoss:
        """The peer terms as configured (averaged over branches, see the module docs)."""
        entropy = self.entropy if self.entropy is not None else \
            float(PRESETS[WEIGHTING_PRESET[self.weighting]]["entropy"])
        return MimicryLoss(weighting=self.weighting, divergence=self.divergence,
                           temperature=self.temperature, mimic_weight=self.mutual,
                           warmup=self.warmup, entropy=entropy, reduction="mean")


class NegativeSampler:
    """Uniform negatives that avoid each user's training items (up to ``tries`` redraws)."""

    def __init__(self, train: Tensor, num_items: int, tries: int = 5) -> None:
        self.num_items = num_items
        self.keys = torch.unique(train[0] * num_items + train[1])  # sorted
        self.tries = tries

    def is_positive(self, users: Tensor, items: Tensor) -> Tensor:
        key = users * self.num_items + items
        pos = torch.searchsorted(self.keys, key).clamp(max=self.keys.numel() - 1)
        return self.keys[pos] == key

    def __call__(self, users: Tensor, n: int, generator: torch.Generator) -> Tensor:
        u = users[:, None].expand(-1, n)
        neg = torch.randint(self.num_items, u.shape, generator=generator)
        for _ in range(self.tries):
            bad = self.is_positive(u, neg)
            if not bad.any():
                break
            neg[bad] = torch.randint(self.num_items, (int(bad.sum()),), generator=generator)
        return neg


def bpr_loss(scores: Tensor) -> Tensor:
    r"""Mean :math:`-\log\sigma(z_0 - z_j)` over candidates ``[..., C]`` (0 = positive)."""
    return F.softplus(scores[..., 1:] - scores[..., :1]).mean()


def mutual_loss(
    scores: Tensor,
    presence: Tensor,
    mimicry: MimicryLoss,
    alw: Optional[AdaptiveLogitWeighting] = None,
    epoch: int = 0,
) -> MimicryTerms:
    """The peer terms between the branches' ranking distributions.

    Args:
        scores: ``[M, B, C]`` branch scores of the candidates (positive first).
        presence: ``[B, M]`` whether each branch's modality exists for the row's positive;
            a peer absent for a row does not teach on it.
        mimicry: the loss (:meth:`RecTrainConfig.mimicry`).
        alw: ALW, for ``weighting="adaptive"``.
        epoch: the epoch (from 0) of the warm-up ramp.

    Returns:
        :class:`~graphmutual.mutual.MimicryTerms`; ``.total`` is what :func:`fit` adds.
    """
    b = scores.size(1)
    positive = torch.zeros(b, dtype=torch.long, device=scores.device)  # candidate 0
    every_row = torch.ones(b, dtype=torch.bool, device=scores.device)
    return mimicry(scores, positive, every_row, epoch=epoch, alw=alw, peer_mask=presence)


def _evaluate(model: MultiBranchRec, data: RecData, split: str, cfg: RecTrainConfig,
              branch: Optional[int] = None) -> Dict[str, float]:
    model.eval()
    if split == "valid":
        target, exclude = data.valid, [data.train]
    else:
        target = data.test
        exclude = [data.train, data.valid] if cfg.mask_valid_at_test else [data.train]
    device = model.user_emb.device
    return evaluate_full_ranking(
        lambda u: model.full_scores(u.to(device), branch=branch).cpu(), target, exclude,
        data.num_users, data.num_items, batch_size=cfg.eval_batch_size,
    )


def evaluate(model: MultiBranchRec, data: RecData, split: str = "test",
             cfg: Optional[RecTrainConfig] = None, branch: Optional[int] = None
             ) -> Dict[str, float]:
    """Full-ranking metrics of ``model`` on ``split`` (``"valid"`` or ``"test"``).

    Training items are always masked; validation items are masked at test time when
    ``cfg.mask_valid_at_test`` (the default). ``branch`` evaluates one branch alone.
    """
    if split not in ("valid", "test"):
        raise ValueError(f"split must be 'valid' or 'test' (got {split})")
    return _evaluate(model, data, split, cfg or RecTrainConfig(), branch)


@dataclass
class FitResult:
    """What :func:`fit` returns: best epoch, its validation and test metrics, history."""

    best_epoch: int
    valid: Dict[str, float]
    test: Dict[str, float]
    history: List[Dict[str, float]]
    seconds: float
    seconds_per_epoch: float
    eval_seconds: float
    branches: Dict[str, Dict[str, float]]

    def to_dict(self) -> Dict:
        return asdict(self)


def fit(model: MultiBranchRec, data: RecData, cfg: Optional[RecTrainConfig] = None,
        per_branch: bool = True) -> FitResult:
    """Train ``model`` on ``data.train`` with early stopping on ``cfg.monitor`` (validation).

    The model is moved to ``cfg.device``. The best weights are restored at the end; with
    ``cfg.checkpoint_dir`` they are also written atomically to ``best.pt`` there (state
    dict, config, epoch, validation metrics;
    :func:`~graphmutual.train.checkpoint.load_checkpoint` reads it). History rows hold
    the epoch means of ``loss``, ``bpr``, ``mimic`` (already scaled by
    :math:`\\lambda(t)`) and ``entropy``.
    """
    cfg = cfg or RecTrainConfig()
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)  # CPU: the same samples on every device
    sampler = NegativeSampler(data.train, data.num_items)
    model.to(device)
    m = model.num_branches
    mimicry = cfg.mimicry() if m > 1 and cfg.mutual > 0 else None
    alw = None
    params = list(model.parameters())
    if mimicry is not None and mimicry.weighting == "adaptive":
        alw = AdaptiveLogitWeighting(m, init_temperature=cfg.temperature).to(device)
        params += list(alw.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr)
    train = data.train
    n = train.size(1)
    best, best_epoch, bad = -math.inf, 0, 0
    best_state = copy.deepcopy(model.state_dict())
    best_valid: Dict[str, float] = {}
    history: List[Dict[str, float]] = []
    ckpt = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    if ckpt:
        ckpt.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    train_time, epochs_run = 0.0, 0
    try:
        from tqdm.auto import tqdm
        bar = tqdm(range(1, cfg.epochs + 1), disable=not cfg.progress, desc="train",
                   leave=False, dynamic_ncols=True)
    except ImportError:  # pragma: no cover
        bar = range(1, cfg.epochs + 1)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen)
        tot = {"loss": 0.0, "bpr": 0.0, "mimic": 0.0, "entropy": 0.0}
        for s in range(0, n, cfg.batch_size):
            idx = perm[s: s + cfg.batch_size]
            u, pos = train[0, idx], train[1, idx]
            neg = sampler(u, cfg.num_negatives, gen).to(device)
            u, pos = u.to(device), pos.to(device)
            items = torch.cat([pos[:, None], neg], 1)
            scores = model.branch_scores(u, items)  # [M, B, C], one propagation per step
            bpr = bpr_loss(scores)
            reg = (model.user_emb.index_select(1, u).pow(2).sum()
                   + model.item_emb.index_select(1, pos).pow(2).sum()
                   + model.item_emb.index_select(1, neg[:, 0]).pow(2).sum()) / (2 * idx.numel())
            loss = bpr + cfg.reg * reg
            if m > 1:
                loss = loss + bpr_loss(model.combine(scores.detach(), items))  # the gate
                if mimicry is not None:
                    peer = mutual_loss(scores, model.presence[pos], mimicry, alw, epoch - 1)
                    loss = loss + peer.total
                    tot["mimic"] += float(peer.mimic_total.detach()) * idx.numel()
                    tot["entropy"] += float(peer.entropy.detach()) * idx.numel()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot["loss"] += float(loss.detach()) * idx.numel()
            tot["bpr"] += float(bpr.detach()) * idx.numel()
        train_time += time.perf_counter() - t0
        epochs_run += 1
        rec = {"epoch": epoch, **{k: v / n for k, v in tot.items()}}
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            val = evaluate(model, data, "valid", cfg)
            rec.update({f"valid_{k}": v for k, v in val.items() if k != "num_users"})
            score = val[cfg.monitor]
            if score > best:
                best, best_epoch, bad, best_valid = score, epoch, 0, val
                best_state = copy.deepcopy(model.state_dict())
                if ckpt:
                    save_checkpoint({"state_dict": best_state, "config": asdict(cfg),
                                     "epoch": epoch, "valid": val}, ckpt / "best.pt")
            else:
                bad += 1
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{rec['loss']:.4f}", **{cfg.monitor: f"{score:.4f}"},
                                best=f"{best:.4f}@{best_epoch}")
        history.append(rec)
        if bad >= cfg.patience:
            break
        if cfg.max_minutes and time.perf_counter() - start > 60 * cfg.max_minutes:
            break
    model.load_state_dict(best_state)
    model.eval()
    t0 = time.perf_counter()
    test = evaluate(model, data, "test", cfg)
    eval_s = time.perf_counter() - t0
    branches: Dict[str, Dict[str, float]] = {}
    if per_branch and m > 1:
        branches = {b: evaluate(model, data, "test", cfg, branch=k)
                    for k, b in enumerate(model.branches)}
    if ckpt:
        (ckpt / "history.json").write_text(json.dumps(history, indent=1))
    return FitResult(best_epoch, best_valid, test, history, time.perf_counter() - start,
                     train_time / max(epochs_run, 1), eval_s, branches)
