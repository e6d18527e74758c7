"""graphmutual.ops: every op against an independent reference (dense algebra or PyG), on
random and adversarial graphs, for every backend available on this machine."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.utils import scatter as pyg_scatter
from torch_geometric.utils import softmax as pyg_softmax

import graphmutual.ops as O
from graphmutual.ops import backend as B

CPU_BACKENDS = ["cpp", "reference"] + (["torch_scatter"] if B.torch_scatter_available() else [])


@pytest.fixture(params=CPU_BACKENDS)
def backend(request):
    with O.use_backend(request.param):
        yield request.param


def make_graph(kind: str, seed: int = 0) -> tuple[torch.Tensor, int]:
    """``(edge_index [2, E], num_nodes)`` for a few adversarial shapes."""
    g = torch.Generator().manual_seed(seed)
    if kind == "random":
        n = 23
        return torch.randint(0, n, (2, 90), generator=g), n
    if kind == "isolated":  # empty rows and isolated nodes
        n = 20
        ei = torch.randint(0, 8, (2, 30), generator=g)
        return ei, n
    if kind == "duplicates":
        n = 10
        ei = torch.randint(0, n, (2, 12), generator=g)
        return torch.cat([ei, ei, ei[:, :3]], 1), n
    if kind == "huge_row":  # one node receives most of the edges
        n = 15
        src = torch.randint(0, n, (150,), generator=g)
        dst = torch.cat([torch.zeros(130, dtype=torch.long),
                         torch.randint(0, n, (20,), generator=g)])
        return torch.stack([src, dst]), n
    if kind == "empty":
        return torch.empty(2, 0, dtype=torch.long), 6
    raise ValueError(kind)


GRAPHS = ["random", "isolated", "duplicates", "huge_row", "empty"]


def dense_adj(ei: torch.Tensor, n: int, w: torch.Tensor | None = None) -> torch.Tensor:
    """``A[k, dst, src]`` summing duplicate edges (w: [E, K] or None)."""
    k = 1 if w is None else w.size(1)
    w = torch.ones(ei.size(1), k, dtype=torch.float64) if w is None else w
    a = torch.zeros(k, n, n, dtype=w.dtype)
    for kk in range(k):
        a[kk].index_put_((ei[1], ei[0]), w[:, kk], accumulate=True)
    return a


# ------------------------------------------------------------------------------ spmm
@pytest.mark.parametrize("kind", GRAPHS)
@pytest.mark.parametrize("idx_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_spmm_matches_dense(backend, kind, idx_dtype, reduce):
    ei, n = make_graph(kind)
    csr = O.CSR.from_edge_index(ei.to(idx_dtype), n)
    assert csr.col.dtype == idx_dtype
    x = torch.randn(n, 5, dtype=torch.float64, requires_grad=True)
    w = torch.rand(ei.size(1), dtype=torch.float64, requires_grad=True)
    out = O.spmm(csr, x, reduce=reduce, value=csr.edge_values(w))
    a = dense_adj(ei, n, w.unsqueeze(-1))[0]
    ref = a @ x
    if reduce == "mean":
        deg = torch.bincount(ei[1], minlength=n).clamp(min=1).to(x.dtype)
        ref = ref / deg.unsqueeze(-1)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    gx, gw = torch.autograd.grad(out, (x, w), g, allow_unused=True)
    rx, rw = torch.autograd.grad(ref, (x, w), g, allow_unused=True)
    torch.testing.assert_close(gx, rx)
    if ei.size(1):
        torch.testing.assert_close(gw, rw)


@pytest.mark.parametrize("wmode", ["none", "shared", "per_student"])
@pytest.mark.parametrize("layout", ["3d", "2d"])
@pytest.mark.parametrize("kind", ["random", "isolated", "huge_row"])
def test_multi_spmm_matches_dense(backend, wmode, layout, kind):
    ei, n = make_graph(kind, seed=1)
    k, f = 3, 4
    csr = O.CSR.from_edge_index(ei, n)
    x = torch.randn(n, k, f, dtype=torch.float64, requires_grad=True)
    w = None
    if wmode == "shared":
        w = torch.rand(ei.size(1), dtype=torch.float64, requires_grad=True)
    elif wmode == "per_student":
        w = torch.rand(ei.size(1), k, dtype=torch.float64, requires_grad=True)
    wc = None if w is None else csr.edge_values(w)
    if layout == "3d":
        out = O.multi_spmm(csr, x, wc)
    else:
        out = O.multi_spmm(csr, x.reshape(n, k * f), wc, num_students=k).view(n, k, f)
    wd = None if w is None else (w.unsqueeze(-1).expand(-1, k) if w.dim() == 1 else w)
    a = dense_adj(ei, n, wd)
    a = a.expand(k, n, n) if a.size(0) == 1 else a
    ref = torch.einsum("kij,jkf->ikf", a, x)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    inputs = (x,) if w is None else (x, w)
    torch.testing.assert_close(torch.autograd.grad(out, inputs, g),
                               torch.autograd.grad(ref, inputs, g))


@pytest.mark.parametrize("wmode", ["none", "shared", "per_student"])
@pytest.mark.parametrize("idx_dtype", [torch.int32, torch.int64])
def test_multi_spmm_gradcheck(backend, wmode, idx_dtype):
    if backend != "cpp" and idx_dtype == torch.int32:
        pytest.skip("only our kernels have int32 code paths; formulas are shared")
    ei, n = make_graph("duplicates", seed=2)
    csr = O.CSR.from_edge_index(ei.to(idx_dtype), n)
    x = torch.randn(n, 2, 3, dtype=torch.float64, requires_grad=True)
    e = csr.num_edges
    if wmode == "none":
        assert torch.autograd.gradcheck(lambda x: O.multi_spmm(csr, x), (x,))
        return
    w = torch.rand(e, 1 if wmode == "shared" else 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: O.multi_spmm(csr, x, w), (x, w))
    # raw (rowptr, col) input: the transpose is computed in backward instead of cached
    assert torch.autograd.gradcheck(
        lambda x, w: O.multi_spmm((csr.rowptr, csr.col), x, w, reduce="mean"), (x, w))


def test_spmm_double_backward(backend):
    if backend == "reference":
        pytest.skip("same formulas as the other backends; slow")
    ei = torch.tensor([[0, 1, 2, 2, 4, 1], [1, 0, 0, 3, 3, 3]])
    n = 5
    csr = O.CSR.from_edge_index(ei, n)
    x = torch.randn(n, 2, 2, dtype=torch.float64, requires_grad=True)
    w = torch.rand(csr.num_edges, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, w: O.multi_spmm(csr, x, w), (x, w))


def test_csr_cached_transpose_and_bipartite(backend):
    g = torch.Generator().manual_seed(4)
    n_src, n_dst = 9, 5
    ei = torch.stack([torch.randint(0, n_src, (25,), generator=g),
                      torch.randint(0, n_dst, (25,), generator=g)])
    csr = O.CSR.from_edge_index(ei, n_src, num_dst_nodes=n_dst)
    t1 = csr.transpose()
    assert csr.transpose() is t1
    x = torch.randn(n_src, 3, dtype=torch.float64, requires_grad=True)
    out = O.spmm(csr, x)
    assert out.shape == (n_dst, 3)
    ref = torch.zeros(n_dst, n_src, dtype=torch.float64).index_put_(
        (ei[1], ei[0]), torch.ones(25, dtype=torch.float64), accumulate=True) @ x
    torch.testing.assert_close(out, ref)
    assert torch.autograd.gradcheck(lambda x: O.spmm(csr, x), (x,))


# ------------------------------------------------------------------- segment / scatter
@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("kind", GRAPHS)
def test_segment_and_scatter_match_pyg(backend, reduce, kind):
    ei, n = make_graph(kind, seed=5)
    index = ei[1]
    src = torch.randn(index.numel(), 3, 2, dtype=torch.float64, requires_grad=True)
    ref = pyg_scatter(src, index, 0, n, reduce=reduce)
    out = O.scatter(src, index.int(), 0, n, reduce=reduce)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(ref)
    if index.numel():
        torch.testing.assert_close(torch.autograd.grad(out, src, g)[0],
                                   torch.autograd.grad(ref, src, g)[0])
    # segment over the sorted index
    perm = torch.argsort(index, stable=True)
    ptr = torch.searchsorted(index[perm], torch.arange(n + 1))
    seg = O.segment(src[perm], ptr, reduce=reduce)
    torch.testing.assert_close(seg, ref)


@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "min"])
def test_segment_scatter_gradcheck(backend, reduce):
    ei, n = make_graph("isolated", seed=6)
    src = torch.randn(ei.size(1), 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: O.scatter(s, ei[1], 0, n, reduce), (src,))
    ptr = torch.tensor([0, 4, 4, 10, 30], dtype=torch.int32)
    assert torch.autograd.gradcheck(lambda s: O.segment(s, ptr, reduce), (src,))


@pytest.mark.parametrize("dim", [1, -1])
def test_scatter_other_dims(backend, dim):
    src = torch.randn(4, 7, 3, dtype=torch.float64).movedim(1, dim)
    index = torch.tensor([2, 0, 2, 5, 1, 0, 2])
    for reduce in ("sum", "max"):
        torch.testing.assert_close(O.scatter(src, index, dim, 6, reduce),
                                   pyg_scatter(src, index, dim, 6, reduce))


# ----------------------------------------------------------------------- edge softmax
@pytest.mark.parametrize("kind", GRAPHS)
@pytest.mark.parametrize("heads", [None, 4])
def test_edge_softmax_matches_pyg(backend, kind, heads):
    ei, n = make_graph(kind, seed=7)
    shape = (ei.size(1),) if heads is None else (ei.size(1), heads)
    score = (3 * torch.randn(shape, dtype=torch.float64)).requires_grad_()
    ref = pyg_softmax(score, ei[1], num_nodes=n)
    out = O.edge_softmax(score, index=ei[1], num_nodes=n)
    torch.testing.assert_close(out, ref)
    csr = O.CSR.from_edge_index(ei, n)
    out_csr = O.edge_softmax(csr.edge_values(score), csr)
    torch.testing.assert_close(out_csr, csr.edge_values(ref))
    if ei.size(1):
        g = torch.randn_like(ref)
        torch.testing.assert_close(torch.autograd.grad(out, score, g)[0],
                                   torch.autograd.grad(ref, score, g)[0])


def test_edge_softmax_gradcheck(backend):
    ei, n = make_graph("isolated", seed=7)
    csr = O.CSR.from_edge_index(ei, n)
    score = torch.randn(csr.num_edges, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: O.edge_softmax(s, csr), (score,))
    assert torch.autograd.gradcheck(lambda s: O.edge_softmax(s, index=ei[1], num_nodes=n),
                                    (score,))


def test_edge_softmax_is_stable(backend):
    rowptr = torch.tensor([0, 3, 3, 5])
    score = torch.tensor([1000.0, 1000.0, -1000.0, -1e30, -1e30])
    out = O.edge_softmax(score, rowptr)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.tensor([0.5, 0.5, 0.0, 0.5, 0.5]))


# ----------------------------------------------------------------------- float dtypes
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision(backend, dtype):
    if backend == "torch_scatter" and dtype != torch.float32:
        pytest.skip("torch_scatter's CPU kernels: float32/64 only")
    ei, n = make_graph("random", seed=8)
    csr = O.CSR.from_edge_index(ei, n)
    x = torch.randn(n, 2, 8)
    w = torch.rand(csr.num_edges, 2)
    ref = O.multi_spmm(csr, x.double(), w.double())
    out = O.multi_spmm(csr, x.to(dtype), w.to(dtype))
    assert out.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 5e-2
    torch.testing.assert_close(out.double(), ref, atol=tol * 10, rtol=tol)
    sm = O.edge_softmax(csr.edge_values(torch.randn(csr.num_edges, 2)).to(dtype), csr)
    assert sm.dtype == dtype


def test_non_contiguous_inputs(backend):
    ei, n = make_graph("random", seed=9)
    csr = O.CSR.from_edge_index(ei, n)
    xt = torch.randn(8, n, dtype=torch.float64).t()  # [n, 8], non-contiguous
    assert not xt.is_contiguous()
    torch.testing.assert_close(O.spmm(csr, xt), O.spmm(csr, xt.contiguous()))
    w = torch.rand(2, csr.num_edges, dtype=torch.float64).t()
    x3 = torch.randn(n, 2, 4, dtype=torch.float64)
    torch.testing.assert_close(O.multi_spmm(csr, x3, w), O.multi_spmm(csr, x3, w.contiguous()))
    rowptr = torch.stack([csr.rowptr, csr.rowptr], 1)[:, 0]  # strided 1-D
    torch.testing.assert_close(O.spmm((rowptr, csr.col), xt), O.spmm(csr, xt))
