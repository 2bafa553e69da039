"""Neural-network ops: the fused ones, each with its own backward, and a few composed ones.

Softmax, log-softmax, layer norm, GELU, dropout, embedding lookup, cross entropy and binary
cross entropy are fused, i.e. written as one op with a hand-derived backward rather than a
chain of primitives: each would otherwise keep several full-size intermediates alive for
backward and, for the exponentials, lose numerical stability. Linear, MSE, cosine
similarity, masked mean pooling and the symmetric KL divergence are composed from
primitives and need no backward of their own.

Shapes: N rows (any leading axes), C classes or channels, V vocabulary, D embedding width.
"""
import math

from . import backend, ops, seam
from .tensor import Tensor


def _last_axis_max(array):
    return array.max(axis=-1, keepdims=True)


# ---------------------------------------------------------------- softmax family
@seam.has_fast_kernel
def softmax(x, mask=None):
    """y = softmax(x + mask) over the last axis; x: (..., C), mask additive, broadcastable
    (0 where allowed, a large negative number where masked).

    Subtracting the row maximum first keeps exp() from overflowing (logits of 1e4 are fine).
    dL/dx = y * (g - sum(g * y, last axis)).
    Fast kernel: ``fast.functional.softmax`` (tinybert/seam.py).
    """
    xp = backend.xp
    scores = x.data if mask is None else x.data + mask
    exps = xp.exp(scores - _last_axis_max(scores))
    out = exps / exps.sum(axis=-1, keepdims=True)

    def backward(grad):
        return (out * (grad - (grad * out).sum(axis=-1, keepdims=True)),)
    return Tensor.from_op(out, (x,), backward, "softmax")


def log_softmax(x, mask=None):
    """y = x + mask - logsumexp(x + mask) over the last axis, computed stably.

    dL/dx = g - softmax(x) * sum(g, last axis).
    """
    xp = backend.xp
    scores = x.data if mask is None else x.data + mask
    shifted = scores - _last_axis_max(scores)
    out = shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))

    def backward(grad):
        return (grad - xp.exp(out) * grad.sum(axis=-1, keepdims=True),)
    return Tensor.from_op(out, (x,), backward, "log_softmax")


# ---------------------------------------------------------------- normalisation, activation
@seam.has_fast_kernel
def layer_norm(x, weight, bias, eps=1e-12):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last axis; x: (..., C),
    weight and bias: (C,).

    With xhat = (x - mean) * rstd and dxhat = g * weight:
    dL/dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),
    dL/dweight = sum over rows of g * xhat,  dL/dbias = sum over rows of g.
    Fast kernel: ``fast.functional.layer_norm`` (tinybert/seam.py).
    """
    C = x.shape[-1]
    mean = x.data.mean(axis=-1, keepdims=True)
    centred = x.data - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    rstd = 1.0 / backend.xp.sqrt(variance + eps)                       # 1 / standard deviation
    xhat = centred * rstd

    def backward(grad):
        grad_weight = (grad * xhat).reshape(-1, C).sum(axis=0)
        grad_bias = grad.reshape(-1, C).sum(axis=0)
        dxhat = grad * weight.data
        grad_x = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                         - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
        return grad_x, grad_weight, grad_bias
    return Tensor.from_op(xhat * weight.data + bias.data, (x, weight, bias), backward, "layer_norm")


@seam.has_fast_kernel
def gelu(x):
    """y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), the exact GELU that BERT uses.

    dL/dx = g * (Phi(x) + x * phi(x)),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi), the normal density.
    Fast kernel: ``fast.functional.gelu`` (tinybert/seam.py).
    """
    xp = backend.xp
    cdf = 0.5 * (1.0 + backend.erf(x.data * (1.0 / math.sqrt(2.0))))       # Phi(x)

    def backward(grad):
        pdf = xp.exp(-0.5 * x.data * x.data) * (1.0 / math.sqrt(2.0 * math.pi))   # phi(x)
        return (grad * (cdf + x.data * pdf),)
    return Tensor.from_op(x.data * cdf, (x,), backward, "gelu")


def dropout(x, p, training):
    """Inverted dropout: in training, y = x * keep / (1 - p) with keep ~ Bernoulli(1 - p)
    drawn from the backend's seeded generator; in eval (or p = 0), y = x.

    dL/dx = g * keep / (1 - p). ``keep`` is saved as booleans, a quarter of a float mask.
    """
    if not training or p == 0.0:
        return x
    scale = 1.0 / (1.0 - p)
    keep = backend.rng().random(x.shape, dtype=x.data.dtype) >= p

    def backward(grad):
        grad_x = grad * keep
        grad_x *= scale
        return (grad_x,)
    out = x.data * keep
    out *= scale
    return Tensor.from_op(out, (x,), backward, "dropout")


# ---------------------------------------------------------------- lookup, linear
def embedding(ids, weight, padding_idx=None):
    """y = weight[ids]; ids: integer array (...), weight: (V, D), y: (..., D).

    dL/dweight = zeros (V, D) with each row of g added at its id (scatter-add, so an id
    that occurs twice gets both rows). The row ``padding_idx``, if given, gets no gradient:
    padding is not a word to learn (BERT's [PAD] embedding stays as pretrained).
    """
    xp = backend.xp
    ids = ids.data if isinstance(ids, Tensor) else xp.asarray(ids)

    def backward(grad):
        full = xp.zeros_like(weight.data)
        xp.add.at(full, ids.reshape(-1), grad.reshape(-1, weight.shape[1]))
        if padding_idx is not None:
            full[padding_idx] = 0
        return (full,)
    return Tensor.from_op(weight.data[ids], (weight,), backward, "embedding")


def linear(x, weight, bias=None):
    """y = x @ weight + bias; x: (..., in), weight: (in, out), bias: (out,). Composed."""
    out = ops.matmul(x, weight)
    return out if bias is None else ops.add(out, bias)


# ---------------------------------------------------------------- losses
def cross_entropy(logits, targets):
    """L = mean over rows of -log softmax(logits)[target]; logits: (N, C), targets: (N,) ints.

    dL/dlogits = (softmax(logits) - onehot(targets)) / N  (times the incoming scalar g).
    """
    xp = backend.xp
    targets = targets.data if isinstance(targets, Tensor) else xp.asarray(targets)
    rows = xp.arange(logits.shape[0])
    shifted = logits.data - _last_axis_max(logits.data)
    log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))
    loss = -log_probs[rows, targets].mean()

    def backward(grad):
        grad_logits = xp.exp(log_probs)
        grad_logits[rows, targets] -= 1.0
        return (grad_logits * (grad / logits.shape[0]),)
    return Tensor.from_op(loss, (logits,), backward, "cross_entropy")


def binary_cross_entropy_with_logits(logits, targets):
    """L = mean of -[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))], computed stably as
    max(x, 0) - x t + log(1 + e^-|x|); logits and targets of the same shape.

    dL/dx = (sigmoid(x) - t) / N.
    """
    xp = backend.xp
    x = logits.data
    t = targets.data if isinstance(targets, Tensor) else xp.asarray(targets, dtype=x.dtype)
    loss = (xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))).mean()

    def backward(grad):
        return ((0.5 * (1.0 + xp.tanh(0.5 * x)) - t) * (grad / x.size),)
    return Tensor.from_op(loss, (logits,), backward, "bce_with_logits")


def mse_loss(prediction, target):
    """L = mean((prediction - target)^2). Composed."""
    difference = ops.sub(prediction, target)
    return ops.mean(ops.mul(difference, difference))


def cosine_similarity(a, b, eps=1e-8):
    """cos(a, b) = a.b / (|a| |b|) along the last axis; a, b: (N, D) -> (N,). Composed."""
    dot = ops.sum(ops.mul(a, b), axis=-1)
    norm_a = ops.sqrt(ops.add(ops.sum(ops.mul(a, a), axis=-1), eps))
    norm_b = ops.sqrt(ops.add(ops.sum(ops.mul(b, b), axis=-1), eps))
    return ops.div(dot, ops.mul(norm_a, norm_b))


def masked_mean(hidden, attention_mask):
    """Mean of hidden (B, T, D) over the positions where attention_mask (B, T) is 1 -> (B, D).
    Composed: sum(hidden * mask) / sum(mask)."""
    mask = backend.xp.asarray(attention_mask, dtype=hidden.data.dtype)[:, :, None]  # (B, T, 1)
    total = ops.sum(ops.mul(hidden, mask), axis=1)
    return ops.div(total, backend.xp.maximum(mask.sum(axis=1), 1.0))


def symmetric_kl(logits_p, logits_q):
    """KL(p||q) + KL(q||p) = sum_c (p_c - q_c)(log p_c - log q_c), averaged over rows;
    logits: (N, C). Composed from log_softmax (SMART's divergence for classifiers)."""
    log_p, log_q = log_softmax(logits_p), log_softmax(logits_q)
    per_class = ops.mul(ops.sub(ops.exp(log_p), ops.exp(log_q)), ops.sub(log_p, log_q))
    return ops.mean(ops.sum(per_class, axis=-1))
