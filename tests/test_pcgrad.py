"""PCGrad on hand-computed cases, its orthogonality property, and the helpers around it."""
import numpy as np
import pytest

from tinybert import Tensor
from tinybert.pcgrad import apply_pcgrad, conflict_stats, project, projected_grads


def vectors(*rows):
    return [np.array(row, dtype=np.float32) for row in rows]


def test_two_conflicting_gradients_by_hand():
    # g1 = (1, 0), g2 = (-1, 1): g1 . g2 = -1 < 0, a conflict; |g1|^2 = 1, |g2|^2 = 2.
    # g1' = g1 - (g1 . g2 / |g2|^2) g2 = (1, 0) - (-1/2)(-1, 1) = (1, 0) + (-0.5, 0.5) = (0.5, 0.5)
    # g2' = g2 - (g2 . g1 / |g1|^2) g1 = (-1, 1) - (-1/1)(1, 0)  = (-1, 1) + (1, 0)    = (0, 1)
    # sum = (0.5, 1.5)   (the plain sum would be (0, 1): task 1's direction cancelled out)
    grads = vectors([1, 0], [-1, 1])
    rng = np.random.default_rng(0)
    first, second = projected_grads(grads, rng)
    np.testing.assert_allclose(first, [0.5, 0.5])
    np.testing.assert_allclose(second, [0.0, 1.0])
    combined = project(grads, rng)
    np.testing.assert_allclose(combined, [0.5, 1.5])
    assert combined.dtype == np.float32


def test_orthogonal_gradients_are_unchanged():
    # (1, 0) . (0, 2) = 0: no conflict, so the result is the plain sum (1, 2)
    grads = vectors([1, 0], [0, 2])
    for g, g_projected in zip(grads, projected_grads(grads, np.random.default_rng(0))):
        np.testing.assert_array_equal(g_projected, g)
    np.testing.assert_array_equal(project(grads, np.random.default_rng(0)), [1, 2])


def test_aligned_gradients_are_unchanged():
    # (1, 1) . (2, 0.5) = 2.5 > 0: they agree, so the result is the plain sum (3, 1.5)
    grads = vectors([1, 1], [2, 0.5])
    np.testing.assert_array_equal(project(grads, np.random.default_rng(0)), [3, 1.5])


def test_projects_against_original_gradients():
    # In the two-task case above, task 2 must be projected against the ORIGINAL g1 = (1, 0).
    # Against the already projected g1' = (0.5, 0.5) it would see (-1, 1) . (0.5, 0.5) = 0,
    # no conflict, and keep g2' = (-1, 1), giving a sum of (-0.5, 1.5) instead of (0.5, 1.5).
    grads = vectors([1, 0], [-1, 1])
    originals = [g.copy() for g in grads]
    for seed in range(5):  # whichever task the implementation happens to visit first
        _, second = projected_grads(grads, np.random.default_rng(seed))
        np.testing.assert_allclose(second, [0.0, 1.0])
    for g, original in zip(grads, originals):  # and the inputs themselves are left alone
        np.testing.assert_array_equal(g, original)


def test_three_tasks_where_the_order_does_not_matter():
    # g3 = (0, 0, 1) is orthogonal to both others, and g1, g2 are the 2-D case above, so
    # each task conflicts with at most one other and every order gives
    # g1' = (0.5, 0.5, 0), g2' = (0, 1, 0), g3' = g3  ->  sum = (0.5, 1.5, 1)
    grads = vectors([1, 0, 0], [-1, 1, 0], [0, 0, 1])
    for seed in range(10):
        np.testing.assert_allclose(project(grads, np.random.default_rng(seed)), [0.5, 1.5, 1.0])


def test_three_tasks_where_the_order_matters():
    # g1 = (1, 0), g2 = (-1, 1), g3 = (0, -1).  Dots: g1.g2 = -1, g1.g3 = 0, g2.g3 = -1.
    # Task 1, order (2, 3): vs g2: (1, 0) + 1/2 (-1, 1) = (0.5, 0.5);
    #                       vs g3: (0.5, 0.5) . (0, -1) = -0.5 -> (0.5, 0.5) + 0.5 (0, -1) = (0.5, 0)
    #         order (3, 2): vs g3: dot 0, unchanged; vs g2: (0.5, 0.5)
    # Task 2, order (1, 3): (-1, 1) + (1, 0) = (0, 1); (0, 1) . (0, -1) = -1 -> (0, 1) + (0, -1) = (0, 0)
    #         order (3, 1): (-1, 1) + (0, -1) = (-1, 0); (-1, 0) . (1, 0) = -1 -> (-1, 0) + (1, 0) = (0, 0)
    # Task 3, order (1, 2): vs g1: dot 0; vs g2: (0, -1) + 1/2 (-1, 1) = (-0.5, -0.5)
    #         order (2, 1): (-0.5, -0.5) as above, then . (1, 0) = -0.5 -> (-0.5, -0.5) + 0.5 (1, 0) = (0, -0.5)
    grads = vectors([1, 0], [-1, 1], [0, -1])
    seen_task1, seen_task3 = set(), set()
    for seed in range(40):
        g1, g2, g3 = projected_grads(grads, np.random.default_rng(seed))
        seen_task1.add(tuple(np.round(g1, 6)))
        np.testing.assert_allclose(g2, [0.0, 0.0], atol=1e-7)
        seen_task3.add(tuple(np.round(g3, 6)))
    # every result is one of the hand-computed ones, and the random order reaches both
    assert seen_task1 == {(0.5, 0.0), (0.5, 0.5)}
    assert seen_task3 == {(-0.5, -0.5), (0.0, -0.5)}


def test_projected_pair_is_orthogonal_to_the_other_original():
    rng = np.random.default_rng(3)
    for _ in range(20):
        g1, g2 = rng.standard_normal((2, 64)).astype(np.float32)
        if g1 @ g2 > 0:
            g2 = -g2  # make the pair conflict
        g1_projected, g2_projected = projected_grads([g1, g2], rng)
        scale = np.linalg.norm(g1) * np.linalg.norm(g2)
        assert abs(g1_projected @ g2) < 1e-5 * scale
        assert abs(g2_projected @ g1) < 1e-5 * scale
        # removing a component never lengthens a vector
        assert np.linalg.norm(g1_projected) <= np.linalg.norm(g1) + 1e-6
        # and only the component along the other gradient changed
        residual = g1_projected - g1
        assert abs(residual @ g2) == pytest.approx(np.linalg.norm(residual) * np.linalg.norm(g2), rel=1e-4)


def test_conflict_stats_on_known_vectors():
    # (1, 0), (0, 1), (-1, 0): cosines 0 (orthogonal), -1 (opposite), 0; one pair of three conflicts
    grads = vectors([1, 0], [0, 1], [-2, 0])
    stats = conflict_stats(grads)
    assert stats == pytest.approx({"cos_0_1": 0.0, "cos_0_2": -1.0, "cos_1_2": 0.0, "conflict_fraction": 1 / 3})
    named = conflict_stats(vectors([1, 1], [2, 0]), names=["sst", "sts"])
    assert named == pytest.approx({"cos_sst_sts": 1 / np.sqrt(2), "conflict_fraction": 0.0})
    assert all(isinstance(value, float) for value in named.values())
    assert conflict_stats(vectors([0, 0], [1, 0]))["cos_0_1"] == 0.0  # a zero gradient


def test_apply_pcgrad_writes_projected_grads_back():
    # Shared params p1 (2,), p2 (1, 2), p3 (3,). Flattened per task (p1 | p2 | p3):
    #   task A: p1 = (1, 0), p2 untouched -> gA = (1, 0, 0, 0, 0, 0, 0)
    #   task B: p1 = (-1, 0), p2 = (0, 1) -> gB = (-1, 0, 0, 1, 0, 0, 0)
    # gA . gB = -1, |gA|^2 = 1, |gB|^2 = 2:
    #   gA' = gA + 1/2 gB = (0.5, 0, 0, 0.5, 0...), gB' = gB + gA = (0, 0, 0, 1, 0...)
    #   sum = (0.5, 0 | 0, 1.5 | 0, 0, 0)
    p1, p2, p3 = (Tensor(np.zeros(shape, dtype=np.float32), requires_grad=True) for shape in [(2,), (1, 2), (3,)])
    task_a = [np.array([1, 0], np.float32), None, None]
    task_b = [np.array([-1, 0], np.float32), np.array([[0, 1]], np.float32), None]
    flat = apply_pcgrad([p1, p2, p3], [task_a, task_b], np.random.default_rng(0))
    np.testing.assert_allclose(p1.grad, [0.5, 0.0])
    np.testing.assert_allclose(p2.grad, [[0.0, 1.5]])
    assert p2.grad.shape == (1, 2) and p2.grad.dtype == np.float32
    assert p3.grad is None  # no task touched it
    np.testing.assert_array_equal(flat[1], [-1, 0, 0, 1, 0, 0, 0])
    assert conflict_stats(flat)["conflict_fraction"] == 1.0
