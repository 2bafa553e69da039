"""SMART: smoothness-inducing adversarial regularisation with Bregman proximal point
optimisation (Jiang et al. 2020, "SMART", Algorithm 1).

Smoothness. With x the embedding-layer output and f the model, find a small perturbation
that changes the output the most,

    x~ = argmax_{||x~ - x||_inf <= eps} l_s(f(x), f(x~)),

approximately: start at x + N(0, sigma^2), take T_x normalised ascent steps
x~ <- Proj_eps(x~ + eta * g / ||g||_inf) with g = d l_s / d x~, then add
lambda_s * l_s(f(x), f(x~)) to the loss. l_s is the symmetric KL for classifiers and the
squared error for regression (MultitaskBert.divergence).

Bregman proximal point. Keep theta~, an exponential moving average of past parameters
(theta~ <- beta theta~ + (1 - beta) theta after each update), and add
mu * l_s(f(x; theta), f(x; theta~)) so that an update cannot move the model's outputs far
from where they recently were.

Cost per task batch: one more forward and input-only backward per ascent step, one more
forward + backward for the regulariser, and one forward of the averaged model.
"""
import contextlib
import dataclasses

from . import backend, ops
from .tensor import Tensor, no_grad


@dataclasses.dataclass
class SmartConfig:
    sigma: float = 1e-5          # std of the initial random perturbation
    epsilon: float = 1e-5        # radius of the infinity-norm ball
    eta: float = 1e-3            # ascent step size
    steps: int = 1               # T_x, ascent steps
    lambda_s: float = 1.0        # weight of the smoothness term
    mu: float = 1.0              # weight of the Bregman proximal point term
    beta: float = 0.99           # EMA decay of the proximal point parameters


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


def adversarial_perturbation(model, batch, embedded, clean_output, config, dropout_rng=None):
    """The perturbations delta (one per segment, |delta|_inf <= epsilon) after T_x
    normalised ascent steps on l_s(f(x), f(x + delta)). Arrays, not part of any graph.

    ``dropout_rng``: a snapshot of the generator taken just before the clean forward;
    every perturbed forward replays it, so it drops the same units as the clean one and
    l_s measures the effect of the perturbation, not the disagreement of two dropout masks.
    """
    xp = backend.xp
    target = Tensor(clean_output.data)
    inputs = [x.data for x in embedded]
    deltas = [backend.rng().standard_normal(x.shape, dtype=x.dtype) * x.dtype.type(config.sigma) for x in inputs]
    for _ in range(config.steps):
        delta_tensors = [Tensor(d, requires_grad=True) for d in deltas]
        with parameters_frozen(model), _replayed(dropout_rng):
            output = model.head_output(batch, [Tensor(x) + d for x, d in zip(inputs, delta_tensors)])
            model.divergence(batch.task, output, target).backward()
        deltas = []
        for d in delta_tensors:
            step = d.grad / (xp.abs(d.grad).max() + 1e-12)  # normalised: largest entry moves eta
            deltas.append(xp.clip(d.data + config.eta * step, -config.epsilon, config.epsilon))
    return deltas


def smoothness_loss(model, batch, embedded, clean_output, config, dropout_rng=None):
    """l_s(f(x), f(x~)) at the adversarial x~, differentiable in the parameters."""
    deltas = adversarial_perturbation(model, batch, embedded, clean_output, config, dropout_rng)
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

    def update(self, model):
        """theta~ <- beta theta~ + (1 - beta) theta, in place."""
        for name, p in model.named_parameters():
            average = self.average[name]
            average *= self.beta
            average += (1.0 - self.beta) * p.data

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

    def bregman_loss(self, model, batch, output):
        """l_s(f(x; theta), f(x; theta~)): the averaged model's output, without dropout,
        is a constant target."""
        training = model.training
        with no_grad(), self.swapped_in(model):
            target = model.eval()(batch)
        model.train(training)
        return model.divergence(batch.task, output, Tensor(target.data))
