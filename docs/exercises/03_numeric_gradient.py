"""Exercise 03 (chapter 3, docs/03-gradcheck.md): a gradient by central differences.

Copy this file into a folder of your own, keeping its name (mine/: make capstone finds your
answers there), write the body of numeric_gradient, and check it:

    python -m tools.exercises check 03 mine/03_numeric_gradient.py

loss is a function of one array that returns a number, L(x). Estimate every entry of dL/dx
from values of L alone, with a difference whose error shrinks like eps^2 rather than like eps
(chapter 3 says which one, and why, after you have tried): nudge one entry at a time, the
others held still.

Whatever you nudge, leave x as you found it (tinybert.gradcheck.relative_error nudges an entry
in place and puts it back). np.ndindex(x.shape) visits every index of an array of any shape.
"""
import numpy as np


def numeric_gradient(loss, x, eps):
    """loss: a function of an array of x's shape, returning a float; x: a float64 array;
    eps: the step. Returns the estimate of dL/dx, an array of x's shape."""
    raise NotImplementedError("write this: see docs/03-gradcheck.md")
