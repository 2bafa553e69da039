"""A training run's folder and bookkeeping, so that train.py's loop is the method alone.

    run = TrainingRun(args, tasks)         # refuses a folder or output path it must not use, now
    test_sets = load_test_sets(args, tasks)   # a bad test file fails now, not after the training
    ...                                    # build the model, the optimizer, ...
    with run.start(model, optimizer, proximal, pcgrad_rng, tokenizer, dev_sets, total_steps):
        for step, record in run.steps():   # the training step fills ``record``
            ...
    state = run.finish(test_sets)          # test predictions, dev_metrics.json, model/

The run folder (``args.out``) holds metrics.jsonl (one JSON object per step and per
evaluation), args.json, machine.json, last/ and best/ checkpoints, predictions/ and model/.
Nothing is lost: a folder that holds a run (a file a run writes, RUN_FOLDERS) is refused unless
--resume (or --overwrite, which removes those files and nothing else); no output may land on an
input or on a file of the run (check_output_paths); a resume reads and checks every file of the
run before it writes one; a bad test file fails before the training (load_test_sets); last/
is saved at the end of an epoch before the evaluation and again after it, and every
--save_every_minutes; Ctrl-C and SIGTERM save last/ and end the run at the end of the step; a
loss that is not finite or grows past --max_loss_factor times its first value stops the run
(TrainingDiverged) before the model can become best/.

A step's "seconds" in the log are the training time so far, saves and evaluations left out
(as tools/peer.py counts them); "cpu_steal" is the share of the machine's CPU time that the
hypervisor of a virtual machine gave elsewhere during the step (it lengthens the minutes, not
the work).
"""
import json
import math
import os
import signal
import sys
import time

import numpy as np

from .. import backend
from ..data import load_task
from ..multitask import TASKS
from . import checkpoint, files, machine
from .evaluation import metric, predict, write_predictions
from .predict import save_model_folder
from .progress import Progress

# What a run writes in its folder, by name: the run's files, and the files it writes in each of
# its folders (model/ is RUN/model as tinybert.run.predict.save_model_folder writes it). Only
# these tell that a folder holds a run, and only these does --overwrite remove.
RUN_FILES = ("metrics.jsonl", "args.json", "machine.json", "resumes.jsonl", "dev_metrics.json")
CHECKPOINT_FILES = ("checkpoint.safetensors", "state.json")
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
               "heads.safetensors", "tasks.json")
RUN_FOLDERS = {"last": CHECKPOINT_FILES, "best": CHECKPOINT_FILES, "model": MODEL_FILES,
               "predictions": tuple(f"{task}-{split}-output.csv" for task in TASKS for split in ("dev", "test"))}
RUN_ENTRIES = RUN_FILES + tuple(RUN_FOLDERS)
# Settings a checkpoint must share with the run that resumes it.
RESUME_MUST_MATCH = ("task", "cos", "pcgrad", "smart", "batch_size", "max_len", "seed", "steps_per_epoch", "epochs",
                     "sst_batches_per_step", "para_batches_per_step", "sts_batches_per_step", "head_lr_factor",
                     "smart_tasks", "smart_every", "sst_loss_weight", "para_loss_weight", "sts_loss_weight")
# Those of RESUME_MUST_MATCH that came after checkpoints had been saved: a checkpoint (or
# args.json) without one was trained as its value here says.
SETTINGS_BEFORE_THEY_EXISTED = {"head_lr_factor": 1.0, "smart_tasks": list(TASKS), "smart_every": 1,
                                **{f"{task}_loss_weight": 1.0 for task in TASKS}}


class TrainingDiverged(RuntimeError):
    pass


def run_files_held(out, entries=RUN_ENTRIES):
    """The files of a run in ``out`` ("metrics.jsonl", "last/checkpoint.safetensors", ...):
    of ``entries``, the files there, and in a folder of RUN_FOLDERS the names a run writes in it."""
    held = []
    for name in entries:
        path = os.path.join(out, name)
        if name in RUN_FOLDERS:
            held += [f"{name}/{file}" for file in RUN_FOLDERS[name] if os.path.isfile(os.path.join(path, file))]
        elif os.path.isfile(path):
            held.append(name)
    return held


def check_run_folder(out, resume, overwrite, entries=RUN_ENTRIES):
    """A folder that holds a run is only continued (--resume) or replaced (--overwrite);
    ``resume`` None: the program cannot continue a run (tools/peer.py). A model/ holding
    files a run does not write is refused either way: the run replaces model/ as a whole."""
    model = os.path.join(out, "model")
    if "model" in entries and os.path.isdir(model):
        foreign = sorted(name for name in os.listdir(model) if name not in MODEL_FILES
                         and not (name.startswith(".") and name.endswith(".tmp")))
        if foreign:
            raise ValueError(f"{model}: holds {', '.join(foreign)}, which a run does not write, and a run replaces "
                             f"{model} as a whole when it ends: move {'it' if len(foreign) == 1 else 'them'} "
                             "or pick another --out")
    held = run_files_held(out, entries)
    if held and not (resume or overwrite):
        hint = "" if resume is None else "continue it with --resume, "
        raise ValueError(f"{out}: holds a run already ({', '.join(held)}); {hint}"
                         "replace it with --overwrite, or pick another --out")


def clear_run_folder(out, entries=RUN_ENTRIES):
    """--overwrite: remove the previous run's files (run_files_held), and a folder of the run
    they leave empty; nothing else. Says on stderr what it removed."""
    removed = run_files_held(out, entries)
    for name in removed:
        os.remove(os.path.join(out, name))
    for name in RUN_FOLDERS:
        path = os.path.join(out, name)
        if name in entries and os.path.isdir(path) and not os.path.islink(path):
            files.remove_temporaries(path)
            if not os.listdir(path):
                os.rmdir(path)
    if removed:
        print(f"--overwrite: removed the previous run's {', '.join(removed)} from {out}", file=sys.stderr)
    return removed


def output_paths(args, tasks):
    """Every file train.py will write outside last/, best/ and model/: the prediction files."""
    splits = ["dev"] if args.no_test_predictions else ["dev", "test"]
    return [getattr(args, f"{task}_{split}_out") for task in tasks for split in splits]


def input_paths(args):
    """(flag, path) of every file a run reads: the data files of every task, the weights folder's files."""
    found = [(f"--{task}_{split}", getattr(args, f"{task}_{split}")) for task in TASKS
             for split in ("train", "dev", "test") if getattr(args, f"{task}_{split}", None)]
    for folder, _, names in sorted(os.walk(args.weights)) if os.path.isdir(args.weights) else []:
        found += [("--weights", os.path.join(folder, name)) for name in sorted(names)]
    return found


def same_file(a, b):
    """``a`` and ``b`` name one file: the same path once resolved (symlinks too), or one inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    return os.path.isfile(a) and os.path.isfile(b) and os.path.samefile(a, b)


def lies_in(path, folder):
    resolved, folder = os.path.realpath(path), os.path.realpath(folder)
    return resolved == folder or resolved.startswith(folder.rstrip(os.sep) + os.sep)


def check_no_output_on_an_input(args, tasks):
    """No prediction file may land on an input (a data file, a file of the weights folder)
    or on a file of the run (metrics.jsonl, ..., what last/, best/, model/ hold), and no file
    of the run on an input: refused with one line naming both paths."""
    flag_of = {path: f"--{task}_{split}_out" for task in tasks for split in ("dev", "test")
               for path in [getattr(args, f"{task}_{split}_out")]}
    inputs = input_paths(args)
    for path in output_paths(args, tasks):
        for flag, source in inputs:
            if same_file(path, source):
                raise ValueError(f"{path}: {flag_of[path]} would overwrite {source}, an input ({flag}); "
                                 "pick another path")
        for name in RUN_FILES:
            if same_file(path, os.path.join(args.out, name)):
                raise ValueError(f"{path}: {flag_of[path]} would overwrite {os.path.join(args.out, name)}, "
                                 "the run's own file; pick another path")
        for name in ("last", "best", "model"):
            if lies_in(path, os.path.join(args.out, name)):
                raise ValueError(f"{path}: {flag_of[path]} lies in {os.path.join(args.out, name)}, which the run "
                                 "writes (model/ it replaces as a whole); pick another path")
    for flag, source in inputs:
        for name in RUN_FILES + ("last", "best", "model"):
            own = os.path.join(args.out, name)
            if same_file(source, own) or (name in RUN_FOLDERS and lies_in(source, own)):
                where = "is" if same_file(source, own) else "lies in"
                raise ValueError(f"{source}: an input ({flag}) {where} {own}, which the run writes; "
                                 "pick another --out or move the input")


def check_output_paths(args, tasks):
    """Fail now, not after an epoch of training, if the run folder or a prediction file
    cannot be written: the path is a folder, lies under a file, or in a read-only folder; it
    lands on an input or on a file of the run (check_no_output_on_an_input); a file of the run
    is a folder there, or a folder of the run a file."""
    paths = output_paths(args, tasks)
    repeated = sorted({path for path in paths if paths.count(path) > 1})
    if repeated:
        raise ValueError(f"{repeated[0]}: given as more than one prediction file")
    check_no_output_on_an_input(args, tasks)
    for name in RUN_ENTRIES:
        path, is_folder = os.path.join(args.out, name), name in RUN_FOLDERS
        if os.path.exists(path) and os.path.isdir(path) != is_folder:
            raise ValueError(f"{path}: is {'a file' if is_folder else 'a folder'}, where the run keeps its "
                             f"{name}{'/' if is_folder else ''}; move it or pick another --out")
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


def resume_changes(args):
    """{flag: [before, now]} of the flags a resume changed (RESUME_MUST_MATCH and --resume,
    --overwrite left out), and "machine" when machine.json names another machine; args.json
    and machine.json must be JSON objects (a ValueError naming the file)."""
    path = os.path.join(args.out, "args.json")
    if not os.path.exists(path):
        return {}
    before, now = files.read_json(path), vars(args)
    changed = {k: [before[k], now[k]] for k in now if k in before and before[k] != now[k]
               and k not in RESUME_MUST_MATCH + ("resume", "overwrite")}
    machine_path = os.path.join(args.out, "machine.json")
    if os.path.exists(machine_path):
        machine_before, machine_now = files.read_json(machine_path), machine.describe()
        if machine_before != machine_now:
            changed["machine"] = [machine_before, machine_now]
    return changed


def record_resume(args, state, changed=None):
    """Flags a resume may change (--lr, --eval_batch_size, ...) but that change the run: each
    change is printed and appended to OUT/resumes.jsonl with the step it took effect. So is a
    change of machine (machine.json, rewritten by every session): the run's minutes from that
    step on were measured on another CPU or BLAS. ``changed``: resume_changes(args), read before."""
    changed = resume_changes(args) if changed is None else changed
    if not changed:
        return
    with open(os.path.join(args.out, "resumes.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": state["step"], "changed": changed}) + "\n")
    print("resumed with " + ", ".join(f"the machine changed from {a} to {b}" if k == "machine" else
                                      f"--{k} changed from {a} to {b}" for k, (a, b) in changed.items())
          + f" (recorded in {os.path.join(args.out, 'resumes.jsonl')})", file=sys.stderr)


def log_lines_kept(path, state):
    """The lines of metrics.jsonl that trim_log keeps (None: no log). Every line must be a
    record with a "type", a whole-number "step" and, an evaluation, an "epoch": else a
    ValueError naming the file and the line."""
    if not os.path.exists(path):
        return None
    kept = []
    for number, record, line in files.read_jsonl(path):
        keys = ("type", "step", "epoch") if record.get("type") == "eval" else ("type", "step")
        missing = [key for key in keys if key not in record]
        if missing:
            raise ValueError(f"{path}, line {number}: no {missing[0]!r}")
        if not isinstance(record["step"], int) or isinstance(record["step"], bool):
            raise ValueError(f"{path}, line {number}: 'step' is not a whole number ({record['step']!r})")
        if record["type"] == "eval" and not isinstance(record["epoch"], (int, float)):
            raise ValueError(f"{path}, line {number}: 'epoch' is not a number ({record['epoch']!r})")
        evaluated = record["type"] != "eval" or record["epoch"] <= state["evaluated_epoch"]
        if record["step"] <= state["step"] and evaluated:
            kept.append(line if line.endswith("\n") else line + "\n")
    return kept


def trim_log(path, state, kept=None):
    """Drop from metrics.jsonl what a killed run logged after its last/ checkpoint (steps past
    it, an evaluation not yet recorded in it, a half-written line), so a resumed run's log
    reads as if it had never stopped. ``kept``: log_lines_kept(path, state), read before."""
    kept = log_lines_kept(path, state) if kept is None else kept
    if kept is not None:
        files.write_text(path, "".join(kept))


def what_is_kept(out):
    """The end of a message that stops a run: what a user can go back to."""
    last = os.path.join(out, "last")
    if os.path.exists(os.path.join(last, "checkpoint.safetensors")):
        return f"the last good checkpoint in {last} is kept"
    return "no checkpoint had been saved yet"


def epoch_at(step, steps_per_epoch):
    """The epochs done after ``step`` steps: a whole number at an epoch's end, else to 3 decimals
    (the end of a run whose --epochs has a fraction)."""
    return step // steps_per_epoch if step % steps_per_epoch == 0 else round(step / steps_per_epoch, 3)


def evaluation_due(step, steps_per_epoch, total_steps):
    """The dev sets are evaluated at the end of every epoch and at the last step."""
    return step % steps_per_epoch == 0 or step == total_steps


class TrainingRun:
    """One run of train.py: its folder, log, checkpoints, evaluations and signals."""

    def __init__(self, args, tasks):
        self.args, self.tasks = args, tasks
        check_run_folder(args.out, args.resume, args.overwrite)
        check_output_paths(args, tasks)
        self.last, self.best = os.path.join(args.out, "last"), os.path.join(args.out, "best")
        self.interrupted = []   # the signal's number; the step ends, last/ is saved, the run returns

    def start(self, model, optimizer, proximal, pcgrad_rng, tokenizer, dev_sets, total_steps):
        """Resume from last/ (--resume) or begin afresh (--overwrite removes the previous run's
        files first, clear_run_folder); write args.json and machine.json, open the log. Use as ``with``: the
        signal handlers are in place inside the block."""
        args = self.args
        self.model, self.optimizer, self.proximal, self.pcgrad_rng = model, optimizer, proximal, pcgrad_rng
        self.tokenizer, self.dev_sets, self.total_steps = tokenizer, dev_sets, total_steps
        settings = {k: getattr(args, k) for k in RESUME_MUST_MATCH}
        self.state = {"step": 0, "best_score": None, "best_epoch": None, "best_scores": None, "settings": settings,
                      "evaluated_epoch": 0, "first_loss": {}}
        if args.resume:
            self._resume(settings)
        elif args.overwrite:
            clear_run_folder(args.out)
        for name in ("", "last", "best", "model", "predictions"):  # what a kill -9 mid-save left
            files.remove_temporaries(os.path.join(args.out, name))
        os.makedirs(args.out, exist_ok=True)
        files.write_text(os.path.join(args.out, "args.json"), json.dumps(vars(args), indent=2))
        files.write_text(os.path.join(args.out, "machine.json"), json.dumps(machine.describe(), indent=2))
        self.log = open(os.path.join(args.out, "metrics.jsonl"), "a")
        return self

    def _resume(self, settings):
        """Every file the resume reads is read and checked before it writes anything: a failed
        resume leaves the folder as it was."""
        groups, state = checkpoint.load(self.last)
        for key, value in settings.items():
            saved = state["settings"].get(key, SETTINGS_BEFORE_THEY_EXISTED.get(key))
            if saved != value:
                raise ValueError(f"{self.last}: checkpoint was trained with --{key}={saved}, "
                                 f"this run has --{key}={value}")
        if os.path.exists(os.path.join(self.last, "state.json")):
            files.read_json(os.path.join(self.last, "state.json"))  # its readable copy, damaged by hand?
        state.setdefault("evaluated_epoch", epoch_at(state["step"], self.args.steps_per_epoch))  # older checkpoints
        state.setdefault("first_loss", {})
        changed = resume_changes(self.args)
        log = os.path.join(self.args.out, "metrics.jsonl")
        kept = log_lines_kept(log, state)
        checkpoint.restore(groups, state, self.model, self.optimizer, self.proximal,
                           os.path.join(self.last, "checkpoint.safetensors"))
        backend.set_rng_state(state["rng"])
        self.pcgrad_rng.bit_generator.state = state["pcgrad_rng"]
        self.state = state
        record_resume(self.args, state, changed)
        trim_log(log, state, kept)
        print(f"resumed {self.last} at step {state['step']}", file=sys.stderr)

    def __enter__(self):
        self.previous_handlers = {number: signal.signal(number, lambda number, frame: self.interrupted.append(number))
                                  for number in (signal.SIGINT, signal.SIGTERM)}
        self.progress = Progress(self.total_steps - self.state["step"], f"train {self.args.task}")
        return self

    def __exit__(self, *exc):
        for number, handler in self.previous_handlers.items():
            signal.signal(number, handler)
        self.progress.close()
        self.log.close()

    def steps(self):
        """Yield (step, record) for every step left, ``record`` the step's log entry for the
        training step to fill; after each, log it with the step's time, save last/ and
        evaluate when due, and stop after a signal (last/ saved)."""
        args, state = self.args, self.state
        if (evaluation_due(state["step"], args.steps_per_epoch, self.total_steps)  # saved, then stopped before evaluating
                and state["evaluated_epoch"] < epoch_at(state["step"], args.steps_per_epoch)):
            self.evaluate()
        last_saved = time.time()
        while state["step"] < self.total_steps:
            step, step_started, cpu_started = state["step"], time.time(), machine.cpu_clock()
            record = {"type": "step", "step": step + 1, "epoch": step // args.steps_per_epoch + 1}
            yield step, record
            state["step"] = step + 1
            # training time only, as the peer counts it (tools/peer.py): saves and evaluations left out
            record["step_seconds"] = round(time.time() - step_started, 3)
            state["seconds"] = record["seconds"] = round(state.get("seconds", 0.0) + record["step_seconds"], 2)
            record["cpu_steal"] = machine.steal_fraction(cpu_started, machine.cpu_clock())
            self.log.write(json.dumps(record) + "\n")
            self.log.flush()
            self.progress.update(1, **{k: v for k, v in record.items() if k.startswith("loss_")})
            if evaluation_due(state["step"], args.steps_per_epoch, self.total_steps):
                self.save(self.last)  # before the evaluation, which can fail too
                self.evaluate()
                last_saved = time.time()
            elif time.time() - last_saved > 60 * args.save_every_minutes:  # a crash loses little
                self.save(self.last)
                last_saved = time.time()
            if self.interrupted:
                self.save(self.last)
                print(f"\ninterrupted: saved {self.last} at step {state['step']}; continue with --resume",
                      file=sys.stderr)
                return

    def save(self, folder):
        self.state["rng"] = backend.rng_state()
        self.state["pcgrad_rng"] = self.pcgrad_rng.bit_generator.state
        checkpoint.save(folder, self.model, self.optimizer, self.proximal, self.state)

    def what_is_kept(self):
        """The end of a divergence message: what a user can go back to."""
        return what_is_kept(self.args.out)

    def check_loss(self, task, value):
        """Stop (TrainingDiverged) when a batch's loss is not finite or exceeds --max_loss_factor
        times the task's first loss (at least 1): the parameters are heading for overflow and the
        update must not reach a checkpoint, nor the model best/."""
        factor, step = self.args.max_loss_factor, self.state["step"]   # the step under way
        first = self.state["first_loss"].setdefault(task, value)
        limit = factor * max(first, 1.0) if math.isfinite(first) else math.inf
        if not math.isfinite(value) or value > limit:
            reason = "" if not math.isfinite(value) else f", over {factor:g} x its first value {first:.4g} (--max_loss_factor)"
            raise TrainingDiverged(f"the loss of task {task!r} is {value:.4g} at step {step + 1}{reason}; the training "
                                   f"diverged (a lower --lr may help); stopped, {self.what_is_kept()}")

    def check_grad_norm(self, grad_norm):
        """Stop before a NaN or infinite update can reach the next checkpoint."""
        if not math.isfinite(grad_norm):
            raise TrainingDiverged(f"the gradient norm is {grad_norm} at step {self.state['step'] + 1}; "
                                   f"stopped, {self.what_is_kept()}")

    def evaluate(self):
        """Score the dev sets; on a new best (mean of the task metrics), keep the checkpoint in
        best/ and write the dev prediction files from this very evaluation; then save last/."""
        args, state = self.args, self.state
        epoch, started = epoch_at(state["step"], args.steps_per_epoch), time.time()
        scores, predictions = {}, {}
        for task in self.tasks:
            predictions[task] = predict(self.model, task, self.dev_sets[task], self.tokenizer, args.max_len,
                                        args.eval_batch_size)
            scores[task] = metric(task, self.dev_sets[task], *predictions[task])
        score = float(np.mean(list(scores.values())))
        if not math.isfinite(score):  # a model whose outputs overflowed is never kept as best/
            raise TrainingDiverged(f"the dev scores of epoch {epoch} are {scores}: the model's outputs overflowed; "
                                   "stopped, this model is not kept as best/")
        self.log.write(json.dumps({"type": "eval", "step": state["step"], "epoch": epoch,
                                   **{f"dev_{t}": v for t, v in scores.items()}, "dev_mean": score,
                                   "minutes": round(state.get("seconds", 0.0) / 60, 3),
                                   "eval_seconds": round(time.time() - started, 2)}) + "\n")
        self.log.flush()
        print("\nepoch " + str(epoch) + ": " + "  ".join(f"dev_{t} {v:.4f}" for t, v in scores.items()),
              file=sys.stderr)
        if state["best_score"] is None or score > state["best_score"]:
            state["best_score"], state["best_epoch"], state["best_scores"] = score, epoch, scores
            for task, (ids, values) in predictions.items():
                write_predictions(getattr(args, f"{task}_dev_out"), task, ids, values)
            self.save(self.best)
        state["evaluated_epoch"] = epoch
        self.save(self.last)

    def finish(self, test_sets=None):
        """After the last step: the best epoch's test predictions in the CS224N files (its dev
        predictions were written when it was evaluated), its dev metrics in dev_metrics.json and
        its model in model/. ``test_sets``: {task: examples} read before training (a task
        without one has no test file); None: read them now. Returns the final state (with
        "interrupted": the signal's number when one stopped the run, and then nothing is written)."""
        args, state = self.args, self.state
        if self.interrupted:
            return {**state, "interrupted": self.interrupted[0]}
        groups, _ = checkpoint.load(self.best)
        self.model.load_state_dict(groups["model"], source=self.best)
        test_sets = load_test_sets(args, self.tasks) if test_sets is None else test_sets
        for task in [] if args.no_test_predictions else self.tasks:
            if task not in test_sets:
                print(f"no {task} test file at {getattr(args, f'{task}_test')}: skipping its test predictions",
                      file=sys.stderr)
                continue
            ids, values = predict(self.model, task, test_sets[task], self.tokenizer, args.max_len, args.eval_batch_size)
            write_predictions(getattr(args, f"{task}_test_out"), task, ids, values)
        files.write_text(os.path.join(args.out, "dev_metrics.json"), json.dumps(state["best_scores"], indent=2))
        print("best dev: " + "  ".join(f"{k} {v:.4f}" for k, v in state["best_scores"].items()), file=sys.stderr)
        save_model_folder(os.path.join(args.out, "model"), self.model, self.tokenizer, self.tasks, args, state)
        return state


def load_test_sets(args, tasks):
    """{task: examples} of the test files the run will predict (none with --no_test_predictions;
    a missing file is skipped, finish says so): read before training, so that a bad one fails
    before the work it would waste."""
    if args.no_test_predictions:
        return {}
    return {task: load_task(task, getattr(args, f"{task}_test"), labelled=False) for task in tasks
            if os.path.exists(getattr(args, f"{task}_test"))}
