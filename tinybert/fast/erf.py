"""The error function (and the normal CDF built on it) for float32 arrays on the CPU, fast
enough that GELU stops dominating.

SciPy's erf is scalar double-precision code, about ten times slower a value than this one
(``make bench`` prints both rates), and GELU sends all of the FFN's (B*T, 4C) activations
through it, the largest elementwise array of a layer. Here erf is instead
a rational function, the one Eigen and XLA use for float32:

    erf(x) ~= x P(x^2) / Q(x^2),  x clamped to [-4, 4]   (erf(4) = 1 - 1.5e-8, so clamping is exact in float32)

with P of degree 6 and Q of degree 4 in x^2. Its largest absolute error is about 4.4e-7
(a few float32 ulps of 1.0; tests/test_erf.py measures it against float64 SciPy).
Being a handful of multiplies and adds, it runs as NumPy ufuncs, which are vectorised
(SIMD). Two things keep it fast:
  - blocks: each ufunc pass over a block of 256K values stays in the core's caches, where a
    pass over the whole 25 MB array would stream it from memory ~20 times;
  - threads: ufuncs release the GIL, so the blocks are shared among one thread per core
    (both by tinybert.parallel).

GELU needs Phi(x) = (1 + erf(x / sqrt 2)) / 2, the standard normal CDF; ``normal_cdf`` applies
the scale and the shift inside the blocks too, saving three passes over memory.
float64 arrays (gradient checks) keep SciPy's exact erf: see ``backend.normal_cdf``.
"""
import math

import numpy

from . import parallel

# Coefficients of P (x^12 ... x^0 of x^2's powers, i.e. x^13 ... x^1 after the final * x) and Q
P = [-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
     -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02]
Q = [-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
     -1.42647390514189e-02]
BLOCK = 1 << 18   # values per block: 1 MB an array, five arrays in use at once
CLAMP = 4.0


def erf(array):
    """erf of a float32 NumPy array, elementwise; a new array of the same shape."""
    return _blockwise(array, scale=1.0, cdf=False)


def normal_cdf(array):
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2 of a float32 NumPy array, elementwise."""
    return _blockwise(array, scale=1.0 / math.sqrt(2.0), cdf=True)


def _blockwise(array, scale, cdf):
    """``_block`` over the array, one cache-sized block at a time, on every core."""
    array = numpy.ascontiguousarray(array, dtype=numpy.float32)
    out = numpy.empty_like(array)
    parallel.blockwise(lambda x, y: _block(x, y, scale, cdf), array, out, block=BLOCK)
    return out


def _block(x, y, scale, cdf):
    """y[:] = erf(scale * x), or (1 + that) / 2 if ``cdf``, with Horner's rule for P and Q."""
    clamped = numpy.multiply(x, numpy.float32(scale))
    numpy.clip(clamped, -CLAMP, CLAMP, out=clamped)
    square = clamped * clamped
    _horner(P, square, y)
    y *= clamped
    denominator = numpy.empty_like(square)
    _horner(Q, square, denominator)
    y /= denominator
    if cdf:
        y += 1.0
        y *= 0.5


def _horner(coefficients, s, out):
    """out = polynomial in s with ``coefficients`` (highest power first), in place."""
    numpy.multiply(s, numpy.float32(coefficients[0]), out=out)
    for coefficient in coefficients[1:-1]:
        out += numpy.float32(coefficient)
        out *= s
    out += numpy.float32(coefficients[-1])
