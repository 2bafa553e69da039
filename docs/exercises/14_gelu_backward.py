"""Exercise 14 (chapter 2, docs/02-gradients.md): the backward of the exact GELU.

Copy this file into a folder of your own, keeping its name (mine/: make capstone finds your
answers there), write the body of gelu_backward, and check it:

    python -m tools.exercises check 14 mine/14_gelu_backward.py

The forward, elementwise, as BERT computes it:

    y = GELU(x) = x * Phi(x),   Phi(x) = (1 + erf(x / sqrt(2))) / 2

Phi is the cumulative distribution function of a standard normal variable; erf is
scipy.special.erf (it works on arrays). Given g = dL/dy, of x's shape, return dL/dx.

Try it first: y is a product, and Phi is an integral whose derivative you know. Chapter 2
("GELU") derives it after your attempt. GPT-2's tanh approximation of GELU is not this function.
"""
import numpy as np
from scipy.special import erf


def gelu_backward(grad, x):
    """grad, x: float64 arrays of one shape. Returns dL/dx, x's shape."""
    raise NotImplementedError("write this: see docs/02-gradients.md")
