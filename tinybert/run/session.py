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
Nothing is lost: a folder that holds a run is refused unless --resume (or --overwrite, which
removes the run's own files and nothing else), and no output may land on an input or on a file
of the run (tinybert.run.folder); a resume reads and checks every file of the
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
from . import checkpoint, files, machine
from .folder import (RESUME_MUST_MATCH, SETTINGS_BEFORE_THEY_EXISTED, check_output_paths, check_run_folder,
                     clear_run_folder, log_lines_kept, record_resume, resume_changes, trim_log)
from .evaluation import metric, predict, write_predictions
from .predict import save_model_folder
from .progress import Progress

class TrainingDiverged(RuntimeError):
    pass


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
