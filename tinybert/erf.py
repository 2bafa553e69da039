"""The error function (and the normal CDF built on it) for float32 arrays on the CPU, fast
enough that GELU stops dominating.

SciPy's erf is scalar double-precision code: about 30 ns a value on a slow core, a third of
a BERT forward pass when the FFN's (B*T, 4C) activations go through it. Here erf is instead
a rational function, the one Eigen and XLA use for float32:

    erf(x) ~= x P(x^2) / Q(x^2),  x clamped to [-4, 4]   (erf(4) = 1 - 1.5e-8, so clamping is exact in float32)

with P of degree 6 and Q of degree 4 in x^2. Its largest absolute error is about 4.4e-7
(a few float32 ulps of 1.0; tests/test_erf.py measures it against float64 SciPy).
Being a handful of multiplies and adds, it runs as NumPy ufuncs, which are vectorised
(SIMD). Two things keep it fast:
  - blocks: each ufunc pass over a block of 256K values stays in the core's cache, where a
    pass over the whole 25 MB array would stream it from memory ~20 times;
  - threads: ufuncs release the GIL, so the blocks are split between one thread per core.

GELU needs Phi(x) = (1 + erf(x / sqrt 2)) / 2, the standard normal CDF; ``normal_cdf`` applies
the scale and the shift inside the blocks too, saving three passes over memory.
float64 arrays (gradient checks) keep SciPy's exact erf: see ``backend.erf``.
"""
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy

# Coefficients of P (x^12 ... x^0 of x^2's powers, i.e. x^13 ... x^1 after the final * x) and Q
P = [-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
     -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02]
Q = [-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
     -1.42647390514189e-02]
BLOCK = 1 << 18
CLAMP = 4.0

_pool = None


def erf(array):
    """erf of a float32 NumPy array, elementwise; a new array of the same shape."""
    return _blockwise(array, scale=1.0, cdf=False)


def normal_cdf(array):
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2 of a float32 NumPy array, elementwise."""
    return _blockwise(array, scale=1.0 / math.sqrt(2.0), cdf=True)


def _blockwise(array, scale, cdf):
    """Split the flattened array into one part per core, each done by ``_blocks`` in a thread."""
    global _pool
    array = numpy.ascontiguousarray(array, dtype=numpy.float32)
    out = numpy.empty_like(array)
    flat_in, flat_out = array.reshape(-1), out.reshape(-1)
    cores = os.cpu_count() or 1
    if cores == 1 or array.size < 2 * BLOCK:
        _blocks(flat_in, flat_out, scale, cdf)
        return out
    if _pool is None:
        _pool = ThreadPoolExecutor(cores)
    parts = zip(numpy.array_split(flat_in, cores), numpy.array_split(flat_out, cores))
    list(_pool.map(lambda part: _blocks(*part, scale, cdf), parts))
    return out


def _blocks(values, out, scale, cdf):
    """out[:] = erf(scale * values), or (1 + that) / 2 if ``cdf``, one cache-sized block at a
    time, with Horner's rule for P and Q in three scratch buffers reused from block to block."""
    size = min(BLOCK, values.size)
    clamped, square, denominator = (numpy.empty(size, numpy.float32) for _ in range(3))
    for start in range(0, values.size, BLOCK):
        x, y = values[start:start + BLOCK], out[start:start + BLOCK]
        n = x.size
        c, s, q = clamped[:n], square[:n], denominator[:n]
        numpy.multiply(x, numpy.float32(scale), out=c)
        numpy.clip(c, -CLAMP, CLAMP, out=c)
        numpy.multiply(c, c, out=s)
        _horner(P, s, y)
        y *= c
        _horner(Q, s, q)
        y /= q
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
