"""Train one BERT encoder on SST-5 sentiment, Quora paraphrase and STS-B similarity at once.

    python train.py --task all --pcgrad --smart --cos          # the full recipe, data from $DATA_DIR
    python train.py --task sst --epochs 1                      # one task alone
    python train.py --task all --cos --data_dir tinybert/sample_data --epochs 3 --max_len 32   # make demo
    python train.py ... --resume                               # continue runs/NAME/last
    python -m tinybert.plot runs/all                           # draw the curves of a run

Task sampling: every step takes ``--TASK_batches_per_step`` batches from each task being
trained, in the order sst, para, sts: by default 1, 2 and 1, roughly in proportion to the
sizes of the training sets (8,544 / 16,214 / 6,040 examples), so that every example weighs
about the same. Each task cycles through its own training set, reshuffled (and bucketed by
length) on every pass. An epoch is ``--steps_per_epoch`` steps, by default the fewest steps
that pass once over every training set (with --task all: 267 steps, SST's 267 batches; Quora
and STS are passed 1.05 and 1.4 times); a set that is not finished carries on where it stopped
in the next epoch. ``--epochs`` may end in a fraction (1.5: 401 steps with --task all). The dev sets are evaluated after each epoch and at the last step, and the
best evaluation (mean of the task metrics) is kept apart.

The loss of a step is the sum of its batch losses (plus SMART's terms with --smart, on the
batches of the --smart_tasks, on one step in --smart_every), each multiplied by its task's
--TASK_loss_weight (by default SST 1.5, Quora 1.5, STS 2; with --cos the STS loss is some
fifty times smaller than SST's, and so is its gradient). With --pcgrad the encoder's gradient
is instead each task's gradient (the sum over its batches), projected off the others' where
they conflict, summed; the heads keep their own task's gradient. The heads learn at
--head_lr_factor times the encoder's learning rate (by default 30 times: they start from
nothing, the encoder from pretraining). A task's logged loss (and SMART terms) in a step is
the mean over its batches, before the weight. The defaults (RECIPE below) are the recipe that
beat a plain PyTorch fine-tune's 60 minutes on the same 2-core machine (docs/12-results.md).

Outputs in --out: metrics.jsonl (one JSON object per step and per evaluation; a step's
"seconds" are the training time so far, saves and evaluations left out, as tools/peer.py
counts them, and an evaluation's "minutes" the same time when it began; "cpu_steal" the share
of the machine's CPU time that the hypervisor of a virtual machine gave elsewhere during the
step, which lengthens the minutes, not the work), last/ and
best/ checkpoints, predictions/ in the CS224N names and columns, and model/: the best epoch
as a folder that `python -m tinybert.predict RUN` answers from (tinybert/predict.py), and
machine.json (tinybert.machine: the CPU and BLAS the minutes were measured on).

Nothing is lost: a folder that holds a run is refused unless --resume (or --overwrite); every
flag and output path is checked before the first step; last/ is saved at the end of an epoch
before the evaluation, and again after it; Ctrl-C and SIGTERM save last/ and exit with status
128 + the signal's number; a loss that is not finite or grows past --max_loss_factor times its
first value stops the run before the model can become best/.
"""
import argparse
import dataclasses
import json
import math
import os
import re
import shutil
import signal
import sys
import time

import numpy as np

from tinybert import backend, checkpoint, io, machine, pcgrad
from tinybert.data import default_data_dir, load_pairs, load_sst, make_batches
from tinybert.model import BertModel
from tinybert.multitask import TASKS, MultitaskBert, encode_batch
from tinybert.optim import AdamW, clip_grad_norm, linear_warmup_decay
from tinybert.progress import Progress
from tinybert.smart import VARIANTS, ProximalPoint, SmartConfig, smoothness_loss
from tinybert.tensor import no_grad

# Settings a checkpoint must share with the run that resumes it.
RESUME_MUST_MATCH = ("task", "cos", "pcgrad", "smart", "batch_size", "max_len", "seed", "steps_per_epoch", "epochs",
                     "sst_batches_per_step", "para_batches_per_step", "sts_batches_per_step", "head_lr_factor",
                     "smart_tasks", "smart_every", "sst_loss_weight", "para_loss_weight", "sts_loss_weight")
# Those of RESUME_MUST_MATCH that came after checkpoints had been saved: a checkpoint (or
# args.json) without one was trained as its default says.
SETTINGS_BEFORE_THEY_EXISTED = {"head_lr_factor": 1.0, "smart_tasks": list(TASKS), "smart_every": 1,
                                **{f"{task}_loss_weight": 1.0 for task in TASKS}}
BATCHES_PER_STEP = {"sst": 1, "para": 2, "sts": 1}  # ~ the training sets' sizes
# The defaults of the recipe that beat the PyTorch peer's 60 minutes on the same machine
# (docs/12-results.md, "Equal minutes"; its run: docs/results/recipe_p15). Until then --epochs
# was 1 and the others were as SETTINGS_BEFORE_THEY_EXISTED says.
RECIPE = {"epochs": 1.9, "head_lr_factor": 30.0, "smart_tasks": ["sts"],
          "sst_loss_weight": 1.5, "para_loss_weight": 1.5, "sts_loss_weight": 2.0}
# Every numeric flag's allowed values ("[" "]" closed ends, "(" ")" open ones; NaN is in none),
# checked by parse_args before any work. max_len's 4: a pair needs [CLS] a [SEP] b [SEP].
FLAG_RANGES = {
    "epochs": "(0, inf)", "steps_per_epoch": "[1, inf)", "batch_size": "[1, inf)", "eval_batch_size": "[1, inf)",
    "max_len": "[4, inf)", "seed": "[0, inf)", "lr": "(0, inf)", "head_lr_factor": "(0, inf)", "warmup": "[0, 1)",
    **{f"{task}_loss_weight": "(0, inf)" for task in TASKS},
    "weight_decay": "[0, inf)",
    "clip": "(0, inf)", "hidden_dropout_prob": "[0, 1)", "save_every_minutes": "[0, inf)",
    "max_loss_factor": "(1, inf)", "smart_sigma": "[0, inf)", "smart_epsilon": "(0, inf)", "smart_eta": "(0, inf)",
    "smart_steps": "[1, inf)", "smart_lambda_s": "[0, inf)", "smart_mu": "[0, inf)", "smart_beta": "[0, 1)",
    "smart_beta_early": "[0, 1)", "smart_beta_early_fraction": "[0, 1]", "smart_every": "[1, inf)",
}
# What a run folder holds: if any is there, the folder is not reused without --resume or --overwrite.
RUN_ENTRIES = ("metrics.jsonl", "args.json", "machine.json", "resumes.jsonl", "dev_metrics.json", "last", "best", "model", "predictions")


def positive_int(text):
    """argparse type: an integer of at least 1, else a usage error naming the value."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", choices=["sst", "para", "sts", "all"], default="all")
    p.add_argument("--pcgrad", action="store_true", help="project conflicting task gradients (PCGrad)")
    p.add_argument("--smart", action="store_true", help="SMART adversarial + Bregman regularisation")
    p.add_argument("--cos", action="store_true", help="STS as a bi-encoder with a cosine-similarity loss")
    p.add_argument("--epochs", type=float, default=RECIPE["epochs"],
                   help="passes of --steps_per_epoch steps; a fraction ends the run within the last one (1.5: 401 steps with --task all)")
    p.add_argument("--steps_per_epoch", type=int, default=None, help="default: the fewest steps that pass over every training set")
    for task, count in BATCHES_PER_STEP.items():
        p.add_argument(f"--{task}_batches_per_step", type=positive_int, default=count, help=f"{task} batches in each step")
        p.add_argument(f"--{task}_loss_weight", type=float, default=RECIPE[f"{task}_loss_weight"],
                       help=f"multiplies each {task} batch's loss (SMART's terms included) before its backward")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate")
    p.add_argument("--head_lr_factor", type=float, default=RECIPE["head_lr_factor"],
                   help="the task heads' learning rate as a multiple of the schedule's (the encoder's)")
    p.add_argument("--warmup", type=float, default=0.06, help="fraction of all steps spent warming up")
    p.add_argument("--weight_decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0, help="global gradient-norm clip")
    p.add_argument("--batch_size", type=int, default=32, help="per task and step")
    p.add_argument("--hidden_dropout_prob", type=float, default=0.1, help="dropout before the task heads")
    p.add_argument("--max_len", type=int, default=128)
    p.add_argument("--seed", type=int, default=11711)
    p.add_argument("--weights", default="weights/all-MiniLM-L6-v2", help="a converted (or Hugging Face) BERT folder")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--out", default=None, help="run folder (default runs/TASK)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in OUT (else refused)")
    p.add_argument("--max_loss_factor", type=float, default=100.0,
                   help="stop when a task's loss exceeds this times its first value (and 1): the training diverged")
    p.add_argument("--data_dir", default=default_data_dir(), help="folder of the CS224N files ($DATA_DIR)")
    p.add_argument("--eval_batch_size", type=int, default=64)
    p.add_argument("--no_test_predictions", action="store_true",
                   help="score the dev sets only; write no test prediction files (the ablation's runs)")
    p.add_argument("--save_every_minutes", type=float, default=15.0, help="also save OUT/last this often within an epoch")
    for name, default in SmartConfig.__dataclass_fields__.items():
        if name == "tasks":  # a list of names, not one value; ignored without --smart, as every --smart_NAME is
            p.add_argument("--smart_tasks", nargs="+", choices=TASKS, default=RECIPE["smart_tasks"],
                           help="with --smart, only these tasks' batches get SMART's two terms")
            continue
        choices = {"choices": VARIANTS} if name == "variant" else {}
        p.add_argument(f"--smart_{name}", type=type(default.default), default=default.default, **choices)
    files = {"sst": ("ids-sst-train.csv", "ids-sst-dev.csv", "ids-sst-test-student.csv"),
             "para": ("quora-train.csv", "quora-dev.csv", "quora-test-student.csv"),
             "sts": ("sts-train.csv", "sts-dev.csv", "sts-test-student.csv")}
    for task, (train, dev, test) in files.items():
        p.add_argument(f"--{task}_train", default=None, help=f"default DATA_DIR/{train}")
        p.add_argument(f"--{task}_dev", default=None, help=f"default DATA_DIR/{dev}")
        p.add_argument(f"--{task}_test", default=None, help=f"default DATA_DIR/{test}")
        p.add_argument(f"--{task}_dev_out", default=None, help=f"default OUT/predictions/{task}-dev-output.csv")
        p.add_argument(f"--{task}_test_out", default=None, help=f"default OUT/predictions/{task}-test-output.csv")
    args = p.parse_args(argv)
    problem = out_of_range(args)
    if problem:
        p.error(problem)
    if args.resume and args.overwrite:
        p.error("--resume continues the run in OUT, --overwrite replaces it: pass one of them")
    # one spelling per set of tasks, so that a resume (and args.json) compares sets, not orders
    args.smart_tasks = [task for task in TASKS if task in args.smart_tasks]
    args.out = args.out or os.path.join("runs", args.task)
    for task, names in files.items():
        for split, name in zip(("train", "dev", "test"), names):
            if getattr(args, f"{task}_{split}") is None:
                setattr(args, f"{task}_{split}", os.path.join(args.data_dir, name))
        for split in ("dev", "test"):
            if getattr(args, f"{task}_{split}_out") is None:
                setattr(args, f"{task}_{split}_out", os.path.join(args.out, "predictions", f"{task}-{split}-output.csv"))
    return args


def out_of_range(args, ranges=FLAG_RANGES):
    """'argument --NAME: ...' for the first flag outside its interval in ``ranges`` (train.py's
    FLAG_RANGES unless another script's, tools/peer.py's, are given), else None."""
    for name, interval in ranges.items():
        value = getattr(args, name)
        if value is None:  # --steps_per_epoch's default, computed later
            continue
        low_end, low, high, high_end = re.fullmatch(r"([\[(])(\S+), (\S+)([\])])", interval).groups()
        above = value >= float(low) if low_end == "[" else value > float(low)
        below = value <= float(high) if high_end == "]" else value < float(high)
        if not (above and below):
            return f"argument --{name}: must be in {interval}, got {value}"
    return None


# ---------------------------------------------------------------- the run folder
def output_paths(args, tasks):
    """Every file train.py will write outside last/, best/ and model/: the prediction files."""
    splits = ["dev"] if args.no_test_predictions else ["dev", "test"]
    return [getattr(args, f"{task}_{split}_out") for task in tasks for split in splits]


def check_output_paths(args, tasks):
    """Fail now, not after an epoch of training, if the run folder or a prediction file
    cannot be written: the path is a folder, lies under a file, or in a read-only folder."""
    paths = output_paths(args, tasks)
    repeated = sorted({path for path in paths if paths.count(path) > 1})
    if repeated:
        raise ValueError(f"{repeated[0]}: given as more than one prediction file")
    for path, is_folder in [(args.out, True)] + [(path, False) for path in paths]:
        if os.path.exists(path) and os.path.isdir(path) != is_folder:
            raise ValueError(f"{path}: is {'a file' if is_folder else 'a folder'}, cannot write the "
                             f"{'run folder' if is_folder else 'prediction file'} there")
        existing = os.path.abspath(path)
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if existing != os.path.abspath(path) and not os.path.isdir(existing):
            raise ValueError(f"{path}: cannot be written, {existing} is a file")
        folder = existing if os.path.isdir(existing) else os.path.dirname(existing)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f"{path}: cannot be written, {folder} is not writable")


def check_run_folder(args):
    """A folder that holds a run is only continued (--resume) or replaced (--overwrite)."""
    held = [name for name in RUN_ENTRIES if os.path.exists(os.path.join(args.out, name))]
    if held and not (args.resume or args.overwrite):
        raise ValueError(f"{args.out}: holds a run already ({', '.join(held)}); continue it with --resume, "
                         "replace it with --overwrite, or pick another --out")


def clear_run_folder(out):
    """--overwrite: remove the previous run's entries (nothing else in the folder)."""
    for name in RUN_ENTRIES:
        path = os.path.join(out, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def record_resume(args, state):
    """Flags a resume may change (--lr, --eval_batch_size, ...) but that change the run: each
    change is printed and appended to OUT/resumes.jsonl with the step it took effect. So is a
    change of machine (machine.json, rewritten by every session): the run's minutes from that
    step on were measured on another CPU or BLAS."""
    path = os.path.join(args.out, "args.json")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        before = json.load(f)
    now = vars(args)
    changed = {k: [before[k], now[k]] for k in now if k in before and before[k] != now[k]
               and k not in RESUME_MUST_MATCH + ("resume", "overwrite")}
    machine_path = os.path.join(args.out, "machine.json")
    if os.path.exists(machine_path):
        with open(machine_path, encoding="utf-8") as f:
            machine_before, machine_now = json.load(f), machine.describe()
        if machine_before != machine_now:
            changed["machine"] = [machine_before, machine_now]
    if not changed:
        return
    with open(os.path.join(args.out, "resumes.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": state["step"], "changed": changed}) + "\n")
    print("resumed with " + ", ".join(f"the machine changed from {a} to {b}" if k == "machine" else
                                      f"--{k} changed from {a} to {b}" for k, (a, b) in changed.items())
          + f" (recorded in {os.path.join(args.out, 'resumes.jsonl')})", file=sys.stderr)


def trim_log(path, state, steps_per_epoch):
    """Drop from metrics.jsonl what a killed run logged after its last/ checkpoint (steps past
    it, an evaluation not yet recorded in it, a half-written line), so a resumed run's log
    reads as if it had never stopped."""
    if not os.path.exists(path):
        return
    kept = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            evaluated = record["type"] != "eval" or record["epoch"] <= state["evaluated_epoch"]
            if record["step"] <= state["step"] and evaluated:
                kept.append(line if line.endswith("\n") else line + "\n")
    io.write_text(path, "".join(kept))


# ---------------------------------------------------------------- data
def load_task(task, path, labelled=True):
    examples = load_sst(path, labelled) if task == "sst" else load_pairs(path, task, labelled)
    if not examples:
        raise ValueError(f"{path}: no usable rows")
    return examples


class BatchStream:
    """Task t's n-th batch, as a pure function of (seed, t, n): pass p = n // count over the
    training set uses the order drawn from a generator seeded by (seed, t, p). Step s takes
    batches s * k ... s * k + k - 1 when the task has k batches per step, so resuming at a
    step needs nothing but the step."""

    def __init__(self, task_index, examples, batch_size, seed):
        self.task_index, self.examples, self.batch_size, self.seed = task_index, examples, batch_size, seed
        self.count = math.ceil(len(examples) / batch_size)
        self._pass, self._batches = None, None

    def batch(self, number):
        pass_index, position = divmod(number, self.count)
        if pass_index != self._pass:
            rng = np.random.default_rng([self.seed, self.task_index, pass_index])
            self._pass, self._batches = pass_index, make_batches(self.examples, self.batch_size, rng)
        return self._batches[position]


def epoch_at(step, steps_per_epoch):
    """The epochs done after ``step`` steps: a whole number at an epoch's end, else to 3 decimals
    (the end of a run whose --epochs has a fraction)."""
    return step // steps_per_epoch if step % steps_per_epoch == 0 else round(step / steps_per_epoch, 3)


def evaluation_due(step, steps_per_epoch, total_steps):
    """The dev sets are evaluated at the end of every epoch and at the last step."""
    return step % steps_per_epoch == 0 or step == total_steps


def default_steps_per_epoch(streams, batches_per_step):
    """The fewest steps in which every task passes once over its training set, when a step
    takes ``batches_per_step[task]`` batches of each task's stream."""
    return max(math.ceil(stream.count / batches_per_step[task]) for task, stream in streams.items())


# ---------------------------------------------------------------- evaluation
def predict(model, task, examples, tokenizer, args):
    """(ids, predictions) over a dataset, in eval mode, without a graph."""
    model.eval()
    ids, predictions = [], []
    with no_grad():
        for chunk in make_batches(examples, args.eval_batch_size):
            batch = encode_batch(task, chunk, tokenizer, args.max_len, args.cos)
            ids += batch.ids
            predictions.append(model.predictions(task, model(batch)))
    model.train()
    return ids, np.concatenate(predictions)


def metric(task, examples, ids, predictions):
    """SST and Quora: accuracy; STS: Pearson correlation."""
    label_of = {e.id: e.label for e in examples}
    labels = np.array([label_of[i] for i in ids], dtype=np.float64)
    if task == "sts":
        return float(np.corrcoef(predictions.astype(np.float64), labels)[0, 1])
    return float((predictions == labels).mean())


PREDICTION_HEADERS = {"sst": "Predicted_Sentiment", "para": "Predicted_Is_Paraphrase", "sts": "Predicted_Similiarity"}


def write_predictions(path, task, ids, predictions):
    """The CS224N prediction file: header 'id \\t Predicted_...', rows 'id , value'
    (the header's spelling, 'Similiarity' included, is the course's)."""
    lines = [f"id \t {PREDICTION_HEADERS[task]} \n"]
    lines += [f"{i} , {p} \n" for i, p in zip(ids, predictions.tolist())]
    io.write_text(path, "".join(lines))


# ---------------------------------------------------------------- training
class TrainingDiverged(RuntimeError):
    pass


def task_step(model, batch, smart_config, proximal):
    """Forward one task batch, return (total loss Tensor, logged values).

    SMART's terms are added only when the batch's task is one of ``smart_config.tasks``
    (--smart_tasks); another task's batch is a plain forward, as without --smart.

    With SMART, two snapshots of the random generator let the extra forwards replay the
    clean forward's dropout masks: the averaged model's whole forward replays the first
    (taken before the embedding layer), the perturbed forwards, which start from the
    embedding output, the second."""
    if smart_config is not None and batch.task not in smart_config.tasks:
        smart_config = None
    whole_forward_rng = backend.snapshot_rng() if smart_config is not None else None
    embedded = model.embed(batch)
    encoder_rng = backend.snapshot_rng() if smart_config is not None else None
    output = model.head_output(batch, embedded)
    loss = model.loss(batch, output)
    logged = {f"loss_{batch.task}": loss.item()}
    total = loss
    # A term whose weight is 0 is not computed at all (not logged either): the ablation's
    # "R_s only" and "Bregman only" rows then cost only what they use.
    if smart_config is not None and smart_config.lambda_s > 0:
        stats = {}
        smoothness = smoothness_loss(model, batch, embedded, output, smart_config, encoder_rng, stats)
        total = total + smoothness * smart_config.lambda_s
        logged[f"smart_{batch.task}"] = smoothness.item()
        logged.update({f"{key}_{batch.task}": value for key, value in stats.items()})
    if smart_config is not None and smart_config.mu > 0:
        bregman = proximal.bregman_loss(model, batch, output, whole_forward_rng)
        total = total + bregman * smart_config.mu
        logged[f"bregman_{batch.task}"] = bregman.item()
    return total, logged


def step_gradients(model, shared, batches, args, smart_config, proximal, pcgrad_rng, check_loss):
    """Backward one step's batches, ``{task: [TaskBatch, ...]}``, into the parameters' ``.grad``;
    return the step's logged values.

    Each batch's backward starts from its total loss times ``--TASK_loss_weight``, so g_t
    below is the weighted task's gradient. A task's batch gradients add up in ``.grad``. With one task that is all. With several,
    each task's encoder gradient g_t (its ``shared`` parameters) is set aside and cleared
    before the next task's backward, and the encoder then receives sum_t g_t' (with
    --pcgrad: PCGrad's projections, else g_t' = g_t; ``pcgrad.apply_pcgrad``). A head only
    ever receives its own task's gradient. Logged: each task's mean loss (and SMART terms)
    over its batches; with several tasks, each task's encoder-gradient norm
    ``encoder_grad_norm_TASK``, the raw pairwise cosines of the g_t and the conflict fraction.
    ``check_loss(task, value)`` sees each batch's total loss before its backward (and may raise).
    """
    record, task_gradients = {}, []
    for task, task_batches in batches.items():
        sums = {}
        for batch in task_batches:
            loss, logged = task_step(model, batch, smart_config, proximal)
            check_loss(task, loss.item())
            for key, value in logged.items():
                sums[key] = sums.get(key, 0.0) + value
            (loss * getattr(args, f"{task}_loss_weight")).backward()  # gradients of the task's batches add up
        record.update({key: value / len(task_batches) for key, value in sums.items()})
        if len(batches) > 1:  # set this task's encoder gradient aside
            task_gradients.append([p.grad for p in shared])
            for p in shared:
                p.grad = None
    if task_gradients:
        flat = pcgrad.apply_pcgrad(shared, task_gradients, pcgrad_rng, project_conflicts=args.pcgrad)
        record.update(pcgrad.conflict_stats(flat, batches))
        record.update({f"encoder_grad_norm_{task}": float(backend.xp.linalg.norm(g)) for task, g in zip(batches, flat)})
    return record


def shared_parameters(model):
    """The encoder's parameters, which every task's gradient reaches (PCGrad's surgery is on these only)."""
    return [p for name, p in model.named_parameters() if name.startswith("bert.")]


def parameter_groups(model, weight_decay, head_lr_factor=1.0):
    """AdamW's param groups: no weight decay on biases and LayerNorm parameters (the usual
    BERT recipe), and the task heads (every parameter outside the encoder ``model.bert``) at
    ``head_lr_factor`` times the learning rate:

        lr_encoder = lr(step),  lr_heads = head_lr_factor * lr(step)   (AdamW's "lr_scale")
    """
    groups = {(is_head, decays): [] for is_head in (False, True) for decays in (True, False)}
    for name, p in model.named_parameters():
        is_head, decays = not name.startswith("bert."), p.ndim != 1  # 1-D: a bias, a LayerNorm gain or shift
        groups[(is_head, decays)].append(p)
    return [{"params": params, "weight_decay": weight_decay if decays else 0.0,
             "lr_scale": head_lr_factor if is_head else 1.0}
            for (is_head, decays), params in groups.items()]


def train(args):
    """Train as the flags say; return the final state (with "interrupted": the signal's
    number when Ctrl-C or SIGTERM stopped it, last/ saved)."""
    tasks = list(TASKS) if args.task == "all" else [args.task]
    check_run_folder(args)
    check_output_paths(args, tasks)
    try:
        backend.use_device(args.device)
    except RuntimeError as error:
        raise ValueError(f"--device {args.device}: {error}") from None
    backend.seed(args.seed)
    from tinybert.tokenizer import Tokenizer
    if not os.path.isdir(args.weights):
        raise FileNotFoundError(f"{args.weights}: weights folder not found (run `make weights`, or pass --weights)")
    tokenizer = Tokenizer.from_folder(args.weights)
    train_sets = {t: load_task(t, getattr(args, f"{t}_train")) for t in tasks}
    dev_sets = {t: load_task(t, getattr(args, f"{t}_dev")) for t in tasks}
    streams = {t: BatchStream(TASKS.index(t), train_sets[t], args.batch_size, args.seed) for t in tasks}
    per_step = {t: getattr(args, f"{t}_batches_per_step") for t in tasks}
    args.steps_per_epoch = args.steps_per_epoch or default_steps_per_epoch(streams, per_step)
    total_steps = math.ceil(round(args.epochs * args.steps_per_epoch, 6))  # round: 1.5 * 267 is not exact

    model = MultitaskBert(BertModel.from_pretrained(args.weights), args.hidden_dropout_prob, args.cos)
    if args.max_len > model.bert.config.max_position_embeddings:
        raise ValueError(f"--max_len {args.max_len} exceeds the {model.bert.config.max_position_embeddings} "
                         f"positions of {args.weights}")
    model.train()
    shared = shared_parameters(model)
    optimizer = AdamW(parameter_groups(model, args.weight_decay, args.head_lr_factor), lr=args.lr)
    smart_config = SmartConfig(**{k: getattr(args, f"smart_{k}") for k in SmartConfig.__dataclass_fields__}) if args.smart else None
    proximal = ProximalPoint(model, smart_config.beta) if args.smart else None
    pcgrad_rng = np.random.default_rng([args.seed, 99])

    settings = {k: getattr(args, k) for k in RESUME_MUST_MATCH}
    state = {"step": 0, "best_score": None, "best_epoch": None, "best_scores": None, "settings": settings,
             "evaluated_epoch": 0, "first_loss": {}}
    last, best = os.path.join(args.out, "last"), os.path.join(args.out, "best")
    if args.resume:
        groups, state = checkpoint.load(last)
        for key, value in settings.items():
            saved = state["settings"].get(key, SETTINGS_BEFORE_THEY_EXISTED.get(key))
            if saved != value:
                raise ValueError(f"{last}: checkpoint was trained with --{key}={saved}, this run has --{key}={value}")
        checkpoint.restore(groups, state, model, optimizer, proximal, os.path.join(last, "checkpoint.safetensors"))
        backend.set_rng_state(state["rng"])
        pcgrad_rng.bit_generator.state = state["pcgrad_rng"]
        state.setdefault("evaluated_epoch", epoch_at(state["step"], args.steps_per_epoch))  # older checkpoints
        state.setdefault("first_loss", {})
        record_resume(args, state)
        trim_log(os.path.join(args.out, "metrics.jsonl"), state, args.steps_per_epoch)
        print(f"resumed {last} at step {state['step']}", file=sys.stderr)
    elif args.overwrite:
        clear_run_folder(args.out)
    for name in ("", "last", "best", "model", "predictions"):  # what a kill -9 mid-save left
        io.remove_temporaries(os.path.join(args.out, name))
    os.makedirs(args.out, exist_ok=True)
    io.write_text(os.path.join(args.out, "args.json"), json.dumps(vars(args), indent=2))
    io.write_text(os.path.join(args.out, "machine.json"), json.dumps(machine.describe(), indent=2))
    log = open(os.path.join(args.out, "metrics.jsonl"), "a")

    def save(folder):
        state["rng"] = backend.rng_state()
        state["pcgrad_rng"] = pcgrad_rng.bit_generator.state
        checkpoint.save(folder, model, optimizer, proximal, state)

    def evaluate():
        evaluate_epoch(model, tasks, dev_sets, tokenizer, args, state, log, save, best)
        state["evaluated_epoch"] = epoch_at(state["step"], args.steps_per_epoch)
        save(last)

    interrupted = []  # the signal's number; the loop saves last/ and returns at the end of the step
    previous_handlers = {number: signal.signal(number, lambda number, frame: interrupted.append(number))
                         for number in (signal.SIGINT, signal.SIGTERM)}
    progress = Progress(total_steps - state["step"], f"train {args.task}")
    last_saved = time.time()
    try:
        if (evaluation_due(state["step"], args.steps_per_epoch, total_steps)  # saved, then stopped before evaluating
                and state["evaluated_epoch"] < epoch_at(state["step"], args.steps_per_epoch)):
            evaluate()
        while state["step"] < total_steps:
            step, step_started, cpu_started = state["step"], time.time(), machine.cpu_clock()
            optimizer.lr = linear_warmup_decay(step, total_steps, int(args.warmup * total_steps), args.lr)
            record = {"type": "step", "step": step + 1, "epoch": step // args.steps_per_epoch + 1, "lr": optimizer.lr}
            batches = {task: [encode_batch(task, streams[task].batch(step * per_step[task] + k), tokenizer,
                                           args.max_len, args.cos) for k in range(per_step[task])]
                       for task in tasks}
            # --smart_every: SMART's two terms on one step in that many, a plain step between
            step_smart = smart_config if smart_config is not None and step % smart_config.every == 0 else None
            record.update(step_gradients(model, shared, batches, args, step_smart, proximal, pcgrad_rng,
                                         lambda task, value: check_loss(task, value, step, state, args, last)))
            record["grad_norm"] = clip_grad_norm(model.parameters(), args.clip)
            if not math.isfinite(record["grad_norm"]):  # a NaN update would reach the next checkpoint
                raise TrainingDiverged(f"the gradient norm is {record['grad_norm']} at step {step + 1}; "
                                       f"stopped, {what_is_kept(last)}")
            optimizer.step()
            optimizer.zero_grad()
            if proximal is not None:
                proximal.update(model, smart_config.beta_at(step, total_steps))
            state["step"] = step + 1
            # training time only, as the peer counts it (tools/peer.py): saves and evaluations left out
            record["step_seconds"] = round(time.time() - step_started, 3)
            state["seconds"] = record["seconds"] = round(state.get("seconds", 0.0) + record["step_seconds"], 2)
            record["cpu_steal"] = machine.steal_fraction(cpu_started, machine.cpu_clock())
            log.write(json.dumps(record) + "\n")
            log.flush()
            progress.update(1, **{k: v for k, v in record.items() if k.startswith("loss_")})
            if evaluation_due(state["step"], args.steps_per_epoch, total_steps):
                save(last)  # before the evaluation, which can fail too
                evaluate()
                last_saved = time.time()
            elif time.time() - last_saved > 60 * args.save_every_minutes:  # a crash loses little
                save(last)
                last_saved = time.time()
            if interrupted:
                save(last)
                print(f"\ninterrupted: saved {last} at step {state['step']}; continue with --resume", file=sys.stderr)
                return {**state, "interrupted": interrupted[0]}
    finally:
        for number, handler in previous_handlers.items():
            signal.signal(number, handler)
        progress.close()
        log.close()
    write_all_predictions(model, tasks, tokenizer, args, state, best)
    from tinybert.predict import save_model_folder
    save_model_folder(os.path.join(args.out, "model"), model, tokenizer, tasks, args, state)
    return state


def what_is_kept(last):
    """The end of a divergence message: what a user can go back to."""
    if os.path.exists(os.path.join(last, "checkpoint.safetensors")):
        return f"the last good checkpoint in {last} is kept"
    return "no checkpoint had been saved yet"


def check_loss(task, value, step, state, args, last):
    """Stop (TrainingDiverged) when a batch's loss is not finite or exceeds --max_loss_factor
    times the task's first loss (at least 1): the parameters are heading for overflow and the
    update must not reach a checkpoint, nor the model best/."""
    first = state["first_loss"].setdefault(task, value)
    limit = args.max_loss_factor * max(first, 1.0) if math.isfinite(first) else math.inf
    if not math.isfinite(value) or value > limit:
        reason = "" if not math.isfinite(value) else f", over {args.max_loss_factor:g} x its first value {first:.4g} (--max_loss_factor)"
        raise TrainingDiverged(f"the loss of task {task!r} is {value:.4g} at step {step + 1}{reason}; the training "
                               f"diverged (a lower --lr may help); stopped, {what_is_kept(last)}")


def evaluate_epoch(model, tasks, dev_sets, tokenizer, args, state, log, save, best):
    """Score the dev sets; on a new best (mean of the task metrics), keep the checkpoint in
    best/ and write the dev prediction files from this very evaluation."""
    epoch, started = epoch_at(state["step"], args.steps_per_epoch), time.time()
    scores, predictions = {}, {}
    for task in tasks:
        predictions[task] = predict(model, task, dev_sets[task], tokenizer, args)
        scores[task] = metric(task, dev_sets[task], *predictions[task])
    score = float(np.mean(list(scores.values())))
    if not math.isfinite(score):  # a model whose outputs overflowed is never kept as best/
        raise TrainingDiverged(f"the dev scores of epoch {epoch} are {scores}: the model's outputs overflowed; "
                               "stopped, this model is not kept as best/")
    log.write(json.dumps({"type": "eval", "step": state["step"], "epoch": epoch,
                          **{f"dev_{t}": v for t, v in scores.items()}, "dev_mean": score,
                          "minutes": round(state.get("seconds", 0.0) / 60, 3),
                          "eval_seconds": round(time.time() - started, 2)}) + "\n")
    log.flush()
    print("\nepoch " + str(epoch) + ": " + "  ".join(f"dev_{t} {v:.4f}" for t, v in scores.items()), file=sys.stderr)
    if state["best_score"] is None or score > state["best_score"]:
        state["best_score"], state["best_epoch"], state["best_scores"] = score, epoch, scores
        for task, (ids, values) in predictions.items():
            write_predictions(getattr(args, f"{task}_dev_out"), task, ids, values)
        save(best)


def write_all_predictions(model, tasks, tokenizer, args, state, best):
    """Test predictions of the best epoch in the CS224N files (its dev predictions were
    written when it was evaluated), and its dev metrics in dev_metrics.json."""
    groups, _ = checkpoint.load(best)
    model.load_state_dict(groups["model"], source=best)
    for task in [] if args.no_test_predictions else tasks:
        test_path = getattr(args, f"{task}_test")
        if not os.path.exists(test_path):
            print(f"no {task} test file at {test_path}: skipping its test predictions", file=sys.stderr)
            continue
        ids, predictions = predict(model, task, load_task(task, test_path, labelled=False), tokenizer, args)
        write_predictions(getattr(args, f"{task}_test_out"), task, ids, predictions)
    io.write_text(os.path.join(args.out, "dev_metrics.json"), json.dumps(state["best_scores"], indent=2))
    print("best dev: " + "  ".join(f"{k} {v:.4f}" for k, v in state["best_scores"].items()), file=sys.stderr)


def main(argv=None):
    args = parse_args(argv)
    try:
        state = train(args)
    except (TrainingDiverged, FileNotFoundError, ValueError, KeyError) as error:
        sys.exit(f"train.py: {error.args[0] if isinstance(error, KeyError) else error}")
    if "interrupted" in state:  # what a shell reports for a process stopped by that signal
        sys.exit(128 + state["interrupted"])


if __name__ == "__main__":
    main()
