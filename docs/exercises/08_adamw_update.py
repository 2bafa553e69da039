"""Exercise 08 (chapter 8, docs/08-adamw.md): one step of AdamW.

Copy this file into a folder of your own, keeping its name (mine/: make capstone finds your
answers there), write the body of adamw_update, and check it:

    python -m tools.exercises check 08 mine/08_adamw_update.py

Step t (t = 1, 2, ...) on a parameter p with gradient g. The optimiser's state is two arrays of
p's shape, zeros before step 1: m, an exponential moving average of g with factor beta1, and v,
one of g^2 with factor beta2 (betas = (beta1, beta2)). Return the new p, m and v.

Write the update from what each piece is for; chapter 8 derives it, read it after your attempt:
- the step divides the average of g by the square root of the average of g^2, so every entry
  moves by about lr whatever its gradient's scale; eps keeps the division finite;
- m and v start at 0, so after t steps they are too small by a factor you can compute: undo it
  in what the step uses, but keep m and v themselves as the state;
- weight decay shrinks p by lr * weight_decay of itself, decoupled: it never passes through m
  or v, and (as torch does) it comes before the Adam step.
"""
import numpy as np


def adamw_update(p, g, m, v, lr, weight_decay, betas, eps, t):
    """p, g, m, v: float64 arrays of one shape; lr, weight_decay, eps: floats; betas: (beta1,
    beta2); t: the step number, from 1. Returns the new (p, m, v)."""
    raise NotImplementedError("write this: see docs/08-adamw.md")
