"""The seam between tinybert's two paths: the reference path a reader follows, and the fast one.

The reference path is ``tensor -> ops -> functional -> nn -> model -> optim``: whole-array
NumPy/CuPy that reads as the formulas in its docstrings. A few of its functions are marked

    @paths.has_fast_kernel
    def matmul(a, b): ...        # the reference: y = a @ b, dL/da = g @ b^T, dL/db = a^T @ g

and each marked function has a fast kernel of the same name and signature in
:mod:`tinybert.fast` (listed in its table ``fast.KERNELS``), which computes the same thing
(to float32 rounding) with whatever it takes: operands folded into one BLAS call, work in
cache-sized blocks on every core, a rational erf, the batch split across cores, malloc told to
keep freed memory. Nothing else differs between the paths; tests/test_paths.py checks that
every marked function agrees with its kernel, and ``make test`` runs the whole suite on both.

One setting chooses the path: the environment variable ``TINYBERT_FAST`` (``1``, the default,
or ``0``) when tinybert is imported, or :func:`use_fast_path` at any time. With the fast path
off, tinybert.fast is never imported: no thread pool, no malloc setting.
"""
import contextlib
import functools
import os

_fast = os.environ.get("TINYBERT_FAST", "1") != "0"
_kernels = None   # tinybert.fast.KERNELS once the fast path has been used


def use_fast_path(on=True):
    """Run the marked functions' fast kernels (``on``) or their reference bodies from now on."""
    global _fast
    _fast = bool(on)


def fast_path_on():
    return _fast


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
    ``"ops.matmul"`` or ``"model.BertModel.encode"``."""
    return function.__module__.removeprefix("tinybert.") + "." + function.__qualname__


def has_fast_kernel(reference):
    """Mark ``reference`` as having a fast kernel: calls go to ``fast.KERNELS[name]`` while the
    fast path is on, to ``reference`` itself otherwise. The reference stays reachable as
    ``.reference`` (the tests compare the two)."""
    name = kernel_name(reference)

    @functools.wraps(reference)
    def dispatch(*args, **kwargs):
        if _fast:
            return fast_kernels()[name](*args, **kwargs)
        return reference(*args, **kwargs)
    dispatch.reference = reference
    return dispatch


def fast_kernels():
    """tinybert.fast's table {name: kernel}, imported on first use."""
    global _kernels
    if _kernels is None:
        from . import fast
        _kernels = fast.KERNELS
    return _kernels
