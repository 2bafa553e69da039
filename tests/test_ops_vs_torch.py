"""Every op's forward, and its gradient, against the PyTorch reference function in float32.

Tolerance: 1e-5 relative to the tensor's largest entry (float32 carries ~7 digits; the two
libraries may sum in different orders)."""
import numpy as np
import pytest
import torch

from tinybert import Tensor, functional as F, ops
from conftest import relative_error

TOLERANCE = 1e-5
rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def positive(*shape):
    return rng.uniform(0.5, 2.0, shape).astype(np.float32)


mask = np.zeros((2, 1, 1, 5), np.float32)
mask[1, ..., 3:] = np.finfo(np.float32).min
attention_mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
ids = np.array([[1, 3, 3], [0, 1, 3]])
targets = np.array([0, 2, 1, 2])
binary = np.array([0.0, 1.0, 1.0, 0.0], np.float32)


def torch_masked_mean(x):
    m = torch.tensor(attention_mask, dtype=x.dtype)[:, :, None]
    return (x * m).sum(1) / m.sum(1)


def torch_symmetric_kl(p, q):
    lp, lq = torch.log_softmax(p, -1), torch.log_softmax(q, -1)
    return ((lp.exp() - lq.exp()) * (lp - lq)).sum(-1).mean()


CASES = [
    ("add", ops.add, torch.add, [randn(3, 4), randn(4)]),
    ("sub", ops.sub, torch.sub, [randn(3, 4), randn(3, 1)]),
    ("mul", ops.mul, torch.mul, [randn(2, 3, 4), randn(3, 1)]),
    ("div", ops.div, torch.div, [randn(3, 4), positive(4)]),
    ("neg", ops.neg, torch.neg, [randn(3, 4)]),
    ("pow", lambda x: ops.pow(x, 3.0), lambda x: x ** 3.0, [randn(3, 4)]),
    ("matmul", ops.matmul, torch.matmul, [randn(2, 1, 3, 4), randn(3, 4, 2)]),
    ("matmul 2-D weight", ops.matmul, torch.matmul, [randn(2, 3, 4), randn(4, 5)]),
    ("sum", lambda x: ops.sum(x, axis=1), lambda x: x.sum(1), [randn(2, 3, 4)]),
    ("mean", lambda x: ops.mean(x, axis=(0, 2)), lambda x: x.mean((0, 2)), [randn(2, 3, 4)]),
    ("reshape", lambda x: ops.reshape(x, (4, 6)), lambda x: x.reshape(4, 6), [randn(2, 3, 4)]),
    ("permute", lambda x: ops.permute(x, (2, 0, 1)), lambda x: x.permute(2, 0, 1), [randn(2, 3, 4)]),
    ("transpose", ops.transpose, lambda x: x.transpose(-2, -1), [randn(2, 3, 4)]),
    ("getitem", lambda x: x[np.array([0, 2, 0]), 1:], lambda x: x[[0, 2, 0], 1:], [randn(3, 4)]),
    ("concatenate", lambda a, b: ops.concatenate([a, b], 1), lambda a, b: torch.cat([a, b], 1), [randn(2, 3), randn(2, 2)]),
    ("exp", ops.exp, torch.exp, [randn(3, 4)]),
    ("log", ops.log, torch.log, [positive(3, 4)]),
    ("sqrt", ops.sqrt, torch.sqrt, [positive(3, 4)]),
    ("tanh", ops.tanh, torch.tanh, [randn(3, 4)]),
    ("sigmoid", ops.sigmoid, torch.sigmoid, [randn(3, 4) * 5]),
    ("gelu", F.gelu, torch.nn.functional.gelu, [randn(3, 40) * 3]),
    ("softmax masked", lambda x: F.softmax(x, mask), lambda x: torch.softmax(x + torch.tensor(mask), -1), [randn(2, 2, 3, 5)]),
    ("log_softmax", F.log_softmax, lambda x: torch.log_softmax(x, -1), [randn(4, 6)]),
    ("layer_norm", lambda x, w, b: F.layer_norm(x, w, b, 1e-12),
     lambda x, w, b: torch.nn.functional.layer_norm(x, (6,), w, b, 1e-12), [randn(2, 3, 6), randn(6), randn(6)]),
    ("embedding", lambda w: F.embedding(ids, w), lambda w: torch.nn.functional.embedding(torch.tensor(ids), w), [randn(5, 3)]),
    ("linear", F.linear, lambda x, w, b: x @ w + b, [randn(2, 3, 4), randn(4, 5), randn(5)]),
    ("cross_entropy", lambda x: F.cross_entropy(x, targets),
     lambda x: torch.nn.functional.cross_entropy(x, torch.tensor(targets)), [randn(4, 3)]),
    ("bce_with_logits", lambda x: F.binary_cross_entropy_with_logits(x, binary),
     lambda x: torch.nn.functional.binary_cross_entropy_with_logits(x, torch.tensor(binary)), [randn(4) * 10]),
    ("mse_loss", F.mse_loss, torch.nn.functional.mse_loss, [randn(6), randn(6)]),
    ("cosine_similarity", F.cosine_similarity, lambda a, b: torch.nn.functional.cosine_similarity(a, b, -1), [randn(3, 4), randn(3, 4)]),
    ("masked_mean", lambda x: F.masked_mean(x, attention_mask), torch_masked_mean, [randn(2, 5, 3)]),
    ("symmetric_kl", F.symmetric_kl, torch_symmetric_kl, [randn(3, 4), randn(3, 4)]),
]


@pytest.mark.parametrize("name, ours, theirs, inputs", CASES, ids=[c[0] for c in CASES])
def test_forward_and_gradient_match_torch(name, ours, theirs, inputs):
    our_inputs = [Tensor(x.copy(), requires_grad=True) for x in inputs]
    torch_inputs = [torch.tensor(x, requires_grad=True) for x in inputs]
    our_out, torch_out = ours(*our_inputs), theirs(*torch_inputs)
    assert our_out.dtype == np.float32
    assert relative_error(our_out.data, torch_out.detach().numpy()) < TOLERANCE, f"{name} forward"
    weights = randn(*our_out.shape)
    ops.sum(ops.mul(our_out, weights)).backward()
    (torch_out * torch.tensor(weights)).sum().backward()
    for i, (a, b) in enumerate(zip(our_inputs, torch_inputs)):
        assert relative_error(a.grad, b.grad.numpy()) < TOLERANCE, f"{name} gradient of input {i}"


def test_dropout_statistics_match_torch_semantics():
    x = np.ones((200, 200), np.float32)
    ours = F.dropout(Tensor(x), 0.1, training=True).data
    theirs = torch.nn.functional.dropout(torch.tensor(x), 0.1, training=True).numpy()
    assert set(np.unique(ours)) == set(np.unique(theirs))      # {0, 1 / 0.9}
    assert abs((ours == 0).mean() - 0.1) < 0.01
