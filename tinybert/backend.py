"""The one place that decides which array library does the arithmetic.

NumPy on the CPU; CuPy on a CUDA GPU when asked for, either by the environment
(``TINYBERT_DEVICE=cuda``) or by calling :func:`use_device`. Every compute module reads
``backend.xp`` at call time, so switching device switches all of them; nothing else in
tinybert imports numpy or cupy for compute. Importing tinybert never imports CuPy.
"""
import contextlib
import copy
import ctypes
import math
import os

import numpy
import scipy.special

from . import erf as fast_erf

xp = numpy                # the array namespace every op computes with
device = "cpu"
_erf = scipy.special.erf  # GELU needs erf, which lives outside the array namespace
_rng = numpy.random.default_rng(0)


def use_device(name):
    """Compute on ``"cpu"`` (NumPy) or ``"cuda"`` (CuPy) from now on."""
    global xp, device, _erf, _rng
    if name == "cpu":
        xp, device, _erf = numpy, "cpu", scipy.special.erf
    elif name == "cuda":
        try:
            import cupy
            import cupyx.scipy.special
            cupy.cuda.runtime.getDeviceCount()
        except Exception as error:  # ImportError, or CUDA present but no usable device
            raise RuntimeError(f"device 'cuda' asked for but CuPy cannot use a GPU here: {error}") from None
        xp, device, _erf = cupy, "cuda", cupyx.scipy.special.erf
    else:
        raise ValueError(f"unknown device {name!r}: expected 'cpu' or 'cuda'")
    _rng = xp.random.default_rng(0)


def normal_cdf(array):
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2, the standard normal CDF, elementwise (GELU's gate),
    on whichever device ``array`` lives.

    float32 on the CPU goes to :func:`tinybert.erf.normal_cdf`, a vectorised approximation
    (absolute error below 3e-7) in place of SciPy's scalar erf, about ten times slower
    (``make bench`` prints both rates);
    float64 (gradient checks) keeps SciPy's exact erf; CuPy arrays use CuPy's.
    """
    if xp is numpy and array.dtype == numpy.float32:
        return fast_erf.normal_cdf(array)
    cdf = _erf(array * (1.0 / math.sqrt(2.0)))
    cdf += 1.0
    cdf *= 0.5
    return cdf


def seed(value):
    """Reseed the generator that dropout and parameter initialisation draw from."""
    global _rng
    _rng = xp.random.default_rng(value)


def rng():
    """The current random generator (NumPy or CuPy ``Generator``)."""
    return _rng


def set_rng(generator):
    global _rng
    _rng = generator


def snapshot_rng():
    """A copy of the current generator: replaying it redraws the same dropout masks."""
    return copy.deepcopy(_rng)


@contextlib.contextmanager
def replayed_rng(snapshot):
    """Draw from a fresh copy of ``snapshot`` inside the block; afterwards the current
    generator carries on where it was, as if the block had drawn nothing."""
    global _rng
    current, _rng = _rng, copy.deepcopy(snapshot)
    try:
        yield
    finally:
        _rng = current


def to_numpy(array):
    """A NumPy copy of ``array`` (a no-op on the CPU), for saving and printing."""
    return array.get() if hasattr(array, "get") else numpy.asarray(array)


def reuse_freed_memory():
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the OS.

    Every activation of a BERT step is a fresh array of megabytes. By default glibc serves
    such blocks with mmap and unmaps them when freed, so the next step touches brand-new
    pages, a page fault every 4 KiB (``make bench`` counts them per training step).
    With the mmap threshold at its largest (32 MiB) and trimming off (mallopt(3): a trim
    threshold of -1), freed blocks go back to the heap and are reused; the peak memory is
    unchanged. A no-op where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mmap_threshold, trim_threshold = -3, -1   # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD in malloc.h
        libc.mallopt(mmap_threshold, 32 << 20)
        libc.mallopt(trim_threshold, -1)
    except (OSError, AttributeError):
        pass


reuse_freed_memory()
if os.environ.get("TINYBERT_DEVICE", "cpu") != "cpu":
    use_device(os.environ["TINYBERT_DEVICE"])
