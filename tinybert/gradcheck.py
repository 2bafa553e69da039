"""Check every op's backward against central finite differences, in float64.

    python -m tinybert.gradcheck        (or: make gradcheck)

For an op f and random inputs x, take a random weighting w of the output and the scalar
L = sum(w * f(x)). backward() gives dL/dx analytically; the central difference
(L(x + eps e_i) - L(x - eps e_i)) / (2 eps) estimates each entry numerically, with an error
of order eps^2 (truncation) + 1e-16 / eps (rounding), about 1e-10 for eps = 1e-6 in float64.
The relative error max|analytic - numeric| / max|numeric| must stay below 1e-6.

Prints one line per check and, last, ``N passed, M failed``; exits 1 if any failed.
"""
import dataclasses
import sys

import numpy as np

from . import backend, functional as F, ops
from .tensor import Tensor, no_grad

EPS = 1e-6
TOLERANCE = 1e-6


@dataclasses.dataclass
class Check:
    name: str
    function: object        # f(*tensors) -> Tensor
    inputs: list            # float64 arrays; the ones listed in `differentiate` get gradients
    differentiate: tuple = None  # indices of inputs to check (default: all)


def relative_error(function, inputs, differentiate=None, seed=0):
    """max|analytic - numeric| / max|numeric|, both maxima over every checked input.

    Measuring against the largest gradient of the whole check (not entry by entry) keeps
    gradients that are zero in exact arithmetic, like BERT's key bias (softmax ignores a
    constant added to a row of scores), from dividing rounding noise by ~0.

    ``inputs`` are arrays or Tensors (a model's own Parameters can be checked in place:
    their ``.data`` is perturbed and restored). A non-finite result counts as infinite error.
    """
    differentiate = range(len(inputs)) if differentiate is None else differentiate
    tensors = [x if isinstance(x, Tensor) else Tensor(backend.xp.asarray(x)) for x in inputs]
    for i, tensor in enumerate(tensors):
        tensor.requires_grad, tensor.grad = i in differentiate, None
    out = function(*tensors)
    weights = backend.xp.asarray(np.random.default_rng(seed).standard_normal(out.shape))
    ops.sum(ops.mul(out, weights)).backward()

    def loss():
        with no_grad():
            return float((function(*tensors).data * weights).sum())

    worst_difference = largest_gradient = 0.0
    for i in differentiate:
        flat = tensors[i].data.reshape(-1)  # a view: writing to it perturbs the input
        numeric = backend.xp.zeros(flat.size)
        for j in range(flat.size):
            original = float(flat[j])
            flat[j] = original + EPS
            plus = loss()
            flat[j] = original - EPS
            minus = loss()
            flat[j] = original
            numeric[j] = (plus - minus) / (2 * EPS)
        analytic = tensors[i].grad.reshape(-1)
        worst_difference = max(worst_difference, float(abs(analytic - numeric).max()))
        largest_gradient = max(largest_gradient, float(abs(numeric).max()))
    error = worst_difference / max(largest_gradient, 1e-12)
    return error if np.isfinite(error) else float("inf")


def _seeded(function, seed=0):
    """Reseed the backend before each call, so dropout draws the same mask every time."""
    def call(*tensors):
        backend.seed(seed)
        return function(*tensors)
    return call


def tiny_bert():
    """A 2-layer BERT in float64 (hidden 8, 2 heads, intermediate 12, no dropout), its
    parameters drawn at unit scale so that every one of them has a sizeable gradient."""
    from .model import BertConfig, BertModel
    backend.seed(0)
    config = BertConfig(vocab_size=11, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=12, max_position_embeddings=8, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, dtype="float64")
    model = BertModel(config)
    rng = np.random.default_rng(1)
    for p in model.parameters():
        p.data = p.data + backend.xp.asarray(rng.standard_normal(p.shape) * 0.5)
    return model


def checks():
    rng = np.random.default_rng(0)

    def randn(*shape):
        return rng.standard_normal(shape)

    def positive(*shape):
        return rng.uniform(0.5, 2.0, shape)

    mask = np.zeros((2, 1, 1, 5))
    mask[1, ..., 3:] = -1e9                            # the second row has two padding positions
    attention_mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    ids = np.array([[1, 3, 3], [0, 1, 3]])             # id 3 repeats: its gradient must accumulate
    targets = np.array([0, 2, 1, 2])
    model = tiny_bert()
    model_ids = np.array([[2, 5, 7, 3, 9], [2, 4, 3, 0, 0]])
    model_types = np.array([[0, 0, 0, 1, 1], [0, 0, 1, 0, 0]])

    def bert_block(embedded):
        return model(model_ids, attention_mask, embedding_output=embedded).last_hidden_state

    def bert_parameters(*params):  # the parameters are the model's own, perturbed in place
        out = model(model_ids, attention_mask=attention_mask, token_type_ids=model_types)
        return out.pooler_output

    return [
        Check("add (broadcast row)", ops.add, [randn(3, 4), randn(4)]),
        Check("add (broadcast both)", ops.add, [randn(3, 1), randn(1, 4)]),
        Check("sub", ops.sub, [randn(3, 4), randn(3, 1)]),
        Check("mul (broadcast)", ops.mul, [randn(2, 3, 4), randn(3, 1)]),
        Check("div", ops.div, [randn(3, 4), positive(4)]),
        Check("neg", ops.neg, [randn(3, 4)]),
        Check("pow (3)", lambda x: ops.pow(x, 3.0), [randn(3, 4)]),
        Check("pow (-0.5)", lambda x: ops.pow(x, -0.5), [positive(3, 4)]),
        Check("matmul (2-D)", ops.matmul, [randn(3, 4), randn(4, 5)]),
        Check("matmul (batched @ 2-D)", ops.matmul, [randn(2, 3, 4), randn(4, 5)]),
        Check("matmul (broadcast batch)", ops.matmul, [randn(2, 1, 3, 4), randn(3, 4, 2)]),
        Check("sum (axis)", lambda x: ops.sum(x, axis=1), [randn(2, 3, 4)]),
        Check("sum (axes, keepdims)", lambda x: ops.sum(x, axis=(0, 2), keepdims=True), [randn(2, 3, 4)]),
        Check("sum (all)", ops.sum, [randn(2, 3)]),
        Check("mean (axis)", lambda x: ops.mean(x, axis=-1), [randn(2, 3, 4)]),
        Check("reshape", lambda x: ops.reshape(x, (4, 6)), [randn(2, 3, 4)]),
        Check("permute", lambda x: ops.permute(x, (2, 0, 1)), [randn(2, 3, 4)]),
        Check("transpose", ops.transpose, [randn(2, 3, 4)]),
        Check("getitem (slice)", lambda x: x[:, 1:3], [randn(3, 4)]),
        Check("getitem (repeated ids)", lambda x: x[np.array([0, 2, 0])], [randn(3, 4)]),
        Check("concatenate", lambda a, b: ops.concatenate([a, b], axis=1), [randn(2, 3), randn(2, 2)]),
        Check("exp", ops.exp, [randn(3, 4)]),
        Check("log", ops.log, [positive(3, 4)]),
        Check("sqrt", ops.sqrt, [positive(3, 4)]),
        Check("tanh", ops.tanh, [randn(3, 4)]),
        Check("sigmoid", ops.sigmoid, [randn(3, 4)]),
        Check("gelu", F.gelu, [randn(3, 4) * 2]),
        Check("softmax", F.softmax, [randn(2, 5)]),
        Check("softmax (masked)", lambda x: F.softmax(x, mask), [randn(2, 2, 3, 5)]),
        # masked outputs sit near -1e9, where float64 resolves a 1e-6 step only to about 10 %: check the rest
        Check("log_softmax (masked)", lambda x: F.log_softmax(x, mask)[..., :3], [randn(2, 2, 3, 5)]),
        Check("layer_norm", lambda x, w, b: F.layer_norm(x, w, b, 1e-5), [randn(2, 3, 6), randn(6), randn(6)]),
        Check("dropout (train)", _seeded(lambda x: F.dropout(x, 0.3, training=True)), [randn(4, 5)]),
        Check("embedding (repeated ids)", lambda w: F.embedding(ids, w), [randn(5, 3)]),
        Check("linear", F.linear, [randn(2, 3, 4), randn(4, 5), randn(5)]),
        Check("cross_entropy", lambda x: F.cross_entropy(x, targets), [randn(4, 3)]),
        Check("bce_with_logits", lambda x: F.binary_cross_entropy_with_logits(x, np.array([0.0, 1.0, 1.0, 0.0])), [randn(4)]),
        Check("mse_loss", F.mse_loss, [randn(6), randn(6)]),
        Check("cosine_similarity", F.cosine_similarity, [randn(3, 4), randn(3, 4)]),
        Check("masked_mean", lambda x: F.masked_mean(x, attention_mask), [randn(2, 5, 3)]),
        Check("symmetric_kl", F.symmetric_kl, [randn(3, 4), randn(3, 4)]),
        Check("bert (2 layers, input)", bert_block, [randn(2, 5, 8)]),
        Check("bert (2 layers, parameters)", bert_parameters, model.parameters()),
    ]


def run(verbose=True):
    passed = failed = 0
    for check in checks():
        error = relative_error(check.function, check.inputs, check.differentiate)
        ok = error < TOLERANCE
        passed, failed = passed + ok, failed + (not ok)
        if verbose:
            print(f"{check.name:<30} max rel err {error:9.2e}  {'pass' if ok else 'FAIL'}")
    print(f"{passed} passed, {failed} failed")
    return failed == 0


if __name__ == "__main__":
    sys.exit(0 if run() else 1)
