"""Build a piece of tinybert yourself, then check it: one exercise per chapter that teaches code
(01..11), and more (12..) that join a chapter: backward()'s walk, two backwards, a training step.

    python -m tools.exercises list                            # every exercise: its number, starter file, what it is
    python -m tools.exercises check 02 mine/02_layer_norm_backward.py   # check your answer to chapter 2's exercise
    make exercise N=02 FILE=mine/02_layer_norm_backward.py              # the same

Copy the starter file a chapter names (docs/exercises/NN_name.py) into a folder of your own (mine/,
keeping its name: tools/capstone.py trains with the answers it finds there), write
the body of its function, and check your copy. The checker imports your file, calls your
function on small float64 inputs, and compares what it returns with tinybert's own code (and,
for a backward, with the finite differences of tinybert.gradcheck, chapter 3). When an answer
is wrong it says which output, where and by how much, and, when it recognises the mistake, what
you probably did: each check computes a few typical wrong answers (a forgotten term, a missing
factor, a flipped sign) and compares yours with them. It never prints tinybert's code, nor the formula of the right answer (a starter gives
the forward and the shapes, the chapter the derivation), nor more of the right answer than the
one entry where yours is furthest from it.

Exit status 0: correct. 1: not yet (wrong, not written yet, or your code raised an error,
shown with its traceback). 2: a usage error (no such exercise or file).

The command runs your answer in a child process (the same Python), from a copy of your file in
a temporary folder that is also its working directory, and only an explicit verdict counts: the
child ends by printing a line holding a random token the parent handed it on stdin, which your
code never sees, so an answer that calls sys.exit(0) or os._exit(0), or crashes Python, is "no
verdict", not correct (a sys.exit() your code calls is caught and shown as its error). After
--timeout seconds (60) the child is killed: "timed out". What this does NOT do is sandbox your
code: Python cannot, and it runs with your user's rights, so it can write, delete, or reach
the network as any program you run can. What is done instead: it runs in a temporary folder, so
a relative path lands there, and imports a temporary copy of tinybert/ and tools/, so a path
found from a module's __file__ lands in the copy; and the repository's files (git's tracked files and the untracked
ones it does not ignore, else every file) are listed with their size and modification time
before and after; any file changed, deleted or added fails the check loudly, naming them. A
change that keeps a file's size and modification time, or that touches ignored files (runs/,
weights/) or anything outside the repository, is not detected.

Adding an exercise: a starter file docs/exercises/NN_name.py defining ``name`` (the signature,
the shapes and the forward's math; never the backward's formula or the update's lines), a check
function here (it receives the learner's function, raises NotYet when the answer is wrong and
returns one line saying what was verified), its entry in EXERCISES, a "Build it yourself"
paragraph in its chapter, a right answer in tests/fixtures/exercise_answers/ and wrong ones in
tests/test_exercises.py's MISTAKES; that test checks that all of them agree.
"""
import argparse
import dataclasses
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
import types
from pathlib import Path

import numpy as np

from tinybert import Tensor, backend, convert, functional as F, gradcheck, ops, optim, pcgrad, smart
from tinybert.model import BertConfig, BertModel, SelfAttention
from tinybert.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]          # the repository the answer must leave as it was
TIMEOUT = 60                                         # seconds an answer's check may take
VERDICT = "tools.exercises verdict"                  # the child's last line: VERDICT TOKEN correct|not-correct

# ---------------------------------------------------------------- what a check raises
class NotYet(Exception):
    """The answer is wrong; the message says what, where and, when recognised, why."""


class NotWritten(Exception):
    """The learner's function still raises NotImplementedError."""


class LearnerError(Exception):
    """The learner's code raised an exception (``.error``), while importing or running it."""

    def __init__(self, error, doing):
        super().__init__(str(error))
        self.error, self.doing = error, doing


# ---------------------------------------------------------------- calling the learner's code
def load(path, name, shown_as=None):
    """The function ``name`` defined by the Python file at ``path``; its code is named
    ``shown_as`` (the learner's own file, where ``path`` is a copy) in tracebacks."""
    shown_as = str(shown_as or path)
    module = types.ModuleType(f"exercise_answer_{Path(shown_as).stem}")
    module.__file__ = shown_as
    try:
        source = Path(path).read_text(encoding="utf-8")
        exec(compile(source, shown_as, "exec"), module.__dict__)
    except (Exception, SystemExit) as error:       # a syntax error or a failing top-level line: theirs
        raise LearnerError(error, f"importing {shown_as}") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise NotYet(f"{shown_as} defines no function {name}(): keep the starter file's name and signature")
    return function


def call(function, *args, copy=True):
    """``function(*args)``, its errors marked as the learner's; with ``copy``, on copies of the
    array arguments (an answer that writes into its inputs must not change what the checker
    compares with)."""
    if copy:
        args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    try:
        return function(*args)
    except NotImplementedError:
        raise NotWritten() from None
    except (Exception, SystemExit) as error:       # sys.exit() in an answer is its error, not the checker's end
        raise LearnerError(error, f"running {function.__name__}()") from None


def outputs(result, names):
    """The learner's return value split into ``len(names)`` outputs, or NotYet saying what
    was expected."""
    if len(names) == 1:
        return (result,)
    if not isinstance(result, (tuple, list)) or len(result) != len(names):
        got = f"{len(result)} values" if isinstance(result, (tuple, list)) else f"one {type(result).__name__}"
        raise NotYet(f"expected a tuple of {len(names)} ({', '.join(names)}), got {got}")
    return tuple(result)


# ---------------------------------------------------------------- tinybert's answers
def reference(op, inputs, grad):
    """tinybert's output of ``op`` on float64 ``inputs``, and each input's gradient from
    backward() seeded with ``grad``, dL/d(output)."""
    tensors = [Tensor(np.array(x, dtype=np.float64), requires_grad=True) for x in inputs]
    out = op(*tensors)
    out.backward(np.asarray(grad, dtype=np.float64))
    return out.numpy(), [t.grad for t in tensors]


def learner_op(forward, backward, name):
    """An op for tinybert.gradcheck: tinybert's forward on arrays, the learner's backward
    (already wrapped in ``call``) mapping (grad, *input arrays) to the inputs' gradients."""
    def op(*tensors):
        arrays = [t.data for t in tensors]
        return Tensor.from_op(forward(*arrays), tuple(tensors), lambda grad: tuple(backward(grad, *arrays)), name)
    return op


# ---------------------------------------------------------------- comparing, and naming the mistake
def close(yours, expected, tolerance):
    """Same shape, and every entry within ``tolerance`` times the largest |expected|."""
    return (yours.shape == expected.shape
            and bool(np.all(np.abs(yours - expected) <= tolerance * max(np.abs(expected).max(initial=0.0), 1e-30))))


def as_array(name, value, shape, shape_hint=None):
    """The learner's ``value`` as a float64 array of ``shape``, or NotYet saying what came instead."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise NotYet(f"{name}: expected an array of shape {shape}, got {type(value).__name__}") from None
    if array.shape != shape:
        raise NotYet(f"{name} has shape {array.shape}, expected {shape}" + _hint(shape_hint))
    return array


def compare(name, yours, expected, tolerance=1e-8, mistakes=(), shape_hint=None):
    """Raise NotYet unless ``yours`` equals ``expected`` to ``tolerance`` (relative to the
    largest |expected|). ``mistakes`` lists (a typical wrong answer, what it means); the first
    one ``yours`` equals gives the hint. A flipped sign and a constant factor are recognised
    without being listed."""
    expected = np.asarray(expected, dtype=np.float64)
    yours = as_array(name, yours, expected.shape, shape_hint)
    if not np.all(np.isfinite(yours)):
        where = _index(np.argwhere(~np.isfinite(yours))[0])
        raise NotYet(f"{name} holds {yours[where]} at index {where}: something overflowed or divided by zero")
    if close(yours, expected, tolerance):
        return
    hint = _hint(_recognise(yours, expected, tolerance, mistakes))
    if expected.ndim == 0:
        raise NotYet(f"{name} is wrong: yours {yours:.6g}, expected {expected:.6g}" + hint)
    difference = np.abs(yours - expected)
    worst = _index(np.unravel_index(difference.argmax(), difference.shape))
    wrong = int((difference > tolerance * np.abs(expected).max()).sum())
    raise NotYet(f"{name} is wrong: largest difference {difference[worst]:.3g} at index {worst} "
                 f"(yours {yours[worst]:.6g}, expected {expected[worst]:.6g}), "
                 f"wrong in {wrong} of {expected.size} entries" + hint)


def _recognise(yours, expected, tolerance, mistakes):
    for mistake, hint in mistakes:
        if close(yours, np.asarray(mistake, dtype=np.float64), tolerance):
            return hint
    if not expected.any() or expected.size == 1:      # one number is a multiple of any other: no hint in that
        return None
    factor = float((yours * expected).sum() / (expected * expected).sum())       # the least-squares fit
    if close(yours, factor * expected, tolerance):
        if np.isclose(factor, -1.0):
            return "the sign is flipped: yours is minus the right answer everywhere"
        return (f"yours is {factor:.6g} times the right answer everywhere: a constant factor is missing "
                "or extra (a 2, a 1/N, a mean where a sum belongs?)")
    return None


def _hint(hint):
    return f"\n  hint: {hint}" if hint else ""


def _index(index):
    return tuple(int(i) for i in index)


# ================================================================ the exercises
# Each check receives the learner's function and returns one line saying what it verified.

def check_mul_backward(mul_backward):
    """Chapter 1: the backward of y = a * b with broadcasting."""
    rng = np.random.default_rng(1)
    for a_shape, b_shape in [((3, 4), (3, 4)), ((2, 3, 4), (3, 1))]:
        a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
        grad = rng.standard_normal(np.broadcast_shapes(a_shape, b_shape))
        _, (right_a, right_b) = reference(ops.mul, [a, b], grad)
        grad_a, grad_b = outputs(call(mul_backward, grad, a, b), ("grad_a", "grad_b"))
        case = f" (a {a_shape}, b {b_shape})"
        compare("grad_a" + case, grad_a, right_a, mistakes=[
            (ops.unbroadcast(grad * a, a.shape), "you multiplied g by a itself: d(a*b)/da is b, the OTHER input")])
        compare("grad_b" + case, grad_b, right_b, shape_hint=(
            f"b was broadcast from {b_shape} to {grad.shape}, so each entry of b was copied: what does each "
            "copy contribute to that entry's gradient? (chapter 1, \"Broadcasting\")"), mistakes=[
            (ops.unbroadcast(grad * b, b.shape), "you multiplied g by b itself: d(a*b)/db is a, the OTHER input"),
            (ops.unbroadcast(grad * a, b.shape) * b.size / grad.size, "you averaged over the copies of b; each copy "
                                                                      "adds its own gradient, so sum them"),
            (ops.unbroadcast(np.broadcast_to(a, grad.shape), b.shape), "you left out g: the chain rule multiplies the "
                                                                      "incoming gradient g by the local derivative")])
    error = gradcheck.relative_error(learner_op(np.multiply, lambda grad, a, b: outputs(     # on the broadcast case
        call(mul_backward, grad, a, b), ("grad_a", "grad_b")), "your mul"), [a, b])
    return (f"grad_a and grad_b equal tinybert.ops.mul's backward, broadcasting included; "
            f"tinybert.gradcheck's relative error {error:.1e} (the bar is {gradcheck.TOLERANCE:.0e})")


def check_layer_norm_backward(layer_norm_backward):
    """Chapter 2: layer norm's backward, dL/dx, dL/dweight, dL/dbias."""
    rng = np.random.default_rng(2)
    B, T, C = 2, 3, 6
    x, weight, bias = rng.standard_normal((B, T, C)) * 3 + 1, rng.standard_normal(C), rng.standard_normal(C)
    grad, eps = rng.standard_normal(x.shape), 1e-5
    _, right = reference(lambda x, w, b: F.layer_norm(x, w, b, eps), [x, weight, bias], grad)
    grad_x, grad_weight, grad_bias = outputs(call(layer_norm_backward, grad, x, weight, eps),
                                             ("grad_x", "grad_weight", "grad_bias"))
    rstd = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + eps)
    xhat, d = (x - x.mean(axis=-1, keepdims=True)) * rstd, grad * weight

    def mean(a):
        return a.mean(axis=-1, keepdims=True)
    compare("grad_x", grad_x, right[0], mistakes=[
        (rstd * (d - mean(d)), "you left out the last term: the one that comes from the standard deviation "
                               "depending on x"),
        (rstd * (d - xhat * mean(d * xhat)), "you left out the term that comes from the mean depending on x"),
        (rstd * (grad - mean(grad) - xhat * mean(grad * xhat)), "the weight is missing: the gradient that "
                                                               "reaches x_hat has passed through y = x_hat * weight + bias"),
        (d - mean(d) - xhat * mean(d * xhat), "you left out the factor that dividing by the standard deviation puts on every path"),
        (rstd * (d - d.sum(axis=-1, keepdims=True) - xhat * (d * xhat).sum(axis=-1, keepdims=True)),
         "a factor 1/C is missing where x's row enters through its mean and its variance: "
                              "a mean over C features, not a sum")])
    compare("grad_weight", grad_weight, right[1], shape_hint="weight is (C,): one gain, used by every row, "
                                                              "all B*T tokens", mistakes=[
        ((grad * xhat).reshape(-1, C).mean(axis=0), "you averaged over the rows: every token's g * x_hat adds up"),
        ((grad * x).reshape(-1, C).sum(axis=0), "you used x where the normalised x belongs")])
    compare("grad_bias", grad_bias, right[2], shape_hint="bias is (C,): one shift, used by every row, all B*T tokens",
            mistakes=[(grad.reshape(-1, C).mean(axis=0), "you averaged over the rows: every token's g adds up")])
    error = gradcheck.relative_error(learner_op(
        lambda x, w, b: F.layer_norm(Tensor(x), Tensor(w), Tensor(b), eps).data,
        lambda grad, x, w, b: outputs(call(layer_norm_backward, grad, x, w, eps), ("grad_x", "grad_weight", "grad_bias")),
        "your layer_norm"), [x, weight, bias])
    return (f"grad_x, grad_weight and grad_bias equal tinybert.functional.layer_norm's backward on (2, 3, 6) inputs; "
            f"tinybert.gradcheck's relative error {error:.1e}")


def check_numeric_gradient(numeric_gradient):
    """Chapter 3: the central-difference estimate of a gradient."""
    rng = np.random.default_rng(3)
    x, weights, eps = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4)), 1e-5

    def loss(array):          # L = sum(w * tanh(x)) + sum(x)^2 / 2: each entry's derivative depends on every entry
        return float((weights * np.tanh(array)).sum() + array.sum() ** 2 / 2)

    def loss_of_tensor(t):    # the same L, for backward()
        return ops.add(ops.sum(ops.mul(ops.tanh(t), weights)), ops.mul(ops.pow(ops.sum(t), 2.0), 0.5))
    _, (right,) = reference(loss_of_tensor, [x], 1.0)
    given = x.copy()
    yours = call(numeric_gradient, loss, given, eps, copy=False)        # given, to see whether it comes back as it was
    if not np.array_equal(given, x):
        raise NotYet(f"your numeric_gradient left x changed (by up to {np.abs(given - x).max():.3g}): put each "
                     "entry back after nudging it; the caller still needs x")

    def one_sided(forward, backward):             # (L(x + forward e_i) - L(x - backward e_i)) / eps
        numeric = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            step = np.zeros_like(x)
            step[i] = 1.0
            numeric[i] = (loss(x + forward * step) - loss(x - backward * step)) / eps
        return numeric
    shifted_together = (loss(x + eps) - loss(x - eps)) / (2 * eps)
    compare("your numeric gradient", yours, right, tolerance=1e-7, mistakes=[
        (one_sided(eps, 0.0), "this is the one-sided difference (L(x + eps) - L(x)) / eps, whose error is of order "
                              "eps; the central one, (L(x + eps) - L(x - eps)) / (2 eps), is of order eps^2"),
        (one_sided(0.0, eps), "this is the one-sided difference (L(x) - L(x - eps)) / eps, whose error is of order "
                              "eps; the central one, (L(x + eps) - L(x - eps)) / (2 eps), is of order eps^2"),
        (np.full(x.shape, shifted_together), "every entry is the same number: you nudged all of x at once; nudge "
                                             "one entry at a time, the others held still"),
        (2 * right, "you divided by eps: x + eps and x - eps are 2 eps apart")])
    error = float(np.abs(yours - right).max() / np.abs(right).max())
    return (f"your central differences agree with tinybert's backward on a (2, 3, 4) input to a relative "
            f"error of {error:.1e} (eps = {eps:g})")


def check_attention(attention):
    """Chapter 4: scaled dot-product attention with the padding mask, the heads already split."""
    B, nh, T, hs = 2, 2, 5, 3
    C = nh * hs
    rng = np.random.default_rng(4)
    x = rng.standard_normal((B, T, C))
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])            # the second sentence has two padding tokens
    config = BertConfig(vocab_size=8, hidden_size=C, num_hidden_layers=1, num_attention_heads=nh,
                        intermediate_size=4, attention_probs_dropout_prob=0.0, dtype="float64")
    with backend.replayed_rng(backend.snapshot_rng()):              # leave the caller's random draws alone
        layer = SelfAttention(config).eval()
    for linear in (layer.query, layer.key, layer.value):
        linear.weight.data, linear.bias.data = rng.standard_normal((C, C)), rng.standard_normal(C)
    layer.out.weight.data, layer.out.bias.data = np.eye(C), np.zeros(C)   # output = the heads' context, joined

    def heads(a):                                                   # (B, T, C) -> (B, nh, T, hs)
        return a.reshape(B, T, nh, hs).transpose(0, 2, 1, 3)
    q, k, v = (heads(x @ linear.weight.data + linear.bias.data) for linear in (layer.query, layer.key, layer.value))
    additive_mask = (1.0 - mask[:, None, None, :]) * np.finfo(np.float64).min       # as BertModel.forward builds it
    right = heads(layer(Tensor(x), additive_mask).numpy())
    yours = as_array("the context", call(attention, q, k, v, mask), right.shape,
                     "the context has q's shape (B, nh, T, hs): probs (B, nh, T, T) @ v")

    padding = (1.0 - mask) * -1e30
    keys = padding[:, None, None, :]                                # (B, 1, 1, T): along the keys

    def variant(scale=hs ** -0.5, additive=keys, axis=-1, factor=1.0):   # typical wrong answers
        scores = q @ k.swapaxes(-1, -2) * scale * factor + additive
        probs = np.exp(scores - scores.max(axis=axis, keepdims=True))
        return probs / probs.sum(axis=axis, keepdims=True) @ v
    compare("the context of sentence 0 (no padding)", yours[0], right[0], mistakes=[
        (variant(scale=1.0)[0], "the scores were not divided by sqrt(hs)"),
        (variant(scale=1.0 / hs)[0], "divide the scores by sqrt(hs), not by hs"),
        (variant(axis=-2)[0], "the softmax ran over the wrong axis: each query's row of scores, the last axis, "
                              "must sum to 1")])
    compare("the context of sentence 1 (two padding tokens)", yours[1], right[1], mistakes=[
        (variant(additive=0.0)[1], "the padding got attention: add the mask, 0 for tokens and a very large "
                                   "negative number for padding, to the scores before the softmax"),
        (variant(additive=0.0, factor=mask[:, None, None, :])[1],
         "multiplying the padded scores by 0 leaves them at 0, and exp(0) = 1 still gives padding weight: add a "
         "very large negative number instead")])
    return ("your attention equals tinybert.model.SelfAttention's on 2 sentences (one padded), 2 heads of size 3")


def check_hf_to_tinybert(hf_to_tinybert):
    """Chapter 5: Hugging Face BERT tensors renamed to tinybert's, Linear weights transposed."""
    config = BertConfig(vocab_size=11, hidden_size=4, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=6, max_position_embeddings=8, dtype="float64")
    with backend.replayed_rng(backend.snapshot_rng()):
        shapes = {name: p.shape for name, p in BertModel(config).named_parameters()}
    rng = np.random.default_rng(5)                 # every tensor different, so a mix-up shows in the values
    hf = convert.tinybert_to_hf({name: rng.standard_normal(shape) for name, shape in shapes.items()}, config)
    right = convert.hf_to_tinybert(dict(hf), config, "the checker's tensors")
    yours = call(hf_to_tinybert, {name: array.copy() for name, array in hf.items()}, config.num_hidden_layers)
    if not isinstance(yours, dict):
        raise NotYet(f"expected a dict {{tinybert name: array}}, got {type(yours).__name__}")
    missing, unexpected = sorted(set(right) - set(yours)), sorted(set(yours) - set(right))
    if missing or unexpected:
        raise NotYet(f"your dict has {len(yours)} names, tinybert's model {len(right)}"
                     + (f"; missing {len(missing)}, e.g. {missing[0]!r}" if missing else "")
                     + (f"; unexpected {len(unexpected)}, e.g. {unexpected[0]!r}" if unexpected else "")
                     + _hint("every Hugging Face tensor becomes exactly one tinybert parameter, named by its path "
                             "through tinybert.model.BertModel's modules (print model.state_dict().keys())"))
    linear_weights = {ours for _, ours, transposed in convert.name_map(config) if transposed}
    for name in right:
        array = np.asarray(yours[name])
        if array.shape == right[name].shape and np.array_equal(array, right[name]):
            continue
        sources = [(hf_name, flipped) for hf_name, source in hf.items() for flipped in (False, True)
                   if np.array_equal(source.T if flipped else source, array)]
        if np.array_equal(array, right[name].T) and name in linear_weights:
            hint = ("it is a Linear weight, so transpose it: PyTorch stores it (out, in), tinybert (in, out) so "
                    "that its forward is x @ W")
        elif np.array_equal(array, right[name].T):
            hint = "only Linear weights are transposed; embedding tables, biases and layer norms keep their layout"
        elif sources:
            hint = (f"it holds Hugging Face's {sources[0][0]!r}{' transposed' if sources[0][1] else ''}, which "
                    "belongs to another parameter (attention.output.dense is attention's out projection, "
                    "output.dense the feed-forward's second Linear)")
        else:
            hint = "it matches no Hugging Face tensor: move the arrays, do not compute with them"
        raise NotYet(f"your {name!r} is wrong (shape {array.shape}, tinybert's {right[name].shape})" + _hint(hint))
    return (f"all {len(right)} tensors of a {config.num_hidden_layers}-layer BERT are renamed and transposed as "
            "tinybert.convert.hf_to_tinybert does")


def check_encode_pairs(encode_pairs):
    """Chapter 6: a batch of sentence pairs as input_ids, token_type_ids and attention_mask."""
    # the special tokens at their ids in BERT's uncased vocabulary (the starter file's constants):
    # [PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103; then one-letter words, ids 104, 105, ...
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(letters)
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        tokenizer = Tokenizer.from_folder(folder)
    rng = np.random.default_rng(6)
    # (lengths of the pairs' two sides, max_length): padding only, then truncation of the longer side
    for lengths, max_length in [([(3, 2), (1, 5), (2, 1)], 16), ([(12, 3), (4, 9), (5, 4)], 12)]:
        firsts, seconds = ([rng.integers(104, 104 + len(letters), n).tolist() for n in side] for side in zip(*lengths))
        right = tokenizer.encode([" ".join(vocab[i] for i in ids) for ids in firsts],
                                 [" ".join(vocab[i] for i in ids) for ids in seconds], max_length=max_length)
        yours = call(encode_pairs, firsts, seconds, max_length)
        if not isinstance(yours, dict) or set(yours) != set(right):
            raise NotYet(f"expected a dict with the keys {sorted(right)}, got "
                         + (f"the keys {sorted(yours)}" if isinstance(yours, dict) else type(yours).__name__))
        for key, hint in [("input_ids", "each row is [CLS] a [SEP] b [SEP], then PAD_ID up to the batch's longest row"),
                          ("token_type_ids", "0 for [CLS], sentence a and the [SEP] after it; 1 for sentence b and "
                                             "the last [SEP]; 0 for padding"),
                          ("attention_mask", "1 for every real token, [CLS] and [SEP] included; 0 for padding")]:
            try:
                array, expected = np.asarray(yours[key]), right[key]
            except ValueError:                   # NumPy refuses rows of different lengths
                raise NotYet(f"{key} is not a (B, T) array: are its rows of different lengths?" + _hint(hint)) from None
            if array.shape != expected.shape:
                too_long = array.ndim == 2 and array.shape[1] == max_length > expected.shape[1]
                raise NotYet(f"{key} has shape {array.shape}, expected {expected.shape} ({len(firsts)} pairs)" + _hint(
                    "pad to the longest row of this batch, not to max_length" if too_long else hint))
            if not np.array_equal(array, expected):
                row, column = _index(np.argwhere(array != expected)[0])
                a, b = lengths[row]
                if key == "input_ids" and a + b + 3 > max_length:
                    hint = (f"this pair has {a + b + 3} tokens with [CLS] and two [SEP], over max_length "
                            f"{max_length}: cut one token at a time from the end of whichever sentence is longer")
                raise NotYet(f"{key} is wrong in row {row} (a pair of {a} and {b} word pieces, max_length "
                             f"{max_length}) from position {column}: yours {array[row].tolist()}" + _hint(hint))
    return "input_ids, token_type_ids and attention_mask equal tinybert's Tokenizer.encode, padding and truncation included"


def check_bce_with_logits(bce_with_logits):
    """Chapter 7: binary cross entropy from logits, computed stably, and its gradient."""
    rng = np.random.default_rng(7)
    targets = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    for logits in (rng.standard_normal(6) * 2, np.array([40.0, -40.0, 800.0, -800.0, 3.0, -3.0])):
        right_loss, (right_grad,) = reference(lambda x: F.binary_cross_entropy_with_logits(x, targets), [logits], 1.0)
        loss, grad = outputs(call(bce_with_logits, logits, targets), ("loss", "grad"))
        if not np.all(np.isfinite(np.asarray(loss, dtype=np.float64))):
            raise NotYet(f"your loss is {loss} for the logits {logits.tolist()}" + _hint(
                "sigmoid(x) rounds to exactly 0 or 1 for large |x|, and its log is -inf: use the stable form "
                "max(x, 0) - x t + log(1 + exp(-|x|)), in which no exponential can overflow"))
        N = len(logits)
        compare("the loss", loss, right_loss, mistakes=[
            (N * right_loss, "you summed over the N examples; the loss is their mean")])
        compare("the gradient", grad, right_grad, mistakes=[
            (N * right_grad, "you left out the 1/N of the mean")])
    return "the loss and its gradient equal tinybert.functional.binary_cross_entropy_with_logits's, logits of 800 included"


def check_adamw_update(adamw_update):
    """Chapter 8: one AdamW step, bias correction and decoupled weight decay."""
    rng = np.random.default_rng(8)
    lr, weight_decay, betas, eps = 0.1, 0.2, (0.9, 0.999), 1e-8   # lr and decay large enough to tell orders apart
    start, grads = rng.standard_normal(6), [rng.standard_normal(6) for _ in range(5)]

    def run(update):
        """[(p, m, v) after step t] for t = 1..5, ``update`` changing p, m, v in place."""
        p, m, v, states = start.copy(), np.zeros(6), np.zeros(6), []
        for t, g in enumerate(grads, start=1):
            update(p, g, m, v, t)
            states.append((p.copy(), m.copy(), v.copy()))
        return states

    def update_with(weight_decay=weight_decay, step=None, decay_after=0.0, l2=0.0):
        """tinybert's step, or a typical mistake built from it: ``step`` in place of t, the decay
        ``decay_after`` the step, or ``l2`` * p added to the gradient."""
        def update(p, g, m, v, t):
            optim.adamw_update(p, g + l2 * p, m, v, lr, weight_decay, betas, eps, t if step is None else step)
            p *= 1.0 - lr * decay_after
        return update
    right = run(update_with())
    uncorrected = run(update_with(step=10 ** 9))                # 1 - beta^t = 1: no correction
    coupled = run(update_with(weight_decay=0.0, l2=weight_decay))          # Adam with an L2 term in g
    decayed_last = run(update_with(weight_decay=0.0, decay_after=weight_decay))
    beta1, beta2 = betas
    l2_in_the_gradient = ("you added the decay to the gradient (Adam with L2); AdamW decouples it: the decay "
                          "never passes through the moments")
    p, m, v = start.copy(), np.zeros(6), np.zeros(6)
    for t, g in enumerate(grads, start=1):
        p, m, v = outputs(call(adamw_update, p, g, m, v, lr, weight_decay, betas, eps, t), ("p", "m", "v"))
        right_p, right_m, right_v = right[t - 1]
        compare(f"m after step {t}", m, right_m, mistakes=[
            (right_m / (1 - beta1 ** t), "you returned the bias-corrected m_hat as m: keep the running mean m "
                                         "itself as the state, and correct only what the update uses"),
            (coupled[t - 1][1], l2_in_the_gradient)])
        compare(f"v after step {t}", v, right_v, mistakes=[
            (right_v / (1 - beta2 ** t), "you returned the bias-corrected v_hat as v: keep the running mean v "
                                         "itself as the state, and correct only what the update uses"),
            (coupled[t - 1][2], l2_in_the_gradient)])
        compare(f"p after step {t}", p, right_p, mistakes=[
            (uncorrected[t - 1][0], "you forgot the bias correction: your update equals the uncorrected one; m and v "
                                    "start at 0, so early averages are too small by a factor that depends on t"),
            (coupled[t - 1][0], l2_in_the_gradient),
            (decayed_last[t - 1][0], "you decayed p after the Adam step; AdamW (and torch) shrinks p first, then "
                                     "takes the step")])
        p, m, v = (np.array(a, dtype=np.float64) for a in (p, m, v))
    return f"p, m and v equal tinybert.optim.adamw_update's over {len(grads)} steps (lr {lr}, weight decay {weight_decay})"


def check_project_conflicting(project_conflicting):
    """Chapter 9: one task's gradient after PCGrad's projections."""
    rng = np.random.default_rng(9)
    conflicting = rng.standard_normal(8)
    cases = [
        [rng.standard_normal(8) for _ in range(4)],                                       # conflicts and agreements
        [conflicting, -conflicting + 0.3 * rng.standard_normal(8)],                       # one conflict
        [conflicting, conflicting + 0.3 * rng.standard_normal(8)],                        # none
        [np.array([1.0, 0.0, 0.0]), np.array([-1.0, 1.0, 0.0]), np.array([0.0, -1.0, 0.0])],   # chapter 9's exercise 1
    ]

    def fold(g, others, project):
        for other in others:
            g = project(g, other)
        return g

    def tinybert_pcgrad(g, other):                 # with two tasks, PCGrad's order does not matter
        return pcgrad.projected_grads([g, other], np.random.default_rng(0))[0]
    for number, (g, *others) in enumerate(cases, start=1):
        right = fold(g, others, tinybert_pcgrad)
        yours = call(project_conflicting, g, others)
        compare(f"case {number}'s projected gradient ({len(others)} other tasks)", yours, right, mistakes=[
            (g, "you never projected: where g . g_j < 0, remove from g its component along g_j"),
            (fold(g, others, lambda g, o: g - (g @ o) / (o @ o) * o),
             "you projected when the gradients did not conflict: only where g . g_j < 0"),
            (fold(g, others, lambda g, o: g - (g @ o) / (o @ o) * o if g @ o > 0 else g),
             "you projected where the gradients agree and kept the conflicts: only where g . g_j < 0"),
            (fold(g, others, lambda g, o: g - (g @ o) / np.sqrt(o @ o) * o if g @ o < 0 else g),
             "your component of g along g_j has the wrong length: check the projection onto g_j's "
             "direction, and divide by the squared length")])
    return f"your projections equal tinybert.pcgrad.projected_grads's in {len(cases)} cases, with and without conflicts"


def check_ascent_step(ascent_step):
    """Chapter 10: one step of SMART's ascent (Algorithm 1): a normalised step, then the projection."""
    rng = np.random.default_rng(10)
    B, T, C = 3, 4, 5
    # every example's gradient on its own scale, so a norm over the batch differs from one per example
    grad = rng.standard_normal((B, T, C)) * np.array([0.01, 1.0, 30.0])[:, None, None]
    still = grad.copy()
    still[1] = 0.0                                  # an example whose gradient is zero: an STS pair u = v
    cases = [("a step smaller than eps", smart.SmartConfig(epsilon=0.03, eta=0.02), grad),
             ("tinybert's default, eta = 100 eps", smart.SmartConfig(), grad),
             ("example 1's gradient zero everywhere", smart.SmartConfig(), still)]
    for case, config, grad in cases:
        delta = rng.uniform(-config.epsilon, config.epsilon, (B, T, C))       # inside the ball, as after any step
        right = smart.ascent_step(delta.copy(), grad.copy(), config)
        name = f"the new delta ({case}: eta {config.eta:g}, eps {config.epsilon:g})"
        yours = as_array(name, call(ascent_step, delta, grad, config), right.shape,
                         "the new delta has delta's shape (B, T, C)")
        if not np.isfinite(yours).all():
            raise NotYet(f"{name}: {int((~np.isfinite(yours)).sum())} entries are NaN or infinite" + _hint(
                "an example whose gradient is zero everywhere has n_b = 0, and 0 / 0 is NaN: its step is 0, "
                "the example stays where it is"))
        outside = np.abs(yours) > config.epsilon * (1 + 1e-9)
        if outside.any():
            raise NotYet(f"{name}: {int(outside.sum())} of {yours.size} entries lie outside the ball |delta| <= eps "
                         f"(the largest |entry| is {np.abs(yours).max():.3g})" + _hint(
                             "project after the step: a projection before the step leaves the step itself "
                             "outside the ball"))

        def step(g_normalised, sign=1.0):
            return np.clip(delta + sign * config.eta * g_normalised, -config.epsilon, config.epsilon)
        still_example = (grad == 0).all(axis=(1, 2), keepdims=True)            # its norms are read as 1
        magnitude = np.abs(grad) + still_example
        compare(name, yours, right, mistakes=[
            (step(grad / magnitude.max(axis=(1, 2), keepdims=True), sign=-1.0),
             "you descended instead of ascending: SMART looks for the perturbation that changes the output the "
             "MOST"),
            (step(grad / magnitude.max(axis=2, keepdims=True)),
             "you normalised per token (the max over the C features only); the norm is per example: the max over "
             "all T x C entries of that example"),
            (step(grad / magnitude.max()),
             "you normalised by the largest entry of the whole batch; the norm is per example, so every example's "
             "largest entry moves by eta, however sensitive the model is there"),
            (step(grad / np.sqrt((grad ** 2).sum(axis=(1, 2), keepdims=True) + still_example)),
             "you divided by the L2 norm (the length); Algorithm 1 divides by the infinity norm, the largest "
             "|entry| of the example, to match the infinity-norm ball"),
            (step(grad), "you did not normalise the gradient: divide it by ||g_b||_inf, per example")])
    return (f"your step equals tinybert.smart.ascent_step's (Algorithm 1) on ({B}, {T}, {C}) inputs, with a step "
            "smaller than eps, with tinybert's default eta = 100 eps, and where an example's gradient is zero")


def check_cosine_loss(cosine_loss):
    """Chapter 11: the bi-encoder's loss, mean((cos(u, v) - label / 5)^2), and its gradients."""
    rng = np.random.default_rng(11)
    u, v = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    labels = np.array([4.2, 0.5, 2.8, 3.6])
    right_loss, (right_u, right_v) = reference(
        lambda u, v: F.mse_loss(F.cosine_similarity(u, v), labels / 5.0), [u, v], 1.0)
    loss, grad_u, grad_v = outputs(call(cosine_loss, u, v, labels), ("loss", "grad_u", "grad_v"))
    cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    compare("the loss", loss, right_loss, tolerance=1e-7, mistakes=[
        (np.mean((cos - labels) ** 2), "you compared the cosine with the label itself; a cosine is at most 1, the "
                                       "label runs to 5: use label / 5")])
    residual = (2.0 / len(labels) * (cos - labels / 5.0))[:, None]          # dL/dcos, one per pair
    for name, yours, right, x, other in [("grad_u", grad_u, right_u, u, v), ("grad_v", grad_v, right_v, v, u)]:
        norms = np.linalg.norm(x, axis=-1, keepdims=True) * np.linalg.norm(other, axis=-1, keepdims=True)
        compare(name, yours, right, tolerance=1e-7, mistakes=[
            (residual * other / norms, "the gradient of a cosine has no component along u itself (stretching u "
                                       "changes nothing): |u| depends on u too")])
    return "the loss, grad_u and grad_v equal tinybert's cosine_similarity and mse_loss, differentiated by backward()"


# ---------------------------------------------------------------- 12: the backward walk itself
class GraphNode:
    """A node of exercise 12's graph: ``value`` (an array), ``parents`` (a tuple of nodes, empty
    for a leaf), ``vjp`` (grad -> one gradient per parent, each of that parent's shape; None for
    a leaf), ``grad`` (None until a backward sets it; only leaves are checked) and ``name``."""

    def __init__(self, name, value, parents=(), vjp=None):
        self.name, self.value, self.parents, self.vjp, self.grad = name, value, tuple(parents), vjp, None

    def __repr__(self):
        return f"GraphNode({self.name!r}, shape={np.shape(self.value)})"


def _mirror(root, leaves):
    """Exercise 12's graph for a tinybert graph (``root`` a Tensor, ``leaves`` {name: leaf
    Tensor}): every interior node's vjp is tinybert's backward closure, counted and recorded
    (``node.calls``: the gradients it was called with). Returns (root node, {name: leaf node},
    [interior nodes])."""
    made = {id(t): GraphNode(name, t.data) for name, t in leaves.items()}
    interior, stack = [], [(root, False)]
    while stack:                                    # iterative: the deep chain has thousands of nodes
        tensor, ready = stack.pop()
        if id(tensor) in made:
            continue
        parents = [p for p in tensor._parents if p.requires_grad]
        if not ready:
            stack.append((tensor, True))
            stack += [(p, False) for p in parents if id(p) not in made]
            continue
        node = GraphNode(f"{tensor.op} #{len(interior) + 1}", tensor.data, [made[id(p)] for p in parents])
        node.calls = []

        def vjp(grad, tensor=tensor, node=node):
            node.calls.append(np.array(grad, dtype=np.float64))
            return tuple(np.array(g, dtype=np.float64) for p, g in zip(tensor._parents, tensor._backward(grad))
                         if p.requires_grad)
        node.vjp = vjp
        made[id(tensor)] = node
        interior.append(node)
    return made[id(root)], {name: made[id(t)] for name, t in leaves.items()}, interior


def _walk(root, seed, accumulate=True):
    """The checker's own walk over a GraphNode graph in reverse topological order, right
    (``accumulate``) or keeping only each node's last contribution; returns ({id(node): the gradient it passed on or, for a
    leaf, received}, without touching the nodes)."""
    order_list, seen, stack = [], set(), [(root, False)]
    while stack:
        node, ready = stack.pop()
        if ready:
            order_list.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack += [(p, False) for p in node.parents if id(p) not in seen]
    grads = {id(root): np.asarray(seed, dtype=np.float64)}
    for node in reversed(order_list):
        grad = grads.get(id(node))
        if grad is None or node.vjp is None:
            continue
        calls = getattr(node, "calls", None)
        saved = list(calls) if calls is not None else None
        parent_grads = node.vjp(grad)
        if calls is not None:
            calls[:] = saved                      # the checker's own walks do not count as the learner's calls
        for parent, parent_grad in zip(node.parents, parent_grads):
            grads[id(parent)] = parent_grad if not accumulate or id(parent) not in grads else grads[id(parent)] + parent_grad
    return grads


def _breadth_first(root, seed):
    """A typical wrong walk: the nodes in the order they are first reached from the root, each
    visited once; returns {id(leaf): the gradient it received}."""
    grads, queue, queued, leaves = {id(root): np.asarray(seed, dtype=np.float64)}, [root], {id(root)}, {}
    while queue:
        node = queue.pop(0)
        grad = grads.pop(id(node))
        if node.vjp is None:
            leaves[id(node)] = grad
            continue
        saved = list(node.calls)
        parent_grads = node.vjp(grad)
        node.calls[:] = saved
        for parent, parent_grad in zip(node.parents, parent_grads):
            grads[id(parent)] = grads[id(parent)] + parent_grad if id(parent) in grads else parent_grad
            if id(parent) not in queued:
                queued.add(id(parent))
                queue.append(parent)
    return leaves


def _graphs(rng):
    """(what it is, the root Tensor, {name: leaf Tensor}, the seed) for exercise 12."""
    def leaf(*shape):
        return Tensor(rng.standard_normal(shape), requires_grad=True)
    a, b = leaf(3, 4), leaf(3, 4)
    yield "a chain, sum(tanh(a * b))", ops.sum(ops.tanh(ops.mul(a, b))), {"a": a, "b": b}, np.array(1.0)
    x = leaf(5)
    y = ops.tanh(x)
    yield ("a reused node, sum((y * y + y) * x) with y = tanh(x)", ops.sum(ops.mul(ops.add(ops.mul(y, y), y), x)),
           {"x": x}, np.array(1.0))
    a, b, c = leaf(3, 4), leaf(4), leaf(3, 1)
    yield ("broadcasting, (a + b) * c + b with a (3, 4), b (4,), c (3, 1), seeded with a (3, 4) gradient",
           ops.add(ops.mul(ops.add(a, b), c), b), {"a": a, "b": b, "c": c}, rng.standard_normal((3, 4)))
    a, b = leaf(2, 3), leaf(2, 3)
    y = ops.mul(a, b)
    z = ops.tanh(y)
    yield ("a node reached along paths of different lengths, sum((tanh(y) * y + exp(y)) * a) with y = a * b",
           ops.sum(ops.mul(ops.add(ops.mul(z, y), ops.exp(y)), a)), {"a": a, "b": b}, np.array(1.0))


def check_tensor_backward(tensor_backward):
    """Chapter 1: Tensor.backward's walk: every node's gradient complete before it is passed on,
    reused nodes' contributions added, leaves' .grad accumulated."""
    rng = np.random.default_rng(12)
    for case, root_tensor, leaf_tensors, seed in _graphs(rng):
        root, leaves, interior = _mirror(root_tensor, leaf_tensors)
        right_grads = _walk(root, seed)
        root_tensor.backward(seed.copy(), retain_graph=True)
        for name, t in leaf_tensors.items():          # the checker's walk is tinybert's
            assert np.allclose(right_grads[id(leaves[name])], t.grad), name
        overwritten, breadth_first = _walk(root, seed, accumulate=False), _breadth_first(root, seed)
        call(tensor_backward, root, seed.copy(), copy=False)
        for node in interior:
            if len(node.calls) > 1:
                raise NotYet(f"in {case}: node {node.name!r} had its vjp called {len(node.calls)} times" + _hint(
                    "each node should pass its gradient on once, when it has received all of it; following every "
                    "path from the root separately calls a node once per path, exponentially many in a deep graph"))
        for node in interior:
            if node.calls and id(node) in overwritten and close(node.calls[0], overwritten[id(node)], 1e-10) \
                    and not close(node.calls[0], right_grads[id(node)], 1e-10):
                raise NotYet(f"in {case}: node {node.name!r} passed on only the last contribution it received" + _hint(
                    "a node used more than once receives a share of gradient from every use: add them up"))
            if node.calls and not close(node.calls[0], right_grads[id(node)], 1e-10):
                raise NotYet(f"in {case}: node {node.name!r} passed its gradient on before it had received all of it "
                             f"(it feeds {sum(n.parents.count(node) for n in interior)} inputs of later ops)" + _hint(
                                 "a node may call its vjp only after every op that used it has handed back its "
                                 "share: in which order must the nodes be visited?"))
        for name, node in leaves.items():
            if node.grad is None:
                raise NotYet(f"in {case}: leaf {name!r} has no .grad after your backward" + _hint(
                    "no gradient reached it, or it was not stored in the leaf's .grad: a node hands gradient to its "
                    "parents only when it is visited; was every node visited after the nodes that consume it?"))
            compare(f"in {case}: leaf {name!r}'s .grad", node.grad, leaf_tensors[name].grad, tolerance=1e-10, mistakes=[
                (overwritten.get(id(node), 0 * node.value), "a node used more than once kept only the last "
                                                            "contribution it received: every use adds its own share"),
                (breadth_first.get(id(node), 0 * node.value), "this leaf was visited in the order nodes are first "
                                                              "reached from the root, before all the gradient for "
                                                              "it had arrived: which order guarantees that it has?")])
    # a leaf that already holds a gradient, from an earlier backward
    _, root_tensor, leaf_tensors, seed = next(_graphs(np.random.default_rng(120)))
    root, leaves, _ = _mirror(root_tensor, leaf_tensors)
    root_tensor.backward(seed.copy(), retain_graph=True)
    earlier = {name: rng.standard_normal(node.value.shape) for name, node in leaves.items()}
    for name, node in leaves.items():
        node.grad = earlier[name].copy()
    call(tensor_backward, root, seed.copy(), copy=False)
    for name, node in leaves.items():
        compare(f"leaf {name!r}'s .grad when it already held one", node.grad, earlier[name] + leaf_tensors[name].grad,
                tolerance=1e-10, mistakes=[(leaf_tensors[name].grad, "your backward replaced the gradient the leaf "
                                            "already held; backward() adds to .grad (that is why a training step "
                                            "calls zero_grad)")])
    # a chain of 3000 ops: deeper than Python's recursion limit
    x = Tensor(rng.standard_normal(2), requires_grad=True)
    y = x
    for _ in range(3000):
        y = ops.mul(y, 1.0001)
    root_tensor = ops.sum(y)
    root, leaves, _ = _mirror(root_tensor, {"x": x})
    root_tensor.backward(np.array(1.0), retain_graph=True)
    try:
        call(tensor_backward, root, np.array(1.0), copy=False)
    except LearnerError as failure:
        if isinstance(failure.error, RecursionError):
            raise NotYet("on a chain of 3000 ops your code exceeded Python's recursion limit" + _hint(
                "a recursive walk needs one Python frame per node; keep the nodes still to visit in a list of "
                "your own")) from None
        raise
    compare("leaf 'x''s .grad through a chain of 3000 ops", leaves["x"].grad, x.grad, tolerance=1e-10)
    return ("every leaf's .grad equals tinybert's backward() on 4 graphs (a reused node, broadcasting, paths of "
            "different lengths), each vjp called once with its whole gradient, .grad accumulated, 3000 ops deep")


# ---------------------------------------------------------------- 13, 14: two fused backwards of chapter 2
def check_cross_entropy(cross_entropy):
    """Chapter 2: softmax cross entropy's loss and its fused gradient."""
    rng = np.random.default_rng(13)
    for case, logits, targets in [("ordinary logits", rng.standard_normal((4, 5)) * 2, np.array([0, 3, 3, 1])),
                                  ("logits of 1e4", np.array([[1e4, 0.0, -1e4], [0.0, 2e4, 1e4]]), np.array([2, 1]))]:
        right_loss, (right_grad,) = reference(lambda x: F.cross_entropy(x, targets), [logits], 1.0)
        loss, grad = outputs(call(cross_entropy, logits, targets.copy()), ("loss", "grad"))
        finite = [np.all(np.isfinite(np.asarray(a, dtype=np.float64))) for a in (loss, grad)]
        if not all(finite):
            raise NotYet(f"with {case} your {'loss' if not finite[0] else 'gradient'} is not finite" + _hint(
                "exp(1e4) overflows: softmax(z) does not change when the same number is subtracted from every "
                "entry of a row, so choose one that keeps every exponent <= 0"))
        N, C = logits.shape
        probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        onehot = np.eye(C)[targets]
        column = np.exp(logits - logits.max(axis=0, keepdims=True))
        column /= column.sum(axis=0, keepdims=True)
        shifted = logits - logits.max(axis=-1, keepdims=True)        # the row's max, then a sum down the columns
        with np.errstate(divide="ignore", over="ignore"):
            column_loss = -np.log(column[np.arange(N), targets]).mean()
            mixed_loss = -(shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True)))[np.arange(N), targets].mean()
        compare(f"the loss ({case})", loss, right_loss, mistakes=[
            (N * right_loss, "you summed over the N rows; the loss is their mean"),
            (column_loss, "the softmax ran over the wrong axis: each row, one example's C classes, sums to 1"),
            (mixed_loss, "the softmax's sum ran over the wrong axis: each row, one example's C classes, sums to 1")])
        compare(f"the gradient ({case})", grad, right_grad, mistakes=[
            (probs / N, "your gradient ignores which class is the target: -log p_target depends on the target's "
                        "logit directly, not only through the normaliser"),
            (-onehot / N, "your gradient is zero off the target: every logit changes the normaliser, so every "
                          "logit gets a gradient"),
            ((column - onehot) / N, "the softmax ran over the wrong axis: each row, one example's C classes, "
                                    "sums to 1"),
            (N * right_grad, "you left out the 1/N of the mean")])
    return "the loss and its gradient equal tinybert.functional.cross_entropy's, on ordinary logits and logits of 1e4"


def check_gelu_backward(gelu_backward):
    """Chapter 2: the exact GELU's backward."""
    rng = np.random.default_rng(14)
    x = np.concatenate([rng.standard_normal(20) * 2, [-4.0, -np.sqrt(2), -0.5, 0.0, 0.5, np.sqrt(2), 4.0]])
    grad = rng.standard_normal(x.shape)
    _, (right,) = reference(F.gelu, [x], grad)
    yours = call(gelu_backward, grad, x)
    from scipy.special import erf
    cdf, pdf = 0.5 * (1 + erf(x / np.sqrt(2))), np.exp(-x * x / 2) / np.sqrt(2 * np.pi)
    k = np.sqrt(2 / np.pi)
    inner = k * (x + 0.044715 * x ** 3)
    tanh_derivative = 0.5 * (1 + np.tanh(inner)) + 0.5 * x * (1 - np.tanh(inner) ** 2) * k * (1 + 3 * 0.044715 * x ** 2)
    compare("dL/dx", yours, right, tolerance=1e-10, mistakes=[
        (grad * cdf, "you treated Phi(x) as a constant: y = x * Phi(x) is a product, and the product rule has two terms"),
        (grad * (cdf + x * pdf * np.sqrt(2 * np.pi)), "the derivative of Phi is the standard normal density: check "
                                                      "its normalising constant"),
        (grad * (0.5 * (1 + erf(x)) + x * np.exp(-x * x) / np.sqrt(np.pi)), "Phi(x) is (1 + erf(x / sqrt 2)) / 2: "
                                                                            "the sqrt 2 is missing"),
        (grad * (0.5 * (1 + erf(x)) + x * pdf), "Phi(x) is (1 + erf(x / sqrt 2)) / 2: the sqrt 2 is missing"),
        (grad * tanh_derivative, "this is the derivative of the tanh approximation of GELU; BERT's, and "
                                 "tinybert's, is the exact erf form"),
        (cdf + x * pdf, "you left out g: the chain rule multiplies the incoming gradient by the local derivative")])
    error = gradcheck.relative_error(learner_op(lambda x: F.gelu(Tensor(x)).data,
                                                lambda grad, x: (call(gelu_backward, grad, x),), "your gelu"),
                                     [rng.standard_normal((3, 4))])
    return (f"dL/dx equals tinybert.functional.gelu's backward at {x.size} points; tinybert.gradcheck's relative "
            f"error {error:.1e}")


# ---------------------------------------------------------------- 15: one multi-task training step
class _TinyMultitask:
    """Exercise 15's model: a shared encoder h = tanh(x W + b) (the "bert." parameters, as
    MultitaskBert names its encoder's) and one linear head per task, a mean squared error each.
    It has the methods train.step_gradients calls (embed, head_output, loss), and task_loss."""

    def __init__(self, rng, tasks, features=4, hidden=3):
        def parameter(*shape):
            return Tensor(rng.standard_normal(shape), requires_grad=True)
        self.params = {"bert.weight": parameter(features, hidden), "bert.bias": parameter(hidden)}
        self.params.update({f"{task}_head.weight": parameter(hidden, 1) for task in tasks})

    def named_parameters(self):
        return list(self.params.items())

    def parameters(self):
        return list(self.params.values())

    def shared_parameters(self):
        return [p for name, p in self.params.items() if name.startswith("bert.")]

    def embed(self, batch):
        return Tensor(batch.x)

    def head_output(self, batch, embedded):
        hidden = ops.tanh(ops.add(ops.matmul(embedded, self.params["bert.weight"]), self.params["bert.bias"]))
        return ops.matmul(hidden, self.params[f"{batch.task}_head.weight"])

    def loss(self, batch, output):
        return F.mse_loss(output, batch.y)

    def task_loss(self, batch):
        return self.loss(batch, self.head_output(batch, self.embed(batch)))

    def copy(self):
        twin = _TinyMultitask.__new__(_TinyMultitask)
        twin.params = {name: Tensor(p.data.copy(), requires_grad=True) for name, p in self.params.items()}
        return twin


def _variant_step(model, batches, weights, optimizer, rng, max_norm, set_aside=True, reset=True, use_weights=True,
                  scope="shared", clip_first=False, zero_grad=True):
    """One step as the learner might write it: right with the defaults, else a typical mistake."""
    shared = model.shared_parameters() if scope == "shared" else model.parameters()
    task_gradients = []
    for task, task_batches in batches.items():
        for batch in task_batches:
            (model.task_loss(batch) * (weights[task] if use_weights else 1.0)).backward()
        if set_aside:
            task_gradients.append([p.grad for p in shared])
            if reset:
                for p in shared:
                    p.grad = None
    if not reset:                                   # each set-aside gradient holds the earlier tasks' too
        for p in shared:
            p.grad = None
    norm = optim.clip_grad_norm(model.parameters(), max_norm) if clip_first else None
    if set_aside:
        pcgrad.apply_pcgrad(shared, task_gradients, rng)
    if not clip_first:
        norm = optim.clip_grad_norm(model.parameters(), max_norm)
    optimizer.step()
    if zero_grad:
        optimizer.zero_grad()
    return norm


def check_training_step(training_step):
    """Chapter 9: one multi-task step: a backward per task, PCGrad on the encoder, clipping, AdamW."""
    tasks = ("sst", "para", "sts")
    weights = {"sst": 1.0, "para": 0.5, "sts": 2.0}
    max_norm, lr = 0.5, 0.05
    rng = np.random.default_rng(19)                 # a draw in which the tasks conflict at both steps
    start = _TinyMultitask(rng, tasks)
    steps = [{task: [types.SimpleNamespace(task=task, x=rng.standard_normal((5, 4)), y=rng.standard_normal((5, 1)) * 2)
                     for _ in range(2 if task == "para" else 1)] for task in tasks} for _ in range(2)]

    def run(step_function, **flags):
        """[(the norm it returned, every parameter after the step)] for each step, from ``start``."""
        model = start.copy()
        optimizer = optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        pcgrad_rng, states = np.random.default_rng(150), []
        for batches in steps:
            norm = step_function(model, batches, dict(weights), optimizer, pcgrad_rng, max_norm, **flags)
            states.append((norm, {name: p.data.copy() for name, p in model.named_parameters()}))
        return states

    right = run(_variant_step)      # train.step_gradients + clipping + AdamW give the same (tests/test_exercises.py)
    without_pcgrad = run(_variant_step, set_aside=False)
    assert not all(np.allclose(a[1][n], b[1][n]) for a, b in zip(right, without_pcgrad) for n in a[1])  # tasks conflict
    mistakes = [
        (run(_variant_step, reset=False), "a task's encoder gradient held the earlier tasks' too: after setting it "
                                          "aside, clear .grad before the next task's backward"),
        (without_pcgrad, "the encoder received the plain sum of the task gradients: PCGrad's "
                                              "projections were never applied"),
        (run(_variant_step, scope="all"), "you ran PCGrad over the heads too: only the shared encoder's gradients "
                                          "are projected; a head is reached by its own task alone"),
        (run(_variant_step, use_weights=False), "each task's loss is scaled by its weight before its backward"),
        (run(_variant_step, clip_first=True), "you clipped before PCGrad had written the encoder's gradient: clip "
                                              "what the optimizer will use"),
        (run(_variant_step, zero_grad=False), "the second step's gradients still held the first's: clear them "
                                              "after the optimizer's step")]
    mine = run(lambda *arguments: call(training_step, *arguments, copy=False))
    for t, ((norm, params), (right_norm, right_params)) in enumerate(zip(mine, right), start=1):
        for name in right_params:
            compare(f"{name} after step {t}", params[name], right_params[name], tolerance=1e-9,
                    mistakes=[(states[t - 1][1][name], hint) for states, hint in mistakes])
        if norm is None:
            raise NotYet(f"step {t}: your training_step returned None" + _hint(
                "return the gradients' global norm before clipping, as tinybert.optim.clip_grad_norm gives it"))
        compare(f"the gradient norm returned by step {t}", norm, right_norm, tolerance=1e-9)
    return (f"every parameter after {len(steps)} steps, and the norms returned, equal train.step_gradients + "
            f"clip_grad_norm + AdamW's on a 3-task model (PCGrad conflicts included)")


# ---------------------------------------------------------------- the table
@dataclasses.dataclass
class Exercise:
    number: str          # "01" .. "11": the chapter's number; from "12" on, further exercises (see chapter)
    name: str            # the function to write
    chapter: str         # the chapter that teaches it
    title: str           # what it is, in a few words
    check: object        # check(learner's function) -> one line; raises NotYet

    @property
    def starter(self):
        """The starter file the learner copies."""
        return f"docs/exercises/{self.number}_{self.name}.py"


EXERCISES = {exercise.number: exercise for exercise in [
    Exercise("01", "mul_backward", "01-autograd.md", "the backward of mul, with broadcasting", check_mul_backward),
    Exercise("02", "layer_norm_backward", "02-gradients.md", "layer norm's backward", check_layer_norm_backward),
    Exercise("03", "numeric_gradient", "03-gradcheck.md", "a gradient by central differences", check_numeric_gradient),
    Exercise("04", "attention", "04-bert.md", "scaled dot-product attention with the padding mask", check_attention),
    Exercise("05", "hf_to_tinybert", "05-weights.md", "Hugging Face names and layouts to tinybert's",
             check_hf_to_tinybert),
    Exercise("06", "encode_pairs", "06-tokenization.md", "sentence pairs: special tokens, token types, padding, "
             "truncation", check_encode_pairs),
    Exercise("07", "bce_with_logits", "07-multitask.md", "binary cross entropy from logits, stable, with its gradient",
             check_bce_with_logits),
    Exercise("08", "adamw_update", "08-adamw.md", "one AdamW step", check_adamw_update),
    Exercise("09", "project_conflicting", "09-pcgrad.md", "PCGrad's projection of one task's gradient",
             check_project_conflicting),
    Exercise("10", "ascent_step", "10-smart.md", "one step of SMART's ascent: a normalised step, then the projection",
             check_ascent_step),
    Exercise("11", "cosine_loss", "11-cosine.md", "the cosine-similarity loss and its gradients", check_cosine_loss),
    Exercise("12", "tensor_backward", "01-autograd.md", "backward()'s walk over the graph: order and accumulation",
             check_tensor_backward),
    Exercise("13", "cross_entropy", "02-gradients.md", "softmax cross entropy, stable, with its fused gradient",
             check_cross_entropy),
    Exercise("14", "gelu_backward", "02-gradients.md", "the exact GELU's backward", check_gelu_backward),
    Exercise("15", "training_step", "09-pcgrad.md", "one multi-task step: a backward per task, PCGrad, clip, AdamW",
             check_training_step),
]}


# ---------------------------------------------------------------- running a check
def check(number, path, out=None, shown_as=None):
    """Check the learner's file ``path`` for exercise ``number`` in this process; print the
    verdict to ``out``. Returns True when the answer is correct. ``shown_as``: the name the
    learner knows the file by (``path`` being a copy). The command runs this in a child
    process, :func:`check_isolated`."""
    out = out or sys.stdout
    exercise = EXERCISES[number]
    shown_as = str(shown_as or path)
    print(f"Exercise {number}, {exercise.title} (docs/{exercise.chapter}): checking {shown_as}", file=out)
    try:
        print(f"  correct: {exercise.check(load(path, exercise.name, shown_as))}", file=out)
        return True
    except NotWritten:
        print(f"  not written yet: {exercise.name}() still raises NotImplementedError. Write its body "
              f"(docs/{exercise.chapter} explains it), then check again.", file=out)
    except NotYet as wrong:
        print(f"  not yet: {wrong}", file=out)
    except LearnerError as failure:
        print(_their_traceback(failure.error, shown_as), file=out, end="")
        where = _last_line_in(failure.error, shown_as)
        print(f"  your code raised {type(failure.error).__name__} while {failure.doing}"
              f"{f' (line {where})' if where else ''}: {failure.error}", file=out)
    return False


# ---------------------------------------------------------------- the child process
def check_isolated(number, path, out=None, timeout=TIMEOUT, repository=ROOT):
    """:func:`check` in a child process of the same Python, from a copy of ``path`` in a
    temporary folder that is its working directory, killed after ``timeout`` seconds; correct
    only when the child's last line is its verdict "correct", with the token handed to it on
    stdin, and the files of ``repository`` are as they were (see the module's docstring for
    what is and is not prevented). Prints what the child printed, then the verdict line."""
    out = out or sys.stdout
    token = secrets.token_hex(16)
    before = repository_files(repository)
    with tempfile.TemporaryDirectory(prefix="exercise-") as work:
        copy = os.path.join(work, os.path.basename(path))
        shutil.copyfile(path, copy)
        code = os.path.join(work, "code")    # the child imports a copy of tinybert/ and tools/, not the repository's
        for package in ("tinybert", "tools"):
            shutil.copytree(ROOT / package, os.path.join(code, package), ignore=shutil.ignore_patterns("__pycache__"))
        environment = {name: value for name, value in os.environ.items() if name not in ("PWD", "OLDPWD")}
        environment.update(PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=code)
        child = subprocess.Popen([sys.executable, "-m", "tools.exercises", "_run", number, copy, os.path.abspath(path)],
                                 cwd=work, env=environment, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            printed, errors = child.communicate(token + "\n", timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill(child)
            printed, errors = child.communicate()
            timed_out = True
    verdicts = re.findall(rf"^{VERDICT} {token} (correct|not-correct)$", printed, re.M)
    printed = re.sub(rf"\n?{VERDICT} {token} (correct|not-correct)\n", "", printed)
    print(printed, file=out, end="" if printed.endswith("\n") or not printed else "\n")
    if errors:
        print(errors, file=sys.stderr, end="")
    changes = _changes(before, repository_files(repository))
    if timed_out:
        print(f"  timed out: your code ran for more than {timeout:g} s (an endless loop?)", file=out)
    elif not verdicts:
        print(f"  no verdict: the check ended (exit status {child.returncode}) before saying whether your answer is "
              "right (does your code call os._exit() or crash Python?), so it is not counted as correct", file=out)
    if changes:
        print(f"  not correct: your code changed the repository {repository}: {changes}", file=out)
    return not timed_out and not changes and verdicts == ["correct"]


def _child(argv):
    """``python -m tools.exercises _run NUMBER COPY SHOWN_AS``: the token first, from stdin,
    then the check, then the verdict line holding the token."""
    number, path, shown_as = argv
    token = sys.stdin.readline().strip()
    sys.stdin.close()
    passed = check(number, path, out=sys.stdout, shown_as=shown_as)
    sys.stdout.write(f"\n{VERDICT} {token} {'correct' if passed else 'not-correct'}\n")
    sys.stdout.flush()
    return 0


def _kill(child):
    """The child and whatever it started (its own process group)."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (AttributeError, OSError):           # no process groups (Windows), or already gone
        child.kill()


IGNORED_FOLDERS = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", "node_modules"}


def repository_files(repository):
    """{path relative to ``repository``: (size, modification time)} of git's tracked files and
    the untracked ones it does not ignore; outside a git work tree, of every file but those
    under .git, .venv and caches."""
    repository = str(repository)
    try:
        listed = subprocess.run(["git", "-C", repository, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                capture_output=True, check=True, timeout=60).stdout.decode("utf-8", "replace")
        inside = subprocess.run(["git", "-C", repository, "rev-parse", "--show-prefix"], capture_output=True,
                                check=True, timeout=60).stdout.decode().strip()
        names = [name for name in listed.split("\0") if name] if not inside else None
    except (OSError, subprocess.SubprocessError):
        names = None
    if names is None:                                  # not the top of a git work tree
        names = []
        for folder, subfolders, filenames in os.walk(repository):
            subfolders[:] = [d for d in subfolders if d not in IGNORED_FOLDERS]
            names += [os.path.relpath(os.path.join(folder, f), repository) for f in filenames]
    found = {}
    for name in names:
        try:
            status = os.lstat(os.path.join(repository, name))
        except OSError:
            continue
        found[name] = (status.st_size, status.st_mtime_ns)
    return found


def _changes(before, after):
    """"a.py changed, b.txt deleted, c.txt new (and 2 more)", or "" when nothing changed."""
    changes = ([f"{name} deleted" for name in sorted(set(before) - set(after))]
               + [f"{name} changed" for name in sorted(set(before) & set(after)) if before[name] != after[name]]
               + [f"{name} new" for name in sorted(set(after) - set(before))])
    return ", ".join(changes[:3]) + (f" (and {len(changes) - 3} more)" if len(changes) > 3 else "")


def _frames_in(error, path):
    frames = traceback.extract_tb(error.__traceback__)
    mine = [i for i, frame in enumerate(frames) if os.path.abspath(frame.filename) == os.path.abspath(path)]
    return frames, mine


def _their_traceback(error, path):
    """The traceback from the first frame in the learner's file on (the checker's own frames
    before it are not theirs to read); a syntax error is all theirs."""
    frames, mine = _frames_in(error, path)
    shown = frames[mine[0]:] if mine else []
    return ("Traceback (most recent call last):\n" + "".join(traceback.format_list(shown)) if shown else "") + \
        "".join(traceback.format_exception_only(type(error), error))


def _last_line_in(error, path):
    frames, mine = _frames_in(error, path)
    if mine:
        return frames[mine[-1]].lineno
    return getattr(error, "lineno", None) if isinstance(error, SyntaxError) else None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_run"]:                           # the child process of check_isolated
        return _child(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m tools.exercises", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every exercise, its chapter and its starter file")
    checking = commands.add_parser("check", help="check your answer to one exercise")
    checking.add_argument("number", choices=sorted(EXERCISES), help="the exercise: its chapter's number")
    checking.add_argument("file", help="your copy of the starter file, its function written")
    checking.add_argument("--timeout", type=float, default=TIMEOUT, help=f"seconds the check may take ({TIMEOUT})")
    checking.add_argument("--repository", default=str(ROOT), help="the folder whose files your code must leave "
                          "as they were (this repository)")
    args = parser.parse_args(argv)
    if args.command == "list":
        for exercise in EXERCISES.values():
            print(f"{exercise.number}  {exercise.starter:<42} {exercise.title}")
        return 0
    if not os.path.isfile(args.file):
        print(f"{args.file}: no such file (copy {EXERCISES[args.number].starter} and write its function)", file=sys.stderr)
        return 2
    return 0 if check_isolated(args.number, args.file, timeout=args.timeout, repository=args.repository) else 1


if __name__ == "__main__":
    sys.exit(main())
