"""Fast kernel of ``optim.adamw_update``: the update's eleven passes on one cache-sized block
of the parameter at a time (the word embedding alone is 12M floats), blocks shared among the
cores, through one scratch array a block, in torch's order of operations."""
from .. import backend
from . import parallel


def adamw_update(p, g, m, v, lr, weight_decay, betas, eps, t):
    """``optim.adamw_update`` in blocks: m and v as torch computes them (lerp), then
    p -= m * step_size / (sqrt(v) / sqrt(1 - b2^t) + eps), step_size = lr / (1 - b1^t)."""
    xp = backend.xp
    beta1, beta2 = betas
    step_size = lr / (1.0 - beta1 ** t)                     # lr / (1 - b1^t) folds in m^
    bias_correction2_sqrt = (1.0 - beta2 ** t) ** 0.5       # sqrt(v^) = sqrt(v) / this

    def update(p, g, m, v):
        if weight_decay != 0.0:
            p *= 1.0 - lr * weight_decay
        scratch = xp.subtract(g, m)
        scratch *= 1.0 - beta1
        m += scratch                        # = b1 m + (1-b1) g, written as torch's lerp
        v *= beta2
        xp.multiply(g, 1.0 - beta2, out=scratch)
        scratch *= g
        v += scratch                        # += (1-b2) g^2
        denominator = xp.sqrt(v, out=scratch)
        denominator /= bias_correction2_sqrt
        denominator += eps                  # sqrt(v^) + eps
        step = m * step_size
        step /= denominator
        p -= step                           # -= lr m^ / (sqrt(v^) + eps)
    parallel.blockwise(update, p, g, m, v)  # all passes on a block while it is in cache
