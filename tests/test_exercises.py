"""The exercises of the course (docs/exercises/, checked by tools/exercises.py): every checker
passes a right answer and fails plausible wrong ones with the hint that names the mistake; the
starter files as shipped are "not written yet"; errors in the learner's code come back as their
own traceback; and the chapters, the starter files and the checker's table name the same
exercises.

The right answers are tests/fixtures/exercise_answers/NN_name.py, written as plain formulas.
Each wrong answer is a right one with a line or two changed, the way a learner might get it
wrong (the MISTAKES table)."""
import contextlib
import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from tinybert import backend
from tools import exercises

ANSWERS = ROOT / "tests" / "fixtures" / "exercise_answers"
EXERCISES = sorted(exercises.EXERCISES)


def answer(number):
    """The right answer's file for exercise ``number``."""
    return ANSWERS / f"{number}_{exercises.EXERCISES[number].name}.py"


def checked(number, path):
    """(passed?, what the checker printed) for the learner's file ``path``."""
    printed = io.StringIO()
    passed = exercises.check(number, str(path), out=printed)
    return passed, printed.getvalue()


def changed(number, replacements, tmp_path):
    """The right answer with each (old, new) text replaced (old None: the whole file is new),
    written to a file of its own."""
    source = answer(number).read_text(encoding="utf-8")
    for old, new in replacements:
        if old is None:
            source = new
            continue
        assert old in source, f"{answer(number).name} no longer contains {old!r}"
        source = source.replace(old, new)
    path = tmp_path / f"my_{exercises.EXERCISES[number].name}.py"
    path.write_text(source, encoding="utf-8")
    return path


# Exercise 12's wrong walks that are not a line or two away from the right one.
PER_PATH = """
def tensor_backward(root, seed):              # the chain rule along every path, no order at all
    if root.vjp is None:
        root.grad = seed if root.grad is None else root.grad + seed
        return
    for parent, parent_grad in zip(root.parents, root.vjp(seed)):
        tensor_backward(parent, parent_grad)
"""
BREADTH_FIRST = """
def tensor_backward(root, seed):              # nodes visited as they are reached from the root
    grads, queue, queued = {id(root): seed}, [root], {id(root)}
    while queue:
        node = queue.pop(0)
        grad = grads.pop(id(node))
        if node.vjp is None:
            node.grad = grad if node.grad is None else node.grad + grad
            continue
        for parent, parent_grad in zip(node.parents, node.vjp(grad)):
            grads[id(parent)] = grads[id(parent)] + parent_grad if id(parent) in grads else parent_grad
            if id(parent) not in queued:
                queued.add(id(parent))
                queue.append(parent)
"""
RECURSIVE_ORDER = """
def tensor_backward(root, seed):              # a right walk, but a recursive topological sort
    order, seen = [], set()

    def visit(node):
        if id(node) not in seen:
            seen.add(id(node))
            for parent in node.parents:
                visit(parent)
            order.append(node)
    visit(root)
    grads = {id(root): seed}
    for node in reversed(order):
        grad = grads.pop(id(node), None)
        if grad is None:
            continue
        if node.vjp is None:
            node.grad = grad if node.grad is None else node.grad + grad
            continue
        for parent, parent_grad in zip(node.parents, node.vjp(grad)):
            grads[id(parent)] = grads[id(parent)] + parent_grad if id(parent) in grads else parent_grad
"""
TANH_GELU = """
import numpy as np


def gelu_backward(grad, x):                   # GPT-2's approximation, differentiated
    k = np.sqrt(2 / np.pi)
    t = np.tanh(k * (x + 0.044715 * x ** 3))
    return grad * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x))
"""

# (exercise, the change that makes the right answer wrong, words the checker's verdict must hold)
MISTAKES = [
    ("01", [("sum_to_shape(grad * b, a.shape), sum_to_shape(grad * a, b.shape)",
             "sum_to_shape(grad * a, a.shape), sum_to_shape(grad * b, b.shape)")], "the OTHER input"),
    ("01", [("return sum_to_shape(grad * b, a.shape), sum_to_shape(grad * a, b.shape)",
             "return grad * b, grad * a")], "grad_b (a (2, 3, 4), b (3, 1)) has shape (2, 3, 4), expected (3, 1)"),
    ("01", [(".sum(axis", ".mean(axis")], "averaged over the copies of b"),
    ("02", [(" - x_hat * (d * x_hat).mean(axis=-1, keepdims=True))", ")")], "left out the last term"),
    ("02", [("d = grad * weight", "d = grad")], "the weight is missing"),
    ("02", [("(grad * x_hat).reshape(-1, C).sum(axis=0)", "(grad * x_hat).reshape(-1, C).mean(axis=0)")],
     "averaged over the rows"),
    ("02", [("(grad * x_hat).reshape(-1, C).sum(axis=0)", "grad * x_hat")], "weight is (C,)"),
    ("03", [("(plus - minus) / (2 * eps)", "(plus - loss(x)) / eps")], "one-sided difference"),
    ("03", [("(plus - minus) / (2 * eps)", "(plus - minus) / eps")], "2 eps apart"),
    ("03", [("        x[i] = original\n", "")], "left x changed"),
    ("04", [(" / np.sqrt(hs)", "")], "not divided by sqrt(hs)"),
    ("04", [("scores + (1 - attention_mask[:, None, None, :]) * -1e9", "scores")], "the padding got attention"),
    ("04", [("scores + (1 - attention_mask[:, None, None, :]) * -1e9", "scores * attention_mask[:, None, None, :]")],
     "exp(0) = 1"),
    ("04", [("axis=-1", "axis=-2")], "the wrong axis"),
    ("05", [(".T", "")], "'layers.0.attention.query.weight' is wrong (shape (4, 4), tinybert's (4, 4))\n  hint: it is "
                         "a Linear weight, so transpose it"),
    ("05", [('hf_tensors["embeddings.word_embeddings.weight"]', 'hf_tensors["embeddings.word_embeddings.weight"].T')],
     "only Linear weights are transposed"),
    ("05", [('"attention.output.dense": "attention.out"', '"attention.output.dense": "ffn_out"'),
            ('"output.dense": "ffn_out"', '"output.dense": "attention.out"')],
     "it holds Hugging Face's 'encoder.layer.0.output.dense.weight' transposed"),
    ("05", [('            "pooler.weight": hf_tensors["pooler.dense.weight"].T,\n', "")], "missing 1, e.g. 'pooler.weight'"),
    ("06", [("T = max(len(row) for row in rows)", "T = max_length")], "pad to the longest row of this batch"),
    ("06", [("[0] * (len(a) + 2) + [1] * (len(b) + 1)", "[0] * (len(a) + 1) + [1] * (len(b) + 2)")],
     "token_type_ids is wrong in row 0"),
    ("06", [("if len(a) > len(b):", "if a:")], "from the end of whichever sentence is longer"),
    ("07", [("np.mean(np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x))))",
             "np.mean(-(t * np.log(1 / (1 + np.exp(-x))) + (1 - t) * np.log(1 - 1 / (1 + np.exp(-x)))))")],
     "use the stable form"),
    ("07", [("loss = np.mean(", "loss = np.sum(")], "summed over the N examples"),
    ("07", [("(sigmoid - t) / len(x)", "(sigmoid - t)")], "left out the 1/N"),
    ("07", [("(sigmoid - t) / len(x)", "(t - sigmoid) / len(x)")], "the sign is flipped"),
    ("08", [("m_hat = m / (1 - beta1 ** t)", "m_hat = m"), ("v_hat = v / (1 - beta2 ** t)", "v_hat = v")],
     "forgot the bias correction"),
    ("08", [("p = p * (1 - lr * weight_decay)", "g = g + weight_decay * p")], "AdamW decouples it"),
    ("08", [("    p = p * (1 - lr * weight_decay)\n", ""),
            ("    return p, m, v", "    p = p * (1 - lr * weight_decay)\n    return p, m, v")], "decayed p after"),
    ("08", [("return p, m, v", "return p, m_hat, v_hat")], "returned the bias-corrected m_hat as m"),
    ("09", [("if dot < 0:", "if True:")], "projected when the gradients did not conflict"),
    ("09", [("if dot < 0:", "if dot > 0:")], "kept the conflicts"),
    ("09", [("dot / (other @ other)", "dot / np.sqrt(other @ other)")], "divide by the squared length"),
    ("10", [("delta + config.eta", "delta - config.eta")], "you descended instead of ascending"),
    ("10", [("axis=(1, 2)", "axis=2")], "you normalised per token"),
    ("10", [("np.abs(grad).max(axis=(1, 2), keepdims=True)", "np.abs(grad).max()")],
     "largest entry of the whole batch"),
    ("10", [("np.abs(grad).max(axis=(1, 2), keepdims=True)", "np.sqrt((grad ** 2).sum(axis=(1, 2), keepdims=True))")],
     "you divided by the L2 norm"),
    ("10", [("return np.clip(moved, -config.epsilon, config.epsilon)", "return moved")],
     "project after the step"),
    ("10", [("moved = delta + config.eta", "moved = np.clip(delta, -config.epsilon, config.epsilon) + config.eta"),
            ("return np.clip(moved, -config.epsilon, config.epsilon)", "return moved")], "project after the step"),
    ("10", [("grad / np.where(per_example > 0, per_example, 1.0)", "grad")], "you did not normalise the gradient"),
    ("10", [("grad / np.where(per_example > 0, per_example, 1.0)", "grad / per_example")], "0 / 0 is NaN"),
    ("11", [("labels[:, None] / 5", "labels[:, None]")], "use label / 5"),
    ("11", [("grad_u = dcos * (v / (norm_u * norm_v) - cos * u / norm_u ** 2)", "grad_u = dcos * v / (norm_u * norm_v)")],
     "no component along u itself"),
    ("11", [("dcos = 2 * error", "dcos = error")], "0.5 times the right answer everywhere"),
    ("12", [("grads[id(parent)] = grads[id(parent)] + parent_grad", "grads[id(parent)] = parent_grad")],
     "passed on only the last contribution it received"),
    ("12", [("for node in reversed(order):", "for node in order:")], "was every node visited after the nodes that "
                                                                    "consume it?"),
    ("12", [(None, PER_PATH)], "had its vjp called 3 times"),
    ("12", [(None, BREADTH_FIRST)], "visited in the order nodes are first reached from the root"),
    ("12", [("node.grad = grad if node.grad is None else node.grad + grad", "node.grad = grad")],
     "replaced the gradient the leaf already held"),
    ("12", [(None, RECURSIVE_ORDER)], "exceeded Python's recursion limit"),
    ("13", [("return loss, grad / N", "return loss, grad")], "left out the 1/N of the mean"),
    ("13", [("    grad[np.arange(N), targets] -= 1.0\n", "")], "ignores which class is the target"),
    ("13", [("shifted = logits - logits.max(axis=-1, keepdims=True)", "shifted = logits")], "exp(1e4) overflows"),
    ("13", [(".sum(axis=-1, keepdims=True)", ".sum(axis=0, keepdims=True)")], "sum ran over the wrong axis"),
    ("13", [("loss = -log_probs[np.arange(N), targets].mean()", "loss = -log_probs[np.arange(N), targets].sum()")],
     "you summed over the N rows"),
    ("14", [("grad * (cdf + x * pdf)", "grad * cdf")], "treated Phi(x) as a constant"),
    ("14", [("pdf = np.exp(-x * x / 2) / np.sqrt(2 * np.pi)", "pdf = np.exp(-x * x / 2)")], "normalising constant"),
    ("14", [("erf(x / np.sqrt(2))", "erf(x)")], "the sqrt 2 is missing"),
    ("14", [(None, TANH_GELU)], "the tanh approximation"),
    ("14", [("return grad * (cdf + x * pdf)", "return cdf + x * pdf")], "you left out g"),
    ("15", [("        for p in shared:\n            p.grad = None\n", "")], "held the earlier tasks' too"),
    ("15", [("        task_grads.append([p.grad for p in shared])\n        for p in shared:\n            p.grad = None\n", ""),
            ("    pcgrad.apply_pcgrad(shared, task_grads, rng)\n", "")], "PCGrad's projections were never applied"),
    ("15", [("shared = model.shared_parameters()", "shared = model.parameters()")], "over the heads too"),
    ("15", [(" * loss_weights[task]", "")], "scaled by its weight"),
    ("15", [("    pcgrad.apply_pcgrad(shared, task_grads, rng)\n    norm = optim.clip_grad_norm(model.parameters(), max_norm)\n",
             "    norm = optim.clip_grad_norm(model.parameters(), max_norm)\n    pcgrad.apply_pcgrad(shared, task_grads, rng)\n")],
     "you clipped before PCGrad"),
    ("15", [("    optimizer.zero_grad()\n", "")], "the second step's gradients still held the first's"),
]


@pytest.mark.parametrize("number", EXERCISES)
def test_a_right_answer_passes(number):
    passed, printed = checked(number, answer(number))
    assert passed, printed
    assert "correct:" in printed


@pytest.mark.parametrize("number, replacements, hint", MISTAKES,
                         ids=[f"{number}-{i}" for i, (number, _, _) in enumerate(MISTAKES)])
def test_a_wrong_answer_fails_and_names_the_mistake(number, replacements, hint, tmp_path):
    with np.errstate(all="ignore"):                # the naive cross entropy's overflow warnings are the point
        passed, printed = checked(number, changed(number, replacements, tmp_path))
    assert not passed, printed
    assert "not yet:" in printed and hint in printed, printed


def test_every_exercise_has_a_right_answer_and_wrong_ones():
    assert {number for number, _, _ in MISTAKES} == set(EXERCISES)
    assert sorted(path.name for path in ANSWERS.glob("*.py")) == [answer(n).name for n in EXERCISES]


@pytest.mark.parametrize("number", EXERCISES)
def test_the_starter_file_as_shipped_is_not_written_yet(number):
    starter = ROOT / exercises.EXERCISES[number].starter
    passed, printed = checked(number, starter)
    assert not passed and "not written yet" in printed, printed
    source = starter.read_text(encoding="utf-8")
    assert f'raise NotImplementedError("write this: see docs/{exercises.EXERCISES[number].chapter}")' in source
    assert f"python -m tools.exercises check {number} " in source        # the starter says how to check it


def test_an_error_in_the_learners_code_is_their_traceback_and_one_line(tmp_path):
    path = changed("04", [("k.swapaxes(-1, -2)", "k")], tmp_path)      # (T, hs) @ (T, hs): shapes do not fit
    passed, printed = checked("04", path)
    assert not passed
    assert printed.splitlines()[1] == "Traceback (most recent call last):"
    assert str(path) in printed and "tools/exercises.py" not in printed    # their frames, not the checker's
    summary = printed.splitlines()[-1]
    assert re.match(r"  your code raised ValueError while running attention\(\) \(line 7\): matmul", summary), summary


def test_a_file_that_does_not_import_or_lacks_the_function_is_named(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def mul_backward(grad, a, b)\n    return grad\n")
    passed, printed = checked("01", broken)
    assert not passed and "SyntaxError" in printed and f"importing {broken}" in printed and "(line 1)" in printed
    other = tmp_path / "other.py"
    other.write_text("def mul_backwards(grad, a, b):\n    return grad, grad\n")
    passed, printed = checked("01", other)
    assert not passed and "defines no function mul_backward()" in printed


def test_checking_leaves_the_random_draws_of_the_caller_alone():
    backend.seed(3)
    expected = backend.rng().random(4)
    backend.seed(3)
    for number in ("04", "05"):                    # the checks that build tinybert modules
        assert checked(number, answer(number))[0]
    assert np.array_equal(backend.rng().random(4), expected)


def test_the_command_line(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "tools.exercises", *args], cwd=ROOT, capture_output=True, text=True)
    listed = run("list")
    assert listed.returncode == 0
    assert [line.split()[:2] for line in listed.stdout.splitlines()] == [
        [number, exercises.EXERCISES[number].starter] for number in EXERCISES]
    right = run("check", "01", str(answer("01")))
    assert right.returncode == 0 and "correct:" in right.stdout, right.stdout + right.stderr
    with contextlib.redirect_stdout(io.StringIO()):
        assert exercises.main(["check", "01", str(changed("01", [(".sum(axis", ".mean(axis")], tmp_path))]) == 1
    with contextlib.redirect_stderr(io.StringIO()) as printed:
        assert exercises.main(["check", "01", str(tmp_path / "missing.py")]) == 2
    assert printed.getvalue() == f"{tmp_path / 'missing.py'}: no such file (copy docs/exercises/01_mul_backward.py and write its function)\n"


# ---------------------------------------------------------------- the chapters name them
def build_it_yourself(chapter):
    """The "### Build it yourself" part of a chapter's Exercises section, or None."""
    text = chapter.read_text(encoding="utf-8")
    exercises_section = text[text.rindex("## Exercises"):]
    found = re.search(r"^### Build it yourself\n(.*?)(?=^#|\Z)", exercises_section, re.S | re.M)
    return found.group(1) if found else None


def chapter_of(number):
    return ROOT / "docs" / exercises.EXERCISES[number].chapter


@pytest.mark.parametrize("number", EXERCISES)
def test_the_chapter_names_its_exercise_and_the_command(number):
    exercise = exercises.EXERCISES[number]
    if int(number) <= 11:                              # 01..11: chapter NN's own; later ones join a chapter
        assert exercise.chapter.startswith(f"{number}-")
    part = build_it_yourself(chapter_of(number))
    assert part, f"{exercise.chapter} has no '### Build it yourself' in its Exercises"
    assert f"(exercises/{number}_{exercise.name}.py)" in part                  # a link to the starter file
    assert f"python -m tools.exercises check {number} " in part


def test_every_starter_file_is_in_the_table_and_every_build_it_yourself_names_one():
    starters = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "docs" / "exercises").glob("*.py"))
    assert starters == [exercises.EXERCISES[number].starter for number in EXERCISES]
    for chapter in sorted((ROOT / "docs").glob("[0-9][0-9]-*.md")):
        part = build_it_yourself(chapter)
        assert (part is not None) == (chapter.name in {e.chapter for e in exercises.EXERCISES.values()}), chapter.name


@pytest.mark.parametrize("number", [f"{n:02d}" for n in range(1, 12)])
def test_every_chapter_from_1_to_11_has_an_exercise(number):
    assert number in exercises.EXERCISES


# What each starter must NOT hand over (issue #33: the learner builds it; the chapter derives it after
# the exercise): the backward's formula or the update's lines, in the ways a starter once wrote them.
GIVEN_AWAY = {
    "01": ["g * b", "g * a"],
    "02": ["mean(d * x_hat)", "mean(d)", "sum over all rows"],
    "03": ["(L(x + eps e_i) - L(x - eps e_i))", "2 eps)"],
    "07": ["sigmoid(x) - t", "max(x, 0)"],
    "08": ["1 - beta1", "1 - beta2", "m_hat =", "sqrt(v_hat)", "(1 - lr * weight_decay)"],
    "09": ["|g_j|^2", "/ |g_j|", "g' <-"],
    "10": ["clip(", "eta * grad", "/ n_b", "max over t, c"],
    "11": ["dcos/du =", "- cos * u", "2 (cos_b"],
    "12": ["reversed(", "topological"],
    "13": ["onehot", "- 1", "p - ", "softmax(z) -"],
    "14": ["phi(x)", "x * pdf", "exp(-x"],
}


def test_at_least_12_exercises_and_6_that_derive_a_backward_or_an_update():
    assert len(exercises.EXERCISES) >= 12
    assert len(GIVEN_AWAY) >= 6


@pytest.mark.parametrize("number", sorted(GIVEN_AWAY))
def test_the_starter_gives_the_forward_not_the_backward_or_the_update(number):
    source = (ROOT / exercises.EXERCISES[number].starter).read_text(encoding="utf-8")
    for answer_text in GIVEN_AWAY[number]:
        assert answer_text not in source, f"{exercises.EXERCISES[number].starter} gives away {answer_text!r}"


# ---------------------------------------------------------------- the answer runs in a child process (#32)
def run_checker(*args, cwd, timeout=300):
    """``python -m tools.exercises ARGS`` from ``cwd`` (outside the repository)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tools.exercises", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("ending", ["sys.exit(0)", "os._exit(0)"])
def test_an_answer_that_exits_early_is_not_correct(ending, tmp_path):
    path = changed("01", [("def mul_backward(grad, a, b):\n",
                           f"def mul_backward(grad, a, b):\n    import os, sys\n    {ending}\n")], tmp_path)
    result = run_checker("check", "01", str(path), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "correct:" not in result.stdout.replace("not correct", "")
    last = result.stdout.splitlines()[-1]
    assert ("SystemExit" if ending.startswith("sys") else "no verdict") in last, result.stdout


def test_an_answer_that_never_ends_times_out(tmp_path):
    path = changed("01", [("def mul_backward(grad, a, b):\n", "def mul_backward(grad, a, b):\n    while True:\n"
                                                               "        pass\n")], tmp_path)
    result = run_checker("check", "01", str(path), "--timeout", "5", cwd=tmp_path, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "  timed out: your code ran for more than 5 s (an endless loop?)"


def test_an_answer_that_changes_the_repository_fails_loudly(tmp_path):
    repository = tmp_path / "repository"                 # stands in for the repository: the test deletes nothing real
    repository.mkdir()
    (repository / "keep.txt").write_text("mine")
    path = changed("01", [("def mul_backward(grad, a, b):\n",
                           "def mul_backward(grad, a, b):\n    import os\n"
                           f"    os.remove({str(repository / 'keep.txt')!r})\n"
                           "    open('stray.txt', 'w').close()\n")], tmp_path)
    result = run_checker("check", "01", str(path), "--repository", str(repository), cwd=repository)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == (
        f"  not correct: your code changed the repository {repository}: keep.txt deleted")
    assert not (repository / "stray.txt").exists()        # it ran in a temporary folder of its own


def test_train_step_gradients_passes_exercise_15s_checker():
    # the checker's reference step (tools/exercises._variant_step) is train.py's: train.step_gradients,
    # clipping and AdamW, written as a learner's answer, pass it (tools/ never imports train)
    import types

    import train
    from tinybert import optim
    from tools import exercises

    def training_step(model, batches, weights, optimizer, pcgrad_rng, max_norm):
        args = types.SimpleNamespace(pcgrad=True, **{f"{task}_loss_weight": w for task, w in weights.items()})
        train.step_gradients(model, batches, args, None, None, pcgrad_rng, lambda task, value: None)
        norm = optim.clip_grad_norm(model.parameters(), max_norm)
        optimizer.step()
        optimizer.zero_grad()
        return norm
    assert "equal train.step_gradients" in exercises.check_training_step(training_step)


def test_an_answer_runs_against_a_copy_of_the_code_so_the_repositorys_files_stay(tmp_path):
    # the answer deletes a file of the tinybert it imports, and one of the checker's own folder:
    # it runs against a temporary copy of tinybert/ and tools/, so the repository keeps both
    import shutil
    repository = tmp_path / "repository"                 # a copy of the code: the test deletes nothing real
    for package in ("tinybert", "tools"):
        shutil.copytree(ROOT / package, repository / package, ignore=shutil.ignore_patterns("__pycache__"))
    path = changed("01", [("def mul_backward(grad, a, b):\n",
                           "def mul_backward(grad, a, b):\n    import os, tinybert, tools.exercises\n"
                           "    os.remove(os.path.join(os.path.dirname(tinybert.__file__), 'nn.py'))\n"
                           "    os.remove(os.path.join(tools.exercises.ROOT, 'tools', 'make_sample.py'))\n")], tmp_path)
    environment = {**os.environ, "PYTHONPATH": str(repository)}
    result = subprocess.run([sys.executable, "-m", "tools.exercises", "check", "01", str(path), "--repository",
                             str(repository)], cwd=tmp_path, env=environment, capture_output=True, text=True,
                            timeout=300)
    assert (repository / "tinybert" / "nn.py").exists() and (repository / "tools" / "make_sample.py").exists(), \
        result.stdout + result.stderr
    assert "changed the repository" not in result.stdout


def test_the_sample_has_the_identical_sts_pairs_exercise_10_speaks_of():
    """Exercise 10's starter: an STS pair of two identical sentences (the uncased tokenizer sees
    the same tokens) has a zero gradient; the bundled sample has 8 such pairs."""
    from tinybert.data import load_pairs
    rows = load_pairs(str(ROOT / "tinybert" / "sample_data" / "sts-train.csv"), "sts")
    identical = sum(r.sentence1.strip().lower() == r.sentence2.strip().lower() for r in rows)
    assert identical == 8 and "the bundled sample has 8" in (ROOT / "docs/exercises/10_ascent_step.py").read_text()
