"""Shared pytest fixtures.

``shared_datasets``: the offline benchmark data (``<repo>/../shared/datasets`` or
``$GRAPHMUTUAL_SHARED_DATASETS``); tests that need it are skipped when it is missing.

``tmp_dataset_copy``: copy dataset folders into a per-test temporary root, so that loaders
write their ``processed/`` folders there and never into ``shared/``::

    def test_something(tmp_dataset_copy):
        root = tmp_dataset_copy("TUDataset/MUTAG")        # returns the temporary root
        root = tmp_dataset_copy("Planetoid/CiteSeer")     # same root, another dataset
        ds = load_dataset("mutag", root)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_datasets_path() -> Path:
    env = os.environ.get("GRAPHMUTUAL_SHARED_DATASETS")
    return Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """Path to the read-only shared datasets; skips the test if they are not available."""
    path = _shared_datasets_path()
    if not path.is_dir():
        pytest.skip(f"shared datasets not found at {path} (set GRAPHMUTUAL_SHARED_DATASETS)")
    return path


@pytest.fixture
def tmp_dataset_copy(shared_datasets: Path, tmp_path: Path) -> Callable[[str], Path]:
    """Return ``copy(relative_path) -> root``.

    ``copy("Planetoid/Cora")`` copies ``shared/datasets/Planetoid/Cora`` (without any
    ``processed/`` folder) to ``<tmp>/datasets/Planetoid/Cora`` and returns ``<tmp>/datasets``,
    the root to pass to :func:`graphmutual.data.load_dataset` or to a PyG loader's parent.
    Skips the test when the source folder does not exist.
    """
    root = tmp_path / "datasets"

    def copy(relative_path: str) -> Path:
        src = shared_datasets / relative_path
        if not src.exists():
            pytest.skip(f"dataset {relative_path} not found under {shared_datasets}")
        dst = root / relative_path
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("processed"))
            else:
                shutil.copy2(src, dst)
        return root

    return copy


@pytest.fixture
def one_thread():
    """Run a test with one torch thread (results and timings as on the benchmark machines),
    restoring the previous setting afterwards.  Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
