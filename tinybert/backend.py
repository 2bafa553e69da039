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


def rng_state():
    """The current generator's state, for a checkpoint: NumPy's bit-generator state (a dict,
    saved as JSON), or on a GPU the bytes of CuPy's cuRAND states, one per GPU thread (a NumPy
    uint8 array, saved as an array)."""
    if isinstance(_rng, numpy.random.Generator):
        return _rng.bit_generator.state
    return to_numpy(_rng.bit_generator._state).view(numpy.uint8)


def set_rng_state(state):
    """Make the current generator carry on from ``state``, what :func:`rng_state` returned on
    the same device (and, on a GPU, a GPU of as many threads' states)."""
    saved_on = "cpu" if isinstance(state, dict) else "cuda"
    if saved_on != device:
        raise ValueError(f"the random generator's state was saved with --device {saved_on}; "
                         f"this run has --device {device}")
    if saved_on == "cpu":
        _rng.bit_generator.state = state
        return
    current = _rng.bit_generator._state
    if state.size != current.size:
        raise ValueError(f"the random generator's state was saved on a GPU with {state.size} bytes of it; "
                         f"this GPU's has {current.size}")
    current[...] = xp.asarray(state).view(current.dtype)


def snapshot_rng():
    """A copy of the current generator: replaying it redraws the same dropout masks."""
    return _copy_generator(_rng)


def _copy_generator(generator):
    """A generator that draws what ``generator`` draws next; ``generator`` is left as it is."""
    if isinstance(generator, numpy.random.Generator):
        return copy.deepcopy(generator)
    # CuPy's bit generator keeps its state in a device array beside a lock, which deepcopy
    # refuses: copy the object's fields, then give the copy its own state (the lock, shared,
    # only keeps two draws from running at once)
    bits = copy.copy(generator.bit_generator)
    bits._state = bits._state.copy()
    return type(generator)(bits)


@contextlib.contextmanager
def replayed_rng(snapshot):
    """Draw from a fresh copy of ``snapshot`` inside the block; afterwards the current
    generator carries on where it was, as if the block had drawn nothing."""
    global _rng
    current, _rng = _rng, _copy_generator(snapshot)
    try:
        yield
    finally:
        _rng = current


def to_numpy(array):
    """A NumPy copy of ``array`` (a no-op on the CPU), for saving and printing."""
    return array.get() if hasattr(array, "get") else numpy.asarray(array)


if os.environ.get("TINYBERT_DEVICE", "cpu") != "cpu":
    use_device(os.environ["TINYBERT_DEVICE"])
