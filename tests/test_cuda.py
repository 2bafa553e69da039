"""The CuPy backend on a GPU: the same model and batches give the same losses and gradients as
NumPy on the CPU, on both paths, and train.py's full recipe runs end to end with --device cuda.

These need a CUDA GPU and CuPy, so the default run deselects them (pyproject.toml's
``-m "not cuda"``); ``make cudacheck`` runs them, and fails with the reason where no GPU is usable.
"""
import json
import math

import numpy as np
import pytest

from conftest import assert_close
from test_multitask import FIXTURE, batch_for
from test_train import interrupt_after_optimizer_step, records, run, tiny_weights  # noqa: F401  (a fixture)
import tinybert.fast  # noqa: F401  (the fast kernels, so that both paths can be compared under TINYBERT_FAST=0 too)
from tinybert import backend
from tinybert.convert import load_pretrained
from tinybert.multitask import MultitaskBert
from tinybert.run import checkpoint
from tinybert.seam import fast_path

pytestmark = pytest.mark.cuda


def loss_and_gradients(device, task, cos):
    """One batch's loss and every parameter's gradient (None where it has none), computed on
    ``device`` from the same parameters (the heads' random start drawn on the CPU), as NumPy."""
    backend.seed(0)
    parameters = MultitaskBert(load_pretrained(FIXTURE), cos=cos).state_dict()
    backend.use_device(device)
    try:
        model = MultitaskBert(load_pretrained(FIXTURE), hidden_dropout_prob=0.1, cos=cos).eval()
        model.load_state_dict(parameters)
        batch = batch_for(task, cos)
        loss = model.loss(batch, model(batch))
        loss.backward()
        gradients = {name: None if parameter.grad is None else backend.to_numpy(parameter.grad)
                     for name, parameter in model.named_parameters()}
        return float(backend.to_numpy(loss.data)), gradients
    finally:
        backend.use_device("cpu")


def test_a_snapshot_of_the_gpu_generator_replays_its_draws():
    backend.use_device("cuda")
    try:
        backend.seed(3)
        snapshot = backend.snapshot_rng()
        first = backend.to_numpy(backend.rng().random(1000))
        with backend.replayed_rng(snapshot):
            replayed = backend.to_numpy(backend.rng().random(1000))
        after = backend.to_numpy(backend.rng().random(1000))  # the generator went on, untouched by the replay
    finally:
        backend.use_device("cpu")
    assert np.array_equal(replayed, first) and not np.array_equal(after, first)


@pytest.mark.parametrize("fast", [False, True], ids=["reference", "fast"])
@pytest.mark.parametrize("task,cos", [("sst", False), ("para", False), ("sts", False), ("sts", True)])
def test_gpu_loss_and_gradients_equal_the_cpu(task, cos, fast):
    # float32 on both; the GPU sums in other orders, so equal to float32 rounding, not bit for bit
    with fast_path(fast):
        cpu_loss, cpu_gradients = loss_and_gradients("cpu", task, cos)
        gpu_loss, gpu_gradients = loss_and_gradients("cuda", task, cos)
    assert math.isclose(gpu_loss, cpu_loss, rel_tol=1e-5), (gpu_loss, cpu_loss)
    assert gpu_gradients.keys() == cpu_gradients.keys()
    for name, gradient in cpu_gradients.items():
        assert (gpu_gradients[name] is None) == (gradient is None), name
        if gradient is None:  # another task's head
            continue
        scale = max(float(np.abs(gradient).max()), 1e-6)
        assert_close(name, gpu_gradients[name], gradient, atol=1e-4 * scale, rtol=1e-3)


def test_full_recipe_trains_on_the_gpu(tiny_weights, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    try:
        run(tiny_weights, out, "--task", "all", "--pcgrad", "--smart", "--cos", "--device", "cuda", epochs=2)
    finally:
        backend.use_device("cpu")
    steps = records(out, "step")
    assert len(steps) == 6
    assert all(math.isfinite(value) for step in steps for key, value in step.items()
               if key.startswith("loss_"))
    recorded = json.loads((out / "machine.json").read_text())
    assert recorded["gpu"] and recorded["cupy"]  # the run names the GPU it was measured on
    dev = json.loads((out / "dev_metrics.json").read_text())
    assert set(dev) >= {"sst", "para", "sts"}
    for task in ("sst", "para", "sts"):
        assert (out / "predictions" / f"{task}-dev-output.csv").stat().st_size > 0


def test_a_resumed_gpu_run_carries_on_as_the_uninterrupted_one(tiny_weights, tmp_path, monkeypatch):  # noqa: F811
    recipe = ("--task", "all", "--pcgrad", "--smart", "--cos", "--device", "cuda")
    uninterrupted, resumed = tmp_path / "a", tmp_path / "b"
    try:
        run(tiny_weights, uninterrupted, *recipe, epochs=2)
        with monkeypatch.context() as patch:
            interrupt_after_optimizer_step(patch, 4)
            assert run(tiny_weights, resumed, *recipe, epochs=2)["step"] == 4
        assert run(tiny_weights, resumed, *recipe, "--resume", epochs=2)["step"] == 6
    finally:
        backend.use_device("cpu")
    (parameters, state), (parameters_resumed, state_resumed) = (checkpoint.load(folder / "last")
                                                                for folder in (uninterrupted, resumed))
    # the generator's GPU state was saved and put back: both drew the same masks, ending in the same place
    assert isinstance(state["rng"], np.ndarray) and np.array_equal(state_resumed["rng"], state["rng"])
    # equal up to the GPU's order of atomic additions, which AdamW's division by sqrt(v) can lift to
    # a few millionths where a gradient is near 0 (5e-6 seen); moments lost on resume would move
    # such entries by about the learning rate (1e-4) a step
    for name, array in parameters["model"].items():
        assert_close(name, parameters_resumed["model"][name], array, atol=2e-5, rtol=1e-4)
    losses, losses_resumed = ([step[key] for step in records(folder, "step") for key in sorted(step) if key.startswith("loss_")]
                              for folder in (uninterrupted, resumed))
    assert np.allclose(losses_resumed, losses, rtol=1e-4)
