"""Work on every core from NumPy: elementwise ops in cache-sized blocks, and inference split
along the batch.

NumPy runs a ufunc (add, exp, ...) or a reduction on one core, and each call reads and writes
whole arrays: an op made of five passes over a 25 MB array streams it from memory ten times.
NumPy releases the GIL inside a ufunc and inside a BLAS call, so Python threads working on
separate slices run at the same time, one per core. Two ways to use that, both here:
  - ``for_blocks`` (and ``blockwise``, over the same slices of several arrays): do all the
    passes of an op on one slice of a few hundred KB before moving to the next (every pass
    after the first finds its data in the cache), slices shared out among the cores. PyTorch
    does the same in C++ (at::parallel_for).
  - ``over_batch``: with no graph to record (evaluation), rows of a batch never interact, so
    each core runs the whole encoder on its own slice of rows, BLAS held to one thread.
    Splitting every op instead loses to OpenBLAS itself: after each matmul its idle worker
    keeps spinning on the other core for about 0.1 s, so elementwise work handed to a second
    thread between two matmuls finds that core busy. With one thread per slice, matmuls and
    elementwise work alike run on both cores and the threads meet once per forward.
For NumPy arrays only: on CuPy the GPU is parallel already.
"""
import contextlib
import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy

from ..run.machine import openblas_libraries

# the cores this process may run on (a container or taskset may allow fewer than the machine has)
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_pool = None
_inside = threading.local()   # .busy: this thread already runs one core's share


def cores():
    return _CORES


def _shared_pool():
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(cores())
    return _pool


def for_blocks(length, block, work):
    """Call ``work(start, stop)`` on consecutive blocks of at most ``block`` items that cover
    range(length); contiguous runs of blocks are shared out among one thread per core, this
    thread one of them (run in this thread alone inside ``over_batch``, whose threads hold
    every core already).
    ``work`` must only write its own block."""
    starts = list(range(0, length, max(1, block)))
    if cores() == 1 or len(starts) == 1 or getattr(_inside, "busy", False):
        for start in starts:
            work(start, min(start + block, length))
        return
    share = -(-len(starts) // cores())   # blocks per thread, rounded up

    def run(first):
        for start in starts[first:first + share]:
            work(start, min(start + block, length))
    firsts = range(0, len(starts), share)
    others = [_shared_pool().submit(run, first) for first in firsts[1:]]
    run(firsts[0])                       # this thread does a share too, rather than wait idle
    for share_done in others:
        share_done.result()


BLOCK = 1 << 16   # values a block of elementwise work (256 KB of float32): its passes stay in cache


def blockwise(work, *arrays, block=BLOCK):
    """``work(*slices)`` on matching slices of ``arrays`` (same size, flattened), ``block``
    values at a time, on every core (``for_blocks``). For elementwise work that writes its
    results into some of the arrays: it sees the same values either way, so when the arrays
    are not all C-contiguous NumPy arrays (CuPy, a strided view) it gets them whole, at once."""
    if not all(isinstance(a, numpy.ndarray) and a.flags.c_contiguous for a in arrays):
        work(*arrays)
        return
    flat = [a.reshape(-1) for a in arrays]
    for_blocks(flat[0].size, block, lambda start, stop: work(*(a[start:stop] for a in flat)))


def over_batch(function, batch_size):
    """``function(rows)`` for slices ``rows`` of range(batch_size), two slices per core (a
    smaller slice's activations stay in cache longer), one thread per core, NumPy's BLAS on
    one thread; returns the per-slice results in order. ``function`` must only read shared
    arrays. Runs ``function(slice(0, batch_size))`` alone when splitting cannot help: one
    core, one row, or a BLAS whose threads cannot be set."""
    parts = min(2 * cores(), batch_size)
    if cores() < 2 or parts < 2 or getattr(_inside, "busy", False) or _openblas() is None:
        return [function(slice(0, batch_size))]
    bounds = numpy.linspace(0, batch_size, parts + 1).round().astype(int)

    def run(index):
        _inside.busy = True
        try:
            return function(slice(bounds[index], bounds[index + 1]))
        finally:
            _inside.busy = False
    with blas_threads(1):
        return list(_shared_pool().map(run, range(parts)))


def matmul_over_stack(a, b):
    """a @ b for two stacks of matrices with the same leading axes, (S, ..., n, k) @ (S, ..., k, m),
    the stack split along its first axis among one thread per core (this thread one of them),
    NumPy's BLAS on one thread meanwhile. For attention's products, a few hundred small
    matrices: NumPy hands BLAS one at a time, and OpenBLAS shares out each small product
    between its threads, which costs more than it saves (q @ k at 32x128: 10.5 ms on two
    OpenBLAS threads, 6.5 ms on one). Plain ``a @ b`` where it cannot help (one core, a stack
    of one, inside ``over_batch``, another BLAS)."""
    count = min(cores(), a.shape[0])
    if count < 2 or getattr(_inside, "busy", False) or _openblas() is None:
        return a @ b
    out = numpy.empty(a.shape[:-1] + b.shape[-1:], dtype=numpy.result_type(a, b))
    bounds = numpy.linspace(0, a.shape[0], count + 1).round().astype(int)

    def run(index):
        rows = slice(bounds[index], bounds[index + 1])
        numpy.matmul(a[rows], b[rows], out=out[rows])
    with blas_threads(1):
        others = [_shared_pool().submit(run, index) for index in range(1, count)]
        run(0)
        for share_done in others:
            share_done.result()
    return out


@contextlib.contextmanager
def blas_threads(count):
    """NumPy's OpenBLAS on ``count`` threads inside the block (a process-wide setting)."""
    set_threads, get_threads = _openblas()
    previous = get_threads()
    set_threads(count)
    try:
        yield
    finally:
        set_threads(previous)


_OPENBLAS_NAMES = (("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
                   ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
                   ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
                   ("openblas_set_num_threads", "openblas_get_num_threads"))
_openblas_found = []   # [] not looked up yet, [None] not found, [(library, set, get)]


def _openblas():
    """(set_num_threads, get_num_threads) of the OpenBLAS that NumPy loaded, or None (another
    BLAS, or not Linux)."""
    found = _openblas_library()
    return found[1:] if found else None


def _openblas_library():
    """(library, set_num_threads, get_num_threads) of NumPy's OpenBLAS, or None: found by name
    among the libraries mapped into this process."""
    if not _openblas_found:
        _openblas_found.append(_find_openblas())
    return _openblas_found[0]


def _find_openblas():
    for library in openblas_libraries():
        for set_name, get_name in _OPENBLAS_NAMES:
            if hasattr(library, set_name) and hasattr(library, get_name):
                set_threads, get_threads = getattr(library, set_name), getattr(library, get_name)
                set_threads.argtypes, set_threads.restype = [ctypes.c_int], None
                get_threads.argtypes, get_threads.restype = [], ctypes.c_int
                return library, set_threads, get_threads
    return None


BLAS_IDLE_TIMEOUT = 4   # OpenBLAS's least THREAD_TIMEOUT: its workers wait 2^4 cycles, then sleep


def blas_workers_sleep_when_idle():
    """Make OpenBLAS's worker threads sleep as soon as a product ends (a process-wide setting).

    By default each worker spins on its core for 2^28 cycles (about 0.1 s) after a product, in
    case another follows. Elementwise work that tinybert shares among the cores right after a
    matmul then finds the second core taken by a thread that only waits: in a 32x64 training
    step on a 2-core Intel Xeon, GELU (whose input comes straight from a matmul) took 325 ms a
    step with the workers spinning and 207 ms with them asleep (``python -m tools.step_profile``,
    docs/performance-log.md). OpenBLAS reads the timeout from the variable
    OPENBLAS_THREAD_TIMEOUT when it loads, which is before tinybert can set it; so it is set
    here, OpenBLAS reads its environment again, and its threads are stopped, to be started
    again with the new timeout by the next product. A value the user set is kept. A no-op for
    another BLAS, or an OpenBLAS without these functions."""
    found = _openblas_library()
    library = found[0] if found else None
    if library is None or not all(hasattr(library, name) for name in
                                  ("openblas_read_env", "openblas_thread_timeout", "blas_thread_shutdown_")):
        return
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", str(BLAS_IDLE_TIMEOUT))
    library.openblas_read_env()
    library.blas_thread_shutdown_()
