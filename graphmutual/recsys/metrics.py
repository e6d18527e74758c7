r"""Full-ranking top-K metrics, batched over users.

For a user :math:`u` with held-out items :math:`T_u` and top-:math:`K` list
:math:`(r_1, \dots, r_K)` (training items, and optionally validation items, excluded), with
binary gains :math:`h_j = [r_j \in T_u]`:

.. math::
    \mathrm{Recall@K} = \frac{\sum_{j\le K} h_j}{|T_u|}, \quad
    \mathrm{Precision@K} = \frac{\sum_{j\le K} h_j}{K}, \quad
    \mathrm{Hit@K} = [\textstyle\sum_{j \le K} h_j > 0],

    \mathrm{NDCG@K} = \frac{\sum_{j \le K} h_j / \log_2(j + 1)}
                           {\sum_{j \le \min(|T_u|, K)} 1 / \log_2(j + 1)}.

Each metric is averaged over the users with :math:`|T_u| > 0` (others are excluded). The
score matrix is never built for all users at once: :func:`evaluate_full_ranking` takes a
``score_fn(users) -> [B, num_items]`` and works through ``batch_size`` users at a time.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import torch
from torch import Tensor

METRICS = ("recall", "ndcg", "precision", "hit")


def csr_from_pairs(pairs: Tensor, num_users: int) -> tuple[Tensor, Tensor]:
    """``(indptr [U+1], items)`` of the ``[2, E]`` ``(user, item)`` pairs, grouped by user."""
    order = torch.argsort(pairs[0], stable=True)
    items = pairs[1, order].contiguous()
    counts = torch.bincount(pairs[0], minlength=num_users)
    indptr = torch.zeros(num_users + 1, dtype=torch.long)
    indptr[1:] = counts.cumsum(0)
    return indptr, items


def _rows_of(indptr: Tensor, items: Tensor, users: Tensor) -> tuple[Tensor, Tensor]:
    """Batch-row and item index of every pair belonging to ``users`` (for masking)."""
    start, end = indptr[users], indptr[users + 1]
    lens = end - start
    row = torch.repeat_interleave(torch.arange(users.numel()), lens)
    offs = torch.arange(int(lens.sum())) - torch.repeat_interleave(lens.cumsum(0) - lens, lens)
    return row, items[torch.repeat_interleave(start, lens) + offs]


def metrics_from_hits(hits: Tensor, num_relevant: Tensor, ks: Sequence[int] = (10, 20)
                      ) -> Dict[str, Tensor]:
    """Per-user metrics from a boolean hit matrix.

    Args:
        hits: ``[B, K_max]`` bool, ``hits[b, j]`` = the ``j``-th ranked item is relevant.
        num_relevant: ``[B]`` number of held-out items per user (all > 0).
        ks: cut-offs, each ``<= K_max``.

    Returns:
        ``{"recall@10": [B], "ndcg@10": [B], ...}`` per-user values.
    """
    if hits.dim() != 2 or num_relevant.shape != hits.shape[:1]:
        raise ValueError(f"hits must be [B, K] and num_relevant [B]; got "
                         f"{tuple(hits.shape)} and {tuple(num_relevant.shape)}")
    if max(ks) > hits.size(1):
        raise ValueError(f"cut-off {max(ks)} exceeds the ranking length {hits.size(1)}")
    h = hits.float()
    n = num_relevant.float()
    disc = 1.0 / torch.log2(torch.arange(2, hits.size(1) + 2, dtype=torch.float))
    cum_disc = disc.cumsum(0)
    out: Dict[str, Tensor] = {}
    for k in ks:
        nh = h[:, :k].sum(1)
        dcg = (h[:, :k] * disc[:k]).sum(1)
        idcg = cum_disc[(n.clamp(max=k) - 1).long()]
        out[f"recall@{k}"] = nh / n
        out[f"ndcg@{k}"] = dcg / idcg
        out[f"precision@{k}"] = nh / k
        out[f"hit@{k}"] = (nh > 0).float()
    return out


def auto_batch_size(num_items: int, block: int = 1 << 21) -> int:
    """Users per score block so that a block holds about ``block`` scores (16–1024)."""
    return int(min(1024, max(16, block // max(num_items, 1))))


@torch.no_grad()
def evaluate_full_ranking(
    score_fn: Callable[[Tensor], Tensor],
    target: Tensor,
    exclude: Sequence[Tensor],
    num_users: int,
    num_items: int,
    ks: Sequence[int] = (10, 20),
    batch_size: Optional[int] = None,
    return_per_user: bool = False,
) -> Dict[str, float]:
    """Rank all items for every user with held-out items and average the metrics.

    Args:
        score_fn: maps a ``[B]`` tensor of user indices to ``[B, num_items]`` scores.
        target: ``[2, E]`` held-out ``(user, item)`` pairs (the relevant items).
        exclude: ``[2, E]`` pair tensors whose items are removed from the ranking (the
            training pairs; add the validation pairs to mask them at test time).
        batch_size: users per score block; memory is ``O(batch_size * num_items)``.
            Default (:func:`auto_batch_size`): blocks of about 2M scores (8 MB float32),
            which measured fastest on one CPU thread (``recsys_eval_timing.md``).
        return_per_user: also return ``"users"`` and the per-user tensors.

    Users without held-out items are excluded from every average.
    """
    kmax = max(ks)
    batch_size = batch_size or auto_batch_size(num_items)
    t_ptr, t_items = csr_from_pairs(target, num_users)
    n_rel = t_ptr[1:] - t_ptr[:-1]
    users = torch.nonzero(n_rel > 0).view(-1)
    ex = [csr_from_pairs(e, num_users) for e in exclude]
    sums: Dict[str, list] = {}
    for start in range(0, users.numel(), batch_size):
        ub = users[start: start + batch_size]
        scores = score_fn(ub).float()
        if scores.shape != (ub.numel(), num_items):
            raise ValueError(f"score_fn returned {tuple(scores.shape)}, expected "
                             f"({ub.numel()}, {num_items})")
        scores = scores.clone()
        for ptr, items in ex:
            r, c = _rows_of(ptr, items, ub)
            scores[r, c] = float("-inf")
        top = scores.topk(min(kmax, num_items), dim=1).indices
        rel = torch.zeros(ub.numel(), num_items, dtype=torch.bool)
        r, c = _rows_of(t_ptr, t_items, ub)
        rel[r, c] = True
        hits = rel.gather(1, top)
        if hits.size(1) < kmax:  # tiny catalogues: pad with misses
            hits = torch.cat([hits, hits.new_zeros(hits.size(0), kmax - hits.size(1))], 1)
        for key, v in metrics_from_hits(hits, n_rel[ub], ks).items():
            sums.setdefault(key, []).append(v)
    per_user = {k: torch.cat(v) for k, v in sums.items()}
    out: Dict[str, float] = {k: float(v.mean()) for k, v in per_user.items()}
    out["num_users"] = float(users.numel())
    if return_per_user:
        out["per_user"] = per_user  # type: ignore[assignment]
        out["users"] = users  # type: ignore[assignment]
    return out


def format_table(rows: Dict[str, Dict[str, float]], ks: Sequence[int] = (10, 20),
                 metrics: Optional[Sequence[str]] = None) -> str:
    """Markdown table: one row per model, columns ``metric@K``."""
    metrics = list(metrics or METRICS)
    cols = [f"{m}@{k}" for k in ks for m in metrics]
    lines = ["| model | " + " | ".join(c.replace("@", "@") for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for name, res in rows.items():
        cells = []
        for c in cols:
            v = res.get(c)
            s = res.get(c + "_std")
            cells.append("–" if v is None else (f"{v:.4f}" if s is None else f"{v:.4f} ± {s:.4f}"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
