"""Fast kernel of ``ops.matmul``: a product with a weight matrix as one BLAS call, and the
operands of batched products in row-major order.

NumPy hands a stack of matrices to BLAS one matrix at a time. For x (B, T, k) @ W (k, m), the
reference's forward and dL/dx are B products of T rows and its dL/dW = sum over B of
x_b^T @ g_b makes a (B, k, m) array only to sum it; here the leading axes are folded into rows:
the forward and dL/dx are one (B*T, k) @ (k, m) product, dL/dW one (k, B*T) @ (B*T, m).
The attention products (q @ k, probs @ v and their gradients) stay batched, but an operand
whose rows are not contiguous (a permuted view) is copied first when that is no larger than
the product: BLAS is several times slower on strided matrices than one copy costs. And the
stack of small matrices is split among the cores by tinybert with OpenBLAS on one thread
(:func:`tinybert.fast.parallel.matmul_over_stack`), instead of OpenBLAS sharing out each small
matrix between its threads: that handoff, a few hundred times a product, is slow on an idle
machine and ruinous on a busy one, where the second BLAS thread waits for its core.
"""
import numpy

from .. import backend, ops
from ..tensor import Tensor
from . import parallel


def matmul(a, b):
    """``ops.matmul``, with a 2-D b folded and batched operands made row-major."""
    a, b = ops.as_tensor(a), ops.as_tensor(b)
    xp = backend.xp
    fold = b.ndim == 2 and a.ndim > 2

    def backward(grad):
        grad_a = grad_b = None
        if a.requires_grad:
            if fold:
                grad_a = (grad.reshape(-1, grad.shape[-1]) @ b.data.T).reshape(a.shape)
            else:
                grad_a = ops.unbroadcast(row_major_product(grad, xp.swapaxes(b.data, -1, -2)), a.shape)
        if b.requires_grad:
            if b.ndim == 2 and a.ndim >= 2:
                grad_b = weight_gradient(a.data.reshape(-1, a.shape[-1]), grad.reshape(-1, grad.shape[-1]))
            else:
                grad_b = ops.unbroadcast(row_major_product(xp.swapaxes(a.data, -1, -2), grad), b.shape)
        return grad_a, grad_b
    if fold:
        out = (a.data.reshape(-1, a.shape[-1]) @ b.data).reshape(a.shape[:-1] + b.shape[-1:])
    else:
        out = row_major_product(a.data, b.data)
    return Tensor.from_op(out, (a, b), backward, "matmul")


def weight_gradient(rows, grad):
    """dL/dW = rows^T @ grad for rows (N, k) and grad (N, m), a (k, m) row-major array. When
    k < m it is computed as (grad^T @ rows)^T and copied back to row-major order: OpenBLAS
    runs a product with a long inner axis faster when its output has more rows than columns
    (the FFN's (384, 1536) gradient at N = 4096: 62 ms one way, 45 ms the other, on the
    machine of docs/performance-log.md)."""
    if rows.shape[1] < grad.shape[1]:
        return backend.xp.ascontiguousarray((grad.T @ rows).T)
    return rows.T @ grad


def row_major_product(a, b):
    """a @ b for arrays, where a stack of matrices whose rows are not contiguous in memory
    (a permuted or transposed view, as in attention) is first copied to row-major order,
    if it is no larger than the product, and two NumPy stacks of the same leading shape are
    multiplied a share of the stack per core."""
    xp = backend.xp
    if a.ndim > 2 and b.ndim > 2:
        k, n, m = a.shape[-1], a.shape[-2], b.shape[-1]
        out_size = max(a.size // k * m, b.size // k * n)  # batch * n * m
        if a.strides[-1] != a.itemsize and a.size <= out_size:
            a = xp.ascontiguousarray(a)
        if b.strides[-1] != b.itemsize and b.size <= out_size:
            b = xp.ascontiguousarray(b)
        if xp is numpy and a.shape[:-2] == b.shape[:-2]:
            return parallel.matmul_over_stack(a, b)
    return a @ b
