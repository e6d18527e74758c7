r"""Training: BPR with sampled negatives plus mutual learning between modality branches.

For a batch row :math:`(u, i^+, i^-_1, \dots, i^-_n)` every branch :math:`m` gives candidate
scores :math:`z^m = (s^m(u, i^+), s^m(u, i^-_1), \dots)` — a ranking distribution
:math:`p^m = \mathrm{softmax}(z^m / T)` over the :math:`C = n + 1` candidates, the "classes"
of :mod:`graphmutual.mutual`. The loss is

.. math::
    \mathcal{L} = \frac{1}{M}\sum_m \underbrace{\frac{1}{n}\sum_j
      -\log\sigma(z^m_0 - z^m_j)}_{\text{BPR}}
    + \lambda(t)\,\frac{1}{M}\sum_m T^2\,D\big(q^m \,\|\, p^m\big)
    + \gamma \lVert E_{\text{batch}} \rVert^2
    + \mathcal{L}_{\text{gate}} \;(+\, \mathcal{L}_{\text{ALW}}),

with peer targets :math:`q^m = \sum_{j \ne m} \alpha_{m \leftarrow j}\,
\mathrm{softmax}(z^j / \tau_j)` from detached peer scores (uniform :math:`\alpha`,
:math:`\tau = T`: DML; or ALW's per-row weights and temperatures). A peer whose modality is
missing for the row's positive item does not teach on that row (its :math:`\alpha` is set
to zero and the rest renormalised); it still *learns* from the others, which is what lets
a branch stay useful for items that lack its modality. :math:`\lambda(t)` ramps linearly
over ``warmup`` epochs. The gate of the combined prediction is trained by BPR on the
combination of *detached* branch scores, and ALW by its own label signal (the positive,
candidate 0, must win under the peer mixture), so neither can be gamed by the mimicry term.

:func:`fit` trains with early stopping on a validation metric (default NDCG@10), keeps the
best weights (and a checkpoint file when ``checkpoint_dir`` is given) and reports the test
metrics at the best epoch.
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

from graphmutual.mutual.alw import (
    AdaptiveLogitWeighting,
    alw_loss,
    peer_targets,
    uniform_peer_weights,
)
from graphmutual.mutual.divergence import check_divergence, divergence
from graphmutual.recsys.data import RecData
from graphmutual.recsys.metrics import evaluate_full_ranking
from graphmutual.recsys.model import MultiBranchRec


@dataclass
class RecTrainConfig:
    """Hyper-parameters of :func:`fit` (see the module docstring for the loss)."""

    epochs: int = 300
    batch_size: int = 2048
    lr: float = 5e-3
    reg: float = 1e-4
    num_negatives: int = 8
    mutual: float = 1.0
    divergence: str = "kl"
    temperature: float = 1.0
    weighting: str = "uniform"  # "uniform" (DML) or "adaptive" (ALW)
    warmup: int = 5
    eval_every: int = 2
    patience: int = 10
    monitor: str = "ndcg@10"
    mask_valid_at_test: bool = True
    eval_batch_size: Optional[int] = None  # None: auto (about 2M scores per block)
    seed: int = 0
    max_minutes: Optional[float] = None
    progress: bool = True
    checkpoint_dir: Optional[str] = None

    def __post_init__(self) -> None:
        check_divergence(self.divergence)
        if self.weighting not in ("uniform", "adaptive"):
            raise ValueError(f"weighting must be 'uniform' or 'adaptive' (got {self.weighting})")
        if self.num_negatives < 1:
            raise ValueError("num_negatives must be >= 1")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")


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
    cfg: RecTrainConfig,
    alw: Optional[AdaptiveLogitWeighting] = None,
) -> tuple[Tensor, Tensor]:
    """Mimicry loss between the branches' ranking distributions (and ALW's own loss).

    Args:
        scores: ``[M, B, C]`` branch scores of the candidates (positive first).
        presence: ``[B, M]`` whether each branch's modality exists for the row's positive.

    Returns:
        ``(mimic, alw_term)``; a peer absent for a row does not teach on it.
    """
    m, b, _ = scores.shape
    if alw is not None:
        alpha, tau = alw(scores.detach())
    else:
        alpha = uniform_peer_weights(m, dtype=scores.dtype).expand(b, m, m)
        tau = torch.full((m, b), cfg.temperature, dtype=scores.dtype)
    alpha = alpha * presence[:, None, :].to(alpha.dtype)
    norm = alpha.sum(-1, keepdim=True)
    has_teacher = norm.squeeze(-1) > 0  # [B, M]
    alpha = alpha / norm.clamp_min(1e-12)
    targets = peer_targets(scores, alpha, tau)  # [M, B, C]
    mimic = scores.new_zeros(())
    for k in range(m):
        w = has_teacher[:, k].to(scores.dtype)
        if w.sum() > 0:
            mimic = mimic + divergence(scores[k], targets[k], cfg.divergence, cfg.temperature,
                                       sample_weight=w)
    mimic = mimic / m
    alw_term = scores.new_zeros(())
    if alw is not None:
        y = torch.zeros(b, dtype=torch.long)
        rows = has_teacher.all(1)
        alw_term = alw_loss(targets, y, rows)
    return mimic, alw_term


def _evaluate(model: MultiBranchRec, data: RecData, split: str, cfg: RecTrainConfig,
              branch: Optional[int] = None) -> Dict[str, float]:
    model.eval()
    if split == "valid":
        target, exclude = data.valid, [data.train]
    else:
        target = data.test
        exclude = [data.train, data.valid] if cfg.mask_valid_at_test else [data.train]
    return evaluate_full_ranking(
        lambda u: model.full_scores(u, branch=branch), target, exclude,
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

    The best weights are restored at the end; with ``cfg.checkpoint_dir`` they are also
    written to ``best.pt`` there (state dict, config, epoch, validation metrics).
    """
    cfg = cfg or RecTrainConfig()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    sampler = NegativeSampler(data.train, data.num_items)
    m = model.num_branches
    alw = None
    params = list(model.parameters())
    if m > 1 and cfg.mutual > 0 and cfg.weighting == "adaptive":
        alw = AdaptiveLogitWeighting(m, t_min=0.5, t_max=4.0, init_temperature=cfg.temperature)
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
        lam = cfg.mutual * min(1.0, epoch / max(cfg.warmup, 1))
        perm = torch.randperm(n, generator=gen)
        tot = {"loss": 0.0, "bpr": 0.0, "mimic": 0.0}
        for s in range(0, n, cfg.batch_size):
            idx = perm[s: s + cfg.batch_size]
            u, pos = train[0, idx], train[1, idx]
            neg = sampler(u, cfg.num_negatives, gen)
            items = torch.cat([pos[:, None], neg], 1)
            scores = model.branch_scores(u, items)  # [M, B, C], one propagation per step
            bpr = bpr_loss(scores)
            reg = (model.user_emb.index_select(1, u).pow(2).sum()
                   + model.item_emb.index_select(1, pos).pow(2).sum()
                   + model.item_emb.index_select(1, neg[:, 0]).pow(2).sum()) / (2 * idx.numel())
            loss = bpr + cfg.reg * reg
            if m > 1:
                loss = loss + bpr_loss(model.combine(scores.detach(), items))  # the gate
                if cfg.mutual > 0:
                    mimic, alw_term = mutual_loss(scores, model.presence[pos], cfg, alw)
                    loss = loss + lam * mimic + alw_term
                    tot["mimic"] += float(mimic.detach()) * idx.numel()
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
                    torch.save({"state_dict": best_state, "config": asdict(cfg),
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
