"""Exercise 08 (chapter 8, docs/08-adamw.md): one step of AdamW.

Copy this file to one of your own, write the body of adamw_update, and check it:

    python -m tools.exercises check 08 my_adamw_update.py

Step t (t = 1, 2, ...) on a parameter p with gradient g and moments m, v (zeros before step 1),
elementwise, beta1, beta2 = betas:

    p <- p * (1 - lr * weight_decay)            decoupled weight decay, first
    m <- beta1 m + (1 - beta1) g
    v <- beta2 v + (1 - beta2) g^2
    m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)       bias correction
    p <- p - lr * m_hat / (sqrt(v_hat) + eps)

m and v are the optimiser's state: return them as they are, not their corrected copies.
"""
import numpy as np


def adamw_update(p, g, m, v, lr, weight_decay, betas, eps, t):
    """p, g, m, v: float64 arrays of one shape; lr, weight_decay, eps: floats; betas: (beta1,
    beta2); t: the step number, from 1. Returns the new (p, m, v)."""
    raise NotImplementedError("write this: see docs/08-adamw.md")
