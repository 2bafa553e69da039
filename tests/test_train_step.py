"""train.step_gradients, the gradient wiring of one training step: with several tasks, the
encoder's gradient is the PCGrad combination (or the plain sum) of the per-task gradients,
each computed alone; each head holds its own task's gradient and nothing else; and what is
logged are the raw (unprojected) statistics. On a tiny float64 MultitaskBert, no dropout."""
import argparse
import sys

import numpy as np
import pytest

from conftest import ROOT, assert_close
from test_smart import HEADS, batch_for, tiny_model

sys.path.insert(0, str(ROOT))
import train  # noqa: E402
from tinybert import pcgrad  # noqa: E402

LABELS = {"sst": [np.array([0, 4, 2]), np.array([3, 1, 1])],
          "para": [np.array([1.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0])],
          "sts": [np.array([0.2, 4.0, 2.5]), np.array([5.0, 1.0, 0.0])]}


def no_check(task, value):
    """step_gradients' check_loss when the test needs none."""


def step_batches():
    """{task: [batch, ...]}: two sst and two para batches (different labels), one sts (cos)."""
    batches = {}
    for task, count in (("sst", 2), ("para", 2), ("sts", 1)):
        batches[task] = []
        for labels in LABELS[task][:count]:
            batch = batch_for(task, cos=task == "sts")
            batch.labels = labels
            batches[task].append(batch)
    return batches


def separate_gradients(model, batches):
    """{task: {parameter name: gradient of that task's summed batch losses alone}}, each from
    a clean slate (every .grad cleared first)."""
    gradients = {}
    for task, task_batches in batches.items():
        model.zero_grad()
        for batch in task_batches:
            model.loss(batch, model(batch)).backward()
        gradients[task] = {name: None if p.grad is None else p.grad.copy() for name, p in model.named_parameters()}
    model.zero_grad()
    return gradients


@pytest.mark.parametrize("use_pcgrad", [True, False])
def test_step_gradients_combine_the_separate_task_gradients(use_pcgrad):
    model, batches = tiny_model(cos=True), step_batches()
    expected = separate_gradients(model, batches)
    encoder = {name: p for name, p in model.named_parameters() if name.startswith("bert.")}
    flat = [np.concatenate([np.zeros(p.data.size) if expected[t][n] is None else expected[t][n].reshape(-1)
                            for n, p in encoder.items()]) for t in batches]
    stats = pcgrad.conflict_stats(flat, list(batches))
    assert stats["conflict_fraction"] > 0  # the tasks conflict: PCGrad must change the sum
    combined = pcgrad.project(flat, np.random.default_rng(7)) if use_pcgrad else sum(flat)
    assert not np.allclose(pcgrad.project(flat, np.random.default_rng(7)), sum(flat), rtol=1e-3)

    args = argparse.Namespace(pcgrad=use_pcgrad)
    record = train.step_gradients(model, train.shared_parameters(model), batches, args, None, None, np.random.default_rng(7), no_check)

    ours = np.concatenate([np.zeros(p.data.size) if p.grad is None else p.grad.reshape(-1) for p in encoder.values()])
    assert_close("encoder gradient", ours, combined, rtol=1e-10, atol=1e-13)
    for task, head in HEADS.items():           # each head: its own task's gradient, nothing else
        for name, p in model.named_parameters():
            if name.startswith(head):
                want = expected[task][name] if task in batches and expected[task][name] is not None else None
                if want is None:
                    assert p.grad is None or not np.any(p.grad), name
                else:
                    assert_close(name, p.grad, want, rtol=1e-12, atol=1e-15)
    for key, value in stats.items():           # raw statistics, from the unprojected g_t
        assert record[key] == pytest.approx(value, rel=1e-9), key
    for task, g in zip(batches, flat):
        assert record[f"encoder_grad_norm_{task}"] == pytest.approx(np.linalg.norm(g), rel=1e-9)
    assert record["loss_sst"] == pytest.approx(np.mean([model.loss(b, model(b)).item() for b in batches["sst"]]))


def test_one_task_keeps_its_plain_gradient():
    model, batches = tiny_model(), {"sst": step_batches()["sst"]}
    expected = separate_gradients(model, batches)["sst"]
    record = train.step_gradients(model, train.shared_parameters(model), batches, argparse.Namespace(pcgrad=True),
                                  None, None, np.random.default_rng(7), no_check)
    for name, p in model.named_parameters():
        if expected[name] is not None:
            assert_close(name, p.grad, expected[name], rtol=1e-12, atol=1e-15)
    assert "conflict_fraction" not in record and set(record) == {"loss_sst"}


def test_every_batch_loss_is_checked_before_its_backward():
    model, batches = tiny_model(cos=True), step_batches()
    seen = []

    def check_loss(task, value):
        seen.append((task, value, any(p.grad is not None for p in train.shared_parameters(model))))
        if len(seen) == 3:
            raise RuntimeError("stop")
    with pytest.raises(RuntimeError, match="stop"):
        train.step_gradients(model, train.shared_parameters(model), batches, argparse.Namespace(pcgrad=True),
                             None, None, np.random.default_rng(7), check_loss)
    expected = [model.loss(b, model(b)).item() for b in batches["sst"] + batches["para"][:1]]
    assert [(task, value) for task, value, _ in seen] == [("sst", expected[0]), ("sst", expected[1]), ("para", expected[2])]
    assert [had_gradient for _, _, had_gradient in seen] == [False, True, False]  # the encoder is clean for para
