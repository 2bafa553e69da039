"""The float32 erf and normal CDF of tinybert/fast/erf.py against SciPy's in float64, the GELU built on
them against its float64 self."""
import numpy as np
import pytest
import scipy.special

from tinybert import functional as F
from tinybert.fast import erf, functional as fast_functional
from tinybert.tensor import Tensor

GRID = np.linspace(-12.0, 12.0, 600_001).astype(np.float32)   # past both clamps, through 0


def test_erf_is_within_5e7_of_float64_everywhere():
    error = np.abs(erf.erf(GRID).astype(np.float64) - scipy.special.erf(GRID.astype(np.float64)))
    assert error.max() < 5e-7


def test_normal_cdf_is_within_3e7_of_float64_everywhere():
    error = np.abs(erf.normal_cdf(GRID).astype(np.float64) - scipy.special.ndtr(GRID.astype(np.float64)))
    assert error.max() < 3e-7


def test_erf_keeps_odd_symmetry_limits_and_nan():
    x = np.array([0.0, 1e-30, -1e-30, np.inf, -np.inf, np.nan], np.float32)
    out = erf.erf(x)
    assert out.dtype == np.float32
    assert out[0] == 0.0 and out[1] > 0 > out[2]
    assert out[3] == 1.0 and out[4] == -1.0 and np.isnan(out[5])
    assert np.array_equal(erf.erf(-GRID), -erf.erf(GRID))


@pytest.mark.parametrize("shape", [(7,), (3, 5, 11), (2, erf.BLOCK + 3)])
def test_blocks_threads_and_strided_input_give_the_elementwise_result(shape):
    # below two blocks the array is done in one thread, above it in one part per core, and a
    # part does not end on a block boundary; a transposed view must be read in its own order
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 3
    view = x.T
    expected = scipy.special.erf(view.astype(np.float64))
    out = erf.erf(view)
    assert out.shape == view.shape
    assert np.abs(out - expected).max() < 5e-7


def test_fast_normal_cdf_is_exact_in_float64():
    x = np.random.default_rng(1).standard_normal(1000) * 4
    assert np.abs(fast_functional.normal_cdf(x) - scipy.special.ndtr(x)).max() < 1e-15


def test_float32_gelu_matches_float64_gelu():
    x = np.random.default_rng(2).standard_normal((64, 1536)) * 3
    single = F.gelu(Tensor(x.astype(np.float32))).data
    double = F.gelu(Tensor(x)).data
    assert single.dtype == np.float32
    assert np.abs(single - double).max() < 2e-6
