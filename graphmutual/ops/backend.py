"""The single dispatch point of :mod:`graphmutual.ops`.

Backends, in the order ``auto`` tries them:

=================  ======================================================================
``cuda``           our CUDA kernels (``csrc/ops_cuda.cu``), CUDA tensors only
``cpp``            our C++ CPU kernels (``csrc/ops_cpu.cpp``), CPU tensors only
``torch_scatter``  torch-scatter's segment kernels, when ``torch_scatter`` is importable
``reference``      pure PyTorch, always available
=================  ======================================================================

``GRAPHMUTUAL_BACKEND`` (or :func:`set_backend`) forces one of them; ``auto`` (the default)
takes the first one that works for the tensors' device. When ``auto`` cannot build one of our
extensions it warns once and falls back; a *forced* backend that cannot run raises.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from contextlib import contextmanager
from functools import cache
from typing import Iterator, Optional, Union

import torch

from graphmutual.ops import _build
from graphmutual.ops._kernels import (
    CppKernels,
    CudaKernels,
    ReferenceKernels,
    TorchScatterKernels,
)

BACKENDS = ("cuda", "cpp", "torch_scatter", "reference")
ENV_VAR = "GRAPHMUTUAL_BACKEND"

_override: Optional[str] = None
_warned: set[str] = set()


def _check_name(name: str) -> str:
    name = name.strip().lower()
    if name not in BACKENDS + ("auto",):
        raise ValueError(
            f"unknown graphmutual backend {name!r}; expected one of "
            f"{', '.join(('auto',) + BACKENDS)}"
        )
    return name


def requested_backend() -> str:
    """The backend asked for: :func:`set_backend` override, else ``$GRAPHMUTUAL_BACKEND``."""
    if _override is not None:
        return _override
    return _check_name(os.environ.get(ENV_VAR, "auto") or "auto")


def set_backend(name: Optional[str]) -> None:
    """Force a backend for this process (``None`` returns control to the env variable)."""
    global _override
    _override = None if name is None else _check_name(name)


@contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Context manager form of :func:`set_backend`."""
    global _override
    old, _override = _override, _check_name(name)
    try:
        yield
    finally:
        _override = old


def torch_scatter_available() -> bool:
    return importlib.util.find_spec("torch_scatter") is not None


@cache
def _instance(name: str):
    return {
        "reference": ReferenceKernels,
        "cpp": CppKernels,
        "cuda": CudaKernels,
        "torch_scatter": TorchScatterKernels,
    }[name]()


def _why_not(name: str, device_type: str) -> Optional[str]:
    """``None`` if backend ``name`` can run on ``device_type`` (building it if needed)."""
    if name == "reference":
        return None
    if name == "torch_scatter":
        if not torch_scatter_available():
            return "torch_scatter is not installed"
        try:
            _instance(name)
        except Exception as exc:  # noqa: BLE001
            return f"torch_scatter failed to import: {exc}"
        return None
    want = "cpu" if name == "cpp" else "cuda"
    if device_type != want:
        return f"the {name!r} backend runs on {want} tensors, got {device_type} tensors"
    return _build.ensure(want)


def _resolve(device_type: str) -> str:
    req = requested_backend()
    if req != "auto":
        why = _why_not(req, device_type)
        if why is not None:
            raise RuntimeError(f"{ENV_VAR}={req!r} cannot be used: {why}")
        return req
    own = "cuda" if device_type == "cuda" else "cpp"
    if device_type in ("cpu", "cuda"):
        why = _why_not(own, device_type)
        if why is None:
            return own
        if own not in _warned:
            _warned.add(own)
            fallback = "torch_scatter" if torch_scatter_available() else "reference"
            warnings.warn(
                f"graphmutual.ops: the {own} kernels are unavailable ({why}); using the "
                f"{fallback} backend instead (slower). Set {ENV_VAR}={fallback} to silence "
                "this warning.",
                RuntimeWarning,
                stacklevel=4,
            )
    if _why_not("torch_scatter", device_type) is None:
        return "torch_scatter"
    return "reference"


def get_kernels(device: Union[torch.device, str]):
    """The kernel set that runs ops on ``device`` (the one dispatch point)."""
    dev = torch.device(device)
    return _instance(_resolve(dev.type))


def current_backend(device: Union[torch.device, str] = "cpu") -> str:
    """Name of the backend ops on ``device`` would use now (may build our extension)."""
    return _resolve(torch.device(device).type)


def available_backends(build: bool = True) -> dict[str, Union[bool, str]]:
    """``name -> True`` or the reason the backend is unavailable (for ``graphmutual info``).

    With ``build=False`` our extensions are not compiled; their entry then says whether they
    were built in this process.
    """
    out: dict[str, Union[bool, str]] = {}
    for name in BACKENDS:
        if name == "cuda" and not torch.cuda.is_available():
            why = "torch has no usable CUDA device"
        elif name in ("cpp", "cuda") and not build:
            why = _build.status("cpu" if name == "cpp" else "cuda")
        else:
            why = _why_not(name, "cpu" if name != "cuda" else "cuda")
        out[name] = True if why is None else why
    return out
