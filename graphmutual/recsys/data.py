r"""Recommendation data: interactions, social ties and item modalities with presence masks.

Everything is held in one small container, :class:`RecData`, with

* ``train``, ``valid``, ``test``: ``[2, E]`` long tensors of ``(user, item)`` pairs, indices
  ``0 .. num_users-1`` and ``0 .. num_items-1``;
* ``social``: ``[2, S]`` directed user–user edges (both directions of every friendship);
* ``features[m]``: a ``[num_items, F_m]`` float matrix for modality ``m`` (zero rows where
  the modality is missing) and ``masks[m]``: a ``[num_items]`` bool presence mask.

:meth:`RecData.to_hetero` turns it into a PyG :class:`~torch_geometric.data.HeteroData`
with node types ``user`` / ``item`` and edge types ``(user, rates, item)``,
``(item, rated_by, user)`` (training interactions) and ``(user, friends, user)``.

Loaders:

* :func:`load_mmrec` — any dataset in the MMRec layout (``<name>.inter`` with an ``x_label``
  split column, plus ``.npy`` item feature matrices whose row ``i`` is item ``i``; a row
  that is all zeros or non-finite marks the modality missing for that item);
* :func:`load_lfm2k_multimodal` — Last.fm-2K with audio (VGGish, Whisper) and text
  (MiniLM) features and its fixed split, plus the HetRec friend graph and a tag modality;
* :func:`load_lastfm2k` — the full HetRec-2011 Last.fm set with a seeded random 8:1:1
  per-user split (the RecBole-GNN protocol).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import torch
from torch import Tensor

PathLike = Union[str, os.PathLike]

#: Feature files of ``lfm2k-multimodal`` and the modality names they get.
LFM2K_FEATURES: Dict[str, str] = {
    "vggish": "vggish.npy",
    "whisper": "whisper.npy",
    "text": "all-MiniLM-L6-v2.npy",
}
DATASETS = ("lfm2k-multimodal", "lastfm-2k")


def default_root() -> Path:
    """Directory holding the datasets: ``graphmutual.data.default_root`` when it exists,
    otherwise ``$GRAPHMUTUAL_DATA`` or ``~/.cache/graphmutual``."""
    try:  # the shared data layer, when it provides one
        from graphmutual.data import default_root as _root  # type: ignore

        return Path(_root())
    except Exception:  # noqa: BLE001 - lower layer absent or incomplete
        env = os.environ.get("GRAPHMUTUAL_DATA")
        return Path(env) if env else Path.home() / ".cache" / "graphmutual"


@dataclass
class RecData:
    """Implicit-feedback recommendation data with a social graph and item modalities."""

    name: str
    num_users: int
    num_items: int
    train: Tensor
    valid: Tensor
    test: Tensor
    social: Tensor = field(default_factory=lambda: torch.empty(2, 0, dtype=torch.long))
    features: Dict[str, Tensor] = field(default_factory=dict)
    masks: Dict[str, Tensor] = field(default_factory=dict)
    item_names: Optional[List[str]] = None
    user_ids: Optional[np.ndarray] = None  # raw ID of user index u
    item_ids: Optional[np.ndarray] = None  # raw ID of item index i
    split: str = ""

    def __post_init__(self) -> None:
        for key in ("train", "valid", "test", "social"):
            t = getattr(self, key)
            if t.dim() != 2 or t.size(0) != 2:
                raise ValueError(f"{key} must have shape [2, E], got {tuple(t.shape)}")
        for key in ("train", "valid", "test"):
            t = getattr(self, key)
            if t.numel() and (t[0].max() >= self.num_users or t[1].max() >= self.num_items
                              or t.min() < 0):
                raise ValueError(f"{key} holds an index outside the user/item range")
        if self.social.numel() and (self.social.max() >= self.num_users or self.social.min() < 0):
            raise ValueError("social holds a user index outside the user range")
        for m, x in self.features.items():
            if x.size(0) != self.num_items:
                raise ValueError(f"modality '{m}' has {x.size(0)} rows for {self.num_items} items")
            if m not in self.masks:
                self.masks[m] = torch.ones(self.num_items, dtype=torch.bool)
            self.masks[m] = self.masks[m].bool()
            self.features[m] = x.float() * self.masks[m][:, None]

    # ------------------------------------------------------------------ views
    @property
    def modalities(self) -> List[str]:
        """Names of the item modalities, in insertion order."""
        return list(self.features)

    def coverage(self) -> Dict[str, float]:
        """Fraction of items that have each modality."""
        return {m: float(mask.float().mean()) for m, mask in self.masks.items()}

    def item_degree(self) -> Tensor:
        """Number of training interactions of every item, ``[num_items]``."""
        return torch.bincount(self.train[1], minlength=self.num_items)

    def user_index(self, raw_id: Union[int, str]) -> int:
        """Index of the user whose raw (dataset) ID is ``raw_id``."""
        if self.user_ids is None:
            idx = int(raw_id)
            if not 0 <= idx < self.num_users:
                raise ValueError(f"user {raw_id} not in 0..{self.num_users - 1}")
            return idx
        hits = np.flatnonzero(self.user_ids.astype(str) == str(raw_id))
        if hits.size == 0:
            raise ValueError(
                f"unknown user ID {raw_id!r} in {self.name}: IDs are the dataset's own user "
                f"IDs (e.g. {', '.join(map(str, self.user_ids[:3]))}, ...)"
            )
        return int(hits[0])

    def with_modalities(self, names: Iterable[str]) -> RecData:
        """A shallow copy that keeps only the modalities ``names`` (in that order)."""
        names = list(names)
        unknown = [m for m in names if m not in self.features]
        if unknown:
            raise ValueError(f"unknown modalities {unknown}; {self.name} has {self.modalities}")
        out = RecData(**{**self.__dict__, "features": {m: self.features[m] for m in names},
                         "masks": {m: self.masks[m].clone() for m in names}})
        return out

    def hide_modality(self, name: str, fraction: float, seed: int = 0) -> RecData:
        """Copy in which modality ``name`` is removed for a random ``fraction`` of the items
        that have it (features zeroed, mask cleared) — the missing-modality experiment."""
        if name not in self.features:
            raise ValueError(f"unknown modality '{name}'; {self.name} has {self.modalities}")
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must lie in [0, 1] (got {fraction})")
        present = torch.nonzero(self.masks[name]).view(-1)
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(present.numel(), generator=g)
        drop = present[order[: round(fraction * present.numel())]]
        mask = self.masks[name].clone()
        mask[drop] = False
        masks = {**{m: v.clone() for m, v in self.masks.items()}, name: mask}
        feats = dict(self.features)
        feats[name] = feats[name] * mask[:, None]
        return RecData(**{**self.__dict__, "features": feats, "masks": masks})

    def without_social(self) -> RecData:
        """Copy with no user–user edges."""
        return RecData(**{**self.__dict__, "social": torch.empty(2, 0, dtype=torch.long)})

    def to_hetero(self):
        """The data as a :class:`torch_geometric.data.HeteroData`.

        ``item.x_<m>`` / ``item.mask_<m>`` hold modality ``m``; the ``rates`` edge type holds
        the training pairs in ``edge_index`` and the held-out pairs in ``valid_edge_index`` /
        ``test_edge_index``.
        """
        from torch_geometric.data import HeteroData

        data = HeteroData()
        data["user"].num_nodes = self.num_users
        data["item"].num_nodes = self.num_items
        for m in self.modalities:
            data["item"][f"x_{m}"] = self.features[m]
            data["item"][f"mask_{m}"] = self.masks[m]
        rel = data["user", "rates", "item"]
        rel.edge_index = self.train
        rel.valid_edge_index = self.valid
        rel.test_edge_index = self.test
        data["item", "rated_by", "user"].edge_index = self.train.flip(0)
        data["user", "friends", "user"].edge_index = self.social
        return data

    def __repr__(self) -> str:
        mods = ", ".join(f"{m}[{self.features[m].size(1)}, {100 * c:.0f}%]"
                         for m, c in self.coverage().items())
        return (
            f"RecData({self.name}: users={self.num_users}, items={self.num_items}, "
            f"train={self.train.size(1)}, valid={self.valid.size(1)}, test={self.test.size(1)}, "
            f"social={self.social.size(1)}, modalities=[{mods}], split='{self.split}')"
        )


# ---------------------------------------------------------------------------- helpers
def _lfm_folder(root: Optional[Union[str, Path]], folder: str, label: str,
                modalities: Sequence[str]) -> Tuple[Path, Path]:
    """``(root, root/folder)`` for a Last.fm loader (``root`` defaults to
    :func:`default_root`); a clear error for a missing folder or an unknown modality."""
    root = Path(root) if root is not None else default_root()
    found = _check_dir(root / folder, f"--root must hold {folder}/ (root={root})")
    unknown = set(modalities) - set(LFM2K_FEATURES) - {"tags"}
    if unknown:
        raise ValueError(f"unknown {label} modalities {sorted(unknown)}; choose from "
                         f"{sorted(LFM2K_FEATURES) + ['tags']}")
    return root, found


def _check_dir(path: Path, hint: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"dataset directory not found: {path} ({hint})")
    return path


def presence_mask(x: np.ndarray) -> np.ndarray:
    """Rows that carry a modality: finite and not all zeros."""
    finite = np.isfinite(x).all(axis=1)
    nonzero = np.abs(np.nan_to_num(x)).sum(axis=1) > 0
    return finite & nonzero


def _load_feature(path: Path, num_items: int) -> Tuple[Tensor, Tensor]:
    x = np.load(path)
    if x.ndim != 2 or x.shape[0] != num_items:
        raise ValueError(f"{path.name}: expected a [{num_items}, F] matrix, got {x.shape}")
    mask = presence_mask(x)
    x = np.where(mask[:, None], np.nan_to_num(x), 0.0).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(mask)


def symmetric_social(pairs: np.ndarray) -> Tensor:
    """Directed ``[2, S]`` edges with both directions of every pair, no self loops/duplicates."""
    if pairs.size == 0:
        return torch.empty(2, 0, dtype=torch.long)
    both = np.concatenate([pairs, pairs[:, ::-1]], axis=0)
    both = both[both[:, 0] != both[:, 1]]
    both = np.unique(both, axis=0)
    return torch.from_numpy(both.T.copy()).long()


def _read_artists(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "artists.dat", sep="\t", quoting=csv.QUOTE_NONE,
                       encoding="utf-8")


def tag_features(
    hetrec_root: PathLike, artist_ids: Sequence[int], dim: int = 64, seed: int = 0
) -> Tuple[Tensor, Tensor]:
    r"""Tag modality of HetRec artists: TF-IDF over tag counts, reduced by truncated SVD.

    For artist :math:`a` and tag :math:`t` with :math:`c_{at}` assignments (over all users),
    :math:`x_a = \mathrm{SVD}_{d}(\mathrm{tfidf}(c_a))`, rows L2-normalised. Artists with no
    tag assignment have the modality missing (mask ``False``, zero row).
    """
    from scipy.sparse import csr_matrix
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfTransformer

    root = Path(hetrec_root)
    ut = pd.read_csv(root / "user_taggedartists.dat", sep="\t",
                     usecols=["artistID", "tagID"])
    artist_ids = np.asarray(artist_ids)
    pos = pd.Series(np.arange(len(artist_ids)), index=artist_ids)
    ut = ut[ut.artistID.isin(pos.index)]
    tags, tag_col = np.unique(ut.tagID.to_numpy(), return_inverse=True)
    rows = pos.loc[ut.artistID.to_numpy()].to_numpy()
    counts = csr_matrix((np.ones(len(rows), np.float32), (rows, tag_col)),
                        shape=(len(artist_ids), max(len(tags), 1)))
    counts.sum_duplicates()
    mask = np.asarray(counts.sum(axis=1)).ravel() > 0
    tfidf = TfidfTransformer(sublinear_tf=True).fit_transform(counts)
    k = max(1, min(dim, tfidf.shape[1] - 1, int(mask.sum()) - 1))
    svd = TruncatedSVD(n_components=k, random_state=seed)
    x = svd.fit_transform(tfidf).astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    x[~mask] = 0.0
    return torch.from_numpy(x), torch.from_numpy(mask)


# ---------------------------------------------------------------------------- MMRec layout
def _find_inter(path: Path, name: Optional[str]) -> Path:
    if name is not None:
        f = path / f"{name}.inter"
        if not f.is_file():
            raise FileNotFoundError(f"interaction file not found: {f}")
        return f
    cands = sorted(p for p in path.glob("*.inter") if not p.stem.endswith("_og_ids"))
    if len(cands) != 1:
        raise FileNotFoundError(
            f"expected exactly one <name>.inter in {path}, found {[c.name for c in cands]}; "
            "pass name="
        )
    return cands[0]


def _modality_name(fname: str) -> str:
    stem = Path(fname).stem
    return stem[: -len("_feat")] if stem.endswith("_feat") else stem


def load_mmrec(
    path: PathLike,
    name: Optional[str] = None,
    features: Optional[Mapping[str, str]] = None,
    user_col: str = "userID",
    item_col: str = "itemID",
    split_col: str = "x_label",
) -> RecData:
    """Load a dataset in the MMRec layout.

    Args:
        path: directory with ``<name>.inter`` (tab-separated, header row, columns
            ``userID itemID ... x_label`` with ``x_label`` 0/1/2 = train/valid/test and IDs
            ``0 .. n-1``) and ``.npy`` item feature matrices (row ``i`` = item ``i``).
        name: dataset name (the ``.inter`` stem); found automatically if the directory
            holds a single ``.inter`` file.
        features: ``{modality: file name}``; default: every ``*.npy`` in the directory,
            ``image_feat.npy`` → ``image``, ``text_feat.npy`` → ``text``, others by stem.

    A feature row that is all zeros or non-finite marks the modality missing for that item.
    """
    path = _check_dir(Path(path), "an MMRec dataset folder")
    inter_file = _find_inter(path, name)
    df = pd.read_csv(inter_file, sep="\t")
    missing = [c for c in (user_col, item_col, split_col) if c not in df.columns]
    if missing:
        raise ValueError(f"{inter_file.name}: missing columns {missing} (has {list(df.columns)})")
    if features is None:
        features = {_modality_name(p.name): p.name for p in sorted(path.glob("*.npy"))}
    u = df[user_col].to_numpy(np.int64)
    i = df[item_col].to_numpy(np.int64)
    if u.min() < 0 or i.min() < 0:
        raise ValueError(f"{inter_file.name}: negative IDs")
    num_users = int(u.max()) + 1
    feats, masks = {}, {}
    num_items = int(i.max()) + 1
    for fname in features.values():
        f = path / fname
        if not f.is_file():
            raise FileNotFoundError(f"feature file not found: {f}")
        num_items = max(num_items, int(np.load(f, mmap_mode="r").shape[0]))
    for m, fname in features.items():
        feats[m], masks[m] = _load_feature(path / fname, num_items)
    label = df[split_col].to_numpy()
    bad = set(np.unique(label)) - {0, 1, 2}
    if bad:
        raise ValueError(f"{inter_file.name}: {split_col} must be 0/1/2, found {sorted(bad)}")
    pairs = torch.from_numpy(np.stack([u, i]))
    return RecData(
        name=inter_file.stem, num_users=num_users, num_items=num_items,
        train=pairs[:, label == 0], valid=pairs[:, label == 1], test=pairs[:, label == 2],
        features=feats, masks=masks, split=f"fixed ({split_col} column)",
    )


# ---------------------------------------------------------------------------- Last.fm
def load_lfm2k_multimodal(
    root: Optional[PathLike] = None,
    modalities: Sequence[str] = ("vggish", "whisper", "text", "tags"),
    social: bool = True,
    tag_dim: int = 64,
) -> RecData:
    """Last.fm-2K (1,858 users, 1,425 artists) with audio/text features and its fixed split.

    Modalities: ``vggish`` (128-d audio), ``whisper`` (512-d audio), ``text`` (384-d MiniLM
    over the artist's tags) from ``<root>/lfm2k-multimodal``; ``tags`` (TF-IDF + SVD from
    HetRec tag assignments, missing for untagged artists). The friend graph comes from
    ``<root>/lastfm-2k/user_friends.dat`` mapped through ``lfm2k_og_ids.inter``.
    """
    root, mm = _lfm_folder(root, "lfm2k-multimodal", "lfm2k", modalities)
    data = load_mmrec(mm, "lfm2k", {m: LFM2K_FEATURES[m] for m in modalities if m != "tags"})
    inter = pd.read_csv(mm / "lfm2k.inter", sep="\t")
    og = pd.read_csv(mm / "lfm2k_og_ids.inter", sep="\t")
    if len(og) != len(inter):
        raise ValueError("lfm2k_og_ids.inter and lfm2k.inter must have the same rows")
    user_ids = np.zeros(data.num_users, np.int64)
    user_ids[inter.userID.to_numpy()] = og.userID.to_numpy()
    item_ids = np.zeros(data.num_items, np.int64)
    item_ids[inter.itemID.to_numpy()] = og.itemID.to_numpy()
    data.user_ids, data.item_ids = user_ids, item_ids
    hetrec = root / "lastfm-2k"
    if hetrec.is_dir():
        artists = _read_artists(hetrec).set_index("id")["name"]
        data.item_names = [str(artists.get(a, f"artist {a}")) for a in item_ids]
        if social:
            uf = pd.read_csv(hetrec / "user_friends.dat", sep="\t")
            upos = pd.Series(np.arange(data.num_users), index=user_ids)
            keep = uf.userID.isin(upos.index) & uf.friendID.isin(upos.index)
            pairs = np.stack([upos.loc[uf.userID[keep]].to_numpy(),
                              upos.loc[uf.friendID[keep]].to_numpy()], axis=1)
            data.social = symmetric_social(pairs)
        if "tags" in modalities:
            x, mask = tag_features(hetrec, item_ids, dim=tag_dim)
            data.features["tags"], data.masks["tags"] = x, mask
            data = data.with_modalities(modalities)
    elif social or "tags" in modalities:
        raise FileNotFoundError(
            f"{hetrec} not found: the social graph and the tag modality of lfm2k-multimodal "
            "come from the HetRec lastfm-2k files (pass social=False and drop 'tags')"
        )
    data.name = "lfm2k-multimodal"
    return data


def random_split_per_user(
    pairs: np.ndarray, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RecBole's random per-user ratio split: shuffle each user's items and cut them.

    With :math:`n` interactions, valid/test get :math:`\\lfloor r n \\rfloor` each and the
    rest goes to train; a user whose share rounds to zero but is positive still gets one
    held-out item while more than one item is left for training (RecBole's
    ``_calcu_split_ids``). Returns boolean masks over ``pairs`` rows.
    """
    if len(ratios) != 3 or abs(sum(ratios) - 1.0) > 1e-6 or min(ratios) < 0:
        raise ValueError(f"ratios must be three non-negative numbers summing to 1, got {ratios}")
    rng = np.random.default_rng(seed)
    n = len(pairs)
    order = rng.permutation(n)
    users = pairs[order, 0]
    order = order[np.argsort(users, kind="stable")]  # grouped by user, shuffled within
    label = np.zeros(n, np.int8)
    _, starts, counts = np.unique(pairs[order, 0], return_index=True, return_counts=True)
    for s, tot in zip(starts, counts):
        cnt = [int(r * tot) for r in ratios]
        cnt[0] = tot - sum(cnt[1:])
        for j in (1, 2):
            if cnt[0] <= 1:
                break
            if 0 < ratios[-j] * tot < 1:
                cnt[-j] += 1
                cnt[0] -= 1
        label[order[s + cnt[0]: s + cnt[0] + cnt[1]]] = 1
        label[order[s + cnt[0] + cnt[1]: s + tot]] = 2
    return label == 0, label == 1, label == 2


def load_lastfm2k(
    root: Optional[PathLike] = None,
    seed: int = 0,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    modalities: Sequence[str] = ("tags",),
    tag_dim: int = 64,
) -> RecData:
    """The full HetRec-2011 Last.fm set (1,892 users, 17,632 artists, 92,834 pairs).

    Split: random 8:1:1 per user with ``seed`` (RecBole-GNN protocol). Modalities: ``tags``
    (TF-IDF + SVD, missing for the ~29 % untagged artists) and, if requested and
    ``<root>/lfm2k-multimodal`` exists, ``vggish`` / ``whisper`` / ``text`` for the 1,425
    artists that have them (missing for all others).
    """
    root, hetrec = _lfm_folder(root, "lastfm-2k", "lastfm-2k", modalities)
    ua = pd.read_csv(hetrec / "user_artists.dat", sep="\t")
    artists = _read_artists(hetrec)
    uf = pd.read_csv(hetrec / "user_friends.dat", sep="\t")
    user_ids = np.unique(np.concatenate([ua.userID, uf.userID, uf.friendID]))
    item_ids = np.unique(np.concatenate([ua.artistID, artists.id]))
    upos = pd.Series(np.arange(len(user_ids)), index=user_ids)
    ipos = pd.Series(np.arange(len(item_ids)), index=item_ids)
    pairs = np.stack([upos.loc[ua.userID].to_numpy(), ipos.loc[ua.artistID].to_numpy()], 1)
    tr, va, te = random_split_per_user(pairs, ratios, seed)
    pt = torch.from_numpy(pairs.T.copy()).long()
    social = symmetric_social(np.stack([upos.loc[uf.userID].to_numpy(),
                                        upos.loc[uf.friendID].to_numpy()], 1))
    names = artists.set_index("id")["name"]
    feats: Dict[str, Tensor] = {}
    masks: Dict[str, Tensor] = {}
    for m in modalities:
        if m == "tags":
            feats[m], masks[m] = tag_features(hetrec, item_ids, dim=tag_dim, seed=seed)
            continue
        mm = _check_dir(root / "lfm2k-multimodal", f"modality '{m}' needs lfm2k-multimodal/")
        inter = pd.read_csv(mm / "lfm2k.inter", sep="\t", usecols=["itemID"])
        og = pd.read_csv(mm / "lfm2k_og_ids.inter", sep="\t", usecols=["itemID"])
        x = np.load(mm / LFM2K_FEATURES[m]).astype(np.float32)
        lookup = pd.Series(og.itemID.to_numpy(), index=inter.itemID.to_numpy())
        lookup = lookup[~lookup.index.duplicated()]
        full = np.zeros((len(item_ids), x.shape[1]), np.float32)
        mask = np.zeros(len(item_ids), bool)
        rows = ipos.loc[lookup.to_numpy()].to_numpy()
        full[rows] = x[lookup.index.to_numpy()]
        mask[rows] = True
        feats[m], masks[m] = torch.from_numpy(full), torch.from_numpy(mask)
    return RecData(
        name="lastfm-2k", num_users=len(user_ids), num_items=len(item_ids),
        train=pt[:, torch.from_numpy(tr)], valid=pt[:, torch.from_numpy(va)],
        test=pt[:, torch.from_numpy(te)], social=social, features=feats, masks=masks,
        item_names=[str(names.get(a, f"artist {a}")) for a in item_ids],
        user_ids=user_ids, item_ids=item_ids,
        split=f"random 8:1:1 per user (RecBole), seed {seed}",
    )


def load_dataset(name: str, root: Optional[PathLike] = None, seed: int = 0,
                 modalities: Optional[Sequence[str]] = None, social: bool = True) -> RecData:
    """Load ``lfm2k-multimodal`` or ``lastfm-2k`` by name (``seed`` only affects the latter)."""
    if name == "lfm2k-multimodal":
        kw = {} if modalities is None else {"modalities": modalities}
        data = load_lfm2k_multimodal(root, social=social, **kw)
    elif name == "lastfm-2k":
        kw = {} if modalities is None else {"modalities": modalities}
        data = load_lastfm2k(root, seed=seed, **kw)
        if not social:
            data = data.without_social()
    else:
        raise ValueError(f"unknown dataset '{name}'; choose one of {list(DATASETS)}")
    return data
