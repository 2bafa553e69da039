"""Exercise 07 (chapter 7, docs/07-multitask.md): binary cross entropy from logits, and its gradient.

Copy this file into a folder of your own, keeping its name (mine/: make capstone finds your
answers there), write the body of bce_with_logits, and check it:

    python -m tools.exercises check 07 mine/07_bce_with_logits.py

The paraphrase head's loss: for N logits x and targets t (0 or 1), with sigmoid(x) = 1 / (1 + e^-x),

    L = mean over the N of -[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))]

Return L and dL/dx, shape (N,). Try it first: differentiate one term by hand (log sigmoid(x)
and log(1 - sigmoid(x)) have short derivatives), then remember the mean.

The check includes logits of 40 and 800, where sigmoid(x) rounds to exactly 1 and the formula
above takes log(0): rewrite L in a form in which no exponential can overflow (chapter 7 shows
one; try first), and compute sigmoid itself without overflow too (exp(800) is inf).
"""
import numpy as np


def bce_with_logits(logits, targets):
    """logits, targets: (N,) float64 arrays, targets 0.0 or 1.0.
    Returns (the loss L, a float; dL/dlogits, (N,))."""
    raise NotImplementedError("write this: see docs/07-multitask.md")
