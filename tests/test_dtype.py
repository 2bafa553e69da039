"""float32 stays float32: one training step of a small BertModel (dropout on, cross-entropy
head, AdamW) must not make a single float64 array. A stray float64 (an np.float64 scalar, a
float64 constant) silently doubles the memory and roughly halves the speed of every op after
it (docs/performance-log.md). Every op output is recorded by wrapping Tensor.from_op for the
duration of the test; gradients, optimizer moments and parameters are checked after the step.

Also the dtype rule of a new Tensor (its docstring), the same on NumPy and CuPy: an array keeps
its dtype, a number or list of floats becomes float32."""
import types

import numpy as np
import pytest

from tinybert import BertConfig, BertModel, backend, functional as F, nn, ops
from tinybert.optim import AdamW, clip_grad_norm
from tinybert.tensor import Tensor


@pytest.fixture
def op_dtypes(monkeypatch):
    """[(op name, dtype)] of every op output made while the test runs."""
    seen = []
    original = Tensor.from_op

    def recording(data, parents, backward, op):
        seen.append((op, data.dtype))

        def recording_backward(grad):
            grads = backward(grad)
            seen.extend((f"{op} backward", g.dtype) for g in grads if g is not None)
            return grads
        return original(data, parents, recording_backward, op)
    monkeypatch.setattr(Tensor, "from_op", staticmethod(recording))
    return seen


def test_training_step_is_float32_throughout(op_dtypes):
    backend.seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=32, max_position_embeddings=16)
    model = BertModel(config).train()
    head = nn.Linear(16, 3)
    params = model.parameters() + head.parameters()
    optimizer = AdamW(params, lr=1e-3, weight_decay=0.01)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 50, size=(2, 8))
    mask = np.ones((2, 8), dtype=np.int64)
    mask[1, 5:] = 0

    out = model(ids, attention_mask=mask)
    pooled = F.masked_mean(out.last_hidden_state, mask)
    loss = F.cross_entropy(head(out.pooler_output), np.array([0, 2])) + ops.mean(ops.mul(pooled, pooled))
    loss.backward()
    clip_grad_norm(params, 1.0)
    optimizer.step()

    assert op_dtypes, "no op was recorded: the from_op hook did not take"
    wrong = sorted({f"{op}: {dtype}" for op, dtype in op_dtypes if dtype != np.float32})
    assert not wrong, f"ops that made non-float32 arrays: {wrong}"
    for name, p in model.named_parameters():
        assert p.data.dtype == np.float32, f"parameter {name} is {p.data.dtype}"
        assert p.grad.dtype == np.float32, f"gradient of {name} is {p.grad.dtype}"
    for m, v in zip(optimizer.exp_avg, optimizer.exp_avg_sq):
        assert m.dtype == v.dtype == np.float32


@pytest.mark.parametrize("data, dtype", [
    ([1.0, 2.0], np.float32), (1.5, np.float32), (np.float64(1.5), np.float32),  # numbers, lists: float32
    ([1, 2], np.int64), (True, np.bool_),                                        # ...when they hold floats
    (np.array([1.0]), np.float64), (np.array([1.0], np.float16), np.float16),    # an array keeps its dtype
    (np.array([1, 2], np.int32), np.int32)])
def test_a_new_tensor_follows_the_dtype_rule(data, dtype):
    assert Tensor(data).dtype == dtype
    assert Tensor(Tensor(data)).dtype == dtype


def test_dtype_overrides_the_rule_and_non_numbers_are_refused():
    assert Tensor([1.0], dtype=np.float64).dtype == np.float64
    assert Tensor(np.ones(2), dtype=np.float32).dtype == np.float32
    for data in ("a", None, np.array(["a"]), np.array([1j])):
        with pytest.raises(TypeError, match="holds numbers"):
            Tensor(data)


def test_a_numpy_array_keeps_its_dtype_on_another_backend_too(monkeypatch):
    # On CuPy a NumPy array is not the backend's array type; it used to become float32 there
    # (and only there). A stand-in backend whose array type is not NumPy's plays CuPy's part.
    class DeviceArray(np.ndarray):
        pass
    monkeypatch.setattr(backend, "xp", types.SimpleNamespace(**{**vars(np), "ndarray": DeviceArray}))
    assert Tensor(np.array([1.0])).dtype == np.float64
    assert Tensor([1.0]).dtype == np.float32
