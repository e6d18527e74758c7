"""The compact Cora shipped inside the package, so ``graphmutual train`` works offline.

``bundled/cora.npz`` is built by ``scripts/build_bundled_cora.py`` from the Planetoid raw
files through PyG's own :class:`~torch_geometric.datasets.Planetoid` loader, and
:func:`load_bundled_cora` rebuilds a :class:`~torch_geometric.data.Data` that is *equal* to
``Planetoid(root, "Cora")[0]`` (same keys, dtypes and values; the tests check this).

Storage format (``np.savez_compressed``, format version 1): the binary bag-of-words features
as CSR (``x_indptr``, ``x_indices``; every stored value is 1.0), ``edge_index`` (int16, since
Cora has fewer than 32768 nodes), labels ``y`` (int8) and the public split as sorted node
index lists (``train_idx``, ``val_idx``, ``test_idx``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
import torch

__all__ = ["BUNDLED_CORA_PATH", "save_bundled_cora", "load_bundled_cora"]

#: Where the compact Cora lives inside the installed package.
BUNDLED_CORA_PATH = Path(__file__).resolve().parent / "bundled" / "cora.npz"
_FORMAT_VERSION = 1


def _index_dtype(n: int) -> type:
    return np.int16 if n < np.iinfo(np.int16).max else np.int32


def save_bundled_cora(data, path: Union[str, Path] = BUNDLED_CORA_PATH) -> Path:
    """Write ``data`` (PyG's Planetoid Cora) to ``path`` in the compact format.

    Raises:
        ValueError: if the features are not binary (the format stores only the positions of
            the ones) or a key other than x/edge_index/y/masks is present.
    """
    keys = set(data.keys())
    expected = {"x", "edge_index", "y", "train_mask", "val_mask", "test_mask"}
    if keys != expected:
        raise ValueError(f"expected exactly the keys {sorted(expected)}, got {sorted(keys)}")
    x = data.x
    if not bool(((x == 0) | (x == 1)).all()):
        raise ValueError("the compact format needs binary (0/1) node features")
    n, f = x.shape
    idx_t = _index_dtype(max(n, f))
    rows, cols = (x != 0).nonzero(as_tuple=True)  # row-major order: CSR
    indptr = torch.zeros(n + 1, dtype=torch.long)
    indptr[1:] = torch.bincount(rows, minlength=n).cumsum(0)
    arrays = {
        "format_version": np.array(_FORMAT_VERSION),
        "num_nodes": np.array(n),
        "num_features": np.array(f),
        "x_indptr": indptr.numpy().astype(np.int32),
        "x_indices": cols.numpy().astype(idx_t),
        "edge_index": data.edge_index.numpy().astype(idx_t),
        "y": data.y.numpy().astype(np.int8),
        "train_idx": data.train_mask.nonzero().view(-1).numpy().astype(idx_t),
        "val_idx": data.val_mask.nonzero().view(-1).numpy().astype(idx_t),
        "test_idx": data.test_mask.nonzero().view(-1).numpy().astype(idx_t),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)  # atomic: never a half-written bundled file
    return path


def load_bundled_cora(path: Union[str, Path] = BUNDLED_CORA_PATH):
    """Load the bundled Cora as a :class:`~torch_geometric.data.Data` (no network, no disk
    writes).

    Raises:
        FileNotFoundError: if the file is missing (rebuild it with
            ``python scripts/build_bundled_cora.py``).
        ValueError: if the file is corrupt or has an unknown format version.
    """
    from torch_geometric.data import Data

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"bundled Cora not found at {path}; rebuild it with "
            "`python scripts/build_bundled_cora.py` (needs the Planetoid raw files), or pass "
            "a root directory holding Planetoid/Cora"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError, ...
        raise ValueError(f"bundled Cora at {path} is corrupt ({exc}); rebuild it") from exc
    version = int(arrays.get("format_version", -1))
    if version != _FORMAT_VERSION:
        raise ValueError(f"bundled Cora at {path} has format version {version}, expected 1")

    n, f = int(arrays["num_nodes"]), int(arrays["num_features"])
    indptr = torch.from_numpy(arrays["x_indptr"].astype(np.int64))
    cols = torch.from_numpy(arrays["x_indices"].astype(np.int64))
    rows = torch.repeat_interleave(torch.arange(n), indptr.diff())
    x = torch.zeros(n, f, dtype=torch.float32)
    x[rows, cols] = 1.0

    def mask(name: str) -> torch.Tensor:
        m = torch.zeros(n, dtype=torch.bool)
        m[torch.from_numpy(arrays[name].astype(np.int64))] = True
        return m

    return Data(
        x=x,
        edge_index=torch.from_numpy(arrays["edge_index"].astype(np.int64)),
        y=torch.from_numpy(arrays["y"].astype(np.int64)),
        train_mask=mask("train_idx"),
        val_mask=mask("val_idx"),
        test_mask=mask("test_idx"),
    )
