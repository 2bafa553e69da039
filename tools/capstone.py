"""The capstone: your pieces inside tinybert, trained on the bundled sample, your scores beside
tinybert's own.

    python -m tools.capstone my_answers/                  # one epoch of the demo's recipe, on tinybert/sample_data
    make capstone ANSWERS=my_answers
    python -m tools.capstone my_answers/ -- --epochs 3    # train.py flags after --: the demo's 3 epochs

``my_answers/`` holds your answers to the exercises under their starters' names
(``02_layer_norm_backward.py``, ...; the folder need not hold them all). Ten exercises build a
piece that a training step calls, and each of those answers replaces tinybert's piece:

    01 mul_backward            every product's backward (ops.mul)
    02 layer_norm_backward     every layer norm's backward (functional.layer_norm)
    07 bce_with_logits         Quora's loss and its gradient
    08 adamw_update            every parameter's update (optim.AdamW.step)
    09 project_conflicting     PCGrad's projections (pcgrad.projected_grads)
    10 ascent_step             SMART's ascent (smart.ascent_step)
    11 cosine_loss             STS's loss and its gradient (--cos)
    12 tensor_backward         every backward() walk (Tensor.backward)
    13 cross_entropy           SST's loss and its gradient
    14 gelu_backward           every GELU's backward (functional.gelu)

The others (03, 04, 05, 06, 15) are checked only: a test tool, a forward, the weights' and the
tokenizer's conversions, and the step train.py itself runs.

What it does: it checks each answer (tools.exercises, in its child process) and prints the verdict;
then it trains twice with the same seed and recipe (``train.py --task all --pcgrad --smart --cos
--epochs 1 --max_len 32`` on the sample, 8 steps, dev sets only), once with tinybert's pieces and once with
your written answers in their place, right or not (a wrong piece shows what it does to a training
run). Both runs take the reference path (TINYBERT_FAST=0), so that your backward, not a fast
kernel, is the one called. It prints both runs' dev scores, the largest difference between their
training losses, their gradients' norms at step 1, and how many times each of your pieces was
called. A wrong backward shows at step 1 as a gradient norm that differs while the losses agree.
Right pieces give step 1 to float32 rounding (a relative difference near 1e-7). Later steps may
part a little (the losses by about 1e-4, a dev score by an example): SMART's ascent divides each
example's gradient by its largest entry, so an example whose gradient is zero but for rounding
(an STS pair of two identical sentences) takes a full step or none, as the order of the sums
decides. The runs are in runs/capstone/tinybert and runs/capstone/yours.

Your code runs with your user's rights, in a child process; it is not sandboxed (see
tools/exercises.py). Exit status 0: both runs finished; 1: a run failed; 2: a usage error.
"""
import argparse
import atexit
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np

from tinybert import Tensor, backend, functional as F, ops, optim, pcgrad, smart, tensor
from tinybert.multitask import MultitaskBert
from tinybert.run import files
from tinybert.run.plot import read_metrics
from tools import exercises
from tools.ablation import signals_passed_on

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ["--task", "all", "--pcgrad", "--smart", "--cos", "--epochs", "1", "--max_len", "32",
          "--data_dir", str(ROOT / "tinybert" / "sample_data"), "--no_test_predictions", "--overwrite"]
TASK_SCORES = (("sst", "SST accuracy"), ("para", "QQP accuracy"), ("sts", "STS Pearson r"))


# ---------------------------------------------------------------- your pieces in tinybert's places
def _as(array, like):
    """The learner's array in the dtype and on the device of ``like`` (answers often make float64)."""
    return backend.xp.asarray(array, dtype=like.dtype)


def _with_backward(op, backward):
    """``op`` with its output's backward replaced: ``backward(grad, parents, *args)`` returns the
    parents' gradients."""
    def replaced(*args):
        out = op(*args)
        if out._backward is not None:
            parents = out._parents
            out._backward = lambda grad: tuple(_as(g, p.data) for g, p in zip(backward(grad, parents, *args[len(parents):]),
                                                                               parents))
        return out
    return replaced


def _loss_op(learner, name):
    """A loss op from the learner's ``(loss, dL/dlogits) = learner(logits, targets)``."""
    def loss(logits, targets):
        targets = targets.data if isinstance(targets, Tensor) else targets
        value, grad_logits = learner(backend.to_numpy(logits.data), backend.to_numpy(targets))
        return Tensor.from_op(_as(value, logits.data), (logits,), lambda grad: (grad * _as(grad_logits, logits.data),),
                              name)
    return loss


def plug_mul_backward(learner):
    ops.mul = _with_backward(ops.mul, lambda grad, parents: learner(grad, parents[0].data, parents[1].data))


def plug_layer_norm_backward(learner):
    F.layer_norm = _with_backward(F.layer_norm, lambda grad, parents, eps=1e-12: learner(
        grad, parents[0].data, parents[1].data, eps))


def plug_gelu_backward(learner):
    F.gelu = _with_backward(F.gelu, lambda grad, parents: (learner(grad, parents[0].data),))


def plug_cross_entropy(learner):
    F.cross_entropy = _loss_op(learner, "cross_entropy")


def plug_bce_with_logits(learner):
    F.binary_cross_entropy_with_logits = _loss_op(learner, "bce_with_logits")


def plug_adamw_update(learner):
    def adamw_update(p, g, m, v, lr, weight_decay, betas, eps, t):      # tinybert's updates in place
        new_p, new_m, new_v = learner(p, g, m, v, lr, weight_decay, betas, eps, t)
        p[...], m[...], v[...] = _as(new_p, p), _as(new_m, m), _as(new_v, v)
    optim.adamw_update = adamw_update


def plug_project_conflicting(learner):
    def projected_grads(grads, rng):            # the same random orders, drawn as tinybert draws them
        return [_as(learner(g_i.copy(), [grads[j] for j in pcgrad._random_order(len(grads), rng) if j != i]), g_i)
                for i, g_i in enumerate(grads)]
    pcgrad.projected_grads = projected_grads


def plug_ascent_step(learner):
    original = smart.ascent_step

    def ascent_step(delta, grad, config, norm=None):
        if config.variant != "paper":
            return original(delta, grad, config, norm)
        if norm is None:
            return _as(learner(delta, grad, config), delta)
        # The pair's shared n_b enters as one extra token whose gradient is n_b everywhere: the
        # learner's own per-example max is then n_b (n_b is at least this segment's max).
        xp = backend.xp
        extra = xp.broadcast_to(norm, (grad.shape[0], 1, grad.shape[2]))
        moved = learner(xp.concatenate([delta, xp.zeros_like(extra)], axis=1), xp.concatenate([grad, extra], axis=1),
                        config)
        return _as(moved, delta)[:, :-1]
    smart.ascent_step = ascent_step


def plug_cosine_loss(learner):
    cosine_similarity, loss = F.cosine_similarity, MultitaskBert.loss

    def remembered_pair(a, b, eps=1e-8):        # the STS head's cosine, knowing the sentences it compared
        out = cosine_similarity(a, b, eps)
        out.pair = (a, b)
        return out

    def sts_loss(self, batch, output):
        if batch.task != "sts" or not self.cos or not hasattr(output, "pair"):
            return loss(self, batch, output)
        u, v = output.pair
        value, grad_u, grad_v = learner(u.data, v.data, np.asarray(batch.labels, dtype=np.float64))
        return Tensor.from_op(_as(value, u.data), (u, v),
                              lambda grad: (grad * _as(grad_u, u.data), grad * _as(grad_v, v.data)), "cosine_loss")
    F.cosine_similarity, MultitaskBert.loss = remembered_pair, sts_loss


def plug_tensor_backward(learner):
    original = Tensor.backward

    def backward(self, grad=None, retain_graph=False):
        if not self.requires_grad or (self._backward is None and self.op != "leaf"):
            return original(self, grad, retain_graph)   # its errors
        grad = backend.xp.ones_like(self.data) if grad is None else grad
        order = tensor._topological_order(self)
        nodes = {}
        for t in order:                                  # inputs first: every parent's node exists
            parents = [p for p in t._parents if p.requires_grad]
            node = exercises.GraphNode(t.op, t.data, [nodes[id(p)] for p in parents])
            if t._backward is None:
                node.grad = t.grad
            else:
                node.vjp = lambda g, t=t: tuple(pg for p, pg in zip(t._parents, t._backward(g)) if p.requires_grad)
            nodes[id(t)] = node
        learner(nodes[id(self)], grad)
        for t in order:
            if t._backward is None:
                t.grad = None if nodes[id(t)].grad is None else _as(nodes[id(t)].grad, t.data).copy()
            elif not retain_graph:
                t._backward, t._parents = None, ()
    Tensor.backward = backward


PLUGS = {"01": plug_mul_backward, "02": plug_layer_norm_backward, "07": plug_bce_with_logits,
         "08": plug_adamw_update, "09": plug_project_conflicting, "10": plug_ascent_step, "11": plug_cosine_loss,
         "12": plug_tensor_backward, "13": plug_cross_entropy, "14": plug_gelu_backward}


def install(number, learner, calls):
    """Put the learner's function for exercise ``number`` in tinybert's place, counting its calls
    in ``calls[number]``."""
    calls[number] = 0

    def counted(*args, **kwargs):
        calls[number] += 1
        return learner(*args, **kwargs)
    PLUGS[number](counted)


# ---------------------------------------------------------------- the two runs
def train_child(argv):
    """``python -m tools.capstone _train CALLS_FILE [NUMBER=ANSWER ...] -- TRAIN_FLAGS``: train.py
    with each answer installed; the call counts are written to CALLS_FILE as it exits."""
    split = argv.index("--")
    calls_file, answers, flags = argv[0], argv[1:split], argv[split + 1:]
    calls = {}
    for answer in answers:
        number, path = answer.split("=", 1)
        install(number, exercises.load(path, exercises.EXERCISES[number].name), calls)
    atexit.register(lambda: files.write_text(calls_file, json.dumps(calls)))
    sys.argv = ["train.py", *flags]
    runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
    return 0


def run_training(out, answers, flags):
    """One training run in a child process; returns (exit status, {number: calls})."""
    calls_file = out + ".calls.json"
    os.makedirs(os.path.dirname(out), exist_ok=True)
    environment = dict(os.environ, TINYBERT_FAST="0")
    child = subprocess.Popen([sys.executable, "-m", "tools.capstone", "_train", calls_file,
                              *(f"{number}={path}" for number, path in answers.items()), "--",
                              *flags, "--out", out], cwd=ROOT, env=environment)
    with signals_passed_on([child]):           # a kill of this command stops the training too
        status = child.wait()
    calls = files.read_json(calls_file) if os.path.exists(calls_file) else {}
    return status, calls


def step_values(out, prefix):
    """{(step, name): value} of every step record's numbers whose name starts with ``prefix``, from
    a run's metrics.jsonl (``loss_``: each task's training loss; ``grad_norm``: the gradient's
    norm before clipping)."""
    steps, _ = read_metrics(os.path.join(out, "metrics.jsonl"))
    return {(record["step"], key): value for record in steps for key, value in record.items() if key.startswith(prefix)}


def largest_difference(ours, yours):
    """The largest |ours - yours| at the keys both have, and how many keys that is."""
    shared = set(ours) & set(yours)
    return max((abs(ours[key] - yours[key]) for key in shared), default=0.0), len(shared)


def answers_in(folder):
    """{number: path} of the answers in ``folder`` to exercises that have a place in training."""
    found = {}
    for number in PLUGS:
        path = Path(folder) / Path(exercises.EXERCISES[number].starter).name
        if path.is_file():
            found[number] = str(path.resolve())
    return found


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_train"]:
        return train_child(argv[1:])
    flags = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(prog="python -m tools.capstone", description=__doc__.split("\n\n")[0])
    parser.add_argument("answers", help="the folder of your answers, each under its starter's name")
    parser.add_argument("--out", default=os.path.join("runs", "capstone"), help="where the two runs go")
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if not os.path.isdir(args.answers):
        print(f"{args.answers}: no such folder (copy starters from docs/exercises/ into it and write them)",
              file=sys.stderr)
        return 2
    answers = answers_in(args.answers)
    if not answers:
        names = ", ".join(Path(exercises.EXERCISES[n].starter).name for n in PLUGS)
        print(f"{args.answers}: none of the answers the capstone plugs in ({names})", file=sys.stderr)
        return 2
    print(f"Checking your {len(answers)} answer(s) with a place in training:")
    with open(os.devnull, "w") as quiet:
        verdicts = {number: exercises.check_isolated(number, path, out=quiet) for number, path in answers.items()}
    for number in PLUGS:
        shown = ("correct" if verdicts[number] else "not correct: make exercise N=" + number) if number in answers \
            else "not in your folder: tinybert's own is used"
        print(f"  {number} {exercises.EXERCISES[number].name:<22} {shown}")
    out = {"tinybert": os.path.join(args.out, "tinybert"), "yours": os.path.join(args.out, "yours")}
    runs = {}
    for who, pieces in (("tinybert", {}), ("yours", answers)):
        print(f"\nTraining with {'tinybert' if who == 'tinybert' else 'your'} pieces ({out[who]}):", flush=True)
        runs[who] = run_training(out[who], pieces, RECIPE + flags)
        if runs[who][0] != 0:
            ended = "was stopped" if runs[who][0] in (130, 143) else f"failed (exit status {runs[who][0]})"
            print(f"\nThe run with {'tinybert' if who == 'tinybert' else 'your'} pieces {ended}: its messages are above.")
            return 1
    scores = {who: files.read_json(os.path.join(out[who], "dev_metrics.json")) for who in out}
    print(f"\nDev scores on the sample (train.py {' '.join(RECIPE[:9] + flags)}):")
    print(f"  {'':<15} {'tinybert':>9} {'yours':>9} {'difference':>11}")
    for task, name in TASK_SCORES:
        ours, yours = scores["tinybert"][task], scores["yours"][task]
        print(f"  {name:<15} {ours:>9.4f} {yours:>9.4f} {yours - ours:>+11.4f}")
    gap, count = largest_difference(*(step_values(out[who], "loss_") for who in out))
    print(f"Training losses, largest difference over {count} (step, task) values: {gap:.1e}")
    first = {who: step_values(out[who], "grad_norm")[1, "grad_norm"] for who in out}
    parted = abs(first["yours"] / first["tinybert"] - 1)
    print(f"Gradient norm before clipping at step 1: tinybert {first['tinybert']:.6f}, yours {first['yours']:.6f} "
          f"(relative difference {parted:.1e}{': a backward or a loss gradient differs' if parted > 1e-4 else ''})")
    print("Calls of your pieces: " + ", ".join(f"{number} {count:,}" for number, count in runs["yours"][1].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
