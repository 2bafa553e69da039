"""Optimisation: AdamW, the linear warm-up/decay learning-rate schedule, gradient clipping.

All three work on Tensors (parameters) whose ``.data`` and ``.grad`` are arrays of
``backend.xp``; updates happen in place on ``p.data`` and keep its dtype (float32 stays
float32: every scalar below is a Python float, which NumPy and CuPy do not upcast).
"""
from . import backend, seam


class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), step for step the same
    arithmetic as ``torch.optim.AdamW``.

    For every parameter p with gradient g, at step t = 1, 2, ..., with lr_g = lr * lr_scale
    the learning rate of p's group:

        p   <- p * (1 - lr_g * wd)                 decoupled weight decay
        m   <- b1 * m + (1 - b1) * g               first moment (mean of g)
        v   <- b2 * v + (1 - b2) * g^2             second moment (uncentred variance)
        m^  =  m / (1 - b1^t)                      bias corrections: m and v start at 0,
        v^  =  v / (1 - b2^t)                      so early averages are too small
        p   <- p - lr_g * m^ / (sqrt(v^) + eps)

    Decoupled means the decay shrinks p directly instead of being added to g, so it is not
    rescaled by 1/sqrt(v^) (Adam with an L2 term in g decays weights with large gradients
    less than the rest).

    params: a list of Tensors, or a list of param groups ``{"params": [...], "weight_decay": wd,
        "lr_scale": s}`` (a group without "weight_decay" gets the default, one without
        "lr_scale" 1), e.g. wd = 0 for biases and LayerNorm, s > 1 for freshly initialised heads.
        The group's lr_g = lr * s is what torch's per-group "lr" would be: it scales the decay
        too.
    lr: a plain attribute; the training loop sets ``optimizer.lr`` from the schedule each step,
        and every group follows it in proportion.

    One step count t is shared by all parameters (torch keeps one per parameter and advances
    it only when that parameter has a gradient; the two agree as long as no parameter misses
    a step). Parameters whose ``.grad`` is None are skipped: no decay, no moment update.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        # every parameter in group order (the order the names of state_arrays() refer to),
        # each with its group's weight decay and learning-rate scale
        self.params = [p for group in groups for p in group["params"]]
        self.weight_decays = [group.get("weight_decay", weight_decay)
                              for group in groups for _ in group["params"]]
        self.lr_scales = [group.get("lr_scale", 1.0) for group in groups for _ in group["params"]]
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.step_count = 0  # optimizer steps taken so far (t of the last step)
        xp = backend.xp
        self.exp_avg = [xp.zeros_like(p.data) for p in self.params]     # m, one per parameter
        self.exp_avg_sq = [xp.zeros_like(p.data) for p in self.params]  # v, one per parameter

    def step(self):
        """One AdamW update of every parameter that has a gradient (formulas in the class
        docstring)."""
        self.step_count += 1
        for p, m, v, weight_decay, lr_scale in zip(self.params, self.exp_avg, self.exp_avg_sq, self.weight_decays,
                                                   self.lr_scales):
            if p.grad is not None:
                adamw_update(p.data, p.grad, m, v, self.lr * lr_scale, weight_decay, self.betas, self.eps,
                             self.step_count)

    def zero_grad(self):
        """Forget every gradient (set to None), so the next backward() starts from nothing."""
        for p in self.params:
            p.grad = None

    def state_arrays(self, names):
        """The moment arrays by name, for a checkpoint: ``{f"{name}.exp_avg": m,
        f"{name}.exp_avg_sq": v}``, where ``names[k]`` names ``self.params[k]`` (group order).
        The arrays are the live state, not copies."""
        if len(names) != len(self.params):
            raise ValueError(f"{len(names)} names for {len(self.params)} parameters")
        arrays = {}
        for name, m, v in zip(names, self.exp_avg, self.exp_avg_sq):
            arrays[f"{name}.exp_avg"] = m
            arrays[f"{name}.exp_avg_sq"] = v
        return arrays

    def load_state_arrays(self, names, arrays, step):
        """Restore what :meth:`state_arrays` and ``step_count`` saved. ``arrays`` may hold
        NumPy arrays (as read from a file); they are copied into the existing state, which
        keeps its device and dtype."""
        xp = backend.xp
        if len(names) != len(self.params):
            raise ValueError(f"{len(names)} names for {len(self.params)} parameters")
        for name, m, v in zip(names, self.exp_avg, self.exp_avg_sq):
            for key, state in ((f"{name}.exp_avg", m), (f"{name}.exp_avg_sq", v)):
                saved = arrays[key]
                if tuple(saved.shape) != state.shape:  # assignment would broadcast silently
                    raise ValueError(f"{key}: saved shape {tuple(saved.shape)}, expected {state.shape}")
                state[...] = xp.asarray(saved)
        self.step_count = int(step)


@seam.has_fast_kernel
def adamw_update(p, g, m, v, lr, weight_decay, betas, eps, t):
    """Step t of AdamW on one parameter array ``p`` with gradient ``g`` and moments ``m``,
    ``v`` (all the same shape), each updated in place:

        p <- p * (1 - lr * wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
        p <- p - lr * m^ / (sqrt(v^) + eps),  m^ = m / (1 - b1^t),  v^ = v / (1 - b2^t)
    Fast kernel: ``fast.optim.adamw_update`` (tinybert/seam.py).
    """
    beta1, beta2 = betas
    p *= 1.0 - lr * weight_decay
    m += (1.0 - beta1) * (g - m)              # = b1 m + (1 - b1) g, written as torch's lerp
    v *= beta2
    v += (1.0 - beta2) * g * g
    m_hat = m / (1.0 - beta1 ** t)
    v_hat = v / (1.0 - beta2 ** t)
    p -= lr * m_hat / (backend.xp.sqrt(v_hat) + eps)


def linear_warmup_decay(step, total_steps, warmup_steps, peak_lr):
    """The learning rate for optimizer step ``step`` (0-based): a linear ramp up, then a
    linear ramp down, the same function as transformers' ``get_linear_schedule_with_warmup``.

        lr(s) = peak * s / W                      for s < W  (W = warmup_steps)
        lr(s) = peak * max(0, (T - s) / (T - W))  for s >= W (T = total_steps)

    Warm-up keeps the first updates small while Adam's second-moment estimate is still
    noisy; the decay to 0 at T anneals the end of training.
    """
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    return peak_lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def clip_grad_norm(params, max_norm):
    """Rescale all gradients together so that their global L2 norm is at most ``max_norm``;
    returns the norm before clipping (as a float, for logging).

        norm = sqrt(sum over params of sum(g^2))
        g   <- g * max_norm / (norm + 1e-6)    if that factor is < 1  (torch's formula)

    Scaling every gradient by one factor keeps the update's direction and only bounds its
    length. Parameters without a gradient are ignored.
    """
    xp = backend.xp
    params = list(params)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    total_norm = float(xp.sqrt(sum(xp.sum(g * g) for g in grads)))
    scale = max_norm / (total_norm + 1e-6)
    if scale < 1.0:
        for p in params:
            if p.grad is not None:
                p.grad = p.grad * scale
    return total_norm
