"""Exercise 02 (chapter 2, docs/02-gradients.md): layer norm's backward.

Copy this file to one of your own, write the body of layer_norm_backward, and check it:

    python -m tools.exercises check 02 my_layer_norm_backward.py

The forward, over the last axis of x (..., C), with weight and bias (C,):

    mu = mean(x),  var = mean((x - mu)^2),  r = 1 / sqrt(var + eps)
    x_hat = (x - mu) * r,  y = x_hat * weight + bias

Given g = dL/dy (x's shape), with d = g * weight (the gradient reaching x_hat) and every mean
taken over the last axis (keepdims, so it broadcasts back):

    dL/dx      = r * (d - mean(d) - x_hat * mean(d * x_hat))        (..., C)
    dL/dweight = sum over all rows of g * x_hat                     (C,)
    dL/dbias   = sum over all rows of g                             (C,)

Recompute mu, r and x_hat from x: the backward of tinybert.functional.layer_norm keeps them
from its forward, but yours receives only x.
"""
import numpy as np


def layer_norm_backward(grad, x, weight, eps):
    """grad, x: (..., C); weight: (C,); eps: the small number added to the variance.
    Returns (dL/dx (..., C), dL/dweight (C,), dL/dbias (C,))."""
    raise NotImplementedError("write this: see docs/02-gradients.md")
