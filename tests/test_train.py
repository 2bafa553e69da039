"""train.py end to end on the bundled sample, with a tiny random BERT so that a run takes
well under a second: the full recipe, each task alone, exact resume after Ctrl-C, NaN
handling, bad input, the metrics, and the plot of a run."""
import json
import math
import os
import re
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # train.py is a script at the repository root, not in the package
    sys.path.insert(0, str(ROOT))

import train  # noqa: E402
from tinybert import backend  # noqa: E402
from tinybert.run import checkpoint, files, machine  # noqa: E402
from tinybert.data import (SAMPLE_DATA_DIR, BatchStream, PairExample, SentenceExample,  # noqa: E402
                           default_steps_per_epoch, load_pairs, load_sst)
from tinybert.model import BertConfig, BertModel  # noqa: E402
from tinybert.multitask import TASKS, MultitaskBert  # noqa: E402
from tinybert.optim import AdamW  # noqa: E402
from tinybert.convert import load_pretrained, save_pretrained  # noqa: E402
from tinybert.run.evaluation import metric  # noqa: E402

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] = 0 = BertConfig.pad_token_id
HEADERS = {"sst": "id \t Predicted_Sentiment ", "para": "id \t Predicted_Is_Paraphrase ",
           "sts": "id \t Predicted_Similiarity "}
FILES = {"sst": ("ids-sst-dev.csv", "ids-sst-test-student.csv"),
         "para": ("quora-dev.csv", "quora-test-student.csv"),
         "sts": ("sts-dev.csv", "sts-test-student.csv")}


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """A weights folder like weights/all-MiniLM-L6-v2 (config.json, model.safetensors,
    vocab.txt) holding a random 2-layer BERT (hidden 32, 2 heads) whose WordPiece vocabulary
    is every word of the sample data, so nothing tokenises to [UNK]."""
    words = set()
    for name in ("ids-sst-train.csv", "ids-sst-dev.csv", "ids-sst-test-student.csv"):
        for example in load_sst(SAMPLE_DATA_DIR / name, labelled="test" not in name):
            words.update(re.findall(r"\w+|[^\w\s]", example.sentence.lower()))
    for task, prefix in (("para", "quora"), ("sts", "sts")):
        for split in ("train", "dev", "test-student"):
            for example in load_pairs(SAMPLE_DATA_DIR / f"{prefix}-{split}.csv", task, labelled=split != "test-student"):
                words.update(re.findall(r"\w+|[^\w\s]", f"{example.sentence1} {example.sentence2}".lower()))
    vocabulary = SPECIAL_TOKENS + sorted(words)
    folder = tmp_path_factory.mktemp("weights") / "tiny-bert"
    backend.seed(0)
    config = BertConfig(vocab_size=len(vocabulary), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=64)
    save_pretrained(BertModel(config), str(folder))
    (folder / "vocab.txt").write_text("".join(token + "\n" for token in vocabulary), encoding="utf-8")
    return folder


def arguments(weights, out, *extra, epochs=1):
    return ["--weights", str(weights), "--data_dir", str(SAMPLE_DATA_DIR), "--out", str(out),
            "--max_len", "32", "--batch_size", "8", "--steps_per_epoch", "3", "--epochs", str(epochs), *extra]


def run(weights, out, *extra, epochs=1):
    """train.py in-process, through train() (not main(), which turns errors into SystemExit);
    returns the final training state."""
    return train.train(train.parse_args(arguments(weights, out, *extra, epochs=epochs)))


def records(out, kind):
    lines = (Path(out) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def read_predictions(path):
    """(header line, [(id, value string)]) of a CS224N prediction file."""
    header, *rows = Path(path).read_text().splitlines()
    return header, [tuple(field.strip() for field in row.split(" , ")) for row in rows]


def checkpoint_arrays(folder):
    return load_file(str(Path(folder) / "checkpoint.safetensors"))


def without_clock(record):
    """A state or metrics record less its wall-clock time and the CPU time the hypervisor stole
    meanwhile, the things a rerun changes."""
    return {k: v for k, v in record.items() if k not in ("seconds", "step_seconds", "minutes", "eval_seconds", "cpu_steal")}


def assert_same_run(a, b):
    """Two run folders hold bit-identical checkpoints (parameters, AdamW moments, SMART's
    moving average, RNG states, the state) and logs, less the clock."""
    for name in ("last", "best"):
        arrays_a, arrays_b = checkpoint_arrays(a / name), checkpoint_arrays(b / name)
        assert arrays_a.keys() == arrays_b.keys()
        different = [key for key in arrays_a if not np.array_equal(arrays_a[key], arrays_b[key])]
        assert not different, f"{name}: {len(different)} arrays differ, first {different[0]}"
        assert without_clock(checkpoint.load(a / name)[1]) == without_clock(checkpoint.load(b / name)[1])
    for kind in ("step", "eval"):
        assert [without_clock(r) for r in records(a, kind)] == [without_clock(r) for r in records(b, kind)]


def exit_message(error):
    """The text sys.exit() was called with."""
    return str(error.value.code)


# ---------------------------------------------------------------- the full recipe
@pytest.fixture(scope="module")
def full_run(tiny_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "all"
    # SMART on every task (the default puts it on STS alone), so that every term is logged and checked
    state = run(tiny_weights, out, "--task", "all", "--pcgrad", "--smart", "--cos", "--smart_tasks", "sst", "para", "sts",
                epochs=2)
    return out, state


def test_full_recipe_logs_every_term(full_run):
    out, state = full_run
    assert state["step"] == 6
    steps = records(out, "step")
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    expected = {"lr", "grad_norm", "conflict_fraction", "cos_sst_para", "cos_sst_sts", "cos_para_sts"}
    for task in ("sst", "para", "sts"):
        expected |= {f"loss_{task}", f"smart_{task}", f"bregman_{task}", f"encoder_grad_norm_{task}",
                     f"delta_linf_{task}", f"delta_at_eps_{task}"}
    for record in steps:
        assert expected <= set(record), f"step {record['step']} lacks {sorted(expected - set(record))}"
        assert all(np.isfinite(record[key]) for key in expected)
        assert 0.0 <= record["conflict_fraction"] <= 1.0
        assert all(-1.0 <= record[key] <= 1.0 for key in expected if key.startswith("cos_"))
        assert record["smart_sst"] > 0 and record["encoder_grad_norm_sst"] > 0  # SMART's terms are really computed
        # theta~ = theta before the first update, and both models drop the same units: D_Breg = 0
        assert all((record[f"bregman_{t}"] == 0.0) == (record["step"] == 1) for t in ("sst", "para", "sts")), record
        assert 0.0 <= record["delta_at_eps_sst"] <= 1.0 and record["delta_linf_sst"] > 0
    assert steps[0]["lr"] > steps[-1]["lr"] > 0  # the schedule decays
    evals = records(out, "eval")
    assert [(r["epoch"], r["step"]) for r in evals] == [(1, 3), (2, 6)]
    for record in evals:
        assert 0.0 <= record["dev_sst"] <= 1.0 and 0.0 <= record["dev_para"] <= 1.0
        assert -1.0 <= record["dev_sts"] <= 1.0
        assert record["dev_mean"] == pytest.approx(np.mean([record[f"dev_{t}"] for t in ("sst", "para", "sts")]))


def test_each_step_records_the_share_of_cpu_time_the_hypervisor_stole_during_it(tiny_weights, tmp_path, monkeypatch):
    # readings two per step, at its start and end: 50 of 200 ticks stolen within each step
    # (0.25), 50 of 800 between steps, where saves and evaluations run (0.0625)
    readings = iter([{"total": 1000 * i + end * 200, "steal": 100 * i + end * 50} for i in range(100) for end in (0, 1)])
    monkeypatch.setattr(machine, "cpu_clock", lambda: next(readings))
    run(tiny_weights, tmp_path, "--task", "sst")
    assert [r["cpu_steal"] for r in records(tmp_path, "step")] == [0.25] * 3


def test_the_clock_counts_training_only_as_the_peer_does(full_run):
    # a step's "seconds" is the sum of the steps' own times: the evaluation after step 3 and the
    # saves are left out, so that train.py's minutes and tools/peer.py's mean the same thing
    out, _ = full_run
    steps, evals = records(out, "step"), records(out, "eval")
    assert all(r["step_seconds"] > 0 for r in steps)
    assert [r["seconds"] for r in steps] == pytest.approx(np.cumsum([r["step_seconds"] for r in steps]), abs=0.02)
    by_step = {r["step"]: r for r in steps}
    for record in evals:
        assert record["minutes"] == pytest.approx(by_step[record["step"]]["seconds"] / 60, abs=1e-3)
        assert record["eval_seconds"] > 0
    machine = json.loads((out / "machine.json").read_text())  # the minutes name the machine they came from
    assert machine["cpu"] and machine["cpu_count"] >= 1 and machine["numpy"] == np.__version__
    assert "kernels chosen at run time" in machine["numpy_blas"]


def test_full_recipe_writes_checkpoints(full_run, tiny_weights):
    out, state = full_run
    for name in ("last", "best"):
        groups, saved = checkpoint.load(out / name)
        assert set(groups) == {"model", "adam", "ema"} and all(groups.values())
        assert json.loads((out / name / "state.json").read_text()) == saved
    assert checkpoint.load(out / "last")[1]["step"] == 6
    assert checkpoint.load(out / "best")[1]["step"] == 3 * state["best_epoch"]
    # the last checkpoint holds the trained model: it loads back and differs from the start
    model = MultitaskBert(load_pretrained(str(tiny_weights)), cos=True)
    start = model.bert.embeddings.word.weight.data.copy()
    model.load_state_dict(checkpoint.load(out / "last")[0]["model"])
    assert not np.array_equal(model.bert.embeddings.word.weight.data, start)


def test_full_recipe_writes_cs224n_predictions(full_run):
    out, _ = full_run
    for task, (dev_name, test_name) in FILES.items():
        for split, name in (("dev", dev_name), ("test", test_name)):
            labelled = split == "dev"
            source = (load_sst(SAMPLE_DATA_DIR / name, labelled) if task == "sst"
                      else load_pairs(SAMPLE_DATA_DIR / name, task, labelled))
            header, rows = read_predictions(out / "predictions" / f"{task}-{split}-output.csv")
            assert header == HEADERS[task]
            assert sorted(i for i, _ in rows) == sorted(e.id for e in source), f"{task} {split}: ids"
            values = np.array([float(v) for _, v in rows])
            if task == "sst":
                assert set(values) <= {0, 1, 2, 3, 4}
            elif task == "para":
                assert set(values) <= {0, 1}
            else:
                assert values.min() >= 0.0 and values.max() <= 5.0
    dev_metrics = json.loads((out / "dev_metrics.json").read_text())
    assert set(dev_metrics) == {"sst", "para", "sts"}


def test_plot_draws_the_run(full_run, tmp_path):
    from tinybert.run import plot
    out, _ = full_run
    png = tmp_path / "curves.png"
    plot.main([str(out), "--out", str(png)])
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


def test_plot_without_matplotlib_says_how_to_install_it(full_run, tmp_path, monkeypatch):
    from tinybert.run import plot
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(SystemExit) as error:
        plot.main([str(full_run[0]), "--out", str(tmp_path / "curves.png")])
    assert "pip install matplotlib" in exit_message(error)


def test_plot_reports_a_folder_without_metrics(tmp_path):
    from tinybert.run import plot
    with pytest.raises(SystemExit) as error:
        plot.main([str(tmp_path)])
    assert "no metrics here" in exit_message(error)


# ---------------------------------------------------------------- one task alone
@pytest.mark.parametrize("task,cos", [("sst", False), ("sst", True), ("para", False), ("para", True),
                                      ("sts", False), ("sts", True)])
def test_one_task_alone(tiny_weights, tmp_path, task, cos):
    state = run(tiny_weights, tmp_path, "--task", task, *(["--cos"] if cos else []))
    assert state["step"] == 3
    steps = records(tmp_path, "step")
    assert len(steps) == 3
    assert all(f"loss_{task}" in r and not any(k.startswith("loss_") and k != f"loss_{task}" for k in r) for r in steps)
    assert not any(k.startswith(("cos_", "smart_", "conflict")) for r in steps for k in r)
    assert {k for k in records(tmp_path, "eval")[0] if k.startswith("dev_")} == {f"dev_{task}", "dev_mean"}
    assert sorted(os.listdir(tmp_path / "predictions")) == [f"{task}-dev-output.csv", f"{task}-test-output.csv"]
    groups, _ = checkpoint.load(tmp_path / "last")
    assert not groups["ema"]  # no SMART, no moving average saved
    assert ("similarity_head.weight" in groups["model"]) == (not cos)


def test_batches_per_step_draw_consecutive_batches_of_each_stream(tiny_weights, tmp_path, monkeypatch):
    real_batch, drawn = BatchStream.batch, []

    def batch(self, number):
        drawn.append((TASKS[self.task_index], number))
        return real_batch(self, number)
    monkeypatch.setattr(BatchStream, "batch", batch)
    run(tiny_weights, tmp_path, "--task", "all", "--sst_batches_per_step", "1", "--para_batches_per_step", "3",
        "--sts_batches_per_step", "2", "--no_test_predictions")
    drawn = drawn[:drawn.index(("sst", 2)) + 6]  # the three steps, before evaluation
    assert drawn == [("sst", 0), ("para", 0), ("para", 1), ("para", 2), ("sts", 0), ("sts", 1),
                     ("sst", 1), ("para", 3), ("para", 4), ("para", 5), ("sts", 2), ("sts", 3),
                     ("sst", 2), ("para", 6), ("para", 7), ("para", 8), ("sts", 4), ("sts", 5)]
    assert len(records(tmp_path, "step")) == 3


def test_default_epoch_passes_over_every_training_set():
    class Stream:
        def __init__(self, count):
            self.count = count
    streams = {"sst": Stream(267), "para": Stream(507), "sts": Stream(189)}
    assert default_steps_per_epoch(streams, {"sst": 1, "para": 2, "sts": 1}) == 267
    assert default_steps_per_epoch(streams, {"sst": 1, "para": 1, "sts": 1}) == 507
    assert default_steps_per_epoch(streams, {"sst": 3, "para": 3, "sts": 1}) == 189
    assert default_steps_per_epoch({"para": Stream(507)}, {"para": 2}) == 254


@pytest.mark.parametrize("value,message", [("0", "must be in [1, inf), got 0"), ("-1", "must be in [1, inf), got -1"),
                                           ("two", "expected an integer, got 'two'"),
                                           ("1.5", "expected an integer, got '1.5'")])
def test_batches_per_step_must_be_a_positive_integer(value, message, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--para_batches_per_step", value])
    assert f"argument --para_batches_per_step: {message}" in capsys.readouterr().err


# ---------------------------------------------------------------- --head_lr_factor, --smart_tasks
def test_head_lr_factor_and_smart_tasks_reach_the_optimizer_the_steps_and_args_json(tiny_weights, tmp_path,
                                                                                    monkeypatch):
    real_parameter_groups, factors = train.parameter_groups, []

    def parameter_groups(model, weight_decay, head_lr_factor=1.0):
        factors.append(head_lr_factor)
        return real_parameter_groups(model, weight_decay, head_lr_factor)
    monkeypatch.setattr(train, "parameter_groups", parameter_groups)
    run(tiny_weights, tmp_path, "--task", "all", "--cos", "--smart", "--smart_tasks", "sts", "--head_lr_factor", "4",
        "--no_test_predictions")
    assert factors == [4.0]
    for record in records(tmp_path, "step"):
        assert {k for k in record if k.startswith(("smart_", "bregman_"))} == {"smart_sts", "bregman_sts"}
    recorded = json.loads((tmp_path / "args.json").read_text())
    assert (recorded["head_lr_factor"], recorded["smart_tasks"]) == (4.0, ["sts"])


def test_smart_every_puts_smart_terms_on_one_step_in_that_many(tiny_weights, tmp_path):
    run(tiny_weights, tmp_path, "--task", "sts", "--smart", "--smart_every", "2")
    steps = records(tmp_path, "step")
    assert [r["step"] for r in steps] == [1, 2, 3]
    for record in steps:                       # steps 1 and 3 (0 and 2 counted from 0) get both terms
        has_terms = {k for k in record if k.startswith(("smart_", "bregman_"))} == {"smart_sts", "bregman_sts"}
        assert has_terms == (record["step"] % 2 == 1), record
    assert json.loads((tmp_path / "args.json").read_text())["smart_every"] == 2


def test_smart_tasks_are_spelled_in_one_order_and_checked(capsys):
    assert train.parse_args([]).smart_tasks == ["sts"]  # the recipe's default: SMART pays on STS (chapter 12)
    assert train.parse_args(["--smart", "--smart_tasks", "sts", "sst", "sts"]).smart_tasks == ["sst", "sts"]
    # without --smart it is accepted and inert, as every --smart_NAME setting is (tools/ablation.py
    # hands the same extra arguments to its SMART and plain rows)
    assert train.parse_args(["--smart_tasks", "sts"]).smart_tasks == ["sts"]
    with pytest.raises(SystemExit):
        train.parse_args(["--smart", "--smart_tasks", "nli"])
    assert "argument --smart_tasks: invalid choice: 'nli'" in capsys.readouterr().err


def test_resume_keeps_head_lr_factor_smart_tasks_and_smart_every_and_older_checkpoints_had_the_defaults(tiny_weights, tmp_path):
    # the settings train.py had before these flags (and before its recipe defaults), spelled out
    before = ("--head_lr_factor", "1", "--smart_tasks", "sst", "para", "sts")
    run(tiny_weights, tmp_path, "--task", "sts", "--smart", *before)
    changes = [(["--head_lr_factor", "2"], "--head_lr_factor=1.0, this run has --head_lr_factor=2.0"),
               (["--smart_tasks", "sts"], "--smart_tasks=['sst', 'para', 'sts'], this run has --smart_tasks=['sts']"),
               (["--smart_every", "2"], "--smart_every=1, this run has --smart_every=2")]

    def refused(extra, named):
        with pytest.raises(SystemExit) as error:
            train.main(arguments(tiny_weights, tmp_path, "--task", "sts", "--smart", *before, *extra, "--resume"))
        return f"checkpoint was trained with {named}" in exit_message(error)
    assert all(refused(extra, named) for extra, named in changes)
    # a checkpoint saved before the flags existed has none of these settings: it trained as
    # SETTINGS_BEFORE_THEY_EXISTED says, so a resume with today's defaults is refused
    path = tmp_path / "last" / "checkpoint.safetensors"
    _, state = checkpoint.load(tmp_path / "last")
    for key in ("head_lr_factor", "smart_tasks", "smart_every"):
        del state["settings"][key]
    files.save_arrays(str(path), load_file(str(path)), metadata={"state": json.dumps(state)})
    with pytest.raises(SystemExit) as error:
        train.main(arguments(tiny_weights, tmp_path, "--task", "sts", "--smart", "--resume"))
    assert "checkpoint was trained with --head_lr_factor=1.0, this run has --head_lr_factor=30.0" in exit_message(error)
    assert run(tiny_weights, tmp_path, "--task", "sts", "--smart", *before, "--resume")["step"] == 3
    assert all(refused(extra, named) for extra, named in changes)


def test_a_fraction_of_an_epoch_ends_the_run_with_an_evaluation(tiny_weights, tmp_path):
    # --epochs 1.5 of 3-step epochs: ceil(4.5) = 5 steps, evaluated after epoch 1 (step 3) and at the end
    state = run(tiny_weights, tmp_path, "--task", "sst", epochs=1.5)
    assert state["step"] == 5 and [r["step"] for r in records(tmp_path, "step")] == [1, 2, 3, 4, 5]
    assert [(r["epoch"], r["step"]) for r in records(tmp_path, "eval")] == [(1, 3), (1.667, 5)]
    assert state["best_epoch"] in (1, 1.667) and checkpoint.load(tmp_path / "last")[1]["evaluated_epoch"] == 1.667
    assert math.ceil(round(1.5 * 267, 6)) == 401  # --epochs 1.5 of --task all: 401 steps, not 400


def test_no_test_predictions_writes_dev_files_only(tiny_weights, tmp_path):
    run(tiny_weights, tmp_path, "--task", "sst", "--no_test_predictions")
    assert os.listdir(tmp_path / "predictions") == ["sst-dev-output.csv"]
    assert json.loads((tmp_path / "dev_metrics.json").read_text())["sst"] >= 0


# ---------------------------------------------------------------- Ctrl-C and resume
def interrupt_after_optimizer_step(monkeypatch, count, signal_number=signal.SIGINT):
    """Send this process a real SIGINT right after the ``count``-th AdamW step, as a
    Ctrl-C during training would (or another signal: SIGTERM, as `timeout` sends)."""
    real_step, calls = AdamW.step, []

    def step(self):
        real_step(self)
        calls.append(1)
        if len(calls) == count:
            os.kill(os.getpid(), signal_number)
    monkeypatch.setattr(AdamW, "step", step)


def test_ctrl_c_then_resume_matches_an_uninterrupted_run(tiny_weights, tmp_path, monkeypatch, capfd):
    recipe = ("--task", "all", "--pcgrad", "--smart", "--cos", "--hidden_dropout_prob", "0.1")
    uninterrupted, resumed = tmp_path / "a", tmp_path / "b"
    run(tiny_weights, uninterrupted, *recipe, epochs=2)

    # stopped after step 4 (past the epoch-1 evaluation and best checkpoint), then resumed
    handler = signal.getsignal(signal.SIGINT)
    with monkeypatch.context() as patch:
        interrupt_after_optimizer_step(patch, 4)
        state = run(tiny_weights, resumed, *recipe, epochs=2)
    assert state["step"] == 4
    assert checkpoint.load(resumed / "last")[1]["step"] == 4
    assert not list((resumed / "predictions").glob("*-test-output.csv"))  # test predictions come at the end
    assert not (resumed / "dev_metrics.json").exists()
    assert f"interrupted: saved {resumed / 'last'} at step 4; continue with --resume" in capfd.readouterr().err
    assert signal.getsignal(signal.SIGINT) is handler  # Ctrl-C behaves as before once train() returns

    state = run(tiny_weights, resumed, *recipe, "--resume", epochs=2)
    assert state["step"] == 6
    assert f"resumed {resumed / 'last'} at step 4" in capfd.readouterr().err
    assert_same_run(uninterrupted, resumed)
    for task in ("sst", "para", "sts"):
        for split in ("dev", "test"):
            name = f"predictions/{task}-{split}-output.csv"
            assert (uninterrupted / name).read_text() == (resumed / name).read_text()


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_saves_and_exits_non_zero(tiny_weights, tmp_path, monkeypatch, signal_number):
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    interrupt_after_optimizer_step(monkeypatch, 1, signal_number)
    with pytest.raises(SystemExit) as error:
        train.main(arguments(tiny_weights, tmp_path, "--task", "sst"))
    assert error.value.code == 128 + signal_number  # 130 after Ctrl-C, 143 after SIGTERM, as a shell reports
    assert {number: signal.getsignal(number) for number in handlers} == handlers
    assert checkpoint.load(tmp_path / "last")[1]["step"] == 1
    assert [r["step"] for r in records(tmp_path, "step")] == [1]


def test_a_gpu_runs_generator_state_rides_as_an_array_and_resumes_only_on_a_gpu(full_run, tmp_path):
    # a --device cuda checkpoint keeps CuPy's cuRAND states as the array rng.state (tests/test_cuda.py
    # resumes one on a GPU); here, its reading back, and the one-line refusal on the CPU
    out, _ = full_run
    cuda_states = np.arange(96, dtype=np.uint8)
    _, state = checkpoint.load(out / "last")
    arrays = {**load_file(str(out / "last" / "checkpoint.safetensors")), "rng.state": cuda_states}
    (tmp_path / "last").mkdir()
    files.save_arrays(str(tmp_path / "last" / "checkpoint.safetensors"), arrays,
                   metadata={"state": json.dumps({**state, "rng": checkpoint.RNG_IN_ARRAYS})})
    groups, loaded = checkpoint.load(tmp_path / "last")
    assert np.array_equal(loaded["rng"], cuda_states) and set(groups) == {"model", "adam", "ema", "rng"}
    with pytest.raises(ValueError, match=r"saved with --device cuda; this run has --device cpu"):
        backend.set_rng_state(loaded["rng"])


def test_resume_without_a_checkpoint(tiny_weights, tmp_path):
    with pytest.raises(SystemExit) as error:
        train.main(arguments(tiny_weights, tmp_path, "--task", "sst", "--resume"))
    assert "no checkpoint to resume from" in exit_message(error)


@pytest.mark.parametrize("flag", ["--cos", "--smart"])
def test_resume_with_another_setting_names_it(tiny_weights, tmp_path, flag):
    run(tiny_weights, tmp_path, "--task", "sts")
    before = checkpoint_arrays(tmp_path / "last")
    with pytest.raises(SystemExit) as error:
        train.main(arguments(tiny_weights, tmp_path, "--task", "sts", flag, "--resume"))
    message = exit_message(error)
    assert f"trained with {flag}=False" in message and f"this run has {flag}=True" in message
    after = checkpoint_arrays(tmp_path / "last")
    assert all(np.array_equal(before[k], after[k]) for k in before)  # untouched


# ---------------------------------------------------------------- divergence
def nan_loss_at(monkeypatch, task, call, last_checkpoint):
    """Make ``task``'s loss NaN at its ``call``-th evaluation (its batch number + 1);
    return a list that receives the bytes of ``last_checkpoint`` at that moment (None if absent)."""
    real_loss, calls, seen = MultitaskBert.loss, [], []

    def loss(self, batch, output):
        value = real_loss(self, batch, output)
        if batch.task == task:
            calls.append(1)
            if len(calls) == call:
                seen.append(last_checkpoint.read_bytes() if last_checkpoint.exists() else None)
                return value * float("nan")
        return value
    monkeypatch.setattr(MultitaskBert, "loss", loss)
    return seen


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_weights, tmp_path, monkeypatch):
    last = tmp_path / "last" / "checkpoint.safetensors"
    seen = nan_loss_at(monkeypatch, "para", 9, last)  # two para batches a step: step 5, after epoch 1 saved last/ at step 3
    with pytest.raises(SystemExit) as error:
        train.main(arguments(tiny_weights, tmp_path, "--task", "all", "--smart", epochs=2))
    message = exit_message(error)
    assert "'para'" in message and "nan" in message and "step 5" in message
    assert seen[0] is not None and last.read_bytes() == seen[0]  # not rewritten after the NaN
    groups, state = checkpoint.load(tmp_path / "last")
    assert state["step"] == 3 and all(np.isfinite(a).all() for group in groups.values() for a in group.values())
    # the log is complete up to the failure and still valid JSON lines
    assert [r["step"] for r in records(tmp_path, "step")] == [1, 2, 3, 4]


def test_nan_loss_before_any_checkpoint(tiny_weights, tmp_path, monkeypatch):
    nan_loss_at(monkeypatch, "sst", 1, tmp_path / "last" / "checkpoint.safetensors")
    with pytest.raises(SystemExit) as error:
        train.main(arguments(tiny_weights, tmp_path, "--task", "sst"))
    assert "'sst'" in exit_message(error) and "step 1" in exit_message(error)
    assert not (tmp_path / "last").exists()


def test_nan_gradient_with_a_finite_loss_stops_before_the_update(tiny_weights, tmp_path, monkeypatch):
    # a gradient can overflow while the loss stays finite; the update must not write NaN
    # into the parameters (which the epoch's save would then put in last/)
    real_clip, calls = train.clip_grad_norm, []

    def clip(params, max_norm):
        params = list(params)
        calls.append(1)
        if len(calls) == 3:
            params[0].grad = params[0].grad * np.float32("nan")
        return real_clip(params, max_norm)
    monkeypatch.setattr(train, "clip_grad_norm", clip)
    with pytest.raises(SystemExit) as error:
        train.main(arguments(tiny_weights, tmp_path, "--task", "sst"))
    assert "gradient norm is nan at step 3" in exit_message(error)
    assert not (tmp_path / "last").exists()  # epoch 1 (step 3) never completed


# ---------------------------------------------------------------- bad input
SST_HEADER = "\tid\tsentence\tsentiment\n"


def sst_file(tmp_path, name, rows, header=SST_HEADER):
    path = tmp_path / name
    path.write_text(header + "".join(f"{i}\t{id_}\t{sentence}\t{label}\n" for i, (id_, sentence, label) in enumerate(rows)),
                    encoding="utf-8")
    return path


def test_unknown_task_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as error:
        train.parse_args(["--task", "nli"])
    assert error.value.code == 2
    assert "invalid choice: 'nli'" in capsys.readouterr().err


def test_missing_weights_folder(tmp_path):
    with pytest.raises(SystemExit) as error:
        train.main(arguments(tmp_path / "no-such-weights", tmp_path / "out", "--task", "sst"))
    assert "no-such-weights: weights folder not found" in exit_message(error)


@pytest.mark.parametrize("keep,problem", [("config.json model.safetensors", "no tokenizer.json or vocab.txt found"),
                                          ("config.json vocab.txt", "no model.safetensors here")])
def test_incomplete_weights_folder(tiny_weights, tmp_path, keep, problem):
    folder = tmp_path / "weights"
    folder.mkdir()
    for name in keep.split():
        (folder / name).write_bytes((tiny_weights / name).read_bytes())
    with pytest.raises(SystemExit) as error:
        train.main(arguments(folder, tmp_path / "out", "--task", "sst"))
    assert problem in exit_message(error)


@pytest.mark.parametrize("content,problem", [("", "file is empty"), (SST_HEADER, "no usable rows")])
def test_empty_training_file(tiny_weights, tmp_path, content, problem):
    path = tmp_path / "train.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SystemExit) as error:
        train.main(arguments(tiny_weights, tmp_path / "out", "--task", "sst", "--sst_train", str(path)))
    assert str(path) in exit_message(error) and problem in exit_message(error)


def test_a_bad_label_is_skipped_with_a_warning(tiny_weights, tmp_path):
    rows = [(e.id, e.sentence, e.label) for e in load_sst(SAMPLE_DATA_DIR / "ids-sst-train.csv")[:20]]
    path = sst_file(tmp_path, "train.csv", rows[:10] + [("bad", "A fine film.", "7")] + rows[10:])
    with pytest.warns(UserWarning, match=r"skipped 1 malformed row.*first at line 12"):
        state = run(tiny_weights, tmp_path / "out", "--task", "sst", "--sst_train", str(path))
    assert state["step"] == 3
    assert (tmp_path / "out" / "predictions" / "sst-dev-output.csv").exists()


def test_sentences_that_tokenise_to_nothing(tiny_weights, tmp_path):
    # blank sentences (and control characters, which BERT's normaliser deletes) encode as
    # "[CLS] [SEP]": they must train, evaluate and get a prediction like any other
    rows = [("blank", "   ", 2), ("control", "\x01\x02", 1), ("word", "The script is familiar.", 3)]
    train_path = sst_file(tmp_path, "train.csv", rows)
    dev_path = sst_file(tmp_path, "dev.csv", rows)
    test_path = tmp_path / "test.csv"
    test_path.write_text("\tid\tsentence\n0\tblank\t \n", encoding="utf-8")
    pair_path = tmp_path / "sts.csv"
    pair_path.write_text("\tid\tsentence1\tsentence2\tsimilarity\n0\tempty\t \tA man is slicing bread.\t1.0\n"
                         "1\tboth\t\x01\t \t0.0\n2\tfull\tA girl is reading.\tA girl is reading a book.\t4.0\n",
                         encoding="utf-8")
    out = tmp_path / "out"
    state = run(tiny_weights, out, "--task", "sst", "--sst_train", str(train_path), "--sst_dev", str(dev_path),
                "--sst_test", str(test_path))
    assert state["step"] == 3 and all(np.isfinite(r["loss_sst"]) for r in records(out, "step"))
    assert {i for i, _ in read_predictions(out / "predictions" / "sst-dev-output.csv")[1]} == {"blank", "control", "word"}
    assert [i for i, _ in read_predictions(out / "predictions" / "sst-test-output.csv")[1]] == ["blank"]
    for cos in ([], ["--cos"]):  # the bi-encoder encodes an empty sentence alone
        out = tmp_path / f"sts{len(cos)}"
        state = run(tiny_weights, out, "--task", "sts", "--sts_train", str(pair_path), "--sts_dev", str(pair_path), *cos)
        assert state["step"] == 3 and all(np.isfinite(r["loss_sts"]) for r in records(out, "step"))
        assert len(read_predictions(out / "predictions" / "sts-dev-output.csv")[1]) == 3


# ---------------------------------------------------------------- metrics
def test_metric_accuracy_by_hand():
    examples = [SentenceExample(f"e{i}", "s", label) for i, label in enumerate([0, 1, 2, 3])]
    # predictions come in the batches' order, not the file's: matched to labels by id
    ids = ["e3", "e0", "e2", "e1"]
    assert metric("sst", examples, ids, np.array([3, 0, 2, 4])) == 0.75
    pairs = [PairExample(f"p{i}", "a", "b", label) for i, label in enumerate([1.0, 0.0, 0.0, 1.0, 1.0])]
    assert metric("para", pairs, ["p0", "p1", "p2", "p3", "p4"], np.array([1, 1, 0, 0, 1])) == 0.6


def test_metric_pearson_by_hand():
    pairs = [PairExample(f"p{i}", "a", "b", label) for i, label in enumerate([1.0, 3.0, 2.0, 4.0])]
    ids = ["p0", "p1", "p2", "p3"]
    # x = 1, 2, 3, 4; y = 1, 3, 2, 4: deviations (-1.5, -.5, .5, 1.5) and (-1.5, .5, -.5, 1.5),
    # sum of products 4, sums of squares 5 and 5: r = 4 / 5 = 0.8
    assert metric("sts", pairs, ids, np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)) == pytest.approx(0.8)
    assert metric("sts", pairs, ids, np.array([2.0, 6.0, 4.0, 8.0])) == pytest.approx(1.0)  # r ignores scale
    assert metric("sts", pairs, ids[::-1], np.array([2.0, 6.0, 4.0, 8.0])[::-1]) == pytest.approx(1.0)
    assert metric("sts", pairs, ids, -np.array([1.0, 3.0, 2.0, 4.0])) == pytest.approx(-1.0)


def test_last_checkpoint_is_also_saved_within_an_epoch(tiny_weights, tmp_path, monkeypatch):
    # --save_every_minutes 0 saves last/ after every step: a failure at step 4 of a 5-step
    # epoch still leaves the checkpoint of step 3 (without it there would be none at all)
    nan_loss_at(monkeypatch, "sst", 4, tmp_path / "last" / "checkpoint.safetensors")
    with pytest.raises(SystemExit):
        train.main(arguments(tiny_weights, tmp_path, "--task", "sst", "--steps_per_epoch", "5",
                             "--save_every_minutes", "0"))
    _, state = checkpoint.load(tmp_path / "last")
    assert state["step"] == 3
