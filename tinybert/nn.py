"""Modules: a parameter container with names, train/eval mode and state dicts, and the
four layers BERT is built from (Linear, LayerNorm, Embedding, Dropout).

A Module finds its parameters and sub-modules by looking at its own attributes (and at
lists of modules), so a model is written as plain attribute assignments.
"""
from . import backend, functional as F
from .tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module owns and an optimiser updates (requires_grad=True)."""

    def __init__(self, data):
        super().__init__(data, requires_grad=True, dtype=getattr(data, "dtype", None))


class Module:
    training = True

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def children(self):
        """(name, sub-module) pairs, in attribute order; list attributes give name.0, name.1..."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Module) for v in value):
                for index, module in enumerate(value):
                    yield f"{name}.{index}", module

    def named_parameters(self, prefix=""):
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
        for name, child in self.children():
            yield from child.named_parameters(prefix + name + ".")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def train(self, mode=True):
        self.training = mode
        for _, child in self.children():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def state_dict(self):
        """{parameter name: array}."""
        return {name: p.data for name, p in self.named_parameters()}

    def load_state_dict(self, state, source="state dict"):
        """Copy arrays into the parameters; every key must be present, known and of the
        right shape, else one error naming the key (and both shapes)."""
        params = dict(self.named_parameters())
        check_names(params, state, source, "parameter")
        for name, p in params.items():
            array = state[name]
            if tuple(array.shape) != p.shape:
                raise ValueError(f"{source}: parameter {name!r} has shape {tuple(array.shape)}, the model expects {p.shape}")
            p.data = backend.xp.asarray(array, dtype=p.data.dtype)


def check_names(expected, given, source, what):
    """One KeyError for the first name of ``expected`` missing from ``given``, else the first
    name of ``given`` not expected: "SOURCE: missing WHAT 'name' (and 2 more)"."""
    for kind, names in (("missing", sorted(set(expected) - set(given))),
                        ("unexpected", sorted(set(given) - set(expected)))):
        if names:
            more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
            raise KeyError(f"{source}: {kind} {what} {names[0]!r}{more}")


def _normal(shape, std, dtype):
    return backend.rng().standard_normal(shape, dtype=dtype) * dtype.type(std)


class Linear(Module):
    """y = x @ weight + bias; weight is stored (in, out) so the forward needs no transpose."""

    def __init__(self, in_features, out_features, bias=True, std=0.02, dtype=None):
        dtype = backend.xp.dtype(dtype or backend.xp.float32)
        self.weight = Parameter(_normal((in_features, out_features), std, dtype))
        self.bias = Parameter(backend.xp.zeros(out_features, dtype=dtype)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class LayerNorm(Module):
    def __init__(self, size, eps=1e-12, dtype=None):
        dtype = backend.xp.dtype(dtype or backend.xp.float32)
        self.weight = Parameter(backend.xp.ones(size, dtype=dtype))
        self.bias = Parameter(backend.xp.zeros(size, dtype=dtype))
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, self.weight, self.bias, self.eps)


class Embedding(Module):
    def __init__(self, count, size, std=0.02, padding_idx=None, dtype=None):
        dtype = backend.xp.dtype(dtype or backend.xp.float32)
        self.weight = Parameter(_normal((count, size), std, dtype))
        self.padding_idx = padding_idx

    def forward(self, ids):
        return F.embedding(ids, self.weight, self.padding_idx)


class Dropout(Module):
    def __init__(self, p):
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)
