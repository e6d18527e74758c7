"""Atomic, safely loaded checkpoints.

A checkpoint is written to a temporary file in the target directory and moved into place
with :func:`os.replace`, so a run killed mid-write never leaves a truncated file behind.
Loading uses ``torch.load(weights_only=True)``: only tensors and plain containers are
accepted, never arbitrary pickled objects.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Union

import torch

PathLike = Union[str, os.PathLike]


class CheckpointError(RuntimeError):
    """A checkpoint could not be read (missing, truncated, corrupt or of the wrong kind)."""


def atomic_write_bytes(path: PathLike, writer) -> None:
    """Call ``writer(file_object)`` on a temporary file, then move it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(state: Dict[str, Any], path: PathLike) -> None:
    """Save ``state`` (tensors and plain Python containers) atomically to ``path``."""
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Dict:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises:
        CheckpointError: if the file is missing, truncated, corrupt, or not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise CheckpointError(
            f"checkpoint '{path}' is corrupt or not a graphmutual checkpoint "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint '{path}' holds a {type(state).__name__}, not a dict")
    return state
