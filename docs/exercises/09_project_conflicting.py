"""Exercise 09 (chapter 9, docs/09-pcgrad.md): PCGrad's projection of one task's gradient.

Copy this file to one of your own, write the body of project_conflicting, and check it:

    python -m tools.exercises check 09 my_project_conflicting.py

g is task i's gradient, others the other tasks' ORIGINAL gradients g_j, in the order to visit
them (tinybert.pcgrad draws a random order; here it is given). Starting from g' = g, for each
g_j in turn:

    if g' . g_j < 0:   g' <- g' - (g' . g_j / |g_j|^2) g_j

Where the two agree (g' . g_j >= 0), g' is left as it is. Return the final g'.
"""
import numpy as np


def project_conflicting(g, others):
    """g: a 1-D float64 array; others: a list of arrays of g's shape.
    Returns g after the projections, g's shape."""
    raise NotImplementedError("write this: see docs/09-pcgrad.md")
