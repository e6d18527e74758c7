"""Just-in-time build of the C++ / CUDA kernels (``graphmutual/csrc``).

The extensions are compiled with :func:`torch.utils.cpp_extension.load` the first time an op
needs them -- never when :mod:`graphmutual` is imported -- and cached by PyTorch in its
per-user extension directory (``$TORCH_EXTENSIONS_DIR``, default
``~/.cache/torch_extensions``). They register plain ``torch.ops.graphmutual_cpu.*`` /
``torch.ops.graphmutual_cuda.*`` operators (no pybind11), which keeps the build small.

A failed build is remembered for the rest of the process, so it is attempted (and reported)
only once.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import threading
from pathlib import Path
from typing import Optional

import torch

CSRC = Path(__file__).resolve().parent.parent / "csrc"
CPU_SOURCES = [CSRC / "ops_cpu.cpp", CSRC / "sampler_cpu.cpp"]
CUDA_SOURCES = [CSRC / "ops_cuda.cu"]

CPU_CFLAGS = ["-O3", "-fopenmp", "-march=native"]
CUDA_CFLAGS = ["-O3", "--expt-relaxed-constexpr"]

_lock = threading.Lock()
# name -> None (built and loaded) or the reason it is not available
_status: dict[str, Optional[str]] = {}


def _host_tag() -> str:
    """Short tag of the host CPU: ``-march=native`` builds must not be shared across CPUs."""
    info = platform.machine() + platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags")):
                    info += line
                if line.startswith("flags"):
                    break
    except OSError:
        pass
    return hashlib.sha1(info.encode()).hexdigest()[:8]


def _checkout_tag() -> str:
    """Short tag of this checkout's source folder: two checkouts (git worktrees, a venv and a
    source tree) get their own build folders instead of rebuilding one in turn (torch's build
    cache keys on the source paths)."""
    return hashlib.sha1(str(CSRC).encode()).hexdigest()[:6]


def _verbose() -> bool:
    return os.environ.get("GRAPHMUTUAL_VERBOSE_BUILD", "0") not in ("", "0")


def _compiler_missing() -> Optional[str]:
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        return f"no C++ compiler found ({cxx!r} is not on PATH)"
    try:
        from torch.utils.cpp_extension import is_ninja_available
    except ImportError:  # pragma: no cover
        return "torch.utils.cpp_extension is unavailable"
    if not is_ninja_available():
        return "ninja is not installed (pip install ninja)"
    return None


def _load(name: str, sources: list[Path], cuda: bool) -> Optional[str]:
    reason = _compiler_missing()
    if reason is not None:
        return reason
    if cuda:
        from torch.utils.cpp_extension import CUDA_HOME

        if not torch.cuda.is_available():
            return "torch has no usable CUDA device"
        if CUDA_HOME is None:
            return "CUDA toolkit not found (set CUDA_HOME)"
    from torch.utils.cpp_extension import load

    try:
        load(
            name=name,
            sources=[str(s) for s in sources],
            extra_cflags=CPU_CFLAGS if not cuda else ["-O3"],
            extra_cuda_cflags=CUDA_CFLAGS if cuda else None,
            extra_ldflags=["-fopenmp"] if not cuda else None,
            is_python_module=False,
            verbose=_verbose(),
        )
    except Exception as exc:  # noqa: BLE001 - any build/load failure means "not available"
        msg = str(exc).strip().splitlines()
        return f"build failed: {msg[-1] if msg else type(exc).__name__}"
    return None


def ensure(kind: str) -> Optional[str]:
    """Build/load extension ``kind`` ('cpu' or 'cuda') once; ``None`` if usable, else why not."""
    with _lock:
        if kind not in _status:
            tag = _checkout_tag()
            if kind == "cpu":
                _status[kind] = _load(f"graphmutual_cpu_{_host_tag()}_{tag}", CPU_SOURCES,
                                      cuda=False)
            elif kind == "cuda":
                _status[kind] = _load(f"graphmutual_cuda_{tag}", CUDA_SOURCES, cuda=True)
            else:  # pragma: no cover
                raise ValueError(kind)
        return _status[kind]


def status(kind: str) -> Optional[str]:
    """Like :func:`ensure` but never builds: 'not built yet' when it was not attempted."""
    with _lock:
        return _status.get(kind, "not built yet (built on first use)")
