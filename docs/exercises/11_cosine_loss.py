"""Exercise 11 (chapter 11, docs/11-cosine.md): the cosine-similarity loss and its gradients.

Copy this file into a folder of your own, keeping its name (mine/: make capstone finds your
answers there), write the body of cosine_loss, and check it:

    python -m tools.exercises check 11 mine/11_cosine_loss.py

u and v are the two sentences' embeddings, B pairs of C numbers; labels are STS's 0-5 scores.

    cos_b = u_b . v_b / (|u_b| |v_b|)                          (B,)
    L     = mean over the B pairs of (cos_b - label_b / 5)^2

Return L, dL/du and dL/dv, both (B, C). Try it first: the chain rule through the mean and the
square gives dL/dcos_b; then differentiate the quotient cos_b with respect to u_b (you need
d|u|/du). Chapter 11's first exercise asks for the same derivation.

(tinybert.functional.cosine_similarity adds 1e-8 inside each square root against a zero
vector; the check's vectors are far from zero, so you may leave it out.)
"""
import numpy as np


def cosine_loss(u, v, labels):
    """u, v: (B, C) float64 arrays; labels: (B,) floats from 0 to 5.
    Returns (the loss L, a float; dL/du, (B, C); dL/dv, (B, C))."""
    raise NotImplementedError("write this: see docs/11-cosine.md")
