"""The primitive ops: the small closed set everything else is composed from.

Each op computes its output and, right below, the closure that maps the gradient of the
loss with respect to the output, ``grad`` (same shape as the output), to the gradient with
respect to each input. Notation: ``x``, ``a``, ``b`` inputs, ``y`` output, ``g = dL/dy``.

Primitives: add, mul, pow (by a constant), matmul, sum, reshape, permute, getitem,
concatenate, exp, log, tanh.
Composed here from them: neg, sub, div, mean, sqrt, transpose, sigmoid.
The fused neural-network ops (softmax, layer norm, GELU, losses...) are in
:mod:`tinybert.functional`.
"""
import itertools

from . import backend, seam
from .tensor import Tensor


def as_tensor(value, like=None):
    """``value`` as a Tensor; a Python number or array becomes a constant of ``like``'s dtype."""
    if isinstance(value, Tensor):
        return value
    dtype = like.data.dtype if like is not None else None
    return Tensor(backend.xp.asarray(value, dtype=dtype))


def _pair(a, b):
    """Both operands of a binary op as Tensors; a constant takes the other's dtype."""
    if isinstance(a, Tensor):
        return a, as_tensor(b, a)
    return as_tensor(a, b), b


def unbroadcast(grad, shape):
    """The adjoint of broadcasting is a sum: reduce ``grad`` back to ``shape`` by summing
    over the axes broadcasting added or stretched from 1."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    stretched = tuple(i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    grad = grad.sum(axis=tuple(range(extra)) + stretched, keepdims=True)
    return grad.reshape(shape)


# ---------------------------------------------------------------- elementwise, binary
def add(a, b):
    """y = a + b (broadcasting).  dL/da = unbroadcast(g), dL/db = unbroadcast(g)."""
    a, b = _pair(a, b)

    def backward(grad):
        return unbroadcast(grad, a.shape), unbroadcast(grad, b.shape)
    return Tensor.from_op(a.data + b.data, (a, b), backward, "add")


def mul(a, b):
    """y = a * b (broadcasting).  dL/da = unbroadcast(g * b), dL/db = unbroadcast(g * a)."""
    a, b = _pair(a, b)

    def backward(grad):
        grad_a = unbroadcast(grad * b.data, a.shape) if a.requires_grad else None
        grad_b = unbroadcast(grad * a.data, b.shape) if b.requires_grad else None
        return grad_a, grad_b
    return Tensor.from_op(a.data * b.data, (a, b), backward, "mul")


def pow(x, exponent):
    """y = x ** c for a constant c.  dL/dx = g * c * x ** (c - 1)."""
    if isinstance(exponent, Tensor):
        raise TypeError("pow: the exponent must be a constant number")

    def backward(grad):
        return (grad * exponent * x.data ** (exponent - 1),)
    return Tensor.from_op(x.data ** exponent, (x,), backward, "pow")


def neg(x):
    """y = -x, composed as x * (-1)."""
    return mul(x, -1.0)


def sub(a, b):
    """y = a - b, composed as a + (-b)."""
    a, b = _pair(a, b)
    return add(a, neg(b))


def div(a, b):
    """y = a / b, composed as a * b ** -1 (or a * (1/b) when b is a constant)."""
    if not isinstance(b, Tensor):
        return mul(a, 1.0 / b)
    a, b = _pair(a, b)
    return mul(a, pow(b, -1.0))


# ---------------------------------------------------------------- matmul
@seam.has_fast_kernel
def matmul(a, b):
    """y = a @ b with NumPy's batched, broadcasting semantics; a: (..., n, k), b: (..., k, m).

    dL/da = g @ b^T,  dL/db = a^T @ g  (each summed over broadcast batch axes).
    Fast kernel: ``fast.ops.matmul`` (tinybert/seam.py).
    """
    a, b = as_tensor(a), as_tensor(b)
    xp = backend.xp

    def backward(grad):
        grad_a = unbroadcast(grad @ xp.swapaxes(b.data, -1, -2), a.shape) if a.requires_grad else None
        grad_b = unbroadcast(xp.swapaxes(a.data, -1, -2) @ grad, b.shape) if b.requires_grad else None
        return grad_a, grad_b
    return Tensor.from_op(a.data @ b.data, (a, b), backward, "matmul")


# ---------------------------------------------------------------- reductions
def sum(x, axis=None, keepdims=False):
    """y = sum of x over ``axis`` (int, tuple or None for all).  dL/dx = g broadcast back."""
    xp = backend.xp

    def backward(grad):
        if not keepdims and axis is not None:
            grad = xp.expand_dims(grad, axis)
        return (xp.broadcast_to(grad, x.shape),)
    return Tensor.from_op(x.data.sum(axis=axis, keepdims=keepdims), (x,), backward, "sum")


def mean(x, axis=None, keepdims=False):
    """y = sum(x, axis) / count, composed from sum and a constant multiply."""
    axes = range(x.ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    count = 1
    for a in axes:
        count *= x.shape[a]
    return mul(sum(x, axis, keepdims), 1.0 / count)


# ---------------------------------------------------------------- shape
def reshape(x, shape):
    """y = x viewed with a new shape.  dL/dx = g reshaped to x's shape."""
    def backward(grad):
        return (grad.reshape(x.shape),)
    return Tensor.from_op(x.data.reshape(shape), (x,), backward, "reshape")


def permute(x, axes):
    """y = x with its axes reordered.  dL/dx = g with the inverse permutation."""
    axes = tuple(a % x.ndim for a in axes)
    inverse = tuple(sorted(range(len(axes)), key=axes.__getitem__))

    def backward(grad):
        return (grad.transpose(inverse),)
    return Tensor.from_op(x.data.transpose(axes), (x,), backward, "permute")


def transpose(x, axis1=-2, axis2=-1):
    """Swap two axes, composed from permute."""
    axes = list(range(x.ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return permute(x, tuple(axes))


def _is_basic_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, slice)) or p is None or p is Ellipsis for p in parts)


def getitem(x, index):
    """y = x[index] (slices, integers or integer arrays).

    dL/dx = zeros with g written (basic index) or scatter-added (integer arrays, where an
    entry picked twice receives both gradients) at ``index``.
    """
    xp = backend.xp
    if isinstance(index, Tensor):
        index = index.data

    def backward(grad):
        full = xp.zeros_like(x.data)
        if _is_basic_index(index):
            full[index] = grad
        else:
            xp.add.at(full, index, grad)
        return (full,)
    return Tensor.from_op(x.data[index], (x,), backward, "getitem")


def concatenate(tensors, axis=0):
    """y = the inputs joined along ``axis``.  dL/dx_i = the slice of g that x_i filled."""
    xp = backend.xp
    tensors = [as_tensor(t) for t in tensors]
    ends = list(itertools.accumulate(t.shape[axis] for t in tensors))

    def backward(grad):
        return tuple(xp.split(grad, ends[:-1], axis=axis))
    return Tensor.from_op(xp.concatenate([t.data for t in tensors], axis=axis), tuple(tensors), backward, "concatenate")


# ---------------------------------------------------------------- elementwise, unary
def exp(x):
    """y = e^x.  dL/dx = g * y."""
    out = backend.xp.exp(x.data)

    def backward(grad):
        return (grad * out,)
    return Tensor.from_op(out, (x,), backward, "exp")


def log(x):
    """y = ln x.  dL/dx = g / x."""
    def backward(grad):
        return (grad / x.data,)
    return Tensor.from_op(backend.xp.log(x.data), (x,), backward, "log")


def tanh(x):
    """y = tanh x.  dL/dx = g * (1 - y^2)."""
    out = backend.xp.tanh(x.data)

    def backward(grad):
        return (grad * (1 - out * out),)
    return Tensor.from_op(out, (x,), backward, "tanh")


def sqrt(x):
    """y = x ** 0.5, composed from pow."""
    return pow(x, 0.5)


def sigmoid(x):
    """y = 1 / (1 + e^-x), composed as (1 + tanh(x/2)) / 2, which never overflows."""
    return mul(add(tanh(mul(x, 0.5)), 1.0), 0.5)
