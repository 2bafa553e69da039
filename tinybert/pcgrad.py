"""PCGrad: gradient surgery for multi-task learning (Yu et al. 2020, arXiv:2001.06782).

With several task losses on shared weights, the plain update is the sum of the task
gradients g_1 + ... + g_n. When two of them conflict (g_i . g_j < 0), part of one cancels
the other, and the task with the larger gradient wins. PCGrad removes, from each task's
gradient, its component along every gradient it conflicts with, and sums what is left.

Gradients here are flat 1-D arrays of ``backend.xp``, one per task, all the same length.
"""
from . import backend


def _random_order(count, rng):
    """A uniformly random ordering of range(count), as Python ints. Drawn as the argsort of
    uniform keys rather than ``rng.permutation``, which CuPy's Generator does not have."""
    return backend.to_numpy(rng.random(count)).argsort().tolist()


def projected_grads(grads, rng):
    """Each task's gradient after PCGrad's surgery: the list [g_1', ..., g_n'].

    For task i, start from g_i' = g_i, then for every other task j, in a random order:

        if g_i' . g_j < 0:   g_i' <- g_i' - (g_i' . g_j / |g_j|^2) g_j

    Geometry: (g_i' . g_j / |g_j|^2) g_j is the component of g_i' along g_j; subtracting it
    projects g_i' onto the hyperplane normal to g_j, so afterwards g_i' . g_j = 0: task i no
    longer pushes against task j (to first order it leaves task j's loss unchanged), while
    everything orthogonal to g_j is kept. Gradients that agree (dot >= 0) are left alone.

    The g_j are always the ORIGINAL task gradients, never already-projected ones. With three
    or more tasks the result for task i can depend on the order of the j (a later projection
    can reintroduce a conflict with an earlier g_j), hence a fresh random order per task,
    drawn from ``rng`` (a NumPy or CuPy Generator). The inputs are not modified.
    """
    xp = backend.xp
    squared_norms = [xp.dot(g, g) for g in grads]  # |g_j|^2 of the original gradients
    projected = []
    for i, g_i in enumerate(grads):
        g_i = g_i.copy()
        for j in _random_order(len(grads), rng):
            if j == i:
                continue
            dot = xp.dot(g_i, grads[j])
            if dot < 0:  # conflict (a zero g_j has dot 0, so we never divide by |g_j|^2 = 0)
                g_i -= (dot / squared_norms[j]) * grads[j]
        projected.append(g_i)
    return projected


def project(grads, rng):
    """The PCGrad update direction: sum_i g_i', with g_i' from :func:`projected_grads`.

    Without conflicts this is the plain sum g_1 + ... + g_n.
    """
    total, *rest = projected_grads(grads, rng)
    for g_i in rest:
        total += g_i  # in place is safe: the g_i' are fresh copies
    return total


def conflict_stats(grads, names=None):
    """How much the task gradients disagree, for logging.

        cos_a_b = g_a . g_b / (|g_a| |g_b|)    for every pair a < b  (0.0 if either is zero)
        conflict_fraction = (number of pairs with g_a . g_b < 0) / (number of pairs)

    Keys use ``names[a]`` (e.g. "cos_sst_sts") when given, else the task index ("cos_0_1").
    Values are Python floats.
    """
    xp = backend.xp
    names = [str(i) for i in range(len(grads))] if names is None else list(names)
    norms = [float(xp.linalg.norm(g)) for g in grads]
    stats, conflicts, pairs = {}, 0, 0
    for a in range(len(grads)):
        for b in range(a + 1, len(grads)):
            dot = float(xp.dot(grads[a], grads[b]))
            norm_product = norms[a] * norms[b]
            stats[f"cos_{names[a]}_{names[b]}"] = dot / norm_product if norm_product > 0 else 0.0
            if dot < 0:
                conflicts += 1
            pairs += 1
    stats["conflict_fraction"] = conflicts / pairs if pairs else 0.0
    return stats


def apply_pcgrad(params_shared, per_task_grads, rng, project_conflicts=True):
    """Replace the ``.grad`` of the shared parameters by the PCGrad combination.

    per_task_grads[t][k] is task t's gradient for ``params_shared[k]`` (None: the task does
    not touch it, i.e. zeros). Each task's gradients are flattened into one vector
    g_t = concat_k vec(grad_tk), so the surgery sees the whole shared gradient at once;
    ``project`` combines them (or, with ``project_conflicts=False``, the plain sum
    g_1 + ... + g_n, so that a run without PCGrad can log the same statistics) and the
    result is cut back into per-parameter ``.grad``s.
    A parameter no task touches keeps ``.grad = None`` (so AdamW skips it, as without PCGrad).

    Returns the flat per-task gradients, which :func:`conflict_stats` can log.
    """
    xp = backend.xp
    flat_grads = [xp.concatenate([xp.zeros(p.data.size, dtype=p.data.dtype) if g is None else g.reshape(-1)
                                  for p, g in zip(params_shared, task_grads)])
                  for task_grads in per_task_grads]
    combined = project(flat_grads, rng) if project_conflicts else sum(flat_grads[1:], flat_grads[0].copy())
    offset = 0
    for k, p in enumerate(params_shared):
        if any(task_grads[k] is not None for task_grads in per_task_grads):
            p.grad = combined[offset:offset + p.data.size].reshape(p.data.shape)
        offset += p.data.size
    return flat_grads
