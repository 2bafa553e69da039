"""Exercise 10 (chapter 10, docs/10-smart.md): one step of SMART's ascent on the perturbation.

Copy this file to one of your own, write the body of ascent_step, and check it:

    python -m tools.exercises check 10 my_ascent_step.py

delta is the perturbation of one segment's embeddings, grad = d l_s / d delta, both (B, T, C):
B examples of T tokens of C features. Algorithm 1 of the SMART paper (the "paper" variant of
tinybert.smart) moves delta up the gradient by a normalised step, then projects it back onto
the ball ||delta||_inf <= eps:

    n_b     = max over t, c of |grad_btc|          one number per EXAMPLE b, (B, 1, 1)
    moved   = delta + eta * grad / n_b             the largest entry of each example moves by eta
    delta'  = clip(moved, -eps, eps)               the projection, AFTER the step

eta is config.eta and eps config.epsilon (config is a tinybert.smart.SmartConfig). Where an
example's gradient is all zero (n_b = 0) tinybert leaves its step at 0 rather than divide 0 by
0; the check's gradients are far from zero, so you may leave that out. (For the bi-encoder,
tinybert passes one n_b for both sentences of a pair; here, one segment, n_b is its own.)
"""
import numpy as np


def ascent_step(delta, grad, config):
    """delta, grad: (B, T, C) float64 arrays; config: has .eta and .epsilon (floats).
    Returns the new delta, (B, T, C)."""
    raise NotImplementedError("write this: see docs/10-smart.md")
