"""AdamW, the learning-rate schedule and gradient clipping, checked against PyTorch."""
import numpy as np
import pytest
import torch

from tinybert import Tensor
from tinybert.optim import AdamW, clip_grad_norm, linear_warmup_decay

SHAPES = [(4, 5), (5,), (3,), (2, 3)]  # the last one never gets a gradient
DECAYED = [True, False, False, True]   # param groups: weights decay, biases/LayerNorm do not


def run_beside_torch(dtype, steps=20, total_steps=20, warmup_steps=5, peak_lr=1e-2, lr_scales=None):
    """Train the same parameters with our AdamW and torch's, on the same random gradients
    and the same lr schedule; return (ours, torch's) parameters as NumPy arrays.
    ``lr_scales`` (decayed group's, other group's): our groups' "lr_scale", and torch's group
    lr = schedule * scale; None leaves "lr_scale" out of our groups."""
    rng = np.random.default_rng(0)
    initial = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
    ours = [Tensor(array.copy(), requires_grad=True) for array in initial]
    theirs = [torch.tensor(array.copy(), requires_grad=True) for array in initial]

    def groups(params):
        return [{"params": [p for p, d in zip(params, DECAYED) if d], "weight_decay": 0.1},
                {"params": [p for p, d in zip(params, DECAYED) if not d], "weight_decay": 0.0}]
    our_groups = groups(ours)
    if lr_scales is not None:
        for group, scale in zip(our_groups, lr_scales):
            group["lr_scale"] = scale
    optimizer = AdamW(our_groups, lr=0.0, betas=(0.9, 0.98), eps=1e-6)
    reference = torch.optim.AdamW(groups(theirs), lr=0.0, betas=(0.9, 0.98), eps=1e-6, foreach=False)

    for step in range(steps):
        lr = linear_warmup_decay(step + 1, total_steps, warmup_steps, peak_lr)
        optimizer.lr = lr
        for group, scale in zip(reference.param_groups, lr_scales or (1.0, 1.0)):
            group["lr"] = lr * scale
        for p, q in zip(ours[:-1], theirs[:-1]):
            grad = rng.standard_normal(p.shape).astype(dtype)
            p.grad, q.grad = grad, torch.tensor(grad.copy())
        optimizer.step()
        reference.step()
        optimizer.zero_grad()
        reference.zero_grad()
    return initial, [p.data for p in ours], [q.detach().numpy() for q in theirs], optimizer


def test_adamw_matches_torch_float32():
    initial, ours, theirs, optimizer = run_beside_torch(np.float32)
    for start, p, q in zip(initial, ours, theirs):
        assert p.dtype == np.float32
        assert np.max(np.abs(p - q)) < 1e-6
    # the parameters with gradients really moved, so the comparison is not vacuous
    assert all(np.max(np.abs(p - start)) > 1e-3 for start, p in zip(initial[:-1], ours[:-1]))
    # the one without a gradient was skipped: no weight decay applied, moments untouched
    assert np.array_equal(ours[-1], initial[-1])
    assert not any(m.any() for m in optimizer.exp_avg if m.shape == SHAPES[-1])
    assert all(m.dtype == np.float32 for m in optimizer.exp_avg + optimizer.exp_avg_sq)


def test_adamw_matches_torch_float64():
    _, ours, theirs, _ = run_beside_torch(np.float64)
    for p, q in zip(ours, theirs):
        assert p.dtype == np.float64
        assert np.max(np.abs(p - q)) < 1e-13


def test_lr_scale_matches_torch_group_lr():
    # each group steps at lr * lr_scale, its decay included, as torch's per-group lr does; the
    # decayed group's scale 3 and the other's 0.5 move both groups away from a plain run
    initial, ours, theirs, _ = run_beside_torch(np.float64, lr_scales=(3.0, 0.5))
    _, plain, _, _ = run_beside_torch(np.float64)
    for p, q, r in zip(ours[:-1], theirs[:-1], plain[:-1]):
        assert np.max(np.abs(p - q)) < 1e-13
        assert np.max(np.abs(p - r)) > 1e-3
    assert np.array_equal(ours[-1], initial[-1])  # still no gradient, still skipped


def test_weight_decay_is_decoupled():
    # with a zero gradient Adam's step is 0 / (0 + eps) = 0, so only the decay acts:
    # p <- p * (1 - lr * wd) = 2 * (1 - 0.1 * 0.5) = 1.9
    p = Tensor(np.full(3, 2.0, dtype=np.float32), requires_grad=True)
    p.grad = np.zeros(3, dtype=np.float32)
    AdamW([p], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(p.data, 1.9, rtol=1e-6)


def test_zero_grad_sets_none():
    params = [Tensor(np.ones(2, dtype=np.float32), requires_grad=True) for _ in range(2)]
    for p in params:
        p.grad = np.ones(2, dtype=np.float32)
    AdamW(params).zero_grad()
    assert all(p.grad is None for p in params)


def test_state_arrays_round_trip():
    """Saving the moments and step, loading them into a fresh optimizer, and continuing
    must give exactly the parameters of an uninterrupted run."""
    rng = np.random.default_rng(1)
    start = rng.standard_normal((3, 4)).astype(np.float32)
    grads = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(6)]
    names = ["w"]

    uninterrupted = Tensor(start.copy(), requires_grad=True)
    optimizer = AdamW([uninterrupted], lr=1e-2)
    for grad in grads:
        uninterrupted.grad = grad
        optimizer.step()

    resumed = Tensor(start.copy(), requires_grad=True)
    first = AdamW([resumed], lr=1e-2)
    for grad in grads[:3]:
        resumed.grad = grad
        first.step()
    saved = {key: array.copy() for key, array in first.state_arrays(names).items()}
    assert set(saved) == {"w.exp_avg", "w.exp_avg_sq"}
    second = AdamW([resumed], lr=1e-2)
    second.load_state_arrays(names, saved, first.step_count)
    assert second.step_count == 3
    for grad in grads[3:]:
        resumed.grad = grad
        second.step()
    assert np.array_equal(resumed.data, uninterrupted.data)

    with pytest.raises(ValueError):
        second.load_state_arrays(names, {"w.exp_avg": np.zeros(12), "w.exp_avg_sq": np.zeros(12)}, 3)


def test_schedule_hand_values():
    # warm-up over 4 steps to peak 2.0, then down to 0 at step 10 (6 decay steps)
    expected = {0: 0.0, 1: 0.5, 2: 1.0, 4: 2.0, 7: 2.0 * 3 / 6, 10: 0.0, 12: 0.0}
    for step, lr in expected.items():
        assert linear_warmup_decay(step, 10, 4, 2.0) == pytest.approx(lr)
    assert linear_warmup_decay(0, 10, 0, 2.0) == pytest.approx(2.0)  # no warm-up


def test_schedule_matches_transformers():
    from transformers import get_linear_schedule_with_warmup
    parameter = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([parameter], lr=3e-4)
    scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=7, num_training_steps=30)
    for step in range(35):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(linear_warmup_decay(step, 30, 7, 3e-4), abs=1e-15)
        optimizer.step()
        scheduler.step()


@pytest.mark.parametrize("max_norm", [0.5, 100.0])  # clipped, and left alone
def test_clip_grad_norm_matches_torch(max_norm):
    rng = np.random.default_rng(2)
    grads = [rng.standard_normal(shape).astype(np.float32) for shape in [(4, 5), (7,), (2, 2, 3)]]
    ours = [Tensor(np.zeros_like(g), requires_grad=True) for g in grads]
    theirs = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for p, q, g in zip(ours, theirs, grads):
        p.grad, q.grad = g.copy(), torch.tensor(g)
    ours.append(Tensor(np.zeros(3, dtype=np.float32), requires_grad=True))  # no grad: ignored

    norm = clip_grad_norm(ours, max_norm)
    reference_norm = torch.nn.utils.clip_grad_norm_(theirs, max_norm)

    assert isinstance(norm, float)
    assert norm == pytest.approx(float(reference_norm), rel=1e-6)
    assert norm == pytest.approx(np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads)), rel=1e-6)
    for p, q in zip(ours, theirs):
        assert p.grad.dtype == np.float32
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-6, atol=1e-7)
    clipped_norm = np.sqrt(sum(np.sum(p.grad ** 2) for p in ours[:-1]))
    assert clipped_norm == pytest.approx(min(max_norm, norm), rel=1e-5)
    assert ours[-1].grad is None


def test_clip_grad_norm_scales_a_shared_gradient_array_once():
    # add's backward hands one gradient array to both inputs; clipping must not scale it twice
    shared = np.array([3.0, 4.0], dtype=np.float32)  # each param has norm 5, global norm sqrt(50)
    params = [Tensor(np.zeros(2, dtype=np.float32), requires_grad=True) for _ in range(2)]
    for p in params:
        p.grad = shared
    norm = clip_grad_norm(params, 1.0)
    assert norm == pytest.approx(np.sqrt(50.0))
    for p in params:
        np.testing.assert_allclose(p.grad, shared / np.sqrt(50.0), rtol=1e-5)
