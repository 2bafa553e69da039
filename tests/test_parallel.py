"""tinybert.fast.parallel: blocks shared among the cores, the batch split of evaluation, and the
BLAS thread setting it relies on."""
import os
import threading
import time

import numpy as np
import pytest

from tinybert.fast import parallel


@pytest.mark.parametrize("length,block", [(1, 4), (10, 3), (12, 4), (1000, 7), (5, 5)])
def test_for_blocks_covers_every_item_once(length, block):
    seen = np.zeros(length, int)

    def work(start, stop):
        assert 0 < stop - start <= block
        seen[start:stop] += 1
    parallel.for_blocks(length, block, work)
    assert (seen == 1).all()


def test_numpy_openblas_is_found_when_numpy_uses_openblas():
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    assert (parallel._openblas() is not None) == ("openblas" in blas.lower()), blas


@pytest.mark.skipif(parallel._openblas() is None, reason="NumPy's BLAS is not OpenBLAS (checked above)")
def test_over_batch_gives_each_core_its_rows_with_single_threaded_blas(monkeypatch):
    monkeypatch.setattr(parallel, "cores", lambda: 3)                  # six slices
    _, get_threads = parallel._openblas()
    before = get_threads()
    calls = []

    def function(rows):
        inner_threads = []
        parallel.for_blocks(10, 2, lambda start, stop: inner_threads.append(threading.get_ident()))
        calls.append((rows, get_threads(), set(inner_threads) == {threading.get_ident()}))
        return rows.start

    assert parallel.over_batch(function, 9) == [0, 2, 3, 4, 6, 8]     # in order of the rows
    assert sorted((rows.start, rows.stop) for rows, _, _ in calls) == [(0, 2), (2, 3), (3, 4), (4, 6), (6, 8), (8, 9)]
    assert all(threads == 1 for _, threads, _ in calls), "BLAS not held to one thread in the slices"
    assert all(serial for _, _, serial in calls), "for_blocks inside a slice must stay in its thread"
    assert get_threads() == before


def test_over_batch_runs_once_when_there_is_one_row(monkeypatch):
    monkeypatch.setattr(parallel, "cores", lambda: 4)
    assert parallel.over_batch(lambda rows: (rows.start, rows.stop), 1) == [(0, 1)]


def test_blockwise_writes_every_value_once_and_takes_strided_arrays_whole():
    x = np.arange(1000, dtype=np.float32).reshape(10, 100)
    out = np.zeros_like(x)
    sizes = []

    def double(x, out):
        sizes.append(x.size)
        out += 2 * x
    parallel.blockwise(double, x, out, block=64)
    assert np.array_equal(out, 2 * x) and max(sizes) <= 64 and len(sizes) == 16

    sizes.clear()
    strided = np.zeros((100, 10), np.float32).T              # not C-contiguous: one call, whole
    parallel.blockwise(double, x, strided, block=64)
    assert sizes == [1000] and np.array_equal(strided, 2 * x)


@pytest.mark.skipif(parallel._openblas() is None, reason="NumPy's BLAS is not OpenBLAS (checked above)")
@pytest.mark.parametrize("stack", [1, 2, 5])
def test_matmul_over_stack_equals_the_whole_product_on_single_threaded_blas(monkeypatch, stack):
    monkeypatch.setattr(parallel, "cores", lambda: 3)
    set_threads, get_threads = parallel._openblas()
    threads_before = get_threads()
    threads_inside, product = [], np.matmul

    def recording_matmul(a, b, out=None):
        threads_inside.append(get_threads())
        return product(a, b, out=out)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((stack, 4, 6, 7), dtype=np.float32).transpose(0, 1, 3, 2)   # strided, (S, 4, 7, 6)
    b = rng.standard_normal((stack, 4, 6, 5), dtype=np.float32)
    monkeypatch.setattr(np, "matmul", recording_matmul)
    out = parallel.matmul_over_stack(a, b)
    monkeypatch.setattr(np, "matmul", product)
    np.testing.assert_allclose(out, a @ b, rtol=1e-6)
    assert len(threads_inside) == min(3, stack) if stack > 1 else threads_inside == []
    assert all(count == 1 for count in threads_inside) and get_threads() == threads_before


def test_the_fast_path_puts_openblas_workers_to_sleep_as_soon_as_a_product_ends():
    """Spinning workers take the core that the elementwise work after a matmul needs."""
    import tinybert.fast  # noqa: F401  (the setting is made when the fast path is imported)
    library = parallel._openblas_library()[0]
    assert library.openblas_thread_timeout() == int(os.environ["OPENBLAS_THREAD_TIMEOUT"])
    if os.environ["OPENBLAS_THREAD_TIMEOUT"] != str(parallel.BLAS_IDLE_TIMEOUT):
        return   # the user chose another timeout, and keeps it
    square = np.ones((512, 512), np.float32)
    square @ square
    cpu_before = time.process_time()
    time.sleep(0.3)                      # a spinning worker burns CPU time while this thread sleeps
    assert time.process_time() - cpu_before < 0.03
