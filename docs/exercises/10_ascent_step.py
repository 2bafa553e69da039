"""Exercise 10 (chapter 10, docs/10-smart.md): one step of SMART's ascent on the perturbation.

Copy this file into a folder of your own, keeping its name (mine/: make capstone finds your
answers there), write the body of ascent_step, and check it:

    python -m tools.exercises check 10 mine/10_ascent_step.py

delta is the perturbation of one segment's embeddings, grad = d l_s / d delta, both (B, T, C):
B examples of T tokens of C features. Algorithm 1 of the SMART paper (the "paper" variant of
tinybert.smart) takes one step of an ascent on delta and keeps delta in the ball
||delta||_inf <= eps. Write that step, with eta = config.eta and eps = config.epsilon (config
is a tinybert.smart.SmartConfig):

- SMART wants the perturbation that changes the model's output the most: which way is that?
- the step is normalised with the norm that matches the ball, separately for every EXAMPLE b
  (one example's gradient may be a thousand times another's), so that the largest entry of
  each example moves by exactly eta;
- the new delta must lie in the ball.

An example's gradient can be zero everywhere: an STS pair of two identical sentences, whose
cosine is 1 at its maximum (the bundled sample has 8). That example's step is 0, not 0 / 0.
Chapter 10 writes Algorithm 1 out; try first, then read it.
"""
import numpy as np


def ascent_step(delta, grad, config):
    """delta, grad: (B, T, C) float64 arrays; config: has .eta and .epsilon (floats).
    Returns the new delta, (B, T, C)."""
    raise NotImplementedError("write this: see docs/10-smart.md")
