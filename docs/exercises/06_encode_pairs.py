"""Exercise 06 (chapter 6, docs/06-tokenization.md): a batch of sentence pairs as BERT's inputs.

Copy this file into a folder of your own, keeping its name (mine/: make capstone finds your
answers there), write the body of encode_pairs, and check it:

    python -m tools.exercises check 06 mine/06_encode_pairs.py

The sentences are already split into word pieces (their ids). For each pair (a, b) build

    input_ids       [CLS] a [SEP] b [SEP]             then PAD_ID up to the batch's longest row
    token_type_ids    0   0   0   1   1                0 for padding
    attention_mask    1   1   1   1   1                0 for padding

Truncation: a pair longer than max_length tokens (the three special tokens included) is cut
"longest first": remove one token at a time from the end of whichever sentence is longer at
that moment, until it fits. (When both sentences end up equally long, which one gives up the
last token is a detail of the tokenizers library; the check never needs it.)
"""
import numpy as np

CLS_ID, SEP_ID, PAD_ID = 101, 102, 0


def encode_pairs(firsts, seconds, max_length):
    """firsts, seconds: lists of B lists of word-piece ids (the pairs' two sentences);
    max_length: the most tokens a row may have. Returns {"input_ids": ..., "token_type_ids":
    ..., "attention_mask": ...}, each a (B, T) integer array, T the longest row's length."""
    raise NotImplementedError("write this: see docs/06-tokenization.md")
