"""Loaders for each dataset family, thin wrappers over PyG / OGB.

Every loader receives the *dataset root*: the directory holding ``Planetoid/``,
``TUDataset/``, ``Amazon/``, ``Coauthor/`` and ``ogb/`` exactly like ``shared/datasets``:

=============  ===================================  =========================================
family         folder read (``<root>/...``)          PyG / OGB call
=============  ===================================  =========================================
Planetoid      ``Planetoid/<Name>/raw``               ``Planetoid(root/"Planetoid", Name)``
Amazon         ``Amazon/<Name>/raw``                  ``Amazon(root/"Amazon", Name)``
Coauthor       ``Coauthor/<Name>/raw``                ``Coauthor(root/"Coauthor", Name)``
TU             ``TUDataset/<NAME>/raw``               ``TUDataset(root/"TUDataset", NAME)``
OGB graph      ``ogb/ogbg_<name>/``                   ``PygGraphPropPredDataset(name, root/"ogb")``
OGB node       ``ogb/ogbn_<name>/``                   ``PygNodePropPredDataset(name, root/"ogb")``
=============  ===================================  =========================================

The loaders write ``processed/`` next to ``raw/`` (as PyG/OGB always do).  If processing
fails, a ``processed/`` folder created by this call is removed again (never half-written
files); a pre-existing ``processed/`` that fails to load (e.g. truncated by a killed run) is
deleted and rebuilt once from ``raw/``.  When the raw files are missing the PyG/OGB loader
downloads them if ``download=True`` and the machine has internet; otherwise a
:class:`FileNotFoundError` names the expected folder.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from graphmutual.data.dataset import GraphDataset
from graphmutual.data.splits import (
    index_split,
    mask_split,
    per_class_random_split,
    stratified_kfold_split,
)
from graphmutual.data.transforms import StandardizeColumns
from graphmutual.data.validate import validate_graph, validate_graph_dataset

__all__ = [
    "load_planetoid",
    "load_shchur",
    "load_tu",
    "load_ogbg",
    "load_ogbn",
    "allow_ogb_torch_load",
]


# --------------------------------------------------------------------------------------------
# safe construction helpers
# --------------------------------------------------------------------------------------------


def allow_ogb_torch_load() -> None:
    """Allow-list the PyG classes OGB pickles, for ``torch.load(weights_only=True)``.

    ogb 1.3.6 calls ``torch.load`` without ``weights_only=False``; torch >= 2.6 then refuses
    the PyG objects OGB saved itself.  Idempotent.
    """
    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is None:  # torch < 2.4: weights_only defaults to False, nothing to do
        return
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import GlobalStorage

    add([DataEdgeAttr, DataTensorAttr, GlobalStorage])


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _missing(name: str, expected: Path, reason: str = "") -> FileNotFoundError:
    action = (
        "retry on a machine with internet access"
        if reason
        else "call load_dataset(..., download=True) on a machine with internet access"
    )
    return FileNotFoundError(
        f"{name}: dataset files not found at {expected}. {reason}Copy the raw files there "
        "(the root must hold Planetoid/, TUDataset/, Amazon/, Coauthor/, ogb/ like "
        f"shared/datasets) or {action} to let PyG/OGB download them."
    )


class DatasetNotWritableError(PermissionError, ValueError):
    """The dataset folder cannot be written, so PyG/OGB cannot store ``processed/``.

    A :class:`PermissionError` and, like every bad-input error of this layer, a
    :class:`ValueError`.
    """


def _not_writable(exc: BaseException) -> bool:
    return isinstance(exc, PermissionError) or (
        isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS))


def _corrupt(name: str, dataset_dir: Path, exc: BaseException) -> Exception:
    detail = f"{type(exc).__name__}: {exc}"
    if _not_writable(exc):
        # the files are fine: never advise deleting them
        return DatasetNotWritableError(
            f"{name}: no permission to write (or read) the dataset files in {dataset_dir} "
            f"({detail}). The dataset root must be writable, since PyG/OGB store processed/ "
            "next to raw/: copy the dataset folder to a "
            "writable root (keeping the Planetoid/, TUDataset/, ogb/... layout) and pass that "
            "root, or fix the folder's permissions."
        )
    if isinstance(exc, FileNotFoundError):
        return FileNotFoundError(f"{name}: a dataset file is missing in {dataset_dir} ({detail})")
    return ValueError(
        f"{name}: could not read or process the dataset files in {dataset_dir} ({detail}); "
        "any partial processed/ folder was removed. Check the raw files, or delete the "
        "folder to download it again."
    )


@contextlib.contextmanager
def _no_stdin_prompt(name: str) -> Iterator[None]:
    """Make any ``input()`` call by a loader fail instead of blocking on stdin."""
    original = builtins.input

    def refuse(prompt: str = "") -> str:
        raise ValueError(
            f"{name}: the loader wanted to ask on stdin: {prompt.strip()!r}; refusing to prompt"
        )

    builtins.input = refuse
    try:
        yield
    finally:
        builtins.input = original


def _build(
    name: str,
    dataset_dir: Path,
    construct: Callable[[], Any],
    *,
    raw_present: bool,
    download: bool,
) -> Any:
    """Run ``construct()`` (a PyG/OGB dataset constructor) with clean-up on failure.

    Args:
        name: dataset name for messages.
        dataset_dir: folder holding ``raw/`` and ``processed/`` for this dataset.
        construct: zero-argument callable creating the dataset.
        raw_present: whether the raw files are already on disk.
        download: whether the loader may download missing raw files.
    """
    if not raw_present and not download:
        raise _missing(name, dataset_dir)
    parent_existed = dataset_dir.parent.exists()
    dir_existed = dataset_dir.exists()
    processed = dataset_dir / "processed"
    processed_existed = processed.exists()

    def cleanup() -> None:
        if not parent_existed:  # e.g. <root>/Planetoid created by a failed download
            shutil.rmtree(dataset_dir.parent, ignore_errors=True)
        elif not dir_existed:
            shutil.rmtree(dataset_dir, ignore_errors=True)
        elif not processed_existed:
            shutil.rmtree(processed, ignore_errors=True)

    try:
        with _no_stdin_prompt(name):
            return construct()
    except (KeyboardInterrupt, SystemExit):
        cleanup()
        raise
    except Exception as exc:
        cleanup()
        if _not_writable(exc):
            raise _corrupt(name, dataset_dir, exc) from exc
        if not raw_present:
            raise _missing(
                name, dataset_dir, f"Download failed ({type(exc).__name__}: {exc}). "
            ) from exc
        if processed_existed and processed.exists():
            # A stale or truncated processed/ (e.g. a killed earlier run): rebuild it once.
            warnings.warn(
                f"{name}: could not load {processed} ({type(exc).__name__}: {exc}); "
                "deleting it and processing the raw files again",
                stacklevel=3,
            )
            shutil.rmtree(processed, ignore_errors=True)
            try:
                with _no_stdin_prompt(name):
                    return construct()
            except Exception as exc2:
                shutil.rmtree(processed, ignore_errors=True)
                raise _corrupt(name, dataset_dir, exc2) from exc2
        raise _corrupt(name, dataset_dir, exc) from exc


# --------------------------------------------------------------------------------------------
# node classification
# --------------------------------------------------------------------------------------------


def _node_dataset(name: str, data: Any, num_classes: int, **kwargs: Any) -> GraphDataset:
    data.x = data.x.float()
    data.y = data.y.view(-1).long()
    validate_graph(data, num_classes)
    return GraphDataset(
        name=name,
        task="node",
        data=data,
        num_features=int(data.x.size(1)),
        num_classes=num_classes,
        metric="accuracy",
        **kwargs,
    )


def _build_pyg(name: str, cls: Callable[..., Any], folder: Path, pyg_name: str,
               download: bool, **kwargs: Any) -> Any:
    """``cls(folder, pyg_name, **kwargs)`` (a PyG dataset class keeping its files in
    ``folder/pyg_name/{raw,processed}``) through :func:`_build`."""
    return _build(
        name,
        folder / pyg_name,
        lambda: cls(str(folder), pyg_name, **kwargs),
        raw_present=_has_files(folder / pyg_name / "raw"),
        download=download,
    )


def load_planetoid(name: str, pyg_name: str, root: Path, download: bool = True) -> GraphDataset:
    """Planetoid Cora / CiteSeer / PubMed with the public split (same for every seed)."""
    from torch_geometric.datasets import Planetoid

    ds = _build_pyg(name, Planetoid, root / "Planetoid", pyg_name, download)
    data = ds[0]
    num_classes = int(ds.num_classes)

    def splitter(seed: int) -> Any:
        return mask_split(data.train_mask, data.val_mask, data.test_mask, "planetoid public split")

    return _node_dataset(name, data, num_classes, root=str(root), splitter=splitter)


def load_shchur(
    name: str, family: str, pyg_name: str, root: Path, download: bool = True
) -> GraphDataset:
    """Amazon Photo/Computers, Coauthor CS/Physics (Shchur et al.) with random per-class
    splits: 20 training and 30 validation nodes per class, the rest for testing; one split
    per seed (deterministic)."""
    from torch_geometric.datasets import Amazon, Coauthor

    cls = {"Amazon": Amazon, "Coauthor": Coauthor}[family]
    ds = _build_pyg(name, cls, root / family, pyg_name, download)
    data = ds[0]
    num_classes = int(ds.num_classes)
    y = data.y.view(-1)

    def splitter(seed: int) -> Any:
        return per_class_random_split(y, seed)

    return _node_dataset(name, data, num_classes, root=str(root), splitter=splitter)


def load_ogbn(name: str, root: Path, download: bool = True) -> GraphDataset:
    """``ogbn-arxiv`` / ``ogbn-products`` with the official split (same for every seed).

    ``ogbn-arxiv`` is a directed citation graph; like the OGB reference GCN/SAGE examples we
    make it undirected (:func:`torch_geometric.utils.to_undirected`).  Labels are flattened
    to ``[N]``; evaluate with ``ogb.nodeproppred.Evaluator(ogb_name)`` (accuracy).
    """
    from torch_geometric.utils import to_undirected

    ds = _load_ogb(name, root, "nodeproppred", download)
    data = ds[0]
    if name == "ogbn-arxiv":
        data.edge_index = to_undirected(data.edge_index, num_nodes=data.num_nodes)
    num_classes = int(ds.num_classes)
    idx = ds.get_idx_split()
    num_nodes = int(data.num_nodes)

    def splitter(seed: int) -> Any:
        return index_split(idx, "ogb official split", num_nodes=num_nodes)

    return _node_dataset(name, data, num_classes, ogb_name=name, root=str(root), splitter=splitter)


# --------------------------------------------------------------------------------------------
# graph classification
# --------------------------------------------------------------------------------------------


def _tu_max_degree(ds: Any) -> int:
    """Largest node degree over all graphs (the usual PyG recipe for OneHotDegree)."""
    from torch_geometric.utils import degree

    max_degree = 0
    for graph in ds:
        if graph.edge_index.numel():
            deg = degree(graph.edge_index[0], graph.num_nodes, dtype=torch.long)
            max_degree = max(max_degree, int(deg.max()))
    return max_degree


def load_tu(name: str, pyg_name: str, root: Path, download: bool = True) -> GraphDataset:
    r"""TU graph classification (MUTAG, PROTEINS, ENZYMES, IMDB-BINARY, NCI1, ...).

    Split: stratified 10-fold CV (see :func:`~graphmutual.data.splits.stratified_kfold_split`).

    Node features: the one-hot node labels *and* the continuous node attributes where the
    dataset has them (``use_node_attr=True``; ENZYMES: 18 attributes + 3 labels, PROTEINS:
    1 + 3), as in Errica et al. (2020), whose ENZYMES numbers depend on them.  The
    continuous attribute columns are standardised over all nodes,
    :math:`x_{:,j} \leftarrow (x_{:,j} - \mu_j) / \sigma_j` (unsupervised; ENZYMES's
    attributes range up to 761, which saturates sum-aggregating GNNs otherwise).
    Datasets without node features (IMDB-BINARY) get one-hot node degrees
    (:class:`torch_geometric.transforms.OneHotDegree` up to the dataset's maximum degree,
    applied as a ``transform``), as in the GIN paper (Xu et al. 2019).
    """
    from torch_geometric.datasets import TUDataset

    ds = _build_pyg(name, TUDataset, root / "TUDataset", pyg_name, download,
                    use_node_attr=True)
    notes = ""
    input_features, input_transform = "raw", None
    num_attributes = int(ds.num_node_attributes)
    if num_attributes > 0:
        standardise = StandardizeColumns.fit(ds._data.x, num_attributes)
        standardise.apply_(ds._data.x)
        input_transform = standardise.as_step()
        notes = (f"x = {num_attributes} standardised continuous node attributes + "
                 f"{ds.num_node_labels} one-hot node labels")
        input_features = (f"{num_attributes} continuous node attributes standardised over the "
                          f"dataset by graphmutual + {ds.num_node_labels} one-hot node labels")
    if ds.num_node_features == 0:
        import torch_geometric.transforms as T

        max_degree = _tu_max_degree(ds)
        ds.transform = T.OneHotDegree(max_degree)
        notes = f"no node features in the raw data: x is the one-hot degree (0..{max_degree})"
        input_features = (f"one-hot degree (0..{max_degree}), built by graphmutual: the "
                          "dataset has no node features")
        input_transform = {"name": "OneHotDegree", "kwargs": {"max_degree": max_degree}}
    num_classes = int(ds.num_classes)
    validate_graph_dataset(ds, num_classes)
    y = ds._data.y.view(-1)

    def splitter(seed: int) -> Any:
        return stratified_kfold_split(y, seed)

    return GraphDataset(
        name=name,
        task="graph",
        data=ds,
        num_features=int(ds[0].x.size(-1)),
        num_classes=num_classes,
        metric="accuracy",
        root=str(root),
        notes=notes,
        input_features=input_features,
        input_transform=input_transform,
        splitter=splitter,
    )


def _check_ogb_release(name: str, dataset_dir: Path, module: str) -> None:
    """OGB asks on stdin whether to re-download when ``RELEASE_v*.txt`` is missing: refuse."""
    import importlib
    import os

    import pandas as pd

    pkg = importlib.import_module(module)
    master = pd.read_csv(
        os.path.join(os.path.dirname(pkg.__file__), "master.csv"),
        index_col=0,
        keep_default_na=False,
    )
    version = master[name]["version"]
    for candidate in (dataset_dir, dataset_dir.with_name(dataset_dir.name + "_pyg")):
        if candidate.is_dir() and not (candidate / f"RELEASE_v{version}.txt").exists():
            raise FileNotFoundError(
                f"{name}: {candidate} exists but has no RELEASE_v{version}.txt, so OGB would "
                "ask on stdin whether to re-download it. Add the release file (it is the same "
                "for every dataset of this OGB version) or delete the folder to re-download."
            )


def _load_ogb(name: str, root: Path, kind: str, download: bool):
    """The OGB dataset ``name`` from ``root/ogb/<name_with_underscores>`` through OGB's own
    ``Pyg{NodePropPred,GraphPropPred}Dataset`` (``kind``: ``"nodeproppred"`` or
    ``"graphproppred"``), with OGB's stdin prompts turned into errors / consent."""
    import importlib

    allow_ogb_torch_load()
    module = f"ogb.{kind}"
    cls = getattr(importlib.import_module(module),
                  "PygNodePropPredDataset" if kind == "nodeproppred" else
                  "PygGraphPropPredDataset")
    folder = root / "ogb"
    dataset_dir = folder / name.replace("-", "_")
    _check_ogb_release(name, dataset_dir, module)
    with _ogb_no_size_prompt(f"{module}.dataset_pyg"):
        return _build(
            name,
            dataset_dir,
            lambda: cls(name, str(folder)),
            raw_present=_has_files(dataset_dir / "raw")
            or (kind == "graphproppred" and _has_files(dataset_dir / "mapping")),
            download=download,
        )


@contextlib.contextmanager
def _ogb_no_size_prompt(module_name: str) -> Iterator[None]:
    """OGB asks ``(y/N)`` before downloads > 1 GB; an explicit load_dataset call is the
    user's consent, so answer yes instead of blocking on stdin."""
    import importlib

    module = importlib.import_module(module_name)
    original = module.decide_download
    module.decide_download = lambda url: True
    try:
        yield
    finally:
        module.decide_download = original


def load_ogbg(name: str, root: Path, download: bool = True) -> GraphDataset:
    """Single-task binary ``ogbg-mol*`` (molhiv, molbace, molbbbp) with the official scaffold
    split (same for every seed), ROC-AUC via ``ogb.graphproppred.Evaluator``.

    ``y`` is flattened to int64 0/1 of shape ``[num_graphs]`` and the task is modelled as a
    2-class softmax (``num_classes=2``; feed ``softmax(logits)[:, 1:]`` to the Evaluator).
    """
    ds = _load_ogb(name, root, "graphproppred", download)
    y = ds._data.y
    if y.dim() == 2 and y.size(1) != 1:
        raise ValueError(f"{name} has {y.size(1)} tasks; only single-task datasets are supported")
    y = y.view(-1)
    if y.is_floating_point() and bool(torch.isnan(y).any()):
        raise ValueError(f"{name} has graphs with missing (NaN) labels; not supported")
    bad = ~((y == 0) | (y == 1))
    if bool(bad.any()):
        raise ValueError(
            f"{name}: expected binary 0/1 labels, found {int(bad.sum())} other values "
            "(missing labels?); not supported"
        )
    ds._data.y = y.long()
    if hasattr(ds, "_data_list"):
        ds._data_list = None  # drop any cached per-graph objects with the old y shape
    validate_graph_dataset(ds, 2)
    idx = ds.get_idx_split()

    def splitter(seed: int) -> Any:
        return index_split(idx, "ogb scaffold split")

    return GraphDataset(
        name=name,
        task="graph",
        data=ds,
        num_features=int(ds._data.x.size(1)),
        num_classes=2,
        metric="rocauc",
        ogb_name=name,
        atom_features=True,
        root=str(root),
        input_features="raw: OGB's integer atom features (embedded by OGB's AtomEncoder)",
        splitter=splitter,
    )
