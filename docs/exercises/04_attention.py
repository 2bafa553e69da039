"""Exercise 04 (chapter 4, docs/04-bert.md): scaled dot-product attention with the padding mask.

Copy this file into a folder of your own, keeping its name (mine/: make capstone finds your
answers there), write the body of attention, and check it:

    python -m tools.exercises check 04 mine/04_attention.py

The heads are already split (the projections x Wq + bq, ... and the reshape are done):
q, k and v are (B, nh, T, hs). For every sentence and head:

    scores  = q @ k^T / sqrt(hs)                (B, nh, T, T): one row per query token
    scores  = scores + mask                     0 where the key is a token, a very large
                                                negative number where it is padding
    probs   = softmax(scores) over the last axis (subtract each row's max before exp)
    context = probs @ v                         (B, nh, T, hs)

attention_mask is (B, T): 1 for a real token, 0 for padding (the tokenizer's, chapter 6).
Turn it into the additive mask yourself, shaped to broadcast along the keys.
"""
import numpy as np


def attention(q, k, v, attention_mask):
    """q, k, v: (B, nh, T, hs) float64 arrays; attention_mask: (B, T) of 1 and 0.
    Returns the context, (B, nh, T, hs)."""
    raise NotImplementedError("write this: see docs/04-bert.md")
