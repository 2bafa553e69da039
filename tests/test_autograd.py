"""The engine: broadcasting, accumulation, no_grad, graph freeing, deep graphs, and the
numerics of dropout and softmax (docs/01-autograd.md)."""
import numpy as np
import pytest

from tinybert import Tensor, backend, functional as F, no_grad, ops
from tinybert.gradcheck import checks, relative_error, TOLERANCE


@pytest.mark.parametrize("check", checks(), ids=lambda c: c.name)
def test_gradcheck(check):
    assert relative_error(check.function, check.inputs, check.differentiate) < TOLERANCE


def test_broadcast_gradient_is_summed_back_to_input_shape():
    x = Tensor(np.ones((3, 4)), requires_grad=True)
    row = Tensor(np.arange(4.0), requires_grad=True)
    column = Tensor(np.ones((3, 1)), requires_grad=True)
    ((x + row) * column).sum().backward()
    assert row.grad.shape == (4,) and np.allclose(row.grad, 3.0)       # summed over 3 rows
    assert column.grad.shape == (3, 1) and np.allclose(column.grad, 4 + np.arange(4.0).sum())


def test_mean_over_axes():
    x = Tensor(np.ones((2, 3, 4)), requires_grad=True)
    x.mean(axis=(0, 2)).sum().backward()
    assert np.allclose(x.grad, 1 / 8)


def test_tensor_used_twice_accumulates_both_gradients():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    (x * x + x).sum().backward()            # d/dx (x^2 + x) = 2x + 1
    assert np.allclose(x.grad, 2 * x.data + 1)


def test_leaf_gradients_accumulate_across_backward_calls():
    x = Tensor(np.array([2.0]), requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    assert np.allclose(x.grad, 6.0)


def test_accumulating_does_not_write_into_the_gradient_a_caller_holds():
    x = Tensor(np.array([2.0]), requires_grad=True)
    (x * 3.0).sum().backward()
    first = x.grad                          # e.g. a task's gradient set aside (train.step_gradients)
    (x * 3.0).sum().backward()
    assert np.array_equal(first, [3.0]) and np.array_equal(x.grad, [6.0])


def test_no_grad_records_no_graph():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = (x * 2.0).exp().sum()
    assert not y.requires_grad and y._parents == () and y._backward is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()
    assert (x * 2.0).requires_grad  # enabled again after the block


def test_graph_is_freed_after_backward_unless_retained():
    x = Tensor(np.ones(3), requires_grad=True)
    y = (x * 2.0).sum()
    y.backward(retain_graph=True)
    y.backward()                           # second pass allowed: graph was retained
    assert np.allclose(x.grad, 4.0)
    assert y._backward is None and y._parents == ()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_deep_chain_does_not_hit_the_recursion_limit():
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0 + 0.0                   # 10,000 ops deep
    y.sum().backward()
    assert np.allclose(x.grad, 1.0)


def test_wrong_gradient_shape_names_the_op():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = Tensor.from_op(x.data.sum(0), (x,), lambda grad: (grad,), "broken_sum")
    with pytest.raises(RuntimeError, match="broken_sum"):
        y.sum().backward()


def test_dropout_is_deterministic_for_a_seed_and_identity_in_eval():
    x = Tensor(np.ones((50, 40), dtype=np.float32))
    backend.seed(7)
    first = F.dropout(x, 0.25, training=True).data
    backend.seed(7)
    second = F.dropout(x, 0.25, training=True).data
    assert np.array_equal(first, second)
    assert set(np.unique(first)) == {0.0, np.float32(1 / 0.75)}      # inverted scaling
    assert abs((first == 0).mean() - 0.25) < 0.03
    assert F.dropout(x, 0.25, training=False) is x


def test_softmax_is_stable_for_huge_logits():
    logits = Tensor(np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4]], dtype=np.float32))
    probs = F.softmax(logits).data
    assert np.all(np.isfinite(probs))
    assert np.allclose(probs, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]])
    log_probs = F.log_softmax(logits).data
    assert np.all(np.isfinite(log_probs)) and np.isclose(log_probs[0, 0], 0.0)
    loss = F.cross_entropy(logits, np.array([1, 2]))
    assert np.isfinite(loss.item()) and np.isclose(loss.item(), (1e4 + np.log(3)) / 2, rtol=1e-5)


def test_masked_positions_get_zero_attention():
    # BertModel's additive mask: whatever the padding holds, the real tokens' outputs are the same
    from pathlib import Path
    from tinybert.convert import load_pretrained
    model = load_pretrained(Path(__file__).parent / "fixtures" / "tiny_bert_hf").eval()
    attention_mask = np.array([[1, 1, 1, 0, 0]])
    outputs = [model(np.array([[2, 5, 7] + padding]), attention_mask).last_hidden_state.numpy()[:, :3]
               for padding in ([0, 0], [9, 4])]
    assert np.array_equal(outputs[0], outputs[1])


def test_ops_keep_float32():
    x = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    y = F.gelu(ops.sqrt(x * 2.0 + 1) / 3.0).exp().mean()
    y.backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32


def test_leaf_gradient_is_a_writable_array():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    x.sum().backward()            # sum's backward hands back a read-only broadcast view
    x.grad += 1.0
    assert np.allclose(x.grad, 2.0)
