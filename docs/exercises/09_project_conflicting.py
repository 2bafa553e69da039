"""Exercise 09 (chapter 9, docs/09-pcgrad.md): PCGrad's projection of one task's gradient.

Copy this file into a folder of your own, keeping its name (mine/: make capstone finds your
answers there), write the body of project_conflicting, and check it:

    python -m tools.exercises check 09 mine/09_project_conflicting.py

g is task i's gradient, others the other tasks' ORIGINAL gradients g_j, in the order to visit
them (tinybert.pcgrad draws a random order; here it is given). Starting from g' = g, visit each
g_j in turn: where g' conflicts with g_j (the two point against each other), remove from g' its
component along g_j, so that afterwards g' no longer pushes against g_j; where they agree, leave
g' as it is. Return the final g'.

Try it first: write the component of one vector along another with a dot product, and check on
paper that what is left is orthogonal to g_j. Chapter 9 gives the rule; read it after your attempt.
"""
import numpy as np


def project_conflicting(g, others):
    """g: a 1-D float64 array; others: a list of arrays of g's shape.
    Returns g after the projections, g's shape."""
    raise NotImplementedError("write this: see docs/09-pcgrad.md")
