"""Exercise 01 (chapter 1, docs/01-autograd.md): the backward of mul, with broadcasting.

Copy this file into a folder of your own, keeping its name (mine/: make capstone finds your
answers there), write the body of mul_backward, and check it:

    python -m tools.exercises check 01 mine/01_mul_backward.py

The forward: y = a * b elementwise, with NumPy's broadcasting: a and b may have different
shapes, and y has their broadcast shape (a (2, 3, 4) times b (3, 1) is (2, 3, 4)). Given
g = dL/dy, with y's shape, return dL/da with a's shape and dL/db with b's shape.

Try it first: work out the derivative of one entry of y with respect to one entry of a, then
ask what broadcasting did to an entry of b that y holds in several places, and what that means
for its gradient. Chapter 1 ("Broadcasting") derives it; read it after your attempt. Write any
reduction with NumPy yourself: tinybert.ops.unbroadcast is the answer.
"""
import numpy as np


def mul_backward(grad, a, b):
    """grad: dL/dy, the shape of a * b; a, b: the inputs. All float64 NumPy arrays.
    Returns (dL/da with a's shape, dL/db with b's shape)."""
    raise NotImplementedError("write this: see docs/01-autograd.md")
