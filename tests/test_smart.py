"""SMART (Jiang et al. 2020): the smoothness-inducing adversarial regulariser, its gradient
by float64 finite differences, the Bregman proximal point term and its moving average, and
the divergences l_s, on a tiny float64 MultitaskBert (tinybert.gradcheck.tiny_bert)."""
import contextlib
import dataclasses

import numpy as np
import pytest

from tinybert import backend, gradcheck
from tinybert.multitask import MultitaskBert, TaskBatch
from tinybert.smart import (ProximalPoint, SmartConfig, adversarial_perturbation, ascent_step, example_norm,
                            perturbation_stats, smoothness_loss)
from tinybert.tensor import Tensor

# token ids of tiny_bert's 11-word vocabulary; 0 is padding (the second row has two)
IDS = np.array([[2, 5, 7, 3, 9], [2, 4, 3, 0, 0], [2, 6, 8, 10, 3]])
OTHER_IDS = np.array([[2, 9, 9, 1, 3], [2, 7, 5, 6, 3], [2, 10, 3, 0, 0]])  # the bi-encoder's second sentences
HEADS = {"sst": "sentiment_head", "para": "paraphrase_head", "sts": "similarity_head"}
# (task, cos): the three divergences, and the bi-encoder's two segments
CASES = [("sst", False), ("para", False), ("sts", False), ("sts", True)]


def segment(ids):
    return {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int64), "token_type_ids": np.zeros_like(ids)}


def batch_for(task, cos):
    segments = [segment(IDS), segment(OTHER_IDS)] if task == "sts" and cos else [segment(IDS)]
    return TaskBatch(task, ["a", "b", "c"], segments)


def tiny_model(cos=False):
    """float64, no dropout anywhere, every parameter (heads included) at unit scale so that
    outputs, divergences and gradients are far from rounding noise."""
    model = MultitaskBert(gradcheck.tiny_bert(), hidden_dropout_prob=0.0, cos=cos)
    rng = np.random.default_rng(2)
    for name, p in model.named_parameters():
        if not name.startswith("bert."):
            p.data = p.data + rng.standard_normal(p.shape) * 0.5
    return model


def used_parameters(model, task):
    """The parameters the task's output depends on (not the pooler, not the other heads)."""
    return [p for name, p in model.named_parameters()
            if not name.startswith(("bert.pooler",) + tuple(HEADS.values())) or name.startswith(HEADS[task])]


def smoothness(model, batch, config, seed=0):
    """The SMART term from a fresh forward, with the ascent's start noise drawn from ``seed``."""
    backend.seed(seed)
    embedded = model.embed(batch)
    return smoothness_loss(model, batch, embedded, model.head_output(batch, embedded), config)


def numpy_symmetric_kl(logits_p, logits_q):
    def log_softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    log_p, log_q = log_softmax(logits_p), log_softmax(logits_q)
    return float(np.mean(np.sum((np.exp(log_p) - np.exp(log_q)) * (log_p - log_q), axis=-1)))


# ---------------------------------------------------------------- smoothness term
@pytest.mark.parametrize("task,cos", CASES)
def test_smoothness_is_zero_for_a_model_that_ignores_its_input(task, cos):
    # With the last LayerNorm's gain at 0 every token's final hidden state is that norm's
    # bias, whatever the embeddings: the output ignores the input, so no perturbation can
    # move it. Same model with the gain restored: clearly positive, so the zero is not vacuous.
    model, batch = tiny_model(cos), batch_for(task, cos)
    config = SmartConfig(variant="paper", sigma=1e-3, epsilon=0.1, eta=1.0)
    assert smoothness(model, batch, config).item() > 1e-6
    final_norm = model.bert.layers[-1].ffn_norm
    final_norm.weight.data = np.zeros_like(final_norm.weight.data)
    final_norm.bias.data = np.linspace(-1.0, 1.0, final_norm.bias.data.size)
    assert smoothness(model, batch, config).item() == 0.0


@pytest.mark.parametrize("task,cos", CASES)
def test_smoothness_grows_with_epsilon(task, cos):
    # the ascent (eta >> epsilon) ends at a corner of the box, so l_s grows like epsilon^2
    # (l_s and its gradient vanish at delta = 0: second order): 100x epsilon, ~10^4x l_s
    model, batch = tiny_model(cos), batch_for(task, cos)
    values = [smoothness(model, batch, SmartConfig(variant="paper", sigma=1e-7, epsilon=epsilon, eta=1.0)).item()
              for epsilon in (1e-5, 1e-3, 1e-2)]
    assert 0.0 < values[0] < values[1] < values[2]
    assert 0.25e4 < values[1] / values[0] < 4e4 and 0.25e2 < values[2] / values[1] < 4e2, values


@pytest.mark.parametrize("task,cos", [("sst", False), ("para", False), ("sts", True)])
def test_smoothness_gradient_matches_finite_differences(task, cos, monkeypatch):
    # relative_error() evaluates the function under no_grad, but the ascent inside
    # smoothness_loss needs a graph for d l_s / d delta: let those evaluations build one.
    monkeypatch.setattr(gradcheck, "no_grad", contextlib.nullcontext)
    model, batch = tiny_model(cos), batch_for(task, cos)
    # eta >> epsilon: every perturbation entry that the output depends on ends at +-epsilon
    # (asserted below), so delta is piecewise constant in the parameters and the analytic
    # gradient, which treats delta as a constant, is the derivative finite differences see.
    # Tolerance: gradcheck's own 1e-6. l_s is a difference of nearly equal outputs, so its
    # rounding noise does not shrink with it: at epsilon = 1e-3 (l_s ~ 1e-7) the measured
    # error was up to 9e-7, at epsilon = 1e-2 (l_s ~ 1e-5) it is at most 1.4e-7.
    config = SmartConfig(variant="paper", sigma=1e-6, epsilon=1e-2, eta=1e4)
    backend.seed(0)
    embedded = model.embed(batch)
    deltas = adversarial_perturbation(model, batch, embedded, model.head_output(batch, embedded), config)
    for delta, s in zip(deltas, batch.segments):
        assert np.all(np.abs(delta)[s["attention_mask"] == 1] == config.epsilon)

    error = gradcheck.relative_error(lambda *params: smoothness(model, batch, config), used_parameters(model, task))
    assert error < gradcheck.TOLERANCE


@pytest.mark.parametrize("task,cos", CASES)
def test_perturbation_stays_in_the_infinity_norm_ball(task, cos):
    model, batch = tiny_model(cos), batch_for(task, cos)
    # start noise far outside the ball, a few steps of varied size: the projection decides
    for sigma, eta, steps in ((1.0, 1e-4, 1), (1e-6, 10.0, 3), (1e-3, 1e-3, 2)):
        config = SmartConfig(variant="paper", sigma=sigma, epsilon=1e-3, eta=eta, steps=steps)
        backend.seed(0)
        embedded = model.embed(batch)
        deltas = adversarial_perturbation(model, batch, embedded, model.head_output(batch, embedded), config)
        assert len(deltas) == len(batch.segments)
        for delta, x in zip(deltas, embedded):
            assert delta.shape == x.shape and delta.dtype == x.data.dtype
            assert np.abs(delta).max() <= config.epsilon


# ---------------------------------------------------------------- one ascent step, by hand
# g for two examples (B = 2) of two tokens (T = 2) of two features (C = 2). Example 0's
# largest |g| is 2, example 1's is 40; token (1, 0)'s largest is 10, token (0, 1)'s is 0.5.
GRAD = np.array([[[1.0, -2.0], [0.5, 0.0]],
                 [[10.0, 0.0], [0.0, -40.0]]])


def test_paper_step_divides_each_example_by_its_own_largest_gradient_entry():
    # g~ = g / ||g_b||_inf per example: example 0 by 2, example 1 by 40 (per batch: both by 40;
    # per token: (1, 0) by 10 and (0, 1) by 0.5). The step goes up the gradient: + eta g~.
    config = SmartConfig(variant="paper", epsilon=100.0, eta=1.0)
    expected = np.array([[[0.5, -1.0], [0.25, 0.0]],
                         [[0.25, 0.0], [0.0, -1.0]]])
    np.testing.assert_allclose(ascent_step(np.zeros_like(GRAD), GRAD, config), expected, rtol=1e-10)


def test_paper_step_projects_onto_the_ball_after_the_step():
    # from delta = 0.2 (inside the ball of radius 0.3): clip(0.2 + g~, -0.3, 0.3). Clipping
    # before the step would leave 0.2 + 0.5 = 0.7 in place of 0.3; no clip, the same.
    config = SmartConfig(variant="paper", epsilon=0.3, eta=1.0)
    expected = np.array([[[0.3, -0.3], [0.3, 0.2]],
                         [[0.3, 0.2], [0.2, -0.3]]])
    np.testing.assert_allclose(ascent_step(np.full_like(GRAD, 0.2), GRAD, config), expected, rtol=1e-10)
    # from delta = -0.5, outside the ball (start noise larger than eps): clip(-0.5 + g~). A clip
    # before the step as well would start from -0.3 and end at -0.05 where g~ = 0.25.
    expected = np.array([[[0.0, -0.3], [-0.25, -0.3]],
                         [[-0.25, -0.3], [-0.3, -0.3]]])
    np.testing.assert_allclose(ascent_step(np.full_like(GRAD, -0.5), GRAD, config), expected, rtol=1e-10, atol=1e-12)


def test_paper_step_is_exact_for_a_tiny_gradient_and_zero_for_a_zero_one():
    # At the first ascent step (start noise 1e-5) an example's largest |g| is 1e-10 to 1e-8
    # in practice. The step is eta * g / ||g_b||_inf exactly: the largest entry of each example
    # moves by exactly eta. (A guard n_b + 1e-12 would shrink example 0's step by 1e-12 / 2.5e-10
    # = 0.4%, example 1's by 3e-5.) An all-zero gradient gets a zero step, not 0 / 0.
    grad = np.stack([GRAD[0] * 1.25e-10, GRAD[1] * 7.5e-10, np.zeros_like(GRAD[0])])  # largest |g|: 2.5e-10, 3e-8, 0
    config = SmartConfig(variant="paper", epsilon=100.0, eta=1.0)
    with np.errstate(all="raise"):                      # no 0 / 0 on the way either
        step = ascent_step(np.zeros_like(grad), grad, config)
    expected = np.stack([GRAD[0] / 2.0, GRAD[1] / 40.0, np.zeros_like(GRAD[0])])
    np.testing.assert_allclose(step, expected, rtol=1e-12, atol=0.0)
    assert np.abs(step).max(axis=(1, 2)).tolist() == [1.0, 1.0, 0.0]
    assert np.all(np.isfinite(step))


def test_paper_step_with_a_shared_norm_divides_by_it():
    # the norm given (the pair's, over both sentences) replaces the segment's own
    config = SmartConfig(variant="paper", epsilon=100.0, eta=1.0)
    norm = np.array([4.0, 40.0, 0.0])[:, None, None]
    grad = np.concatenate([GRAD, np.zeros_like(GRAD[:1])])
    expected = np.concatenate([GRAD / np.array([4.0, 40.0])[:, None, None], np.zeros_like(GRAD[:1])])
    np.testing.assert_allclose(ascent_step(np.zeros_like(grad), grad, config, norm), expected, rtol=1e-12, atol=0.0)
    assert example_norm([GRAD, 2 * GRAD[:, :1]]).ravel().tolist() == [4.0, 40.0]  # the max over both segments


def test_bi_encoder_pair_shares_one_norm_per_example():
    # Algorithm 1 normalises example i's whole input once. For the bi-encoder the input is the
    # pair, so both sentences' steps are divided by the largest |g| over the two of them: per
    # example, the sentence with the larger gradient moves by eta at its largest entry, the other
    # by less (each sentence divided by its own norm would move both by eta).
    model, batch = tiny_model(cos=True), batch_for("sts", cos=True)
    config = SmartConfig(variant="paper", sigma=1e-2, epsilon=100.0, eta=1.0)
    embedded, clean, start, stepped = start_and_one_step(model, batch, config)
    moves = np.stack([np.abs(new - old).max(axis=(1, 2)) for new, old in zip(stepped, start)])   # (2 sentences, B)
    assert np.all(moves.min(axis=0) < 0.99 * config.eta), moves
    np.testing.assert_allclose(moves.max(axis=0), config.eta, rtol=1e-12)
    # and the step is eta * g / (the max over both sentences), with g computed here independently
    deltas = [Tensor(d, requires_grad=True) for d in start]
    output = model.head_output(batch, [Tensor(x.data) + d for x, d in zip(embedded, deltas)])
    model.divergence("sts", output, Tensor(clean.data)).backward()
    pair_norm = np.maximum(*[np.abs(d.grad).max(axis=(1, 2)) for d in deltas])[:, None, None]
    for new, d in zip(stepped, deltas):
        np.testing.assert_allclose(new, d.data + config.eta * d.grad / pair_norm, rtol=1e-12, atol=1e-15)


def test_mtdnn_step_divides_each_token_by_its_largest_entry_without_a_ball():
    # d = delta + eta g, then d / (max_c |d_btc| + 1e-6) per token; epsilon plays no part
    config = SmartConfig(variant="mtdnn", epsilon=1e-9, eta=0.5)
    delta = np.full_like(GRAD, 0.5)
    d = delta + 0.5 * GRAD             # [[[1, -0.5], [0.75, 0.5]], [[5.5, 0.5], [0.5, -19.5]]]
    largest = np.array([[1.0, 0.75], [5.5, 19.5]])[:, :, None] + 1e-6
    np.testing.assert_allclose(ascent_step(delta, GRAD, config), d / largest, rtol=1e-12)
    assert np.allclose(np.abs(ascent_step(delta, GRAD, config)).max(axis=2), 1.0, atol=1e-5)


def test_perturbation_stats_count_real_tokens_at_the_bound():
    # example 0 has 3 real tokens, example 1 has 2 (C = 2): 10 real entries; 3 of them at 0.5
    batch = TaskBatch("sst", ["a", "b"], [segment(np.array([[2, 5, 3], [2, 3, 0]]))])
    delta = np.array([[[0.5, 0.1], [-0.5, 0.0], [0.2, 0.3]],
                      [[0.0, 0.5], [0.1, 0.1], [0.5, 0.5]]])     # the last token of example 1 is padding
    stats = perturbation_stats([delta], batch, epsilon=0.5)
    assert stats == {"delta_linf": 0.5, "delta_at_eps": 3 / 10}


def start_and_one_step(model, batch, config):
    """(embedded, clean output, the start noise delta_0, delta after the ascent steps), both
    perturbations from the same draws."""
    embedded = model.embed(batch)
    clean = model.head_output(batch, embedded)
    backend.seed(0)
    start = adversarial_perturbation(model, batch, embedded, clean, dataclasses.replace(config, steps=0))
    backend.seed(0)
    return embedded, clean, start, adversarial_perturbation(model, batch, embedded, clean, config)


@pytest.mark.parametrize("variant", ["paper", "mtdnn"])
@pytest.mark.parametrize("task,cos", CASES)
def test_ascent_step_uses_the_gradient_of_l_s_at_the_start_noise(task, cos, variant):
    # adversarial_perturbation's one step == ascent_step(delta_0, d l_s / d delta at delta_0),
    # with delta_0 (steps=0: the start noise) and the gradient computed here independently
    model, batch = tiny_model(cos), batch_for(task, cos)
    config = SmartConfig(variant=variant, sigma=1e-2, epsilon=1.0, eta=1e-2)
    embedded, clean, start, stepped = start_and_one_step(model, batch, config)
    deltas = [Tensor(d, requires_grad=True) for d in start]
    output = model.head_output(batch, [Tensor(x.data) + d for x, d in zip(embedded, deltas)])
    model.divergence(task, output, Tensor(clean.data)).backward()
    norm = example_norm([d.grad for d in deltas])   # one per example, over the bi-encoder's two sentences
    for new, d in zip(stepped, deltas):
        np.testing.assert_allclose(new, ascent_step(d.data, d.grad, config, norm), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("task,cos", CASES)
def test_a_small_ascent_step_increases_l_s(task, cos):
    # from noise of size 1e-2, a step of 1e-3 along +g~ raises l_s (to first order by
    # eta * g . g~ > 0); a step along -g~ would lower it
    model, batch = tiny_model(cos), batch_for(task, cos)
    config = SmartConfig(variant="paper", sigma=1e-2, epsilon=1.0, eta=1e-3)
    embedded = model.embed(batch)
    clean = model.head_output(batch, embedded)

    def l_s(deltas):
        output = model.head_output(batch, [Tensor(x.data + d) for x, d in zip(embedded, deltas)])
        return model.divergence(task, clean, output).item()
    backend.seed(0)
    start = l_s(adversarial_perturbation(model, batch, embedded, clean, dataclasses.replace(config, steps=0)))
    backend.seed(0)
    assert l_s(adversarial_perturbation(model, batch, embedded, clean, config)) > 1.01 * start


@pytest.mark.parametrize("task,cos", CASES)
def test_ascent_beats_a_random_corner(task, cos):
    # the normalised ascent finds a worse perturbation than a random one of the same size
    model, batch = tiny_model(cos), batch_for(task, cos)
    config = SmartConfig(variant="paper", sigma=1e-6, epsilon=1e-2, eta=1.0)
    backend.seed(0)
    embedded = model.embed(batch)
    clean = model.head_output(batch, embedded)
    adversarial = adversarial_perturbation(model, batch, embedded, clean, config)
    rng = np.random.default_rng(5)
    random = [config.epsilon * np.sign(rng.standard_normal(x.shape)) for x in embedded]

    def divergence(deltas):
        output = model.head_output(batch, [Tensor(x.data + d) for x, d in zip(embedded, deltas)])
        return model.divergence(task, clean, output).item()
    assert divergence(adversarial) > 2 * divergence(random)


# ---------------------------------------------------------------- Bregman proximal point
@pytest.mark.parametrize("task,cos", CASES)
def test_bregman_is_zero_at_the_start_and_positive_after_a_move(task, cos):
    model, batch = tiny_model(cos), batch_for(task, cos)
    model.train()
    proximal = ProximalPoint(model, beta=0.9)  # theta~ = theta
    # zero but for rounding: the averaged model runs without a graph, its batch split by rows
    assert abs(proximal.bregman_loss(model, batch, model(batch)).item()) < 1e-24

    rng = np.random.default_rng(3)
    for p in model.parameters():
        p.data = p.data + 0.05 * rng.standard_normal(p.shape)
    moved = {name: p.data.copy() for name, p in model.named_parameters()}
    loss = proximal.bregman_loss(model, batch, model(batch))
    assert loss.item() > 1e-6
    # the averaged weights were swapped out again, and the train mode kept
    assert model.training and all(np.array_equal(p.data, moved[name]) for name, p in model.named_parameters())
    loss.backward()  # the averaged model's output is a constant target: gradients reach theta only
    assert all(p.grad is not None for p in used_parameters(model, task))


def dropout_model(cos):
    """tiny_model with dropout everywhere: the embedding layer, attention, each layer, the head."""
    model = tiny_model(cos)
    model.dropout.p = model.bert.embeddings.dropout.p = 0.3
    for layer in model.bert.layers:
        layer.dropout.p = layer.attention.attention_dropout.p = 0.3
    return model.train()


@pytest.mark.parametrize("task,cos", CASES)
def test_bregman_is_exactly_zero_at_the_start_with_dropout_on(task, cos):
    # theta~ = theta and the averaged model replays the student's masks: the same forward,
    # so exactly 0. With masks of its own the term is far from 0 (what it measured before).
    model, batch = dropout_model(cos), batch_for(task, cos)
    proximal = ProximalPoint(model, beta=0.9)
    backend.seed(0)
    snapshot = backend.snapshot_rng()
    assert proximal.bregman_loss(model, batch, model(batch), snapshot).item() == 0.0
    backend.seed(0)
    assert proximal.bregman_loss(model, batch, model(batch)).item() > 1e-4


@pytest.mark.parametrize("task,cos", CASES)
def test_train_step_logs_a_zero_bregman_term_at_the_start_with_dropout_on(task, cos):
    import train
    model, batch = dropout_model(cos), batch_for(task, cos)
    batch.labels = np.array([0, 3, 4]) if task == "sst" else np.array([0.0, 1.0, 0.6])
    config = SmartConfig(variant="paper", sigma=1e-3, epsilon=1e-2)
    backend.seed(0)
    _, logged = train.task_step(model, batch, config, ProximalPoint(model, config.beta))
    assert logged[f"bregman_{task}"] == 0.0 and logged[f"smart_{task}"] > 0.0


@pytest.mark.parametrize("weights,computed", [((0.0, 1.0), "bregman"), ((1.0, 0.0), "smart")])
def test_a_term_with_weight_zero_is_not_computed(weights, computed, monkeypatch):
    # The ablation's "Bregman only" (lambda_s = 0) and "R_s only" (mu = 0) rows: the dropped
    # term costs nothing, and the loss is the task loss plus the kept term alone.
    import train
    task, cos = "sst", False
    lambda_s, mu = weights
    config = SmartConfig(variant="paper", sigma=1e-3, epsilon=1e-2, lambda_s=lambda_s, mu=mu)
    model, batch = dropout_model(cos), batch_for(task, cos)
    batch.labels = np.array([0, 3, 4])
    proximal = ProximalPoint(model, config.beta)
    for p in model.parameters():   # move theta off the average, so that D_Breg is not 0
        p.data = p.data + 0.05
    backend.seed(0)
    both, logged_both = train.task_step(model, batch, dataclasses.replace(config, lambda_s=1.0, mu=1.0), proximal)
    kept = {"smart": logged_both[f"smart_{task}"], "bregman": logged_both[f"bregman_{task}"]}[computed]
    assert kept > 0.0
    dropped = {"smart": "bregman", "bregman": "smart"}[computed]
    tripwire = {"smart": (ProximalPoint, "bregman_loss"), "bregman": (train, "smoothness_loss")}[computed]

    def must_not_run(*args, **kwargs):
        raise AssertionError(f"the {dropped} term was computed with weight 0")
    monkeypatch.setattr(*tripwire, must_not_run)
    backend.seed(0)
    total, logged = train.task_step(model, batch, config, proximal)
    assert f"{dropped}_{task}" not in logged
    assert logged[f"{computed}_{task}"] == pytest.approx(kept, rel=1e-12)
    assert total.item() == pytest.approx(logged[f"loss_{task}"] + kept, rel=1e-12)


def test_beta_is_0_99_for_the_first_tenth_of_the_updates_then_0_999():
    config = SmartConfig()
    assert [config.beta_at(update, 100) for update in (0, 9, 10, 99)] == [0.99, 0.99, 0.999, 0.999]
    model = tiny_model()
    proximal = ProximalPoint(model, beta=0.5)
    before = {name: array.copy() for name, array in proximal.average.items()}
    for p in model.parameters():
        p.data = p.data + 1.0
    proximal.update(model, beta=0.99)   # the scheduled beta, not the constructor's
    for name, p in model.named_parameters():
        np.testing.assert_allclose(proximal.average[name], 0.99 * before[name] + 0.01 * p.data, rtol=1e-12, atol=1e-15)


def test_bregman_target_is_the_averaged_model():
    # with theta~ moved back to the original weights, the term equals l_s between the moved
    # model's output and the original model's output, computed independently
    model, batch = tiny_model(), batch_for("sst", False)
    original = model(batch).data
    proximal = ProximalPoint(model, beta=0.9)
    for p in model.parameters():
        p.data = p.data * 1.1
    output = model(batch)
    assert proximal.bregman_loss(model, batch, output).item() == pytest.approx(
        numpy_symmetric_kl(output.data, original), rel=1e-12)


def test_proximal_update_is_an_exponential_moving_average():
    model, beta = tiny_model(), 0.9
    proximal = ProximalPoint(model, beta)
    rng = np.random.default_rng(4)
    average = {name: rng.standard_normal(p.shape) for name, p in model.named_parameters()}
    for name in average:
        proximal.average[name][...] = average[name]
    for p in model.parameters():
        p.data = rng.standard_normal(p.shape)
    proximal.update(model)
    for name, p in model.named_parameters():
        expected = beta * average[name] + (1 - beta) * p.data  # theta~ <- beta theta~ + (1 - beta) theta
        np.testing.assert_allclose(proximal.average[name], expected, rtol=1e-14, atol=1e-15, err_msg=name)
        assert not np.shares_memory(proximal.average[name], p.data)  # a copy, not the live weights


def test_proximal_average_starts_as_a_copy():
    model = tiny_model()
    proximal = ProximalPoint(model, beta=0.5)
    before = {name: p.data.copy() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.data += 1.0  # in place, as AdamW updates
    for name, array in proximal.average.items():
        assert np.array_equal(array, before[name]), name


# ---------------------------------------------------------------- divergences l_s
def test_divergence_sst_is_the_symmetric_kl():
    rng = np.random.default_rng(6)
    p, q = rng.standard_normal((4, 5)) * 2, rng.standard_normal((4, 5)) * 2
    ours = MultitaskBert.divergence("sst", Tensor(p), Tensor(q)).item()
    assert ours == pytest.approx(numpy_symmetric_kl(p, q), rel=1e-12)
    assert ours == pytest.approx(MultitaskBert.divergence("sst", Tensor(q), Tensor(p)).item(), rel=1e-12)
    assert MultitaskBert.divergence("sst", Tensor(p), Tensor(p + 3.0)).item() == pytest.approx(0.0, abs=1e-12)


def test_divergence_para_is_the_two_class_symmetric_kl():
    # a logit z is P(duplicate) = sigmoid(z): KL between two Bernoullis, both ways, by hand
    z1, z2 = np.array([-2.0, 0.0, 0.5, 3.0]), np.array([1.0, 0.0, -0.5, 2.5])
    p, q = 1 / (1 + np.exp(-z1)), 1 / (1 + np.exp(-z2))
    expected = np.mean((p - q) * (np.log(p) - np.log(q)) + ((1 - p) - (1 - q)) * (np.log(1 - p) - np.log(1 - q)))
    assert MultitaskBert.divergence("para", Tensor(z1), Tensor(z2)).item() == pytest.approx(expected, rel=1e-12)


def test_divergence_sts_is_the_squared_error():
    a, b = np.array([0.5, 2.0, 4.5]), np.array([1.0, 2.0, 3.0])
    assert MultitaskBert.divergence("sts", Tensor(a), Tensor(b)).item() == pytest.approx((0.25 + 0 + 2.25) / 3)


def test_perturbed_forwards_replay_the_clean_dropout_masks():
    # With dropout on, a perturbation of size 0 must give l_s = 0 when the perturbed
    # forward replays the clean forward's masks; with fresh masks it would not.
    model = MultitaskBert(gradcheck.tiny_bert(), hidden_dropout_prob=0.5, cos=False)
    for layer in model.bert.layers:
        layer.dropout.p = 0.3
    model.train()
    batch = batch_for("sst", False)
    config = SmartConfig(variant="paper", sigma=0.0, epsilon=0.0)
    backend.seed(0)
    embedded = model.embed(batch)
    snapshot = backend.snapshot_rng()
    clean = model.head_output(batch, embedded)
    assert smoothness_loss(model, batch, embedded, clean, config, snapshot).item() < 1e-20
    assert smoothness_loss(model, batch, embedded, clean, config).item() > 1e-3   # fresh masks
