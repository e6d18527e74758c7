"""Input checks shared by the functional API: clear Python errors instead of crashes.

Value checks that need to read the data (index ranges, monotone pointers) are skipped while
:func:`torch.compile` traces; the C++ kernels repeat them (raising ``ValueError``).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

INDEX_DTYPES = (torch.int32, torch.int64)
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _compiling() -> bool:
    return torch.compiler.is_compiling()


def index_tensor(t: Tensor, name: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in INDEX_DTYPES:
        raise TypeError(f"{name} must be int32 or int64, got {t.dtype}")
    if t.dim() != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {tuple(t.shape)}")
    return t.contiguous()


def float_tensor(t: Tensor, name: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating point tensor (float16/bfloat16/float32/"
                        f"float64), got {t.dtype}")
    return t


def same_device(*pairs: tuple[str, Optional[Tensor]]) -> None:
    devs = {(n, t.device) for n, t in pairs if t is not None}
    if len({d for _, d in devs}) > 1:
        desc = ", ".join(f"{n} on {d}" for n, d in sorted(devs, key=str))
        raise ValueError(f"all tensors must be on the same device ({desc})")


def same_dtype(x: Tensor, other: Optional[Tensor], name: str, xname: str = "x") -> None:
    if other is not None and other.dtype != x.dtype:
        raise TypeError(f"{name} ({other.dtype}) must have the same dtype as {xname} "
                        f"({x.dtype})")


def unify_index(rowptr: Tensor, col: Tensor) -> tuple[Tensor, Tensor]:
    """Both index tensors in one dtype (int64 if they differ)."""
    if rowptr.dtype != col.dtype:
        return rowptr.long(), col.long()
    return rowptr, col


def check_ptr(ptr: Tensor, num_items: int, name: str = "rowptr") -> None:
    """``ptr`` is a valid CSR pointer over ``num_items`` entries."""
    if ptr.numel() < 1:
        raise ValueError(f"{name} must have at least one entry (got an empty tensor)")
    if _compiling():
        return
    first, last = int(ptr[0]), int(ptr[-1])
    if first != 0 or last != num_items:
        raise ValueError(f"{name} must start at 0 and end at {num_items} (the number of "
                         f"entries), got {first} ... {last}")
    if ptr.numel() > 1 and bool((ptr[1:] < ptr[:-1]).any()):
        raise ValueError(f"{name} must be non-decreasing")


def check_range(index: Tensor, size: int, name: str) -> None:
    """All entries of ``index`` lie in ``[0, size)``."""
    if _compiling() or index.numel() == 0:
        return
    lo, hi = int(index.min()), int(index.max())
    if lo < 0 or hi >= size:
        raise ValueError(f"{name} has entries out of range: found [{lo}, {hi}], expected "
                         f"values in [0, {size})")


def check_reduce(reduce: str, allowed: tuple[str, ...]) -> str:
    if reduce == "add":
        reduce = "sum"
    if reduce not in allowed:
        raise ValueError(f"reduce must be one of {allowed}, got {reduce!r}")
    return reduce
