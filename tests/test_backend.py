"""tinybert.backend's random generator: choosing the device it is already on draws on as
before (no reseed). (Loading weights leaves the draws alone too: tests/test_bert.py.)"""
import numpy as np

from tinybert import backend


def test_use_device_does_not_reseed_the_generator():
    backend.seed(5)
    expected = backend.rng().random(8)
    backend.seed(5)
    backend.use_device(backend.device)               # the device it is on already
    assert np.array_equal(backend.rng().random(8), expected)
