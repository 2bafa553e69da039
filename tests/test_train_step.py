"""train.step_gradients, the gradient wiring of one training step: with several tasks, the
encoder's gradient is the PCGrad combination (or the plain sum) of the per-task gradients,
each computed alone; each head holds its own task's gradient and nothing else; and what is
logged are the raw (unprojected) statistics. On a tiny float64 MultitaskBert, no dropout
(but for --smart_tasks, whose equality with a plain step must hold with dropout's draws too).
Also the update a step's gradients make: train.parameter_groups' rates (--head_lr_factor)."""
import argparse
import sys

import numpy as np
import pytest

from conftest import ROOT, assert_close
from test_smart import HEADS, batch_for, dropout_model, tiny_model

sys.path.insert(0, str(ROOT))
import train  # noqa: E402
from tinybert import backend, pcgrad  # noqa: E402
from tinybert.multitask import TASKS  # noqa: E402
from tinybert.optim import AdamW  # noqa: E402
from tinybert.smart import ProximalPoint, SmartConfig  # noqa: E402

LABELS = {"sst": [np.array([0, 4, 2]), np.array([3, 1, 1])],
          "para": [np.array([1.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0])],
          "sts": [np.array([0.2, 4.0, 2.5]), np.array([5.0, 1.0, 0.0])]}


def no_check(task, value):
    """step_gradients' check_loss when the test needs none."""


def step_args(use_pcgrad, **loss_weights):
    """The flags step_gradients reads: --pcgrad and each --TASK_loss_weight (default 1)."""
    return argparse.Namespace(pcgrad=use_pcgrad, **{f"{task}_loss_weight": loss_weights.get(task, 1.0)
                                                    for task in TASKS})


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

    args = step_args(use_pcgrad)
    record = train.step_gradients(model, batches, args, None, None, np.random.default_rng(7), no_check)

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


def test_a_loss_weight_scales_its_own_task_gradient_only():
    model, batches = tiny_model(cos=True), step_batches()
    weights = {"sst": 0.5, "para": 1.0, "sts": 3.0}
    separate = separate_gradients(model, batches)

    def one_step(args):
        model.zero_grad()
        record = train.step_gradients(model, batches, args, None, None, np.random.default_rng(7), no_check)
        return record, {name: None if p.grad is None else p.grad.copy() for name, p in model.named_parameters()}
    plain_record, _ = one_step(step_args(False))
    record, weighted = one_step(step_args(False, **weights))
    for task, weight in weights.items():
        assert record[f"encoder_grad_norm_{task}"] == pytest.approx(weight * plain_record[f"encoder_grad_norm_{task}"], rel=1e-9)
        assert record[f"loss_{task}"] == plain_record[f"loss_{task}"]  # logged before the weight
    for name, gradient in weighted.items():
        if name.startswith("bert."):   # the encoder: sum_t w_t g_t (None where no task reaches it: the pooler)
            shares = [weight * separate[task][name] for task, weight in weights.items() if separate[task][name] is not None]
            want = sum(shares) if shares else None
        else:                          # a head: its own task's gradient times its weight
            task = next(task for task, head in HEADS.items() if name.startswith(head))
            want = None if separate[task][name] is None else weights[task] * separate[task][name]
        if want is None:
            assert gradient is None or not np.any(gradient), name
        else:
            assert_close(name, gradient, want, rtol=1e-10, atol=1e-13)


def test_one_task_keeps_its_plain_gradient():
    model, batches = tiny_model(), {"sst": step_batches()["sst"]}
    expected = separate_gradients(model, batches)["sst"]
    record = train.step_gradients(model, batches, step_args(True), None, None, np.random.default_rng(7), no_check)
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
        train.step_gradients(model, batches, step_args(True), None, None, np.random.default_rng(7), check_loss)
    expected = [model.loss(b, model(b)).item() for b in batches["sst"] + batches["para"][:1]]
    assert [(task, value) for task, value, _ in seen] == [("sst", expected[0]), ("sst", expected[1]), ("para", expected[2])]
    assert [had_gradient for _, _, had_gradient in seen] == [False, True, False]  # the encoder is clean for para


def test_smart_tasks_add_smart_to_those_tasks_only():
    # --smart_tasks sts: the sts batch gets R_s and D_Breg; sst and para train exactly as in a
    # step without SMART (same dropout draws, same losses, same head and encoder gradients)
    model, batches = dropout_model(cos=True), step_batches()
    config = SmartConfig(variant="paper", sigma=1e-3, epsilon=1e-2, tasks=("sts",))
    proximal = ProximalPoint(model, config.beta)
    for p in model.parameters():   # move theta off the average, so that D_Breg is not 0
        p.data = p.data + 0.05
    args = step_args(False)

    def one_step(smart_config):
        backend.seed(0)
        model.zero_grad()
        record = train.step_gradients(model, batches, args, smart_config,
                                      proximal, np.random.default_rng(7), no_check)
        return record, {name: None if p.grad is None else p.grad.copy() for name, p in model.named_parameters()}
    record, gradients = one_step(config)
    plain_record, plain_gradients = one_step(None)

    assert record["smart_sts"] > 0 and record["bregman_sts"] > 0
    smart_keys = [key for key in record if key.startswith(("smart_", "bregman_", "delta_"))]
    assert smart_keys and all(key.endswith("_sts") for key in smart_keys), smart_keys
    assert record["encoder_grad_norm_sts"] != plain_record["encoder_grad_norm_sts"]  # SMART did act on sts
    for task in ("sst", "para"):
        for key in (f"loss_{task}", f"encoder_grad_norm_{task}"):
            assert record[key] == plain_record[key], key
        for name, gradient in gradients.items():
            if name.startswith(HEADS[task]):
                assert np.array_equal(gradient, plain_gradients[name]), name
    for tasks in (("nli",), ()):
        with pytest.raises(ValueError, match="expected some of sst, para, sts"):
            SmartConfig(tasks=tasks)


def test_parameter_groups_give_the_heads_head_lr_factor_times_the_rate():
    # Adam's first step moves every entry by lr_g * m^ / (sqrt(v^) + eps) = lr_g * g / (|g| + eps),
    # about lr_g whatever g is (bias correction), so one step's size reads off each rate
    lr, factor = 1e-3, 5.0
    model = tiny_model()
    groups = train.parameter_groups(model, weight_decay=0.0, head_lr_factor=factor)
    heads = {name for name, _ in model.named_parameters() if not name.startswith("bert.")}
    assert heads and len(heads) < len(list(model.named_parameters()))
    before = {name: p.data.copy() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = np.full(p.shape, 0.5)
    optimizer = AdamW(groups, lr=lr)
    optimizer.step()
    for name, p in model.named_parameters():
        assert_close(name, before[name] - p.data, np.full(p.shape, lr * (factor if name in heads else 1.0)), rtol=1e-7)


def test_head_lr_factor_1_updates_as_the_two_groups_before_it():
    # the default splits the groups into heads and encoder but changes no bit of the update of
    # the two groups train.py made before the flag (weights decayed, 1-D parameters not)
    def two_groups(model):
        return [{"params": [p for p in model.parameters() if p.ndim != 1], "weight_decay": 0.01},
                {"params": [p for p in model.parameters() if p.ndim == 1], "weight_decay": 0.0}]
    updated = []
    for make_groups in (lambda model: train.parameter_groups(model, 0.01), two_groups):
        model, gradients = tiny_model(), np.random.default_rng(3)
        optimizer = AdamW(make_groups(model), lr=1e-3)
        for _ in range(3):
            for p in model.parameters():
                p.grad = gradients.standard_normal(p.shape)
            optimizer.step()
        updated.append({name: p.data for name, p in model.named_parameters()})
    now, before = updated
    assert all(np.array_equal(now[name], before[name]) for name in before)
