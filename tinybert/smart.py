"""SMART: smoothness-inducing adversarial regularisation with Bregman proximal point
optimisation (Jiang et al. 2020, "SMART", arXiv:1911.03437, Algorithm 1). Chapter 10 of the
course (docs/10-smart.md) reads this file line by line next to the paper.

Smoothness. With x the embedding-layer output (B, T, C) of each segment and f the rest of the
model, find a perturbation that changes the output the most,

    x~ = argmax_{||x~ - x||_inf <= eps} l_s(f(x), f(x~)),

approximately, by T_x steps of normalised ascent from random noise (``variant``):

    "paper"  Algorithm 1:  delta ~ N(0, sigma^2 I);  T_x times:
               g = d l_s / d delta                                   (B, T, C) per segment
               n_b = ||g_b||_inf  per example b: the max over its T x C entries of every
                     segment (the bi-encoder's pair is one example: both sentences)
               g~ = g / n_b  where n_b > 0;  g~ = 0 where n_b = 0 (then g_b = 0)
               delta <- clip(delta + eta g~, -eps, eps)              Proj onto ||delta||_inf <= eps
    "mtdnn"  the authors' released code (MT-DNN, mt_dnn/perturbation.py, norm_level 0):
               delta ~ N(0, sigma^2 I);  T_x times:
               d = delta + eta g;  delta <- d / (max_c |d_btc| + 1e-6)   per token (b, t)
             no eps ball: every token's perturbation ends with infinity norm ~1.

then add lambda_s * R_s, R_s = l_s(f(x), f(x + delta)), to the loss, differentiable on both
sides (delta itself is a constant). l_s is the symmetric KL for the classifiers and the
squared error for the regression (MultitaskBert.divergence).

Bregman proximal point. Keep theta~, an exponential moving average of past parameters
(theta~ <- beta theta~ + (1 - beta) theta after each update; beta = 0.99 for the first 10% of
the updates and 0.999 after, as in the paper's section 5), and add
mu * D_Breg, D_Breg = l_s(f(x; theta), f(x; theta~)), with f(x; theta~) a constant target.
Both models run with the same dropout masks, so D_Breg = 0 exactly when theta~ = theta.

Cost per task batch: one more forward and input-only backward per ascent step, one more
forward + backward for the regulariser, and one forward of the averaged model.
"""
import contextlib
import dataclasses

from . import backend, ops
from .multitask import TASKS
from .tensor import Tensor

VARIANTS = ("paper", "mtdnn")


@dataclasses.dataclass
class SmartConfig:
    variant: str = "paper"       # "paper" (Algorithm 1) or "mtdnn" (the released code); chapter 10 measures both
    sigma: float = 1e-5          # std of the initial random perturbation (paper and MT-DNN: 1e-5)
    epsilon: float = 0.03        # radius of the infinity-norm ball ("paper" only; paper: 1e-5, inert here: chapter 10)
    eta: float = 3.0             # ascent step size, 100 epsilon as in the paper (paper: 1e-3; MT-DNN: 1e-5)
    steps: int = 1               # T_x, ascent steps (paper: 1)
    lambda_s: float = 1.0        # weight of R_s (paper: 1, 3 or 5)
    mu: float = 1.0              # weight of D_Breg (paper: 1)
    beta: float = 0.999          # EMA decay of theta~ after the first beta_early_fraction of the updates
    beta_early: float = 0.99     # EMA decay of theta~ during the first beta_early_fraction of the updates
    beta_early_fraction: float = 0.1
    tasks: tuple = TASKS         # the tasks whose batches get R_s and D_Breg (train.task_step): --smart_tasks
    every: int = 1               # R_s and D_Breg on one step in this many (1: every step); theta~ moves every step

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"SMART variant {self.variant!r}: expected one of {', '.join(VARIANTS)}")
        self.tasks = tuple(self.tasks)  # train.py passes the list argparse made
        unknown = [task for task in self.tasks if task not in TASKS]
        if unknown or not self.tasks:
            raise ValueError(f"SMART tasks {list(self.tasks)}: expected some of {', '.join(TASKS)}")
        if self.every < 1:
            raise ValueError(f"SMART every {self.every} steps: expected a whole number of at least 1")

    def beta_at(self, update, total_updates):
        """beta for update number ``update`` (0-based) of ``total_updates``: beta_early while
        update < beta_early_fraction * total_updates, then beta."""
        return self.beta_early if update < self.beta_early_fraction * total_updates else self.beta


@contextlib.contextmanager
def parameters_frozen(model):
    """Compute no parameter gradients inside the block (the ascent needs d/dx only)."""
    params = model.parameters()
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad = False
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad = flag


def example_norm(grads):
    """||g_b||_inf of each example b over all its segments: grads [(B, T_s, C), ...] -> (B, 1, 1),

        n_b = max over segments s, tokens t, features c of |g_sbtc|.

    Algorithm 1 normalises example b's whole input once; for the bi-encoder that input is both
    sentences of the pair, so they share one n_b."""
    xp = backend.xp
    norm = None
    for grad in grads:
        segment_norm = xp.abs(grad).max(axis=(1, 2), keepdims=True)         # (B, 1, 1)
        norm = segment_norm if norm is None else xp.maximum(norm, segment_norm)
    return norm


def ascent_step(delta, grad, config, norm=None):
    """One step of the ascent on a segment's perturbation: delta, grad (B, T, C) -> new delta.

    "paper":  clip(delta + eta * grad / n_b, -eps, eps), n_b = ||g_b||_inf per example b:
              ``norm`` (B, 1, 1), the ``example_norm`` over all of b's segments, or by default
              this segment's own (the max over its T x C entries). Where n_b = 0, g_b = 0 and
              the step is 0; elsewhere the division is exact (no guard added to n_b).
    "mtdnn":  d = delta + eta * grad, then d / ||d_bt||_inf per token (b, t), no clip (``norm``
              unused).
    """
    xp = backend.xp
    if config.variant == "paper":
        norm = example_norm([grad]) if norm is None else norm
        normalised = grad / xp.where(norm > 0, norm, 1.0)                    # 0 / 1 = 0 where n_b = 0
        moved = delta + config.eta * normalised                              # largest entry of each example moves eta
        return xp.clip(moved, -config.epsilon, config.epsilon)
    moved = delta + config.eta * grad
    return moved / (xp.abs(moved).max(axis=2, keepdims=True) + 1e-6)        # (B, T, 1): MT-DNN's 1e-6


def adversarial_perturbation(model, batch, embedded, clean_output, config, dropout_rng=None):
    """The perturbations delta (one per segment) after T_x normalised ascent steps on
    l_s(f(x), f(x + delta)) (``ascent_step``). Arrays, not part of any graph. "paper": each
    step divides every segment of example b by one n_b, the ``example_norm`` over all of b's
    segments (for the bi-encoder, both sentences of the pair).

    ``dropout_rng``: a snapshot of the generator taken just after the clean forward's
    embedding layer; every perturbed forward replays it, so it drops the same units as the
    clean one and l_s measures the effect of the perturbation, not the disagreement of two
    dropout masks.
    """
    target = Tensor(clean_output.data)
    inputs = [x.data for x in embedded]
    deltas = [backend.rng().standard_normal(x.shape, dtype=x.dtype) * x.dtype.type(config.sigma) for x in inputs]
    for _ in range(config.steps):
        delta_tensors = [Tensor(d, requires_grad=True) for d in deltas]
        with parameters_frozen(model), _replayed(dropout_rng):
            output = model.head_output(batch, [Tensor(x) + d for x, d in zip(inputs, delta_tensors)])
            model.divergence(batch.task, output, target).backward()
        grads = [d.grad for d in delta_tensors]
        norm = example_norm(grads) if config.variant == "paper" else None  # (B, 1, 1): one per example
        deltas = [ascent_step(d.data, g, config, norm) for d, g in zip(delta_tensors, grads)]
    return deltas


def perturbation_stats(deltas, batch, epsilon):
    """What the logged diagnostics say about the perturbations of a batch:
    ``delta_linf``, the mean over examples of ||delta_b||_inf (max over the example's tokens
    and features), and ``delta_at_eps``, the fraction of real-token entries with
    |delta| >= eps (1 - 1e-6): at the bound of the ball."""
    xp = backend.xp
    norms, at_bound, entries = [], 0.0, 0
    for delta, segment in zip(deltas, batch.segments):
        norms.append(xp.abs(delta).max(axis=(1, 2)))                                     # (B,)
        real = xp.asarray(segment["attention_mask"]).astype(bool)                          # (B, T)
        at_bound += float((xp.abs(delta[real]) >= epsilon * (1 - 1e-6)).sum())
        entries += int(real.sum()) * delta.shape[2]
    return {"delta_linf": float(xp.concatenate(norms).mean()), "delta_at_eps": at_bound / max(entries, 1)}


def smoothness_loss(model, batch, embedded, clean_output, config, dropout_rng=None, stats=None):
    """R_s = l_s(f(x), f(x + delta)) at the adversarial delta, differentiable in the
    parameters through both f(x) and f(x + delta). With a dict ``stats``, the
    ``perturbation_stats`` of delta are written into it."""
    deltas = adversarial_perturbation(model, batch, embedded, clean_output, config, dropout_rng)
    if stats is not None:
        stats.update(perturbation_stats(deltas, batch, config.epsilon))
    with _replayed(dropout_rng):
        perturbed = model.head_output(batch, [ops.add(x, d) for x, d in zip(embedded, deltas)])
    return model.divergence(batch.task, clean_output, perturbed)


def _replayed(dropout_rng):
    return backend.replayed_rng(dropout_rng) if dropout_rng is not None else contextlib.nullcontext()


class ProximalPoint:
    """theta~, the moving average of the parameters, and the Bregman term that uses it."""

    def __init__(self, model, beta):
        self.beta = beta
        self.average = {name: p.data.copy() for name, p in model.named_parameters()}

    def update(self, model, beta=None):
        """theta~ <- beta theta~ + (1 - beta) theta, in place (``beta`` default: self.beta)."""
        beta = self.beta if beta is None else beta
        for name, p in model.named_parameters():
            average = self.average[name]
            average *= beta
            average += (1.0 - beta) * p.data

    @contextlib.contextmanager
    def swapped_in(self, model):
        params = dict(model.named_parameters())
        current = {name: p.data for name, p in params.items()}
        for name, p in params.items():
            p.data = self.average[name]
        try:
            yield
        finally:
            for name, p in params.items():
                p.data = current[name]

    def bregman_loss(self, model, batch, output, dropout_rng=None):
        """D_Breg = l_s(f(x; theta), f(x; theta~)), the averaged model's output a constant target.

        ``dropout_rng``: a snapshot of the generator taken just before the student's forward
        (its embedding layer included). The averaged model runs in the student's mode and
        replays it, so both drop the same units and D_Breg = 0 when theta~ = theta. (Without
        the snapshot, in train mode, it would draw its own masks: D_Breg would then mostly
        measure the disagreement of two dropout masks.) The averaged forward records no graph
        because no parameter requires a gradient (``parameters_frozen``)."""
        with parameters_frozen(model), self.swapped_in(model), _replayed(dropout_rng):
            target = model(batch)                                # graph-free: nothing requires a gradient
        return model.divergence(batch.task, output, Tensor(target.data))
