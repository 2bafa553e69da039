"""Exercise 01 (chapter 1, docs/01-autograd.md): the backward of mul, with broadcasting.

Copy this file to one of your own, write the body of mul_backward, and check it:

    python -m tools.exercises check 01 my_mul_backward.py

y = a * b elementwise, with NumPy's broadcasting: a and b may have different shapes, and y
has their broadcast shape (a (2, 3, 4) times b (3, 1) is (2, 3, 4)). Given g = dL/dy, with
y's shape, return

    dL/da = g * b, summed back to a's shape
    dL/db = g * a, summed back to b's shape

Summed back: where broadcasting added leading axes or stretched an axis of size 1, each entry
was copied, every copy contributed to L, and the entry's gradient is the sum over its copies
(chapter 1, "Broadcasting: the adjoint of a copy is a sum"). Write that sum with NumPy's
.sum(axis=..., keepdims=...) yourself: tinybert.ops.unbroadcast is the answer.
"""
import numpy as np


def mul_backward(grad, a, b):
    """grad: dL/dy, the shape of a * b; a, b: the inputs. All float64 NumPy arrays.
    Returns (dL/da with a's shape, dL/db with b's shape)."""
    raise NotImplementedError("write this: see docs/01-autograd.md")
