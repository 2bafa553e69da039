"""The seam between tinybert's two paths: the reference path a reader follows, and the fast one.

The reference path is ``tensor -> ops -> functional -> nn -> model -> optim``: whole-array
NumPy/CuPy that reads as the formulas in its docstrings. A few of its functions are marked

    @seam.has_fast_kernel
    def matmul(a, b): ...        # the reference: y = a @ b, dL/da = g @ b^T, dL/db = a^T @ g

and each marked function has a fast kernel of the same name and signature in
:mod:`tinybert.fast`, which computes the same thing (to float32 rounding) with whatever it
takes: operands folded into one BLAS call, work in cache-sized blocks on every core, a
rational erf, the batch split across cores, malloc told to keep freed memory. Nothing else
differs between the paths; tests/test_paths.py checks that every marked function agrees with
its kernel, and ``make test`` runs the engine's and the model's tests on both.

The reference path never imports the fast one: ``tinybert.fast``, when imported, hands its
table of kernels to :func:`provide` (``import tinybert`` imports it unless the environment
variable ``TINYBERT_FAST`` is ``0``). :func:`use_fast_path` switches between the two at any
time once the kernels are there.
"""
import contextlib
import functools
import os

_fast = os.environ.get("TINYBERT_FAST", "1") != "0"
_kernels = {}   # {name: fast kernel}, filled by tinybert.fast when it is imported


def fast_path_on():
    return _fast


def provide(kernels):
    """Called by tinybert.fast on import: ``{name: kernel}`` for the marked functions."""
    _kernels.update(kernels)


def use_fast_path(on=True):
    """Run the marked functions' fast kernels (``on``) or their reference bodies from now on."""
    global _fast
    if on and not _kernels:
        raise RuntimeError("the fast kernels are not loaded: import tinybert.fast first")
    _fast = bool(on)


@contextlib.contextmanager
def fast_path(on):
    """The fast path on (or off) inside the block, as it was afterwards."""
    previous = _fast
    use_fast_path(on)
    try:
        yield
    finally:
        use_fast_path(previous)


def kernel_name(function):
    """The name under which the fast kernel of reference ``function`` is listed, e.g.
    ``"ops.matmul"`` or ``"optim.adamw_update"``."""
    return function.__module__.removeprefix("tinybert.") + "." + function.__qualname__


def has_fast_kernel(reference):
    """Mark ``reference`` as having a fast kernel: calls go to the kernel of its name while the
    fast path is on, to ``reference`` itself otherwise. The reference stays reachable as
    ``.reference`` (the tests compare the two)."""
    name = kernel_name(reference)

    @functools.wraps(reference)
    def dispatch(*args, **kwargs):
        if _fast:
            return _kernels[name](*args, **kwargs)
        return reference(*args, **kwargs)
    dispatch.reference = reference
    return dispatch
