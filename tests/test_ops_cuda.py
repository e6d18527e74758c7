"""CUDA kernels: compiled with nvcc whenever it is on PATH (no GPU needed); run and compared
with the reference only when torch sees a CUDA device."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import graphmutual.ops as O
from graphmutual.ops import _build

NVCC = shutil.which("nvcc")


def _nvcc_command(src: Path, obj: Path) -> list[str]:
    """What ``torch.utils.cpp_extension`` passes to nvcc for our extension (one arch)."""
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS, include_paths

    abi = int(getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", True))
    return ([NVCC, "-c", str(src), "-o", str(obj), "-std=c++20", "-arch=sm_80",
             "-Xcompiler", "-fPIC", f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
             "-DTORCH_EXTENSION_NAME=graphmutual_cuda", *COMMON_NVCC_FLAGS,
             *_build.CUDA_CFLAGS]
            + [f"-I{p}" for p in include_paths()])


@pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH")
@pytest.mark.parametrize("src", _build.CUDA_SOURCES, ids=lambda p: p.name)
def test_cuda_sources_compile_with_nvcc(src, tmp_path):
    """Real nvcc compilation of every .cu file against this torch's headers.

    The object file is cached under the torch extensions dir, keyed by the hash of the
    source, the command and the nvcc/torch versions, so an unchanged source is compiled once
    per machine (set GRAPHMUTUAL_NVCC_NOCACHE=1 to always recompile).
    """
    version = subprocess.run([NVCC, "--version"], capture_output=True, text=True).stdout
    probe = _nvcc_command(src, Path("OBJ"))
    key = hashlib.sha256(src.read_bytes() + " ".join(probe).encode() + version.encode()
                         + torch.__version__.encode()).hexdigest()[:16]
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR",
                               Path.home() / ".cache" / "torch_extensions"))
    cached = root / "graphmutual_nvcc_check" / f"{src.stem}-{key}.o"
    if cached.exists() and os.environ.get("GRAPHMUTUAL_NVCC_NOCACHE", "0") == "0":
        assert cached.stat().st_size > 0
        return
    obj = tmp_path / (src.stem + ".o")
    res = subprocess.run(_nvcc_command(src, obj), capture_output=True, text=True, timeout=600)
    errors = [ln for ln in res.stderr.splitlines() if "error" in ln]
    assert res.returncode == 0, "\n".join(errors[:20]) or res.stderr[-4000:]
    assert obj.stat().st_size > 0
    nm = shutil.which("nm")
    if nm:  # the kernels are really in there
        syms = subprocess.run([nm, "-C", str(obj)], capture_output=True, text=True).stdout
        assert "spmm_kernel" in syms and "edge_softmax_kernel" in syms
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(obj, cached)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@cuda
@pytest.mark.parametrize("wmode", ["none", "shared", "per_student"])
@pytest.mark.parametrize("idx_dtype", [torch.int32, torch.int64])
def test_cuda_multi_spmm_matches_reference(wmode, idx_dtype):
    g = torch.Generator().manual_seed(0)
    n, k, f = 200, 3, 70  # f not a multiple of 32, k * f > 128 (several column passes)
    ei = torch.randint(0, n, (2, 3000), generator=g)
    ei = torch.cat([ei, torch.stack([torch.randint(0, n, (500,), generator=g),
                                     torch.zeros(500, dtype=torch.long)])], 1)  # huge row
    csr = O.CSR.from_edge_index(ei.to(idx_dtype), n + 5)  # + isolated nodes
    x = torch.randn(n + 5, k, f, dtype=torch.float64, requires_grad=True)
    w = None if wmode == "none" else torch.rand(
        csr.num_edges, 1 if wmode == "shared" else k, dtype=torch.float64, requires_grad=True)
    with O.use_backend("reference"):
        ref = O.multi_spmm(csr, x, w)
        rg = torch.autograd.grad(ref.square().sum(), [t for t in (x, w) if t is not None])
    csr_c = csr.to("cuda")
    xc = x.detach().cuda().requires_grad_()
    wc = None if w is None else w.detach().cuda().requires_grad_()
    with O.use_backend("cuda"):
        out = O.multi_spmm(csr_c, xc, wc)
        og = torch.autograd.grad(out.square().sum(), [t for t in (xc, wc) if t is not None])
    torch.testing.assert_close(out.cpu(), ref)
    torch.testing.assert_close([t.cpu() for t in og], list(rg))


@cuda
@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "min"])
def test_cuda_segment_scatter_softmax_match_reference(reduce):
    g = torch.Generator().manual_seed(1)
    index = torch.randint(0, 40, (500,), generator=g)
    src = torch.randn(500, 6, dtype=torch.float64, requires_grad=True)
    with O.use_backend("reference"):
        ref = O.scatter(src, index, 0, 50, reduce)
        rg = torch.autograd.grad(ref.square().sum(), src)[0]
        rs = O.edge_softmax(src, index=index, num_nodes=50)
    sc = src.detach().cuda().requires_grad_()
    with O.use_backend("cuda"):
        out = O.scatter(sc, index.cuda(), 0, 50, reduce)
        og = torch.autograd.grad(out.square().sum(), sc)[0]
        os_ = O.edge_softmax(sc, index=index.cuda(), num_nodes=50)
    torch.testing.assert_close(out.cpu(), ref)
    torch.testing.assert_close(og.cpu(), rg)
    torch.testing.assert_close(os_.detach().cpu(), rs.detach())
