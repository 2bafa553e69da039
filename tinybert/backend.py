"""The one place that decides which array library does the arithmetic.

NumPy on the CPU; CuPy on a CUDA GPU when asked for, either by the environment
(``TINYBERT_DEVICE=cuda``) or by calling :func:`use_device`. Every compute module reads
``backend.xp`` at call time, so switching device switches all of them; nothing else in
tinybert imports numpy or cupy for compute. Importing tinybert never imports CuPy.
"""
import contextlib
import copy
import os

import numpy
import scipy.special

xp = numpy                    # the array namespace every op computes with
device = "cpu"
erf = scipy.special.erf       # GELU needs erf, which lives outside the array namespace
_rng = numpy.random.default_rng(0)


def use_device(name):
    """Compute on ``"cpu"`` (NumPy) or ``"cuda"`` (CuPy) from now on.

    The random generator carries on: on the device it is on already it is kept, and a move
    to the other device seeds that device's generator with a number drawn from it, so what
    ``seed(s)`` draws stays a function of s."""
    global xp, device, erf, _rng
    if name == device:
        return
    if name == "cpu":
        library, special = numpy, scipy.special
    elif name == "cuda":
        try:
            import cupy
            import cupyx.scipy.special
            cupy.cuda.runtime.getDeviceCount()
        except Exception as error:  # ImportError, or CUDA present but no usable device
            raise RuntimeError(f"device 'cuda' asked for but CuPy cannot use a GPU here: {error}") from None
        library, special = cupy, cupyx.scipy.special
    else:
        raise ValueError(f"unknown device {name!r}: expected 'cpu' or 'cuda'")
    next_seed = int(_rng.integers(2 ** 62))
    xp, device, erf = library, name, special.erf
    _rng = xp.random.default_rng(next_seed)


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
