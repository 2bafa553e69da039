"""Exercise 05 (chapter 5, docs/05-weights.md): Hugging Face's BERT tensors as tinybert's.

Copy this file into a folder of your own, keeping its name (mine/: make capstone finds your
answers there), write the body of hf_to_tinybert, and check it:

    python -m tools.exercises check 05 mine/05_hf_to_tinybert.py

hf_tensors holds a BERT's parameters as Hugging Face names them ("embeddings.word_embeddings.weight",
"encoder.layer.0.attention.self.query.weight", ..., "pooler.dense.bias"): exactly the model's
parameters, no "bert." prefix, no buffers. Return the same arrays under tinybert's names, the
paths through tinybert.model.BertModel's modules ("embeddings.word.weight",
"layers.0.attention.query.weight", ..., "pooler.bias"; print BertModel(config).state_dict().keys()
for the whole list), every tensor used exactly once.

Layouts: PyTorch's Linear stores its weight (out, in) and computes x W^T; tinybert's stores
(in, out) and computes x @ W. So every Linear weight is transposed; embedding tables, biases
and layer norms are not.
"""
import numpy as np


def hf_to_tinybert(hf_tensors, num_hidden_layers):
    """hf_tensors: {Hugging Face name: array}; num_hidden_layers: how many encoder layers.
    Returns {tinybert name: array}."""
    raise NotImplementedError("write this: see docs/05-weights.md")
