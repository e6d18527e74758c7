r"""Modality branches over the user–item(–user) graph, and their adaptive combination.

Graph. Users and items are the :math:`N = U + I` nodes of one graph with the training
interactions as undirected user–item edges and (optionally) the friendships as user–user
edges of weight :math:`w_s`; :math:`\hat A = D^{-1/2} A D^{-1/2}` (LightGCN).

Branch :math:`m` (one per item modality, fusion-free) has its own ID embeddings
:math:`E^m_u, E^m_i \in \mathbb{R}^d` and a projection :math:`W_m` of the modality's
standardised features :math:`x^m_i`; its layer-0 item input is
:math:`h^{m,0}_i = E^m_i + \mu_{im} W_m x^m_i` with :math:`\mu_{im} \in \{0,1\}` the
presence mask (the branch falls back to the ID embedding where its modality is missing).
LightGCN propagation, :math:`H^{m,l+1} = \hat A H^{m,l}`, and the layer mean
:math:`\bar H^m = \frac{1}{L+1}\sum_l H^{m,l}` give the branch score
:math:`s^m(u, i) = \langle \bar h^m_u, \bar h^m_i \rangle`. All branches propagate in one
sparse product (their embeddings side by side, ``[N, M·d]``).

Combination (prediction). With a per-item gate over the *present* branches,

.. math::
    \beta_{im} = \frac{\mu_{im} \exp(a_m + b_m \tilde d_i)}
                      {\sum_{m'} \mu_{im'} \exp(a_{m'} + b_{m'} \tilde d_i)}, \qquad
    s(u, i) = \sum_m \beta_{im}\, s^m(u, i),

where :math:`\tilde d_i` is the standardised :math:`\log(1 + \deg_i)` of the item in the
training graph. A branch whose modality is missing for item :math:`i` has
:math:`\beta_{im} = 0` (skipped); an item with no modality at all uses uniform weights.
Because :math:`\beta` depends on the item only, :math:`s(u, \cdot)` is a single matrix product
of :math:`[\bar h^1_u, \dots, \bar h^M_u]` with the gated item matrix.

Baselines are configurations of the same module: BPR-MF (one ``id`` branch, ``num_layers=0``),
LightGCN (one ``id`` branch, no social edges) and the fused variant (one branch whose
features are the concatenated modalities, zero-filled where missing).
"""
from __future__ import annotations

import warnings
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

ID_BRANCH = "id"


def normalized_adjacency(
    num_users: int,
    num_items: int,
    train: Tensor,
    social: Optional[Tensor] = None,
    social_weight: float = 1.0,
) -> Tensor:
    r"""Symmetrically normalised :math:`\hat A` (sparse CSR, ``[U+I, U+I]``).

    User ``u`` is node ``u``, item ``i`` is node ``U + i``; ``social`` holds directed
    user–user edges (both directions), weighted by ``social_weight``.
    """
    n = num_users + num_items
    u, i = train[0], train[1] + num_users
    rows = [u, i]
    cols = [i, u]
    vals = [torch.ones(u.numel() * 2)]
    if social is not None and social.numel() and social_weight > 0:
        rows.append(social[0])
        cols.append(social[1])
        vals.append(torch.full((social.size(1),), float(social_weight)))
    row, col, val = torch.cat(rows), torch.cat(cols), torch.cat(vals)
    adj = torch.sparse_coo_tensor(torch.stack([row, col]), val, (n, n),
                                  check_invariants=False).coalesce()
    row, col = adj.indices()
    val = adj.values().clamp(max=max(1.0, social_weight))  # duplicate pairs count once
    deg = torch.zeros(n).index_add_(0, row, val)
    dinv = deg.clamp_min(1e-12).pow(-0.5) * (deg > 0)
    val = dinv[row] * val * dinv[col]
    adj = torch.sparse_coo_tensor(torch.stack([row, col]), val, (n, n),
                                  check_invariants=False).coalesce()
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return adj.to_sparse_csr()


def is_symmetric(adj: Tensor, atol: float = 1e-6) -> bool:
    """Whether the sparse matrix ``adj`` equals its transpose (values within ``atol``)."""
    a = adj.to_sparse_coo().coalesce()
    t = a.t().coalesce()
    if a._nnz() != t._nnz() or not torch.equal(a.indices(), t.indices()):
        return False
    return bool(torch.allclose(a.values(), t.values(), atol=atol))


class _SymmetricSpMM(torch.autograd.Function):
    r""":math:`Y = \hat A X` for a symmetric sparse :math:`\hat A`: the backward pass is
    :math:`\partial X = \hat A^\top \partial Y = \hat A\, \partial Y`, the same product,
    instead of autograd's transpose of the CSR matrix on every call (which dominated the
    training step on CPU)."""

    @staticmethod
    def forward(ctx, adj: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.adj = adj
        return adj @ x

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return None, ctx.adj @ grad.contiguous()


def spmm(adj: Tensor, x: Tensor, symmetric: bool = False) -> Tensor:
    """``adj @ x`` for a sparse ``adj``; with ``symmetric=True`` the backward pass reuses
    ``adj`` instead of transposing it."""
    if symmetric and x.requires_grad:
        return _SymmetricSpMM.apply(adj, x)
    return adj @ x


def standardize(x: Tensor, mask: Tensor) -> Tensor:
    """Z-score the columns of ``x`` over the present rows, then L2-normalise the rows;
    missing rows stay zero."""
    if mask.any():
        mu = x[mask].mean(0)
        sd = x[mask].std(0, unbiased=False).clamp_min(1e-6)
        x = (x - mu) / sd
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return x * mask[:, None]


class MultiBranchRec(nn.Module):
    r"""Fusion-free modality branches with LightGCN propagation and a per-item gate.

    Args:
        num_users: number of users :math:`U`.
        num_items: number of items :math:`I`.
        adj: normalised adjacency from :func:`normalized_adjacency` (or ``None`` for
            ``num_layers == 0``).
        features: ``{branch: [I, F] features}``; a branch named ``"id"`` (or one not in
            ``features``) is a pure collaborative branch.
        masks: ``{branch: [I] bool}`` presence masks (default: all present).
        branches: branch order (default: the keys of ``features``).
        dim: embedding size :math:`d`.
        num_layers: propagation layers :math:`L`.
        item_degree: ``[I]`` training degrees for the gate (default: zeros).
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        adj: Optional[Tensor],
        features: Optional[Dict[str, Tensor]] = None,
        masks: Optional[Dict[str, Tensor]] = None,
        branches: Optional[Sequence[str]] = None,
        dim: int = 64,
        num_layers: int = 3,
        item_degree: Optional[Tensor] = None,
    ) -> None:
        super().__init__()
        features = dict(features or {})
        masks = dict(masks or {})
        self.branches: List[str] = list(branches if branches is not None else features)
        if not self.branches:
            self.branches = [ID_BRANCH]
        if num_layers > 0 and adj is None:
            raise ValueError("num_layers > 0 needs an adjacency matrix")
        self.num_users, self.num_items = num_users, num_items
        self.dim, self.num_layers = dim, num_layers
        # a buffer (not saved): .to(device) moves the adjacency with the embeddings
        self.register_buffer("adj", adj, persistent=False)
        # LightGCN's \hat A is symmetric unless the caller passed one-way social edges.
        self.adj_symmetric = adj is not None and is_symmetric(adj)
        m = len(self.branches)
        self.user_emb = nn.Parameter(torch.empty(m, num_users, dim))
        self.item_emb = nn.Parameter(torch.empty(m, num_items, dim))
        self.proj = nn.ModuleDict()
        presence = torch.ones(num_items, m, dtype=torch.bool)
        for k, b in enumerate(self.branches):
            if b in features and b != ID_BRANCH:
                mask = masks.get(b, torch.ones(num_items, dtype=torch.bool)).bool()
                x = standardize(features[b].float(), mask)
                self.register_buffer(f"x_{b}", x, persistent=False)
                self.proj[b] = nn.Linear(x.size(1), dim, bias=False)
                presence[:, k] = mask
        self.register_buffer("presence", presence, persistent=False)
        deg = item_degree.float() if item_degree is not None else torch.zeros(num_items)
        ld = torch.log1p(deg)
        self.register_buffer("deg_feat", (ld - ld.mean()) / ld.std().clamp_min(1e-6)
                             if num_items > 1 else ld, persistent=False)
        self.gate = nn.Parameter(torch.zeros(m, 2))
        self._cache: Optional[tuple] = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, 0.1) ID embeddings (LightGCN), Xavier projections, uniform gate."""
        nn.init.normal_(self.user_emb, std=0.1)
        nn.init.normal_(self.item_emb, std=0.1)
        for lin in self.proj.values():
            nn.init.xavier_uniform_(lin.weight)
        nn.init.zeros_(self.gate)
        self._cache = None

    @property
    def num_branches(self) -> int:
        return len(self.branches)

    def train(self, mode: bool = True) -> MultiBranchRec:
        self._cache = None
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):  # .to(), .cuda(), .double(): drop the eval cache
        self._cache = None
        return super()._apply(fn, *args, **kwargs)

    # ------------------------------------------------------------------ embeddings
    def item_input(self) -> Tensor:
        """Layer-0 item embeddings ``[M, I, d]`` (ID + masked modality projection)."""
        h = [self.item_emb[k] + self.proj[b](getattr(self, f"x_{b}"))
             * self.presence[:, k, None] if b in self.proj
             else self.item_emb[k] for k, b in enumerate(self.branches)]
        return torch.stack(h)

    def propagate_flat(self) -> Tensor:
        """Propagated embeddings of all ``U + I`` nodes, branches side by side ``[N, M·d]``
        (cached in eval mode). This layout lets a mini-batch gather its rows with one
        ``index_select`` per side, whose backward is a cheap ``index_add``."""
        if not self.training and self._cache is not None:
            return self._cache[0]
        m, u, d = self.user_emb.shape
        h0 = torch.cat([self.user_emb, self.item_input()], dim=1)  # [M, N, d]
        h = h0.permute(1, 0, 2).reshape(u + self.num_items, m * d)  # branches side by side
        acc = h
        for _ in range(self.num_layers):
            h = spmm(self.adj, h, self.adj_symmetric)
            acc = acc + h
        out = acc / (self.num_layers + 1)
        if not self.training:
            flat = out.detach()
            split = flat.reshape(-1, m, d).permute(1, 0, 2)
            self._cache = (flat, split[:, :u], split[:, u:], None)
        return out

    def propagate(self) -> tuple[Tensor, Tensor]:
        """Propagated user ``[M, U, d]`` and item ``[M, I, d]`` embeddings (cached in eval)."""
        if not self.training and self._cache is not None:
            return self._cache[1], self._cache[2]
        out = self.propagate_flat()
        if not self.training:
            return self._cache[1], self._cache[2]
        m, u, d = self.user_emb.shape
        out = out.reshape(-1, m, d).permute(1, 0, 2)
        return out[:, :u], out[:, u:]

    def item_weights(self) -> Tensor:
        r"""Per-item branch weights :math:`\beta` ``[I, M]`` (zero for missing modalities)."""
        logit = self.gate[:, 0] + self.gate[:, 1] * self.deg_feat[:, None]  # [I, M]
        pres = self.presence.clone()
        pres[~pres.any(1)] = True  # an item with no modality at all: every branch
        return logit.masked_fill(~pres, float("-inf")).softmax(-1)

    # ------------------------------------------------------------------ scores
    def branch_scores(self, users: Tensor, items: Tensor,
                      emb: Optional[tuple[Tensor, Tensor]] = None) -> Tensor:
        """Scores of every branch for ``users [B]`` and candidate ``items [B, C]`` →
        ``[M, B, C]``. Without ``emb`` the propagation is run (or taken from the eval
        cache) and rows are gathered from the flat ``[N, M·d]`` layout."""
        if emb is not None:
            hu, hi = emb
            return torch.einsum("mbd,mbcd->mbc", hu[:, users], hi[:, items])
        flat = self.propagate_flat()
        m, d = self.num_branches, self.dim
        b, c = items.shape
        hu = flat.index_select(0, users)  # [B, M·d]
        hi = flat.index_select(0, items.reshape(-1) + self.num_users).view(b, c, m * d)
        return (hu[:, None, :] * hi).view(b, c, m, d).sum(-1).permute(2, 0, 1)

    def combine(self, branch_scores: Tensor, items: Tensor) -> Tensor:
        """Gated combination of ``[M, B, C]`` branch scores for candidate ``items [B, C]``."""
        w = self.item_weights()[items]  # [B, C, M]
        return (branch_scores.permute(1, 2, 0) * w).sum(-1)

    def _gated_items(self) -> Tensor:
        r"""Gate-weighted item matrix ``[I, M·d]``: row ``i`` is
        :math:`[\beta_{i1} \bar h^1_i, \dots, \beta_{iM} \bar h^M_i]` (cached in eval)."""
        if not self.training and self._cache is not None and self._cache[3] is not None:
            return self._cache[3]
        m, d = self.num_branches, self.dim
        hi = self.propagate_flat()[self.num_users:].view(self.num_items, m, d)
        items = (hi * self.item_weights()[:, :, None]).reshape(self.num_items, m * d)
        if not self.training and self._cache is not None:
            items = items.detach()
            self._cache = self._cache[:3] + (items,)
        return items

    def full_scores(self, users: Tensor, branch: Optional[int] = None) -> Tensor:
        """Scores of ``users [B]`` against all items ``[B, I]`` — the combined model, or
        branch ``branch`` alone. In eval mode the propagation and the gated item matrix are
        computed once and reused across user batches."""
        if branch is not None:
            hu, hi = self.propagate()
            return hu[branch, users] @ hi[branch].t()
        items = self._gated_items()
        return self.propagate_flat().index_select(0, users) @ items.t()

    def load_state_dict(self, *args, **kwargs):
        self._cache = None  # new weights: drop the eval cache
        return super().load_state_dict(*args, **kwargs)

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        """Combined scores for ``users [B]`` and candidates ``items [B, C]``."""
        return self.combine(self.branch_scores(users, items), items)

    def extra_repr(self) -> str:
        feats = {b: tuple(getattr(self, f"x_{b}").shape[1:]) for b in self.proj}
        return (f"users={self.num_users}, items={self.num_items}, branches={self.branches}, "
                f"features={feats}, dim={self.dim}, num_layers={self.num_layers}")


def build_model(
    kind: str,
    data,
    dim: int = 64,
    num_layers: int = 3,
    social_weight: float = 1.0,
    branches: Optional[Sequence[str]] = None,
    seed: Optional[int] = None,
) -> MultiBranchRec:
    """Build one of the model variants for a :class:`~graphmutual.recsys.data.RecData`.

    ``kind``: ``"bprmf"``, ``"lightgcn"``, ``"lightgcn-social"``, ``"mutual"`` (ours; also
    used for the no-mutual and no-social ablations, which differ in training/data) or
    ``"fused"`` (one branch on the concatenated modalities, social edges as ours).
    ``branches`` (for ``mutual``) defaults to the data's modalities. ``seed`` seeds
    torch's global generator before the weights are drawn, so a variant's initialisation
    does not depend on what ran before it in the same process.
    """
    kind = kind.lower()
    if seed is not None:
        torch.manual_seed(seed)
    deg = data.item_degree()
    social = data.social if kind in ("mutual", "fused", "lightgcn-social") else None
    if kind == "bprmf":
        return MultiBranchRec(data.num_users, data.num_items, None, dim=dim, num_layers=0,
                              item_degree=deg)
    adj = normalized_adjacency(data.num_users, data.num_items, data.train, social, social_weight)
    if kind in ("lightgcn", "lightgcn-social"):
        return MultiBranchRec(data.num_users, data.num_items, adj, dim=dim,
                              num_layers=num_layers, item_degree=deg)
    if kind == "mutual":
        names = list(branches) if branches is not None else data.modalities
        bad = [b for b in names if b != ID_BRANCH and b not in data.features]
        if bad:
            raise ValueError(f"unknown branches {bad}; {data.name} has {data.modalities} "
                             f"(and '{ID_BRANCH}')")
        if len(names) < 2:
            raise ValueError(f"the mutual model needs at least two branches, got {names}")
        return MultiBranchRec(data.num_users, data.num_items, adj, data.features, data.masks,
                              names, dim=dim, num_layers=num_layers, item_degree=deg)
    if kind == "fused":
        names = list(branches) if branches is not None else data.modalities
        names = [b for b in names if b != ID_BRANCH]
        if not names:
            raise ValueError("the fused model needs at least one modality")
        x = torch.cat([standardize(data.features[b], data.masks[b]) for b in names], 1)
        mask = torch.stack([data.masks[b] for b in names]).any(0)
        return MultiBranchRec(data.num_users, data.num_items, adj, {"fused": x},
                              {"fused": mask}, ["fused"], dim=dim, num_layers=num_layers,
                              item_degree=deg)
    raise ValueError(f"unknown model '{kind}'; choose one of {list(MODELS)}")


MODELS = ("mutual", "bprmf", "lightgcn", "lightgcn-social", "fused")
