"""Fast kernels of ``functional.softmax``, ``layer_norm`` and ``gelu``: the same formulas with
fewer passes over memory and fewer full-size temporaries.

- softmax computes in place on arrays it has just made (one array where the reference makes
  three), which also lowers the training step's peak memory: the saved activations are the
  largest arrays of a step.
- softmax (on blocks along the batch axis) and layer_norm (on blocks of rows) run each
  block's passes while it is in cache, the blocks shared among the cores.
- gelu takes Phi(x) from the rational erf of :mod:`tinybert.fast.erf` for float32 NumPy arrays
  (SciPy's erf is scalar code, about ten times slower a value), and runs its backward's seven
  passes on one cache-sized block at a time, the blocks shared among the cores
  (:func:`tinybert.fast.parallel.blockwise`).
"""
import math

import numpy

from .. import backend
from ..tensor import Tensor
from . import erf, parallel


def softmax(x, mask=None):
    """``functional.softmax`` on blocks along the first axis (the batch), shared among the
    cores: in each block the scores, then y, in one array; the backward in one more."""
    xp = backend.xp
    items = x.shape[0] if x.ndim > 1 else 1        # the softmax axis itself is never split
    out = xp.empty(x.shape, x.dtype if mask is None else xp.result_type(x.data, mask))
    block = row_blocks(items, max(1, x.data.size // items))

    def forward_items(start, stop):
        scores = out[start:stop]                   # the scores, then y in place
        if mask is None:
            scores[...] = x.data[start:stop]
        else:
            xp.add(x.data[start:stop], _mask_of(mask, x, start, stop), out=scores)
        scores -= scores.max(axis=-1, keepdims=True)
        xp.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
    parallel.for_blocks(items, block, forward_items)

    def backward(grad):
        grad_x = xp.empty_like(out)

        def backward_items(start, stop):
            g, y, dx = grad[start:stop], out[start:stop], grad_x[start:stop]
            xp.multiply(g, y, out=dx)
            xp.subtract(g, dx.sum(axis=-1, keepdims=True), out=dx)
            dx *= y
        parallel.for_blocks(items, block, backward_items)
        return (grad_x,)
    return Tensor.from_op(out, (x,), backward, "softmax")


def _mask_of(mask, x, start, stop):
    """The part of an additive mask (broadcast against x) that items start:stop of x use."""
    if mask.ndim == x.ndim and mask.shape[0] == x.shape[0]:
        return mask[start:stop]
    return mask


def row_blocks(rows, columns):
    """Rows per block of a (rows, columns) array: about ``parallel.BLOCK`` values on the CPU,
    all of them at once on the GPU (which is parallel already)."""
    return max(1, parallel.BLOCK // columns) if backend.xp is numpy else rows


def layer_norm(x, weight, bias, eps=1e-12):
    """``functional.layer_norm`` on blocks of rows, shared among the cores (rows are
    independent): each block's passes run while it is in cache, with no full-size temporary
    but xhat and the output. dL/dweight and dL/dbias are summed per block, then over blocks."""
    xp = backend.xp
    C = x.shape[-1]
    rows = x.data.reshape(-1, C)
    xhat, out = xp.empty_like(rows), xp.empty_like(rows)
    rstd = xp.empty((rows.shape[0], 1), rows.dtype)
    block = row_blocks(rows.shape[0], C)

    def forward_rows(start, stop):
        x_rows, xhat_rows, rstd_rows = rows[start:stop], xhat[start:stop], rstd[start:stop]
        xp.subtract(x_rows, x_rows.mean(axis=-1, keepdims=True), out=xhat_rows)     # centred
        xp.sqrt((xhat_rows * xhat_rows).mean(axis=-1, keepdims=True) + eps, out=rstd_rows)
        xp.divide(1.0, rstd_rows, out=rstd_rows)
        xhat_rows *= rstd_rows
        xp.multiply(xhat_rows, weight.data, out=out[start:stop])
        out[start:stop] += bias.data
    parallel.for_blocks(rows.shape[0], block, forward_rows)

    def backward(grad):
        grad_rows = grad.reshape(-1, C)
        grad_x = xp.empty_like(grad_rows)
        partial_weight = xp.empty((-(-rows.shape[0] // block), C), rows.dtype)   # one row a block
        partial_bias = xp.empty_like(partial_weight)

        def backward_rows(start, stop):
            g, xhat_rows, dx = grad_rows[start:stop], xhat[start:stop], grad_x[start:stop]
            product = g * xhat_rows
            product.sum(axis=0, out=partial_weight[start // block])
            g.sum(axis=0, out=partial_bias[start // block])
            xp.multiply(g, weight.data, out=dx)                                   # dxhat
            xp.multiply(dx, xhat_rows, out=product)
            xp.multiply(xhat_rows, product.mean(axis=-1, keepdims=True), out=product)
            dx -= dx.mean(axis=-1, keepdims=True)
            dx -= product
            dx *= rstd[start:stop]
        parallel.for_blocks(rows.shape[0], block, backward_rows)
        return grad_x.reshape(x.shape), partial_weight.sum(axis=0), partial_bias.sum(axis=0)
    return Tensor.from_op(out.reshape(x.shape), (x, weight, bias), backward, "layer_norm")


def normal_cdf(array):
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2 elementwise: the rational erf for float32 NumPy
    arrays, the backend's exact erf otherwise (float64 gradient checks, CuPy)."""
    if isinstance(array, numpy.ndarray) and array.dtype == numpy.float32:
        return erf.normal_cdf(array)
    cdf = backend.erf(array * (1.0 / math.sqrt(2.0)))
    cdf += 1.0
    cdf *= 0.5
    return cdf


def gelu(x):
    """``functional.gelu``: Phi from :func:`normal_cdf`, the backward in blocks on every core."""
    xp = backend.xp
    cdf = normal_cdf(x.data)                                     # Phi(x)

    def backward(grad):
        def chain(x, cdf, grad, out):                            # out = grad * (Phi(x) + x phi(x))
            xp.multiply(x, x, out=out)
            out *= -0.5
            xp.exp(out, out=out)
            out *= x
            out *= 1.0 / math.sqrt(2.0 * math.pi)                # x phi(x)
            out += cdf
            out *= grad
        grad_x = xp.empty(grad.shape, grad.dtype)
        parallel.blockwise(chain, x.data, cdf, grad, grad_x)    # seven passes per block, in cache
        return (grad_x,)
    return Tensor.from_op(x.data * cdf, (x,), backward, "gelu")
