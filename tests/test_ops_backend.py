"""graphmutual.ops: validation, backend selection, fallback, torch.compile, custom ops."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest
import torch

import graphmutual.ops as O
from graphmutual.ops import _build
from graphmutual.ops import backend as B
from graphmutual.ops._custom_ops import edge_softmax_op, sddmm_op, segment_op, spmm_op


@pytest.fixture
def graph():
    g = torch.Generator().manual_seed(0)
    n = 12
    ei = torch.randint(0, n, (2, 40), generator=g)
    return O.CSR.from_edge_index(ei, n), n


# -------------------------------------------------------------------------- validation
def test_out_of_range_indices(graph):
    csr, n = graph
    x = torch.randn(n, 4)
    bad_col = csr.col.clone()
    bad_col[3] = n
    with pytest.raises(ValueError, match="out of range"):
        O.spmm((csr.rowptr, bad_col), x)
    bad_col[3] = -1
    with pytest.raises(ValueError, match="out of range"):
        O.multi_spmm((csr.rowptr, bad_col), x.view(n, 2, 2))
    with pytest.raises(ValueError, match="out of range"):
        O.CSR.from_edge_index(torch.tensor([[0, 1], [2, 9]]), 5)
    with pytest.raises(ValueError, match="out of range"):
        O.scatter(torch.randn(3), torch.tensor([0, 5, 1]), dim_size=3)
    with pytest.raises(ValueError, match="out of range"):
        O.edge_softmax(torch.randn(3), index=torch.tensor([0, -1, 1]))
    with pytest.raises(ValueError, match="columns"):
        O.spmm(csr, torch.randn(n + 1, 4))  # x has the wrong number of rows


def test_malformed_pointers(graph):
    csr, n = graph
    x = torch.randn(n, 4)
    rp = csr.rowptr.clone()
    rp[2] = rp[3] + 1
    with pytest.raises(ValueError, match="non-decreasing"):
        O.spmm((rp, csr.col), x)
    with pytest.raises(ValueError, match="start at 0 and end"):
        O.spmm((csr.rowptr[:-1], csr.col), x)
    with pytest.raises(ValueError, match="start at 0 and end"):
        O.segment(torch.randn(5, 2), torch.tensor([0, 2, 4]))
    with pytest.raises(ValueError):
        O.CSR(torch.tensor([0, 3, 2]), torch.tensor([0, 1]))


def test_kernel_level_checks_raise_not_crash(graph):
    """Even bypassing the Python checks, the C++ kernels refuse malformed structures."""
    pytest.importorskip("torch")
    if B._why_not("cpp", "cpu") is not None:
        pytest.skip("C++ extension unavailable")
    csr, n = graph
    bad = csr.col.clone()
    bad[0] = 10**6
    with pytest.raises(ValueError, match="malformed"):
        torch.ops.graphmutual_cpu.spmm(csr.rowptr, bad, None, torch.randn(n, 1, 4))
    rp = csr.rowptr.clone()
    rp[-1] = 10**6
    with pytest.raises(ValueError, match="malformed"):
        torch.ops.graphmutual_cpu.segment(torch.randn(40, 2), rp, 0)


def test_wrong_dtypes_and_shapes(graph):
    csr, n = graph
    x = torch.randn(n, 2, 3)
    with pytest.raises(TypeError, match="floating point"):
        O.spmm(csr, torch.ones(n, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="int32 or int64"):
        O.spmm((csr.rowptr.float(), csr.col), x.view(n, 6))
    with pytest.raises(TypeError, match="same dtype"):
        O.multi_spmm(csr, x, torch.rand(csr.num_edges, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        O.multi_spmm(csr, x, torch.rand(csr.num_edges, 5))
    with pytest.raises(ValueError, match="num_students"):
        O.multi_spmm(csr, x.view(n, 6), num_students=4)
    with pytest.raises(ValueError, match="reduce"):
        O.spmm(csr, x.view(n, 6), reduce="max")
    with pytest.raises(ValueError, match="index has"):
        O.scatter(torch.randn(4, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="dim"):
        O.scatter(torch.randn(4, 2), torch.tensor([0, 1, 1, 0]), dim=2)
    with pytest.raises(ValueError, match="edges"):
        O.edge_softmax(torch.randn(csr.num_edges + 1), csr)
    # mixed int32 / int64 structure tensors are accepted
    out = O.spmm((csr.rowptr.int(), csr.col.long()), x.view(n, 6))
    torch.testing.assert_close(out, O.spmm(csr, x.view(n, 6)))


# ------------------------------------------------------------------- backend selection
def test_env_var_forces_reference(graph, monkeypatch):
    csr, n = graph
    x = torch.randn(n, 2, 3)
    monkeypatch.setenv("GRAPHMUTUAL_BACKEND", "reference")
    assert O.current_backend("cpu") == "reference"
    ref = O.multi_spmm(csr, x)
    monkeypatch.setenv("GRAPHMUTUAL_BACKEND", "auto")
    torch.testing.assert_close(O.multi_spmm(csr, x), ref)
    monkeypatch.setenv("GRAPHMUTUAL_BACKEND", "nonsense")
    with pytest.raises(ValueError, match="unknown graphmutual backend"):
        O.current_backend("cpu")
    monkeypatch.setenv("GRAPHMUTUAL_BACKEND", "cuda")
    with pytest.raises(RuntimeError, match="cannot be used"):
        O.multi_spmm(csr, x)
    if not B.torch_scatter_available():
        monkeypatch.setenv("GRAPHMUTUAL_BACKEND", "torch_scatter")
        with pytest.raises(RuntimeError, match="torch_scatter is not installed"):
            O.multi_spmm(csr, x)


def test_available_backends_reports_reasons():
    av = O.available_backends()
    assert set(av) == set(O.BACKENDS)
    assert av["reference"] is True
    if not torch.cuda.is_available():
        assert isinstance(av["cuda"], str)
    assert O.current_backend("cpu") in {k for k, v in av.items() if v is True}


def test_build_failure_falls_back_with_one_warning(graph, monkeypatch):
    csr, n = graph
    x = torch.randn(n, 2, 3)
    expected = O.multi_spmm(csr, x)
    monkeypatch.setenv("GRAPHMUTUAL_BACKEND", "auto")
    monkeypatch.setitem(_build._status, "cpu", "build failed: simulated")
    monkeypatch.setattr(B, "_warned", set())
    monkeypatch.setattr(B, "torch_scatter_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="simulated") as rec:
        out = O.multi_spmm(csr, x)
        O.multi_spmm(csr, x)
        O.spmm(csr, x.view(n, 6))
    assert len([r for r in rec if "simulated" in str(r.message)]) == 1
    assert O.current_backend("cpu") == "reference"
    torch.testing.assert_close(out, expected)
    monkeypatch.setenv("GRAPHMUTUAL_BACKEND", "cpp")  # forced: no silent fallback
    with pytest.raises(RuntimeError, match="simulated"):
        O.multi_spmm(csr, x)


def test_import_does_not_build():
    code = ("import graphmutual, graphmutual.ops as O, graphmutual.ops._build as b;"
            "assert b._status == {}, b._status;"
            "print(O.available_backends(build=False)['cpp'])")
    env = dict(os.environ, GRAPHMUTUAL_BACKEND="auto")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert "not built yet" in res.stdout


# -------------------------------------------------------- custom ops / torch.compile
def _small(dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    n = 7
    ei = torch.randint(0, n, (2, 20), generator=g)
    csr = O.CSR.from_edge_index(ei, n)
    t = csr.transpose()
    x = torch.randn(n, 2, 3, dtype=dtype, requires_grad=True)
    w = torch.rand(csr.num_edges, 2, dtype=dtype, requires_grad=True)
    return csr, t, x, w


def test_opcheck_custom_ops():
    csr, t, x, w = _small()
    a = torch.randn(csr.num_rows, 2, 3, dtype=torch.float64, requires_grad=True)
    s = torch.randn(csr.num_edges, 2, dtype=torch.float64, requires_grad=True)
    tests = ("test_schema", "test_autograd_registration", "test_faketensor",
             "test_aot_dispatch_dynamic")
    torch.library.opcheck(spmm_op, (csr.rowptr, csr.col, w, x, *t), test_utils=tests)
    torch.library.opcheck(spmm_op, (csr.rowptr, csr.col, None, x, None, None, None),
                          test_utils=tests)
    torch.library.opcheck(sddmm_op, (csr.rowptr, csr.col, a, x, False, *t), test_utils=tests)
    torch.library.opcheck(segment_op, (s, csr.rowptr, "max"), test_utils=tests)
    torch.library.opcheck(segment_op, (s, csr.rowptr, "mean"), test_utils=tests)
    torch.library.opcheck(edge_softmax_op, (csr.rowptr, s), test_utils=tests)


def test_torch_compile_fullgraph():
    torch._dynamo.reset()
    csr, t, x, w = _small(torch.float32)
    score = torch.randn(csr.num_edges, 2, requires_grad=True)
    index = torch.randint(0, 5, (csr.num_edges,))
    ptr = torch.tensor([0, 3, csr.num_rows])

    def f(x, w, score):
        alpha = O.edge_softmax(score, csr.rowptr)
        h = O.multi_spmm((csr.rowptr, csr.col), x, w * alpha)
        m = O.segment(h.reshape(h.size(0), -1), ptr, "max")
        return h.sum() + m.sum() + O.scatter(w, index, 0, 5, "mean").sum()

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    out = compiled(x, w, score)
    ref = f(x, w, score)
    torch.testing.assert_close(out, ref)
    g1 = torch.autograd.grad(out, (x, w, score))
    g2 = torch.autograd.grad(ref, (x, w, score))
    torch.testing.assert_close(g1, g2)


def test_no_warning_on_normal_path(graph):
    csr, n = graph
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        O.multi_spmm(csr, torch.randn(n, 2, 3))
