"""Dataset names, the data root, and :func:`load_dataset`, the one entry point.

Root layout
-----------
``root`` is the directory that holds one folder per dataset family, exactly like
``shared/datasets``::

    <root>/Planetoid/{Cora,CiteSeer,PubMed}/raw/...
    <root>/Amazon/{Photo,Computers}/raw/...
    <root>/Coauthor/{CS,Physics}/raw/...
    <root>/TUDataset/{MUTAG,PROTEINS,ENZYMES,IMDB-BINARY,NCI1}/raw/...
    <root>/ogb/{ogbg_molhiv,ogbg_molbace,ogbg_molbbbp,ogbn_arxiv,...}/

``processed/`` folders are written next to ``raw/`` on first use.  With ``root=None``,
``"cora"`` is the compact Cora bundled in the package (identical to PyG's Planetoid Cora);
every other dataset is looked up under :func:`default_root`.
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from graphmutual.data import loaders
from graphmutual.data.bundled import load_bundled_cora
from graphmutual.data.dataset import GraphDataset
from graphmutual.data.splits import mask_split
from graphmutual.data.validate import validate_graph

__all__ = ["DatasetSpec", "DATASETS", "available_datasets", "default_root", "load_dataset"]

#: Family folders expected directly under a dataset root.
FAMILY_DIRS = ("Planetoid", "Amazon", "Coauthor", "TUDataset", "ogb")


@dataclass(frozen=True)
class DatasetSpec:
    """How to load one named dataset."""

    family: str  # "bundled", "Planetoid", "Amazon", "Coauthor", "TUDataset", "ogbg", "ogbn"
    source_name: str  # the name the PyG/OGB class expects
    task: str
    metric: str
    split: str  # protocol, in words


_PUBLIC = "planetoid public split"
_SHCHUR = "random per-class split per seed: 20 train / 30 val per class, rest test"
_TU_CV = "stratified 10-fold CV, fold = seed % 10, inner stratified 10% val"
_OGB = "ogb official split"

#: Every supported dataset, by canonical name.
DATASETS: dict[str, DatasetSpec] = {
    "cora-bundled": DatasetSpec("bundled", "Cora", "node", "accuracy", _PUBLIC),
    "cora": DatasetSpec("Planetoid", "Cora", "node", "accuracy", _PUBLIC),
    "citeseer": DatasetSpec("Planetoid", "CiteSeer", "node", "accuracy", _PUBLIC),
    "pubmed": DatasetSpec("Planetoid", "PubMed", "node", "accuracy", _PUBLIC),
    "amazon-photo": DatasetSpec("Amazon", "Photo", "node", "accuracy", _SHCHUR),
    "amazon-computers": DatasetSpec("Amazon", "Computers", "node", "accuracy", _SHCHUR),
    "coauthor-cs": DatasetSpec("Coauthor", "CS", "node", "accuracy", _SHCHUR),
    "coauthor-physics": DatasetSpec("Coauthor", "Physics", "node", "accuracy", _SHCHUR),
    "mutag": DatasetSpec("TUDataset", "MUTAG", "graph", "accuracy", _TU_CV),
    "proteins": DatasetSpec("TUDataset", "PROTEINS", "graph", "accuracy", _TU_CV),
    "enzymes": DatasetSpec("TUDataset", "ENZYMES", "graph", "accuracy", _TU_CV),
    "imdb-binary": DatasetSpec("TUDataset", "IMDB-BINARY", "graph", "accuracy", _TU_CV),
    "nci1": DatasetSpec("TUDataset", "NCI1", "graph", "accuracy", _TU_CV),
    "ogbg-molhiv": DatasetSpec("ogbg", "ogbg-molhiv", "graph", "rocauc", "ogb scaffold split"),
    "ogbg-molbace": DatasetSpec("ogbg", "ogbg-molbace", "graph", "rocauc", "ogb scaffold split"),
    "ogbg-molbbbp": DatasetSpec("ogbg", "ogbg-molbbbp", "graph", "rocauc", "ogb scaffold split"),
    "ogbn-arxiv": DatasetSpec("ogbn", "ogbn-arxiv", "node", "accuracy", _OGB),
    "ogbn-products": DatasetSpec("ogbn", "ogbn-products", "node", "accuracy", _OGB),
}

_ALIASES = {
    "photo": "amazon-photo",
    "computers": "amazon-computers",
    "cs": "coauthor-cs",
    "physics": "coauthor-physics",
    "imdb": "imdb-binary",
    "imdbbinary": "imdb-binary",
    "arxiv": "ogbn-arxiv",
    "products": "ogbn-products",
    "molhiv": "ogbg-molhiv",
    "molbace": "ogbg-molbace",
    "molbbbp": "ogbg-molbbbp",
    "hiv": "ogbg-molhiv",
    "bace": "ogbg-molbace",
    "bbbp": "ogbg-molbbbp",
}

#: Known datasets we deliberately do not support, with the reason.
_UNSUPPORTED = {
    "ogbg-molesol": "regression",
    "ogbg-molfreesolv": "regression",
    "ogbg-mollipo": "regression",
    "ogbg-molclintox": "multi-task (2 tasks)",
    "ogbg-moltox21": "multi-task (12 tasks)",
    "ogbg-moltoxcast": "multi-task (617 tasks)",
    "ogbg-molsider": "multi-task (27 tasks)",
    "ogbg-molmuv": "multi-task (17 tasks)",
    "ogbg-molpcba": "multi-task (128 tasks)",
    "ogbg-molchembl": "multi-task (1310 tasks)",
    "ogbg-ppa": "no node features (needs a node embedding), not wired up",
    "ogbg-code2": "sequence prediction",
    "ogbn-proteins": "multi-label (112 tasks)",
    "ogbn-mag": "heterogeneous graph",
    "ogbn-papers100m": "too large for full-batch training",
}


def available_datasets() -> list[str]:
    """Canonical names accepted by :func:`load_dataset` (aliases such as ``"photo"`` or
    ``"molbace"`` and any capitalisation or ``_``/``-`` spelling work too)."""
    return sorted(DATASETS)


def default_root() -> Path:
    """The dataset root used when none is given.

    ``$GRAPHMUTUAL_DATA`` if set; else ``%LOCALAPPDATA%\\graphmutual\\datasets`` on Windows,
    ``~/Library/Caches/graphmutual/datasets`` on macOS and
    ``${XDG_CACHE_HOME:-~/.cache}/graphmutual/datasets`` elsewhere.  Not created here.
    """
    env = os.environ.get("GRAPHMUTUAL_DATA")
    if env:
        return Path(env).expanduser()
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "graphmutual" / "datasets"


def canonical_name(name: str) -> str:
    """Map a user-supplied name to its canonical form, or raise ``ValueError``.

    Unknown names get a message listing the available ones and the closest matches.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"dataset name must be a non-empty string, got {name!r}")
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    key = _ALIASES.get(key, _ALIASES.get(key.replace("-", ""), key))
    if key in DATASETS:
        return key
    if key in _UNSUPPORTED:
        raise ValueError(f"dataset {name!r} is not supported ({_UNSUPPORTED[key]})")
    candidates = sorted(set(DATASETS) | set(_ALIASES))
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"unknown dataset {name!r}.{hint} Available: {', '.join(available_datasets())}"
    )


def _resolve_root(root: Union[str, Path, None]) -> Path:
    if root is None:
        path = default_root()
        path.mkdir(parents=True, exist_ok=True)
        return path
    path = Path(root).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"dataset root {path} does not exist. Pass the directory that holds Planetoid/, "
            "TUDataset/, Amazon/, Coauthor/ and ogb/ (like shared/datasets), or omit the root "
            f"to use {default_root()} (set GRAPHMUTUAL_DATA to change it)."
        )
    if not path.is_dir():
        raise NotADirectoryError(f"dataset root {path} is not a directory")
    if path.name in FAMILY_DIRS and not (path / path.name).exists():
        raise FileNotFoundError(
            f"dataset root {path} looks like a family folder; pass its parent {path.parent} "
            "(the directory that holds Planetoid/, TUDataset/, ogb/, ...)"
        )
    return path


def _load_bundled() -> GraphDataset:
    data = load_bundled_cora()
    validate_graph(data, 7)

    def splitter(seed: int):
        return mask_split(data.train_mask, data.val_mask, data.test_mask, _PUBLIC)

    return GraphDataset(
        name="cora",
        task="node",
        data=data,
        num_features=int(data.x.size(1)),
        num_classes=int(data.y.max()) + 1,
        metric="accuracy",
        notes="compact Cora bundled with graphmutual (identical to PyG's Planetoid Cora)",
        splitter=splitter,
    )


def load_dataset(
    name: str, root: Union[str, Path, None] = None, *, download: bool = True
) -> GraphDataset:
    """Load a benchmark dataset by name.

    Args:
        name: a name from :func:`available_datasets` (case-insensitive; aliases such as
            ``"photo"``, ``"cs"``, ``"molbace"`` are accepted).
        root: directory holding ``Planetoid/``, ``TUDataset/``, ``Amazon/``, ``Coauthor/``,
            ``ogb/`` (see the module docs).  ``None``: ``"cora"`` is the bundled Cora, other
            datasets come from :func:`default_root`.
        download: let PyG/OGB download missing raw files (needs internet).  With ``False``,
            missing files raise :class:`FileNotFoundError` straight away.

    Returns:
        A :class:`GraphDataset`; call ``.split(seed)`` for the train/val/test split.

    Raises:
        ValueError: unknown or unsupported name (regression, multi-task), invalid data.
        FileNotFoundError: the root does not exist, or the dataset files are missing and
            could not be downloaded.
    """
    key = canonical_name(name)
    spec = DATASETS[key]
    if key == "cora-bundled" or (key == "cora" and root is None):
        return _load_bundled()
    path = _resolve_root(root)
    if spec.family == "Planetoid":
        return loaders.load_planetoid(key, spec.source_name, path, download)
    if spec.family in ("Amazon", "Coauthor"):
        return loaders.load_shchur(key, spec.family, spec.source_name, path, download)
    if spec.family == "TUDataset":
        return loaders.load_tu(key, spec.source_name, path, download)
    if spec.family == "ogbg":
        return loaders.load_ogbg(spec.source_name, path, download)
    if spec.family == "ogbn":
        return loaders.load_ogbn(spec.source_name, path, download)
    raise AssertionError(f"unhandled dataset family {spec.family!r}")  # pragma: no cover
