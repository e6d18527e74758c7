"""``torch.library`` custom ops (namespace ``graphmutual``) with fake impls and autograd.

Each op calls the kernel set picked by :func:`graphmutual.ops.backend.get_kernels`, so the
backend choice happens in exactly one place. The backward passes are expressed with the same
ops: the gradient of a CSR SpMM w.r.t. ``x`` is an SpMM over the *transposed* structure
(passed in when cached by :class:`~graphmutual.ops.CSR`, computed otherwise), the gradient
w.r.t. the edge weights is an SDDMM. Nothing scatters with atomics.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from graphmutual.ops._kernels import row_index
from graphmutual.ops.backend import get_kernels


def transpose_csr(rowptr: Tensor, col: Tensor, num_cols: int) -> tuple[Tensor, Tensor, Tensor]:
    """CSR of the transposed matrix: ``(t_rowptr [num_cols + 1], t_col [E], perm [E])``.

    Edge ``e`` of the transpose is edge ``perm[e]`` of the original; shapes are static so this
    also traces under :func:`torch.compile`.
    """
    e = col.numel()
    row = row_index(rowptr, e)
    perm = torch.argsort(col, stable=True)
    t_col = row.index_select(0, perm).to(col.dtype)
    bounds = torch.arange(num_cols + 1, device=col.device, dtype=col.dtype)
    t_rowptr = torch.searchsorted(col.index_select(0, perm), bounds).to(col.dtype)
    return t_rowptr, t_col, perm


# --------------------------------------------------------------------------------- spmm
@torch.library.custom_op("graphmutual::spmm", mutates_args=())
def spmm_op(rowptr: Tensor, col: Tensor, weight: Optional[Tensor], x: Tensor,
            t_rowptr: Optional[Tensor], t_col: Optional[Tensor],
            t_perm: Optional[Tensor]) -> Tensor:
    """``out[i, k] = sum_{e in row i} weight[e, k|0] * x[col[e], k]`` for ``x [N, K, F]``."""
    return get_kernels(x.device).spmm(rowptr, col, weight, x)


@spmm_op.register_fake
def _(rowptr, col, weight, x, t_rowptr, t_col, t_perm):
    return x.new_empty((rowptr.shape[0] - 1, x.shape[1], x.shape[2]))


def _spmm_setup(ctx, inputs, output):
    rowptr, col, weight, x, t_rowptr, t_col, t_perm = inputs
    need_w = weight is not None and ctx.needs_input_grad[2]
    ctx.num_cols = x.shape[0]
    ctx.save_for_backward(rowptr, col, weight, x if need_w else None, t_rowptr, t_col, t_perm)


def _spmm_backward(ctx, grad):
    rowptr, col, weight, x, t_rowptr, t_col, t_perm = ctx.saved_tensors
    grad = grad.contiguous()
    grad_w = grad_x = None
    if ctx.needs_input_grad[3]:
        if t_rowptr is None:
            t_rowptr, t_col, t_perm = transpose_csr(rowptr, col, ctx.num_cols)
        w_t = weight.index_select(0, t_perm) if weight is not None else None
        grad_x = spmm_op(t_rowptr, t_col, w_t, grad, None, None, None)
    if weight is not None and ctx.needs_input_grad[2]:
        grad_w = sddmm_op(rowptr, col, grad, x, weight.shape[1] == 1 and x.shape[1] > 1,
                          t_rowptr, t_col, t_perm)
    return None, None, grad_w, grad_x, None, None, None


spmm_op.register_autograd(_spmm_backward, setup_context=_spmm_setup)


# -------------------------------------------------------------------------------- sddmm
@torch.library.custom_op("graphmutual::sddmm", mutates_args=())
def sddmm_op(rowptr: Tensor, col: Tensor, a: Tensor, b: Tensor, sum_k: bool,
             t_rowptr: Optional[Tensor], t_col: Optional[Tensor],
             t_perm: Optional[Tensor]) -> Tensor:
    """``out[e, k] = <a[row(e), k], b[col[e], k]>`` (``[E, K]``, or ``[E, 1]`` if ``sum_k``)."""
    return get_kernels(a.device).sddmm(rowptr, col, a, b, sum_k)


@sddmm_op.register_fake
def _(rowptr, col, a, b, sum_k, t_rowptr, t_col, t_perm):
    return a.new_empty((col.shape[0], 1 if sum_k else a.shape[1]))


def _sddmm_setup(ctx, inputs, output):
    rowptr, col, a, b, sum_k, t_rowptr, t_col, t_perm = inputs
    ctx.num_cols = b.shape[0]
    ctx.save_for_backward(rowptr, col, a, b, t_rowptr, t_col, t_perm)


def _sddmm_backward(ctx, grad):
    rowptr, col, a, b, t_rowptr, t_col, t_perm = ctx.saved_tensors
    grad = grad.contiguous()
    grad_a = grad_b = None
    if ctx.needs_input_grad[2]:
        grad_a = spmm_op(rowptr, col, grad, b, t_rowptr, t_col, t_perm)
    if ctx.needs_input_grad[3]:
        if t_rowptr is None:
            t_rowptr, t_col, t_perm = transpose_csr(rowptr, col, ctx.num_cols)
        grad_b = spmm_op(t_rowptr, t_col, grad.index_select(0, t_perm), a, None, None, None)
    return None, None, grad_a, grad_b, None, None, None, None


sddmm_op.register_autograd(_sddmm_backward, setup_context=_sddmm_setup)


# ------------------------------------------------------------------------------ segment
@torch.library.custom_op("graphmutual::segment", mutates_args=())
def segment_op(src: Tensor, ptr: Tensor, reduce: str) -> tuple[Tensor, Tensor]:
    """Reduce ``src [E, D]`` over CSR segments; ``(out [M, D], arg)`` (``arg`` for max/min)."""
    out, arg = get_kernels(src.device).segment(src, ptr, reduce)
    return out, arg


@segment_op.register_fake
def _(src, ptr, reduce):
    m = ptr.shape[0] - 1
    out = src.new_empty((m, src.shape[1]))
    if reduce in ("max", "min"):
        return out, src.new_empty((m, src.shape[1]), dtype=torch.long)
    return out, src.new_empty((0,), dtype=torch.long)


def _segment_setup(ctx, inputs, output):
    src, ptr, reduce = inputs
    ctx.reduce = reduce
    ctx.num_edges = src.shape[0]
    ctx.save_for_backward(ptr, output[1])


def _segment_backward(ctx, grad_out, _grad_arg):
    ptr, arg = ctx.saved_tensors
    grad_out = grad_out.contiguous()
    if ctx.reduce in ("sum", "mean"):
        if ctx.reduce == "mean":
            cnt = (ptr[1:] - ptr[:-1]).clamp(min=1).to(grad_out.dtype).unsqueeze(-1)
            grad_out = grad_out / cnt
        return grad_out.index_select(0, row_index(ptr, ctx.num_edges)), None, None
    grad = grad_out.new_zeros((ctx.num_edges + 1, grad_out.shape[1]))
    grad.scatter_(0, arg, grad_out)  # arg is unique per (segment, column): no races
    return grad[:-1], None, None


segment_op.register_autograd(_segment_backward, setup_context=_segment_setup)


# ------------------------------------------------------------------------- edge softmax
@torch.library.custom_op("graphmutual::edge_softmax", mutates_args=())
def edge_softmax_op(rowptr: Tensor, score: Tensor) -> Tensor:
    """Softmax of ``score [E, H]`` over the edges of each CSR row."""
    return get_kernels(score.device).edge_softmax(rowptr, score)


@edge_softmax_op.register_fake
def _(rowptr, score):
    return torch.empty_like(score)


@torch.library.custom_op("graphmutual::edge_softmax_backward", mutates_args=())
def edge_softmax_backward_op(rowptr: Tensor, y: Tensor, grad: Tensor) -> Tensor:
    """``y * (grad - sum_row(y * grad))``."""
    return get_kernels(y.device).edge_softmax_backward(rowptr, y, grad)


@edge_softmax_backward_op.register_fake
def _(rowptr, y, grad):
    return torch.empty_like(y)


def _softmax_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], output)


def _softmax_backward(ctx, grad):
    rowptr, y = ctx.saved_tensors
    return None, edge_softmax_backward_op(rowptr, y, grad.contiguous())


edge_softmax_op.register_autograd(_softmax_backward, setup_context=_softmax_setup)
