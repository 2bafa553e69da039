"""Fast kernel of ``run.evaluation.in_row_slices``: evaluation split by rows of the batch, one
slice per core.

With no graph to record, rows of a batch never interact, so each core runs the whole forward
on its own rows (:func:`tinybert.fast.parallel.over_batch`, NumPy's BLAS held to one thread)
and the threads meet once per batch. Splitting op by op does worse on OpenBLAS: after each
matmul its idle worker spins on the other core for about 0.1 s, so elementwise work handed to
a second thread between two matmuls finds that core busy. A graph being recorded, or CuPy
arrays, run the reference's one call.
"""
import numpy

from .. import backend
from ..tensor import is_grad_enabled
from . import parallel


def in_row_slices(forward, rows):
    """``forward(slice)`` on each core's share of range(rows), the NumPy results (rows first)
    concatenated in order."""
    if is_grad_enabled() or backend.device != "cpu":
        return forward(slice(0, rows))
    parts = parallel.over_batch(forward, rows)
    return numpy.concatenate(parts) if len(parts) > 1 else parts[0]
