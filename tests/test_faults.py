"""Faults and bad input: a run is never lost, and every input class gets one clear line.

Each case here is a row of the README's bad-input table (test_the_readme_table_names_tests_that_exist
keeps the two in step). Training runs use train.py's tiny random BERT on the bundled sample."""
import errno
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from test_train import (ROOT, arguments, assert_same_run, checkpoint_arrays, exit_message,  # noqa: F401
                        interrupt_after_optimizer_step, records, run, tiny_weights)
import train  # noqa: E402  (test_train put the repository root on sys.path)
from tinybert import convert
from tinybert.run import checkpoint, files, folder, machine, session
from tinybert.run.session import TrainingRun
from tinybert.multitask import MultitaskBert
from tinybert.tensor import Tensor
from tinybert.convert import load_pretrained
from tinybert.data import SAMPLE_DATA_DIR


def main_error(argv):
    """The one line train.main exits with."""
    with pytest.raises(SystemExit) as error:
        train.main(argv)
    message = exit_message(error)
    assert "\n" not in message and "Traceback" not in message
    return message


# ---------------------------------------------------------------- flags
BAD_FLAGS = [("--batch_size", "0", "[1, inf)"), ("--hidden_dropout_prob", "1", "[0, 1)"), ("--epochs", "0", "(0, inf)"),
             ("--lr", "nan", "(0, inf)"), ("--lr", "inf", "(0, inf)"), ("--lr", "0", "(0, inf)"),
             ("--lr", "-1", "(0, inf)"), ("--eval_batch_size", "0", "[1, inf)"), ("--max_len", "3", "[4, inf)"),
             ("--warmup", "1", "[0, 1)"), ("--clip", "0", "(0, inf)"), ("--steps_per_epoch", "0", "[1, inf)"),
             ("--seed", "-1", "[0, inf)"), ("--save_every_minutes", "-1", "[0, inf)"),
             ("--max_loss_factor", "1", "(1, inf)"), ("--smart_beta", "1", "[0, 1)"), ("--smart_epsilon", "0", "(0, inf)"),
             ("--weight_decay", "nan", "[0, inf)"), ("--head_lr_factor", "0", "(0, inf)"),
             ("--para_batches_per_step", "0", "[1, inf)")]


@pytest.mark.parametrize("flag,value,interval", BAD_FLAGS)
def test_a_numeric_flag_out_of_range_is_one_usage_line(flag, value, interval, capsys):
    with pytest.raises(SystemExit) as error:
        train.parse_args([flag, value])
    assert error.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: must be in {interval}, got " in err and "Traceback" not in err
    if value == "-1" and flag == "--lr":
        assert "argument --lr: must be in (0, inf), got -1.0" in err


def numeric_flags():
    """{flag name: default} of every flag whose value is a number (--steps_per_epoch's default is None)."""
    defaults = vars(train.parse_args([]))
    numeric = {name: value for name, value in defaults.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)}
    return {**numeric, "steps_per_epoch": 1}


@pytest.mark.parametrize("name", sorted(numeric_flags()))
def test_every_numeric_flag_has_a_range(name, capsys):
    # NaN lies in no range; every integer flag counts something (at least 0)
    bad = "-1" if isinstance(numeric_flags()[name], int) else "nan"
    with pytest.raises(SystemExit) as error:
        train.parse_args([f"--{name}", bad])
    assert error.value.code == 2
    assert f"argument --{name}: must be in " in capsys.readouterr().err


def test_resume_and_overwrite_together_are_refused(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--resume", "--overwrite"])
    assert "pass one of them" in capsys.readouterr().err


def test_cuda_without_a_gpu_is_one_line(tiny_weights, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # as on a machine without CuPy
    message = main_error(arguments(tiny_weights, tmp_path / "out", "--task", "sst", "--device", "cuda"))
    assert message.startswith("train.py: --device cuda: device 'cuda' asked for but CuPy cannot use a GPU here")
    assert not (tmp_path / "out").exists()


def test_max_len_beyond_the_models_positions(tiny_weights, tmp_path):
    message = main_error(arguments(tiny_weights, tmp_path / "out", "--task", "sst") + ["--max_len", "65"])
    assert "--max_len 65 exceeds the 64 positions" in message


# ---------------------------------------------------------------- the run folder
def test_a_second_run_into_the_same_folder_is_refused(tiny_weights, tmp_path):
    run(tiny_weights, tmp_path, "--task", "sst")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    message = main_error(arguments(tiny_weights, tmp_path, "--task", "sst"))
    assert f"{tmp_path}: holds a run already" in message and "--resume" in message and "--overwrite" in message
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # untouched
    (tmp_path / "notes.txt").write_text("mine")
    run(tiny_weights, tmp_path, "--task", "sst", "--overwrite")
    assert [r["step"] for r in records(tmp_path, "step")] == [1, 2, 3]  # not a second copy of the steps
    assert (tmp_path / "notes.txt").read_text() == "mine"  # only the run's own entries are replaced


@pytest.mark.parametrize("problem", ["a folder", "under a file", "a duplicate", "the run folder", "above the run folder"])
def test_a_bad_output_path_fails_before_the_first_step(tiny_weights, tmp_path, problem):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    out = tmp_path / "out"
    flags = {"a folder": ["--sst_dev_out", str(tmp_path / "folder")],
             "under a file": ["--sst_test_out", str(tmp_path / "file" / "test.csv")],
             "a duplicate": ["--sst_dev_out", str(tmp_path / "x.csv"), "--sst_test_out", str(tmp_path / "x.csv")],
             "the run folder": ["--sst_dev_out", str(out)],
             "above the run folder": ["--sst_dev_out", str(tmp_path / "runs"), "--out", str(tmp_path / "runs" / "a")]}
    if problem == "above the run folder":
        out = tmp_path / "runs" / "a"
    message = main_error(arguments(tiny_weights, out, "--task", "sst", *flags[problem]))
    assert {"a folder": "is a folder", "under a file": "is a file", "a duplicate": "more than one",
            "the run folder": "would replace the run folder", "above the run folder": "would replace the run folder",
            }[problem] in message
    assert not out.exists()  # nothing trained, nothing written


def copied_data(tmp_path):
    """A copy of the bundled sample data (a test that fails must not damage the real one)."""
    folder = tmp_path / "data"
    shutil.copytree(SAMPLE_DATA_DIR, folder)
    return folder


def tree(folder):
    """{path: bytes} of every file under ``folder``."""
    return {p: p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}


# (flag, the output path, the path it lands on) with D the data folder, W the weights, RUN the run folder
OUTPUT_ON_INPUT = [("--sst_dev_out", "D/ids-sst-dev.csv", "D/ids-sst-dev.csv"),
                   ("--sst_test_out", "D/ids-sst-test-student.csv", "D/ids-sst-test-student.csv"),
                   ("--sst_dev_out", "D/../data/quora-train.csv", "D/quora-train.csv"),
                   ("--sst_dev_out", "LINK", "D/ids-sst-train.csv"),
                   ("--sst_test_out", "W/config.json", "W/config.json"),
                   ("--sst_dev_out", "RUN/metrics.jsonl", "RUN/metrics.jsonl"),
                   ("--sst_test_out", "RUN/args.json", "RUN/args.json"),
                   ("--sst_dev_out", "RUN/last/checkpoint.safetensors", "RUN/last/checkpoint.safetensors"),
                   ("--sst_test_out", "RUN/model/test.csv", "RUN/model")]


@pytest.mark.parametrize("flag,given,lands_on", OUTPUT_ON_INPUT)
def test_an_output_on_an_input_or_on_a_file_of_the_run_is_refused_before_the_first_step(tiny_weights, tmp_path,
                                                                                        flag, given, lands_on):
    data, out = copied_data(tmp_path), tmp_path / "run"
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    (tmp_path / "link.csv").symlink_to(data / "ids-sst-train.csv")
    places = {"D": str(data), "W": str(weights), "RUN": str(out), "LINK": str(tmp_path / "link.csv")}

    def place(path):
        head, _, rest = path.partition("/")
        return os.path.join(places[head], rest) if rest else places[head]
    before = {**tree(data), **tree(weights)}
    message = main_error(arguments(weights, out, "--task", "sst", "--data_dir", str(data), flag, place(given)))
    assert place(given) in message and place(lands_on) in message, message
    assert {**tree(data), **tree(weights)} == before   # nothing replaced
    assert not out.exists()                             # nothing trained, nothing written


def test_a_folder_of_user_files_is_not_called_a_run_and_never_emptied(tiny_weights, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "my_notes.txt").write_text("mine")
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions" / "kaggle_submission.csv").write_text("mine")
    before = tree(tmp_path)
    for extra in ([], ["--overwrite"]):
        message = main_error(arguments(tiny_weights, tmp_path, "--task", "sst", *extra))
        assert "holds a run already" not in message
        assert f"{tmp_path / 'model'}: holds my_notes.txt, which a run does not write" in message
        assert tree(tmp_path) == before
    (tmp_path / "model" / "my_notes.txt").unlink()
    (tmp_path / "model").rmdir()
    run(tiny_weights, tmp_path, "--task", "sst")          # predictions/ of the user's alone is not a run
    assert (tmp_path / "predictions" / "kaggle_submission.csv").read_text() == "mine"


def test_overwrite_removes_only_the_runs_own_files_and_says_which(tiny_weights, tmp_path, capfd):
    run(tiny_weights, tmp_path, "--task", "sst")
    mine = {tmp_path / "predictions" / "kaggle_submission.csv": "mine", tmp_path / "last" / "notes.txt": "mine",
            tmp_path / "curves-by-hand.png": "mine"}
    for path, text in mine.items():
        path.write_text(text)
    capfd.readouterr()
    run(tiny_weights, tmp_path, "--task", "sst", "--overwrite")
    assert all(path.read_text() == text for path, text in mine.items())
    removed = [line for line in capfd.readouterr().err.splitlines() if line.startswith("--overwrite: removed")]
    assert len(removed) == 1, removed
    assert "metrics.jsonl" in removed[0] and "last/checkpoint.safetensors" in removed[0]
    assert "model/tasks.json" in removed[0] and "predictions/sst-dev-output.csv" in removed[0]
    assert "notes.txt" not in removed[0] and "kaggle" not in removed[0]
    assert [r["step"] for r in records(tmp_path, "step")] == [1, 2, 3]


def test_a_bad_test_file_fails_before_training(tiny_weights, tmp_path):
    data = copied_data(tmp_path)
    test_file = data / "ids-sst-test-student.csv"
    test_file.write_text("index\tident\ttext\n0\ta\tgood\n", encoding="utf-8")
    message = main_error(arguments(tiny_weights, tmp_path / "out", "--task", "sst", "--data_dir", str(data)))
    assert f"{test_file}: wrong header" in message
    assert not (tmp_path / "out").exists()   # found before the first step, not after training and evaluating
    run(tiny_weights, tmp_path / "dev-only", "--task", "sst", "--data_dir", str(data), "--no_test_predictions")


@pytest.mark.parametrize("error", [
    SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),
    OSError(errno.ENOSPC, "No space left on device")])
def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_last_checkpoint(tiny_weights, tmp_path, monkeypatch, error):
    real_save, calls = files.save_file, []

    def save_file(*args, **kwargs):   # the save of last/ at step 6 (after last/, best/, last/ of epoch 1)
        calls.append(1)
        if len(calls) == 4:
            raise error
        return real_save(*args, **kwargs)
    monkeypatch.setattr(files, "save_file", save_file)
    message = main_error(arguments(tiny_weights, tmp_path, "--task", "sst", epochs=2))
    path = tmp_path / "last" / "checkpoint.safetensors"
    assert message == (f"train.py: {path}: no space left on device; the last good checkpoint in {tmp_path / 'last'} "
                       "is kept (free some space, then continue with --resume)")
    assert checkpoint.load(tmp_path / "last")[1]["step"] == 3
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_failure_after_the_epoch_keeps_the_epoch(tiny_weights, tmp_path, monkeypatch):
    # the evaluation fails (a full disk, out of memory): last/ of the epoch is saved already,
    # and --resume evaluates it and goes on as if nothing had happened
    recipe = ("--task", "all", "--smart", "--cos")
    run(tiny_weights, tmp_path / "a", *recipe, epochs=2)
    with monkeypatch.context() as patch:
        def fail(*_):
            raise OSError("No space left on device")
        patch.setattr(TrainingRun, "evaluate", fail)
        with pytest.raises(OSError):
            run(tiny_weights, tmp_path / "b", *recipe, epochs=2)
    assert checkpoint.load(tmp_path / "b" / "last")[1]["step"] == 3
    run(tiny_weights, tmp_path / "b", *recipe, "--resume", epochs=2)
    assert_same_run(tmp_path / "a", tmp_path / "b")


def test_resume_cleans_the_temporaries_of_a_killed_save(tiny_weights, tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        interrupt_after_optimizer_step(patch, 1)
        run(tiny_weights, tmp_path, "--task", "sst", epochs=2)
    left = [tmp_path / "last" / ".checkpoint.safetensors.k1ll3d.tmp", tmp_path / ".metrics.jsonl.x.tmp"]
    for path in left:
        path.write_bytes(b"\0" * 1000)
    (tmp_path / ".model.abc.tmp").mkdir()
    run(tiny_weights, tmp_path, "--task", "sst", "--resume", epochs=2)
    assert not any(path.exists() for path in left) and not (tmp_path / ".model.abc.tmp").exists()
    assert not list(tmp_path.rglob("*.tmp"))


def test_resume_trims_what_the_log_holds_past_the_checkpoint(tmp_path):
    # killed after logging step 7 and the evaluation of epoch 2 (step 6) but before saving
    # them: the checkpoint is at step 6, not yet evaluated; the last line is half written
    lines = [{"type": "step", "step": s, "epoch": (s - 1) // 3 + 1} for s in range(1, 8)]
    lines.insert(3, {"type": "eval", "step": 3, "epoch": 1})
    lines.insert(7, {"type": "eval", "step": 6, "epoch": 2})
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"type": "st')
    folder.trim_log(str(log), {"step": 6, "evaluated_epoch": 1})
    kept = [json.loads(line) for line in log.read_text().splitlines()]
    assert kept == [r for r in lines if r["step"] <= 6 and r != {"type": "eval", "step": 6, "epoch": 2}]


def test_remove_temporaries_keeps_everything_else(tmp_path):
    for name in ("checkpoint.safetensors", ".hidden", "x.tmp", ".a.b.tmp"):
        (tmp_path / name).write_text("")
    assert files.remove_temporaries(tmp_path) == [".a.b.tmp"]
    assert sorted(os.listdir(tmp_path)) == [".hidden", "checkpoint.safetensors", "x.tmp"]


def test_a_changed_learning_rate_on_resume_is_recorded(tiny_weights, tmp_path, capfd):
    run(tiny_weights, tmp_path, "--task", "sst", epochs=1)
    run(tiny_weights, tmp_path, "--task", "sst", "--resume", "--lr", "5e-5", epochs=1)
    recorded = [json.loads(line) for line in (tmp_path / "resumes.jsonl").read_text().splitlines()]
    assert recorded == [{"step": 3, "changed": {"lr": [1e-4, 5e-5]}}]
    assert "--lr changed from 0.0001 to 5e-05" in capfd.readouterr().err


def test_a_resume_on_another_machine_is_recorded(tiny_weights, tmp_path, monkeypatch, capfd):
    run(tiny_weights, tmp_path, "--task", "sst", epochs=1)
    first = json.loads((tmp_path / "machine.json").read_text())
    other = {**first, "cpu": "another CPU"}
    monkeypatch.setattr(machine, "describe", lambda: other)
    run(tiny_weights, tmp_path, "--task", "sst", "--resume", epochs=1)
    recorded = [json.loads(line) for line in (tmp_path / "resumes.jsonl").read_text().splitlines()]
    assert recorded == [{"step": 3, "changed": {"machine": [first, other]}}]
    assert json.loads((tmp_path / "machine.json").read_text()) == other   # the session now running
    assert "the machine changed from" in capfd.readouterr().err


def replace_line(path, number, text):
    lines = path.read_bytes().splitlines(keepends=True)
    lines[number - 1] = text + b"\n"
    path.write_bytes(b"".join(lines))


def state_without(folder, key):
    """Rewrite the checkpoint in ``folder`` with its state less ``key``."""
    path = str(folder / "checkpoint.safetensors")
    state = checkpoint.load(folder)[1]
    del state[key]
    save_file(load_file(path), path, metadata={"state": json.dumps(state)})


# (the file, how it is damaged, what the one line says after the file's path)
DAMAGED_RUN_FILES = [("args.json", lambda p: p.write_text("{"), ": not valid JSON"),
                     ("args.json", lambda p: p.write_text("5"), ": not a JSON object"),
                     ("machine.json", lambda p: p.write_text("null"), ": not a JSON object"),
                     ("machine.json", lambda p: p.write_bytes(b'{"cpu": "\xff"}'), ": not UTF-8"),
                     ("metrics.jsonl", lambda p: replace_line(p, 2, b"5"), ", line 2: not a JSON object"),
                     ("metrics.jsonl", lambda p: replace_line(p, 2, b'{"step": 2}'), ", line 2: no 'type'"),
                     ("metrics.jsonl", lambda p: replace_line(p, 2, b'{"type": "step", "step": "2"}'),
                      ", line 2: 'step' is not a whole number"),
                     ("metrics.jsonl", lambda p: replace_line(p, 2, b'{"type": "step", "step": 2, "x": "\xff"}'),
                      ", line 2: not UTF-8"),
                     ("metrics.jsonl", lambda p: replace_line(p, 2, b'{"type": "st'), ", line 2: not valid JSON"),
                     ("last/state.json", lambda p: p.write_text('{"step": 3'), ": not valid JSON"),
                     ("last/checkpoint.safetensors", lambda p: state_without(p.parent, "settings"),
                      ": the checkpoint's state has no 'settings'")]


@pytest.mark.parametrize("name,damage,problem", DAMAGED_RUN_FILES)
def test_a_damaged_file_of_the_run_blocks_resume_in_one_line_and_nothing_is_written(tiny_weights, tmp_path,
                                                                                     name, damage, problem):
    run(tiny_weights, tmp_path, "--task", "sst")
    damage(tmp_path / name)
    before = tree(tmp_path)
    message = main_error(arguments(tiny_weights, tmp_path, "--task", "sst", "--resume", "--lr", "5e-5"))
    assert message.startswith(f"train.py: {tmp_path / name}{problem}"), message
    assert tree(tmp_path) == before   # no resumes.jsonl, args.json, machine.json or log rewritten


# ---------------------------------------------------------------- divergence
def test_an_exploding_loss_stops_and_is_never_best(tiny_weights, tmp_path, monkeypatch):
    # the loss grows past --max_loss_factor x its first value in epoch 2 (finite, not NaN)
    real_loss, calls = MultitaskBert.loss, []

    def loss(self, batch, output):
        calls.append(1)
        return real_loss(self, batch, output) * (1e6 if len(calls) >= 5 else 1.0)
    monkeypatch.setattr(MultitaskBert, "loss", loss)
    best_before = []
    real_evaluate = TrainingRun.evaluate

    def evaluate(self):
        real_evaluate(self)
        best_before.append(checkpoint_arrays(tmp_path / "best"))
    monkeypatch.setattr(TrainingRun, "evaluate", evaluate)
    message = main_error(arguments(tiny_weights, tmp_path, "--task", "sst", epochs=2))
    assert "step 5" in message and "over 100 x its first value" in message and "lower --lr" in message
    assert f"the last good checkpoint in {tmp_path / 'last'} is kept" in message
    assert checkpoint.load(tmp_path / "best")[1]["step"] == 3  # epoch 1's, untouched
    after = checkpoint_arrays(tmp_path / "best")
    assert all(np.array_equal(after[k], best_before[0][k]) for k in after)
    assert not (tmp_path / "model").exists()


def test_a_huge_learning_rate_is_stopped(tiny_weights, tmp_path):
    message = main_error(arguments(tiny_weights, tmp_path, "--task", "sts", "--lr", "1e3", "--clip", "1e9",
                                   "--steps_per_epoch", "20"))
    assert "the training diverged" in message
    assert not (tmp_path / "best").exists()


def test_nan_before_any_checkpoint_does_not_claim_one(tiny_weights, tmp_path, monkeypatch):
    real_loss = MultitaskBert.loss
    monkeypatch.setattr(MultitaskBert, "loss", lambda self, batch, output: real_loss(self, batch, output) * float("nan"))
    message = main_error(arguments(tiny_weights, tmp_path, "--task", "sst"))
    assert "no checkpoint had been saved yet" in message and "is kept" not in message


def test_non_finite_dev_scores_are_never_best(tiny_weights, tmp_path, monkeypatch):
    monkeypatch.setattr(session, "metric", lambda *_: float("nan"))
    message = main_error(arguments(tiny_weights, tmp_path, "--task", "sst"))
    assert "not kept as best/" in message
    assert not (tmp_path / "best").exists()


# ---------------------------------------------------------------- kill -9 and resume
def train_command(weights, out, *extra):
    return [sys.executable, str(ROOT / "train.py"), *arguments(weights, out, "--task", "all", "--pcgrad", "--smart",
                                                                 "--cos", "--save_every_minutes", "0", epochs=3), *extra]


def test_resume_after_kill_9_is_bit_identical(tiny_weights, tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(train_command(tiny_weights, tmp_path / "a"), check=True, env=environment, capture_output=True)
    process = subprocess.Popen(train_command(tiny_weights, tmp_path / "b"), env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log, deadline = tmp_path / "b" / "metrics.jsonl", time.time() + 120
    while time.time() < deadline and process.poll() is None:  # killed in the middle of epoch 2
        if log.exists() and log.read_text().count('"type": "step"') >= 5:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not (tmp_path / "b" / "dev_metrics.json").exists(), "the run ended before it was killed"
    subprocess.run(train_command(tiny_weights, tmp_path / "b", "--resume"), check=True, env=environment,
                   capture_output=True)
    assert_same_run(tmp_path / "a", tmp_path / "b")
    assert not list((tmp_path / "b").rglob("*.tmp"))


# ---------------------------------------------------------------- weights, config, tokenizer
def broken_weights(tiny_weights, tmp_path, file, content):
    folder = tmp_path / "weights"
    folder.mkdir()
    for path in tiny_weights.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    if isinstance(content, dict):
        values = json.loads((folder / file).read_text())
        values.update(content)
        content = json.dumps(values)
    (folder / file).write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


WEIGHT_DEFECTS = [
    ("config.json", "{", "config.json: not valid JSON"),
    ("config.json", {"hidden_size": "big"}, "config.json: the key 'hidden_size' must be an integer, got 'big'"),
    ("config.json", {"num_hidden_layers": -1}, "config.json: the key 'num_hidden_layers' must be at least 1"),
    ("config.json", {"hidden_size": 48}, "model.safetensors: parameter"),
    ("model.safetensors", b"not safetensors", "model.safetensors: not a readable safetensors file"),
    ("vocab.txt", "[UNK]\n[CLS]\n[SEP]\n", "vocab.txt: the vocabulary has no padding token '[PAD]'"),
    ("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n", "vocab.txt: not a usable BERT vocabulary (sep_token not found"),
    ("tokenizer.json", "{not json", "tokenizer.json: not a valid tokenizer file"),
    ("tokenizer_config.json", "{", "tokenizer_config.json: not valid JSON"),
]


@pytest.mark.parametrize("file,content,problem", WEIGHT_DEFECTS)
def test_every_defect_of_a_weights_folder_is_one_line_naming_the_file(tiny_weights, tmp_path, file, content, problem):
    folder = broken_weights(tiny_weights, tmp_path, file, content)
    assert problem in main_error(arguments(folder, tmp_path / "out", "--task", "sst"))


def test_pickles_never_run(tiny_weights, tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))
    folder = tmp_path / "hf"
    folder.mkdir()
    for name in ("config.json", "vocab.txt"):
        (folder / name).write_bytes((tiny_weights / name).read_bytes())
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    for attempt in (lambda: convert.main([str(folder), str(tmp_path / "out")]),
                    lambda: load_pretrained(str(folder)),
                    lambda: load_pretrained(str(folder / "pytorch_model.bin")),
                    lambda: train.main(arguments(folder, tmp_path / "run", "--task", "sst"))):
        with pytest.raises((SystemExit, ValueError), match="refusing a pickle"):
            attempt()
    assert not marker.exists()
    pickle.loads((folder / "pytorch_model.bin").read_bytes()).close()  # the payload is live: it does run
    assert marker.exists()


# ---------------------------------------------------------------- convert
def test_convert_never_writes_into_its_source(tmp_path):
    source = tmp_path / "hf"
    source.mkdir()
    for path in (ROOT / "tests" / "fixtures" / "tiny_bert_hf").iterdir():
        (source / path.name).write_bytes(path.read_bytes())
    before = {p.name: p.read_bytes() for p in source.iterdir()}
    for destination in (source, source / "inside"):
        with pytest.raises(SystemExit) as error:
            convert.main([str(source), str(destination), "--overwrite"])
        assert "is the source folder" in exit_message(error)
    assert {p.name: p.read_bytes() for p in source.iterdir()} == before


def test_convert_into_a_folder_that_is_not_empty(tmp_path):
    source, tinybert_folder, other = ROOT / "tests" / "fixtures" / "tiny_bert_hf", tmp_path / "tiny", tmp_path / "other"
    convert.main([str(source), str(tinybert_folder)])
    other.mkdir()
    (other / "pytorch_model.bin").write_bytes(b"stale")
    with pytest.raises(SystemExit) as error:
        convert.main(["--to-hf", str(tinybert_folder), str(other)])
    assert f"{other}: is not empty (1 entries); pass --overwrite" in exit_message(error)
    assert os.listdir(other) == ["pytorch_model.bin"]
    convert.main(["--to-hf", str(tinybert_folder), str(other), "--overwrite"])
    assert sorted(os.listdir(other)) == ["config.json", "model.safetensors", "vocab.txt"]  # nothing stale beside them


@pytest.mark.parametrize("change,problem", [("drop", "missing tensor 'layers.0.ffn_in.bias'"),
                                            ("reshape", "tensor 'layers.0.ffn_in.bias' has shape (3,), the config implies"),
                                            ("add", "unexpected tensor 'extra'")])
def test_export_checks_the_tinybert_shapes(tmp_path, change, problem):
    from safetensors.numpy import load_file, save_file
    folder = tmp_path / "tiny"
    convert.main([str(ROOT / "tests" / "fixtures" / "tiny_bert_hf"), str(folder)])
    tensors = load_file(str(folder / "model.safetensors"))
    if change == "drop":
        del tensors["layers.0.ffn_in.bias"]
    elif change == "reshape":
        tensors["layers.0.ffn_in.bias"] = np.zeros(3, np.float32)
    else:
        tensors["extra"] = np.zeros(1, np.float32)
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(SystemExit) as error:
        convert.main(["--to-hf", str(folder), str(tmp_path / "hf")])
    assert problem in exit_message(error)
    assert not (tmp_path / "hf").exists()


# ---------------------------------------------------------------- Tensor misuse
@pytest.mark.parametrize("make,problem", [(lambda: Tensor("text"), "a Tensor holds numbers, got dtype <U4"),
                                          (lambda: Tensor([Tensor([1.0]), "x"]), "a Tensor holds numbers, got dtype object"),
                                          (lambda: Tensor([1.0, 2.0]) + "a", "could not convert string to float: 'a'"),
                                          (lambda: Tensor([[1.0], [2.0]], requires_grad=True).sum(axis=1).backward(),
                                           "backward() needs a gradient for a non-scalar")])
def test_tensor_misuse_is_a_clear_error(make, problem):
    with pytest.raises((TypeError, ValueError, RuntimeError), match=problem.replace("(", r"\(").replace(")", r"\)")):
        make()


# ---------------------------------------------------------------- the README's table
def test_the_readme_table_names_tests_that_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Bad input and faults", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| case")]
    assert len(rows) >= 20
    defined = {}
    for path in (ROOT / "tests").glob("test_*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("def test_"):
                defined[line[4:].split("(")[0]] = path.name
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 3 and cells[0] and cells[1], row
        names = [name.strip("` ") for name in cells[2].split(",")]
        missing = [name for name in names if name.split("::")[-1] not in defined]
        assert not missing, f"README row {cells[0]!r} names tests that do not exist: {missing}"
