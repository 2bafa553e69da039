"""The one place that decides which array library does the arithmetic.

NumPy on the CPU; CuPy on a CUDA GPU when asked for, either by the environment
(``TINYBERT_DEVICE=cuda``) or by calling :func:`use_device`. Every compute module reads
``backend.xp`` at call time, so switching device switches all of them; nothing else in
tinybert imports numpy or cupy for compute. Importing tinybert never imports CuPy.
"""
import contextlib
import copy
import os
from concurrent.futures import ThreadPoolExecutor

import numpy
import scipy.special

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


_erf_pool = None


def erf(array):
    """The error function, elementwise, on whichever device ``array`` lives.

    On the CPU SciPy's erf is scalar code on one core (about 10 ns a value, as long as all
    the matmuls of a BERT layer's FFN take on its 6M values), but like every NumPy ufunc
    it releases the GIL, so a large array is cut into one chunk per core, done in threads.
    """
    global _erf_pool
    cores = os.cpu_count() or 1
    if xp is not numpy or cores == 1 or array.size < 1 << 16:
        return _erf(array)
    if _erf_pool is None:
        _erf_pool = ThreadPoolExecutor(cores)
    array = numpy.ascontiguousarray(array)
    out = numpy.empty_like(array)
    chunks = numpy.array_split(array.reshape(-1), cores), numpy.array_split(out.reshape(-1), cores)
    list(_erf_pool.map(lambda part, into: _erf(part, out=into), *chunks))
    return out


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


if os.environ.get("TINYBERT_DEVICE", "cpu") != "cpu":
    use_device(os.environ["TINYBERT_DEVICE"])
