"""Build torch-sparse's CPU neighbour sampler alone, for a side-by-side throughput check.

``pip install torch-sparse`` compiles the whole library (many minutes on a small machine).
The comparison only needs one file of it, ``csrc/cpu/neighbor_sample_cpu.cpp`` -- the kernel
behind ``torch.ops.torch_sparse.neighbor_sample``, which PyG's ``NeighborSampler`` calls
when pyg-lib is missing. :func:`load` compiles that file from torch-sparse's source
distribution (``pip download torch-sparse --no-binary :all:``) with torch-sparse's own flags
(``-O3 -fopenmp -DAT_PARALLEL_OPENMP``) and registers it as
``torch.ops.torch_sparse_standalone.neighbor_sample`` with the same arguments.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REGISTER = r"""
#include <torch/library.h>
#include "cpu/neighbor_sample_cpu.h"

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>
standalone_neighbor_sample(const at::Tensor& colptr, const at::Tensor& row,
                           const at::Tensor& input_node, std::vector<int64_t> num_neighbors,
                           bool replace, bool directed) {
  return neighbor_sample_cpu(colptr, row, input_node, num_neighbors, replace, directed);
}

TORCH_LIBRARY(torch_sparse_standalone, m) {
  m.def("neighbor_sample", &standalone_neighbor_sample);
}
"""


def _sdist(version: str, where: Path) -> Path:
    found = sorted(where.glob(f"torch_sparse-{version}.tar.gz"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", f"torch-sparse=={version}",
                        "--no-deps", "--no-binary", ":all:", "-d", str(where)], check=True)
        found = sorted(where.glob(f"torch_sparse-{version}.tar.gz"))
    return found[0]


def load(version: str = "0.6.18", sdist: str | None = None,
         workdir: str | None = None) -> str:
    """Compile and load the kernel; returns a label naming what was built."""
    import torch
    from torch.utils.cpp_extension import load as jit_load

    work = Path(workdir or tempfile.mkdtemp(prefix="torch_sparse_src_"))
    work.mkdir(parents=True, exist_ok=True)
    archive = Path(sdist) if sdist else _sdist(version, work)
    src = work / archive.name.replace(".tar.gz", "")
    if not src.exists():
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
    reg = src / "csrc" / "standalone_register.cpp"
    reg.write_text(REGISTER)
    jit_load(name=f"torch_sparse_standalone_{version.replace('.', '_')}",
             sources=[str(reg), str(src / "csrc" / "cpu" / "neighbor_sample_cpu.cpp")],
             extra_include_paths=[str(src / "csrc"),
                                  str(src / "third_party" / "parallel-hashmap")],
             extra_cflags=["-O3", "-fopenmp", "-DAT_PARALLEL_OPENMP", "-Wno-sign-compare"],
             extra_ldflags=["-fopenmp"], is_python_module=False, verbose=False)
    assert hasattr(torch.ops.torch_sparse_standalone, "neighbor_sample")
    return f"torch-sparse {version} neighbor_sample_cpu.cpp (built alone, its own flags)"
