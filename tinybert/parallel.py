"""Elementwise work on every core, in blocks that stay in cache.

NumPy runs a ufunc (add, exp, ...) or a reduction on one core, and each call reads and writes
whole arrays: an op made of five passes over a 25 MB array streams it from memory ten times.
Two remedies, both here:
  - blocks: do all the passes of an op on one slice of a few hundred KB before moving to the
    next, so that every pass after the first finds its data in the cache;
  - threads: NumPy releases the GIL inside a ufunc, so threads working on separate slices
    run at the same time, one per core.
PyTorch does the same in C++ (at::parallel_for). For NumPy arrays only: on CuPy the GPU is
parallel already, and blocks would only add kernel launches.
"""
import os
from concurrent.futures import ThreadPoolExecutor

_pool = None


def for_blocks(length, block, work):
    """Call ``work(start, stop)`` on consecutive blocks of at most ``block`` items that cover
    range(length); contiguous runs of blocks are shared out among one thread per core.
    ``work`` must only write its own block."""
    global _pool
    starts = list(range(0, length, max(1, block)))
    cores = os.cpu_count() or 1
    if cores == 1 or len(starts) == 1:
        for start in starts:
            work(start, min(start + block, length))
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(cores)
    share = -(-len(starts) // cores)   # blocks per thread, rounded up

    def run(first):
        for start in starts[first:first + share]:
            work(start, min(start + block, length))
    list(_pool.map(run, range(0, len(starts), share)))
