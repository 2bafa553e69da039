"""Exercise 12 (chapter 1, docs/01-autograd.md): backward()'s walk over the graph.

Copy this file into a folder of your own, keeping its name (mine/: make capstone finds your
answers there), write the body of tensor_backward, and check it:

    python -m tools.exercises check 12 mine/12_tensor_backward.py

The forward has already built a graph of nodes. Each node has

    node.value     its array
    node.parents   a tuple of the nodes it was computed from; () for a leaf (an input)
    node.vjp       for an interior node, a function: given dL/d(node), an array of node.value's
                   shape, it returns a tuple with dL/d(parent) for each of node.parents, in the
                   same order, each already of that parent's shape; None for a leaf
    node.grad      None, or an array a previous backward left there
    node.name      a string, for your own messages

The same node may appear among the parents of several nodes, or twice among one node's
parents (y * y). root is the node L was computed at, seed is dL/d(root) (root's shape).

Write the walk Tensor.backward does (tinybert/tensor.py is the answer, so try first): afterwards
every leaf's .grad must hold dL/d(leaf), ADDED to whatever .grad held before (None counts as
nothing), and each interior node's vjp must be called exactly once, with the whole of
dL/d(node). The interior nodes' own .grad is not checked.

Try it first: what must have happened before a node may call its vjp? Which order of the
nodes guarantees it? The check includes a chain of 3000 nodes. Chapter 1 ("Why backward,
and in what order" and "A tensor used twice") answers these after your attempt.
"""
import numpy as np


def tensor_backward(root, seed):
    """root: the output node; seed: dL/d(root), an array of root.value's shape.
    Returns nothing: sets .grad on the leaves."""
    raise NotImplementedError("write this: see docs/01-autograd.md")
