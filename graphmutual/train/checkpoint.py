"""Atomic, safely loaded checkpoints.

A checkpoint is written to a temporary file in the target directory and moved into place
with :func:`os.replace`, so a run killed mid-write never leaves a truncated file behind;
the file gets the permissions of any newly created file (``0o666`` minus the umask).
Loading uses ``torch.load(weights_only=True)``: only tensors and plain containers are
accepted, never arbitrary pickled objects.  Every problem with a checkpoint (missing,
empty, truncated, unsafe, of another kind, or written for another configuration) is a
one-line :class:`CheckpointError` that names the file and says what to do.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Union

import torch
from torch import nn

PathLike = Union[str, os.PathLike]

#: What to do with a damaged run file, appended to the errors of :func:`load_checkpoint`.
_ADVICE = "delete it to start that part of the run again, or restore it from a copy"


class CheckpointError(RuntimeError):
    """A checkpoint could not be read (missing, truncated, corrupt or of the wrong kind)."""


def _umask() -> int:
    """The process umask: read from ``/proc`` where it exists (no change of process-wide
    state), else by setting and restoring it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: PathLike, writer) -> None:
    """Call ``writer(file_object)`` on a temporary file, then move it onto ``path``.

    The file ends up with mode ``0o666 & ~umask``, like any file the process creates
    (:func:`tempfile.mkstemp` alone would leave it private, ``0o600``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(state: Dict[str, Any], path: PathLike) -> None:
    """Save ``state`` (tensors and plain Python containers) atomically to ``path``."""
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def _reason(exc: BaseException) -> str:
    """Why ``torch.load`` failed, in our words.

    Torch's own message is not shown: for a file holding other objects it ends with the
    advice to load it with ``weights_only=False``, which would run the file's code.
    """
    text = str(exc)
    unsafe = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", text)
    if unsafe:
        return (f"it holds Python objects ({unsafe.group(1)}) other than tensors and plain "
                "containers, which graphmutual never loads")
    if isinstance(exc, pickle.UnpicklingError) or "WeightsUnpickler" in text:
        return "its contents are not a pickle of tensors and plain containers"
    if isinstance(exc, EOFError) or "zip" in text or "EOF" in text:
        return "it is truncated or not a torch file"
    return f"it could not be read ({type(exc).__name__})"


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Dict:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises:
        CheckpointError: if the file is missing, empty, truncated, corrupt, holds objects
            other than tensors and plain containers, or is not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint '{path}' is empty (0 bytes); {_ADVICE}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise CheckpointError(
            f"checkpoint '{path}' is corrupt or not a graphmutual checkpoint: "
            f"{_reason(exc)}; {_ADVICE}"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint '{path}' holds a {type(state).__name__}, not a "
                              f"dict, so it is not a graphmutual checkpoint; {_ADVICE}")
    return state


def load_json(path: PathLike, kind: str = "run file") -> Any:
    """Read a JSON run file (e.g. a finished seed's ``seed0.json``) with a one-line
    :class:`CheckpointError` naming the file when it is missing, empty or damaged."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        return json.loads(text)
    except FileNotFoundError:
        raise CheckpointError(f"{kind} '{path}' does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        what = "is empty" if path.exists() and path.stat().st_size == 0 else (
            f"is not valid JSON ({type(exc).__name__})")
        raise CheckpointError(f"{kind} '{path}' {what}; {_ADVICE}") from None


def require_keys(state: Mapping[str, Any], keys: Iterable[str], path: PathLike,
                 kind: str = "graphmutual training checkpoint") -> None:
    """Raise a :class:`CheckpointError` naming ``path`` unless ``state`` has every key.

    Use it right after :func:`load_checkpoint`, before indexing the state, so that a file of
    another kind gives one clear line instead of a ``KeyError``.
    """
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(
            f"checkpoint '{path}' is not a {kind} (it lacks {', '.join(map(repr, missing))}); "
            f"{_ADVICE}"
        )


def _sample(names: Iterable[str], limit: int = 3) -> str:
    names = sorted(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def restore_module(module: nn.Module, state_dict: Any, path: PathLike,
                   what: str = "model") -> None:
    """``module.load_state_dict(state_dict)`` with a one-line :class:`CheckpointError`.

    The keys and tensor shapes are compared first, so a checkpoint written for another
    configuration (other students, hidden width, number of layers) is reported as such,
    naming ``path``, instead of torch's multi-line missing/unexpected-keys report.

    Args:
        module: the module to restore (e.g. the cohort).
        state_dict: its saved ``state_dict`` from the checkpoint.
        path: the checkpoint file, for the message.
        what: what ``module`` is, for the message (``"cohort"``, ``"optimizer"``...).
    """
    if not isinstance(state_dict, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        raise CheckpointError(f"checkpoint '{path}' holds no valid {what} weights; {_ADVICE}")
    own = module.state_dict()
    missing = set(own) - set(state_dict)
    unexpected = set(state_dict) - set(own)
    resized = {k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape}
    if missing or unexpected or resized:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing weights ({_sample(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected weights ({_sample(unexpected)})")
        if resized:
            parts.append(f"{len(resized)} of another shape ({_sample(resized)})")
        raise CheckpointError(
            f"checkpoint '{path}' was written for another configuration of this {what}: "
            f"{'; '.join(parts)}. Resume with the configuration it was written with "
            "(same students, hidden width, layers), or start over without --resume"
        )
    module.load_state_dict(state_dict)


__all__ = ["CheckpointError", "atomic_write_bytes", "save_checkpoint", "load_checkpoint",
           "load_json", "require_keys", "restore_module"]
