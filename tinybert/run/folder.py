"""What a run folder holds, and which paths a run may write: a folder that holds a run is
refused unless --resume or --overwrite (which removes the run's own files and nothing else); no
output may land on an input or on a file of the run; a resume's changed flags and machine are
recorded, and the log is trimmed to the checkpoint it resumes from. tinybert.run.session uses
these before the first step; tools/peer.py uses the folder checks with its own entries."""
import json
import os
import sys

from ..multitask import TASKS
from . import files, machine

# Settings a checkpoint must share with the run that resumes it.
RESUME_MUST_MATCH = ("task", "cos", "pcgrad", "smart", "batch_size", "max_len", "seed", "steps_per_epoch", "epochs",
                     "sst_batches_per_step", "para_batches_per_step", "sts_batches_per_step", "head_lr_factor",
                     "smart_tasks", "smart_every", "sst_loss_weight", "para_loss_weight", "sts_loss_weight")
# Those of RESUME_MUST_MATCH that came after checkpoints had been saved: a checkpoint (or
# args.json) without one was trained as its value here says.
SETTINGS_BEFORE_THEY_EXISTED = {"head_lr_factor": 1.0, "smart_tasks": list(TASKS), "smart_every": 1,
                                **{f"{task}_loss_weight": 1.0 for task in TASKS}}
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
    for path in paths:
        if lies_in(args.out, path):   # the run folder is that path, or lies inside it
            raise ValueError(f"{path}: a prediction file there would replace the run folder {args.out}; pick a "
                             "file's path")
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
