"""Fast kernels of ``functional.softmax``, ``layer_norm`` and ``gelu``: the same formulas with
fewer passes over memory and fewer full-size temporaries.

- softmax and layer_norm compute in place on arrays they have just made (one array where the
  reference makes three), which also lowers the training step's peak memory: the saved
  activations are the largest arrays of a step.
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
    """``functional.softmax``: the scores, then y, in one array; the backward in one more."""
    xp = backend.xp
    out = x.data + mask if mask is not None else x.data.copy()   # the scores, then y in place
    out -= out.max(axis=-1, keepdims=True)
    xp.exp(out, out=out)
    out /= out.sum(axis=-1, keepdims=True)

    def backward(grad):
        grad_x = grad * out
        row_sum = grad_x.sum(axis=-1, keepdims=True)
        xp.subtract(grad, row_sum, out=grad_x)
        grad_x *= out
        return (grad_x,)
    return Tensor.from_op(out, (x,), backward, "softmax")


def layer_norm(x, weight, bias, eps=1e-12):
    """``functional.layer_norm``: xhat made in place from the centred input; the backward's
    g * xhat, dxhat * xhat and xhat * mean(dxhat * xhat) share one scratch array."""
    xp = backend.xp
    normed = x.data - x.data.mean(axis=-1, keepdims=True)                 # centred
    rstd = 1.0 / xp.sqrt((normed * normed).mean(axis=-1, keepdims=True) + eps)
    normed *= rstd                                                       # xhat

    def backward(grad):
        scratch = grad * normed
        C = grad.shape[-1]
        grad_weight = scratch.reshape(-1, C).sum(axis=0)
        grad_bias = grad.reshape(-1, C).sum(axis=0)
        grad_x = grad * weight.data                                      # dxhat
        xp.multiply(grad_x, normed, out=scratch)
        xp.multiply(normed, scratch.mean(axis=-1, keepdims=True), out=scratch)
        grad_x -= grad_x.mean(axis=-1, keepdims=True)
        grad_x -= scratch
        grad_x *= rstd
        return grad_x, grad_weight, grad_bias
    out = normed * weight.data
    out += bias.data
    return Tensor.from_op(out, (x, weight, bias), backward, "layer_norm")


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
