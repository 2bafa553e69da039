"""Exercise 02 (chapter 2, docs/02-gradients.md): layer norm's backward.

Copy this file into a folder of your own, keeping its name (mine/: make capstone finds your
answers there), write the body of layer_norm_backward, and check it:

    python -m tools.exercises check 02 mine/02_layer_norm_backward.py

The forward, over the last axis of x (..., C), with weight and bias (C,):

    mu = mean(x),  var = mean((x - mu)^2),  r = 1 / sqrt(var + eps)
    x_hat = (x - mu) * r,  y = x_hat * weight + bias

Given g = dL/dy (x's shape), return dL/dx (x's shape), dL/dweight and dL/dbias (both (C,)).

Try it first, on paper: x reaches y three ways, directly through x - mu, through mu, and
through r (the variance depends on every entry of the row). Follow each path back from y, and
remember that weight and bias are used by every row. Chapter 2's "Layer norm" derives it; read
it after your attempt, or when the checker's hint leaves you stuck.

Recompute what you need from x: tinybert.functional.layer_norm's backward keeps values from
its forward, but yours receives only x.
"""
import numpy as np


def layer_norm_backward(grad, x, weight, eps):
    """grad, x: (..., C); weight: (C,); eps: the small number added to the variance.
    Returns (dL/dx (..., C), dL/dweight (C,), dL/dbias (C,))."""
    raise NotImplementedError("write this: see docs/02-gradients.md")
