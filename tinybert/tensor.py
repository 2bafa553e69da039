"""The autograd engine: a Tensor that remembers the op that made it, and backward().

A Tensor wraps an array (``.data``, NumPy or CuPy) and, when it was computed from tensors
that require gradients, the tuple of those inputs (``_parents``) and a closure
(``_backward``) mapping d(loss)/d(output) to d(loss)/d(each input). ``backward()`` visits
the graph in reverse topological order, so every node has received the gradient from all
of its consumers before it passes gradient on (a tensor used twice simply receives two
contributions, which are added).

The ops themselves live in :mod:`tinybert.ops` (primitives) and
:mod:`tinybert.functional` (the fused neural-network ops); the operator methods below
only forward to them.
"""
import contextlib

import numpy

from . import backend

_grad_enabled = True


@contextlib.contextmanager
def no_grad():
    """Inside this block ops record no graph: outputs never require gradients."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled():
    return _grad_enabled


class Tensor:
    """An array plus what is needed to differentiate through it.

    data: the array, on the backend's device. Its dtype, the same rule on NumPy and CuPy:
        a NumPy or CuPy array (or Tensor) keeps its dtype (gradient checks run in float64);
        anything else (a Python or NumPy number, a list) becomes float32 if it holds floats,
        and keeps its integer or bool type otherwise; ``dtype=`` overrides both. Only bool,
        integer and floating dtypes are accepted.
    grad: d(loss)/d(data), same shape, set by ``backward()`` on leaf tensors.
    requires_grad: whether gradients should flow to (or through) this tensor.
    """

    def __init__(self, data, requires_grad=False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        xp = backend.xp
        if dtype is None and not isinstance(data, (numpy.ndarray, xp.ndarray)):  # a number or a list
            data = xp.asarray(data)
            dtype = xp.float32 if data.dtype.kind == "f" else None
        self.data = xp.asarray(data, dtype=dtype)
        if self.data.dtype.kind not in "biuf":  # bool, int, unsigned, float
            raise TypeError(f"a Tensor holds numbers, got dtype {self.data.dtype}")
        self.grad = None
        self.requires_grad = requires_grad
        self._parents = ()
        self._backward = None
        self.op = "leaf"

    @staticmethod
    def from_op(data, parents, backward, op):
        """The output of an op: records ``parents`` and ``backward`` only when a graph is
        being built and some parent needs a gradient."""
        out = Tensor.__new__(Tensor)
        out.data, out.grad, out.op = data, None, op
        out.requires_grad = _grad_enabled and any(p.requires_grad for p in parents)
        out._parents = parents if out.requires_grad else ()
        out._backward = backward if out.requires_grad else None
        return out

    # ------------------------------------------------------------------ backward
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``grad`` seeds d(loss)/d(self); it defaults to 1 for a scalar. Unless
        ``retain_graph``, each node drops its closure (and so the activations it saved)
        as soon as it has passed its gradient on. A leaf's ``.grad`` is an array of its own:
        it shares memory with no other leaf's and not with ``grad``.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        if self._backward is None and self.op != "leaf":
            raise RuntimeError(f"backward() through the graph of {self.op!r} a second time: it was freed "
                               "after the first backward(); pass retain_graph=True to keep it")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() needs a gradient for a non-scalar of shape {self.shape}")
            grad = backend.xp.ones_like(self.data)
        grads = {id(self): grad}  # gradients of interior nodes, dropped once used
        handed = {id(grad)}       # arrays a leaf must not keep: the caller's seed, those handed to a leaf
        for node in reversed(_topological_order(self)):
            node_grad = grads.pop(id(node), None)
            if node_grad is None:
                continue
            if node._backward is None:  # a leaf: copy what may be held elsewhere (the seed; an array
                # also handed to another leaf, as add gives one to both inputs; a view, e.g. sum's
                # read-only broadcast). A fresh one is kept: copying every one is a pass over all gradients.
                if node.grad is None and (id(node_grad) in handed or node_grad.base is not None):
                    node_grad = node_grad.copy()
                handed.add(id(node_grad))
                node.grad = node_grad if node.grad is None else node.grad + node_grad  # out of place
                continue
            for parent, parent_grad in zip(node._parents, node._backward(node_grad)):
                if parent_grad is None or not parent.requires_grad:
                    continue
                if parent_grad.shape != parent.data.shape:
                    raise RuntimeError(f"op {node.op!r} returned a gradient of shape {parent_grad.shape} "
                                       f"for an input of shape {parent.data.shape}")
                key = id(parent)
                grads[key] = parent_grad if key not in grads else grads[key] + parent_grad
            if not retain_graph:
                node._backward, node._parents = None, ()

    # ------------------------------------------------------------------ conveniences
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    def numpy(self):
        return backend.to_numpy(self.data)

    def item(self):
        """The value of a one-element tensor as a Python float."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor of one element; this one has shape {self.shape}")
        return float(self.data.reshape(-1)[0])

    def detach(self):
        return Tensor(self.data)

    def zero_grad(self):
        self.grad = None

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor(shape={self.shape}, dtype={self.dtype}, op={self.op}{grad})"

    # ------------------------------------------------------------------ operators -> ops
    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.div(self, other)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __neg__(self): return ops.neg(self)
    def __pow__(self, exponent): return ops.pow(self, exponent)
    def __matmul__(self, other): return ops.matmul(self, other)
    def __getitem__(self, index): return ops.getitem(self, index)

    def sum(self, axis=None, keepdims=False): return ops.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return ops.mean(self, axis, keepdims)
    def reshape(self, *shape): return ops.reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape)
    def permute(self, *axes): return ops.permute(self, axes)
    def transpose(self, axis1=-2, axis2=-1): return ops.transpose(self, axis1, axis2)
    def exp(self): return ops.exp(self)
    def log(self): return ops.log(self)
    def sqrt(self): return ops.sqrt(self)
    def tanh(self): return ops.tanh(self)
    def sigmoid(self): return ops.sigmoid(self)


def _topological_order(root):
    """Every node that ``root`` depends on through tensors requiring grad, inputs before
    outputs. Iterative depth-first search: a deep graph cannot hit Python's recursion limit."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        stack.extend((parent, False) for parent in node._parents
                     if parent.requires_grad and id(parent) not in visited)
    return order


from . import ops  # noqa: E402  (ops needs Tensor defined first; the methods above need ops)
