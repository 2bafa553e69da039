"""tinybert.tensor.Tensor's bookkeeping of gradients: a leaf's .grad is its own array (no
gradient array shared between two inputs, nor with the seed given to backward), and item()
of a tensor of more than one element is a clear error."""
import numpy as np
import pytest

from tinybert import Tensor


def test_inputs_of_add_do_not_share_one_gradient_array():
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    ((a + b) * 2).sum().backward()
    assert not np.shares_memory(a.grad, b.grad)
    a.grad += 1.0                                   # an in-place change to one gradient...
    assert np.array_equal(b.grad, [2.0, 2.0, 2.0])  # ...leaves the other as it was


def test_a_reshaped_input_does_not_share_its_gradient_with_another_leaf():
    a = Tensor(np.ones((2, 3)), requires_grad=True)
    b = Tensor(np.ones(6), requires_grad=True)
    ((a + b.reshape(2, 3)) * 2).sum().backward()    # b.grad is a reshaped view of a's gradient
    assert not np.shares_memory(a.grad, b.grad)


def test_a_leaf_does_not_keep_the_seed_array_it_was_given():
    x = Tensor(np.ones(3), requires_grad=True)
    seed = np.full(3, 2.0)
    x.backward(seed)
    x.grad *= 10.0
    assert np.array_equal(seed, [2.0, 2.0, 2.0])


def test_item_of_a_non_scalar_is_a_clear_error():
    with pytest.raises(ValueError, match=r"item\(\).*one element.*\(2, 3\)"):
        Tensor(np.zeros((2, 3))).item()
    assert Tensor(np.full((1, 1), 4.0)).item() == 4.0
