"""tools.ablation on the bundled sample with test_train's tiny random BERT: every run is in
results.json, results.md holds markdown_table of it, the mean ± std by hand, a rerun skips the
finished runs, an interrupted run is resumed, and bad input is refused with a clear message.
Every run is a `python train.py` process; the tests that train nothing put a recorder in the
place of subprocess.Popen (train.py is imported here only to read the argv it would get)."""
import ast
import json
import os
import shlex
import signal
import statistics
import sys
import time
from pathlib import Path

import pytest
from test_train import tiny_weights  # noqa: F401  (a fixture)

import train  # the repository root is on the module path (pyproject's pytest pythonpath)
from tinybert.data import SAMPLE_DATA_DIR
from tinybert.run.folder import SETTINGS_BEFORE_THEY_EXISTED
from tools import ablation

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = ["baseline", "smart+pcgrad+cos"]  # the two ends of the table: no technique, all three


def extra_arguments(weights):
    return ["--weights", str(weights), "--data_dir", str(SAMPLE_DATA_DIR), "--max_len", "32", "--batch_size", "8"]


def command(weights, out, *options, configs=CONFIGS, seeds=2):
    return ["--out", str(out), "--seeds", str(seeds), "--configs", *configs, "--epochs", "1",
            "--steps_per_epoch", "2", *options, "--", *extra_arguments(weights)]


class StoppedRun:
    """A stand-in for a train.py process that has already exited with ``returncode``."""
    def __init__(self, returncode):
        self.returncode = returncode

    def poll(self):
        return self.returncode

    def wait(self):
        return self.returncode

    def send_signal(self, number):
        pass


def recording_train(monkeypatch, returncode=130):
    """Replace the train.py processes by a recorder of each one's settings (train.py's parsed
    argv), which trains nothing and exits as a Ctrl-C'd train.py does (130: last/ saved)."""
    calls = []

    def record(command, **kwargs):
        assert command[:2] == [sys.executable, ablation.TRAIN_SCRIPT]
        calls.append(train.parse_args(command[2:]))
        return StoppedRun(returncode)
    monkeypatch.setattr(ablation.subprocess, "Popen", record)
    return calls


def test_the_runs_are_the_train_py_beside_the_tools_folder():
    assert ablation.TRAIN_SCRIPT == str(ROOT / "train.py") and os.path.isfile(ablation.TRAIN_SCRIPT)


def test_no_tool_imports_the_training_script():
    """tools/ take what they share with train.py from the library: train.py is a script, run."""
    for path in sorted((ROOT / "tools").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and not node.level else [])
            assert not any(name == "train" or name.startswith("train.") for name in names), f"{path.name} imports train"


@pytest.fixture(scope="module")
def ablation_run(tiny_weights, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("ablation")
    ablation.main(command(tiny_weights, out))
    return out


def test_results_json_has_every_run_with_its_metrics(ablation_run):
    results = json.loads((ablation_run / "results.json").read_text())
    assert [(r["config"], r["seed"]) for r in results["runs"]] == [(c, s) for c in CONFIGS for s in (1, 2)]
    for run in results["runs"]:
        folder = ablation_run / run["config"] / f"seed{run['seed']}"
        dev = json.loads((folder / "dev_metrics.json").read_text())
        assert {m: run[m] for m in ("sst", "para", "sts")} == dev
        records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        last_step = [r for r in records if r["type"] == "step"][-1]
        assert last_step["step"] == 2 and run["seconds"] == last_step["seconds"] > 0
        settings = json.loads((folder / "args.json").read_text())
        assert settings["seed"] == run["seed"] and settings["steps_per_epoch"] == 2 and settings["max_len"] == 32
        assert (settings["smart"], settings["pcgrad"], settings["cos"]) == ((run["config"] != "baseline"),) * 3
    assert results["recipe"] == {"epochs": 1, "steps_per_epoch": 2, "batch_size": 8, "max_len": 32, "lr": 1e-4}
    assert results["missing"] == []


def test_results_md_holds_markdown_table_of_the_json(ablation_run):
    results = json.loads((ablation_run / "results.json").read_text())
    table = ablation.markdown_table(results)
    assert table in (ablation_run / "results.md").read_text()
    assert [line.split(" | ")[0] for line in table.splitlines()[2:]] == ["| Baseline", "| SMART + GS + Cosine"]


def hand_made(values):
    """results.json's object for runs {config: [(sst, para, sts, seconds), ...]}."""
    runs = [{"config": config, "seed": seed, "sst": sst, "para": para, "sts": sts, "seconds": seconds}
            for config, rows in values.items() for seed, (sst, para, sts, seconds) in enumerate(rows, 1)]
    return {"recipe": {}, "runs": runs, "missing": []}


def test_summarise_mean_and_sample_std_by_hand():
    results = hand_made({"smart+pcgrad": [(0.1, 0.5, -0.2, 60.0), (0.2, 0.5, 0.0, 120.0), (0.3, 0.5, 0.5, 180.0)],
                         "baseline": [(0.25, 0.75, 0.0, 30.0), (0.35, 0.65, 0.1, 30.0)],
                         "cos": [(0.4, 0.6, 0.7, None)]})
    baseline, cos, both = ablation.summarise(results)  # in the table's order, not the JSON's
    assert (baseline["config"], cos["config"], both["config"]) == ("baseline", "cos", "smart+pcgrad")
    # seeds 0.1, 0.2, 0.3: mean 0.2, squared deviations 0.01 + 0 + 0.01 over n - 1 = 2: std 0.1
    assert both["seeds"] == 3 and both["sst"] == pytest.approx(0.2) and both["sst_std"] == pytest.approx(0.1)
    assert both["para_std"] == 0.0
    # -0.2, 0.0, 0.5: mean 0.1, deviations -0.3, -0.1, 0.4: (0.09 + 0.01 + 0.16) / 2 = 0.13
    assert both["sts"] == pytest.approx(0.1) and both["sts_std"] == pytest.approx(0.13 ** 0.5)
    assert both["seconds"] == 120.0 and both["report"] == {"sst": 0.402, "para": 0.632, "sts": 0.054}
    # two seeds 0.25, 0.35: std = |difference| / sqrt(2)
    assert baseline["sst"] == pytest.approx(0.3) and baseline["sst_std"] == pytest.approx(0.1 / 2 ** 0.5)
    assert cos["seeds"] == 1 and cos["sst_std"] is None and cos["seconds"] is None and cos["report"] is None
    assert statistics.stdev([0.25, 0.35]) == pytest.approx(baseline["sst_std"])

    lines = ablation.markdown_table(results).splitlines()
    assert lines[0].startswith("| configuration |") and len(lines) == 2 + 3
    assert lines[2] == "| Baseline | (none) | 2 | 0.300 ± 0.071 | 0.700 ± 0.071 | 0.050 ± 0.071 | 0.306 | 0.347 | 0.054 | 0.5 |"
    assert lines[3] == "| +Cosine | `--cos` | 1 | 0.400 | 0.600 | 0.700 | — | — | — | — |"
    assert lines[4] == ("| SMART + Gradient Surgery | `--smart --pcgrad` | 3 | 0.200 ± 0.100 | 0.500 ± 0.000 "
                        "| 0.100 ± 0.361 | 0.402 | 0.632 | 0.054 | 2.0 |")


def test_a_rerun_skips_the_finished_runs(ablation_run, monkeypatch, capsys):
    calls = recording_train(monkeypatch)
    before = {path: path.stat().st_mtime_ns for path in ablation_run.glob("*/seed*/dev_metrics.json")}
    assert len(before) == 4
    ablation.main(command("no-weights-needed", ablation_run))
    assert calls == []
    assert {path: path.stat().st_mtime_ns for path in before} == before
    assert capsys.readouterr().err.count("finished earlier, skipped") == 4


def test_an_interrupted_run_is_resumed(tiny_weights, tmp_path, monkeypatch):  # noqa: F811
    # a run with last/ but no dev_metrics.json (stopped mid-way) continues with --resume;
    # one with neither starts afresh
    interrupted = tmp_path / "baseline" / "seed1"
    (interrupted / "last").mkdir(parents=True)
    (interrupted / "last" / "checkpoint.safetensors").write_bytes(b"")
    calls = recording_train(monkeypatch)
    completed, failed = ablation.run_all(str(tmp_path), ["baseline"], 1, 1, 2, extra_arguments(tiny_weights))
    assert (completed, failed) == (False, [])  # the recorder exits 130, as train.py after a Ctrl-C
    assert len(calls) == 1 and calls[0].resume and calls[0].out == str(interrupted)
    assert (calls[0].seed, calls[0].steps_per_epoch, calls[0].task) == (1, 2, "all")

    calls.clear()
    completed, failed = ablation.run_all(str(tmp_path), ["cos"], 1, 1, 2, extra_arguments(tiny_weights))
    assert (completed, failed) == (False, [])
    assert len(calls) == 1 and not calls[0].resume and calls[0].cos and not calls[0].smart


def interrupted_train_py(folder, count, signal_number=signal.SIGINT):
    """A script that runs train.py as `python train.py` does, but sends itself a real SIGINT (as a
    Ctrl-C would) right after the ``count``-th AdamW step."""
    script = folder / "interrupted_train.py"
    script.write_text(f"""import os, sys
sys.path.insert(0, {str(ROOT)!r})
from tinybert.optim import AdamW
import train
real_step, calls = AdamW.step, []
def step(self):
    real_step(self)
    calls.append(1)
    if len(calls) == {count}:
        os.kill(os.getpid(), {int(signal_number)})
AdamW.step = step
train.main()
""")
    return str(script)


def test_ctrl_c_stops_the_ablation_and_a_rerun_resumes(tiny_weights, tmp_path, monkeypatch, capfd):  # noqa: F811
    # the real thing: Ctrl-C after step 3 of 4 (train.py saves last/ and exits 130), then the same command
    folder = tmp_path / "baseline" / "seed1"
    with monkeypatch.context() as patch:
        patch.setattr(ablation, "TRAIN_SCRIPT", interrupted_train_py(tmp_path, 3))
        completed, failed = ablation.run_all(str(tmp_path), ["baseline", "cos"], 1, 2, 2, extra_arguments(tiny_weights))
    assert (completed, failed) == (False, [])
    assert not (folder / "dev_metrics.json").exists() and not (tmp_path / "cos").exists()  # stopped, cos not started
    assert "[1/2] baseline seed 1: interrupted after" in capfd.readouterr().err
    completed, failed = ablation.run_all(str(tmp_path), ["baseline", "cos"], 1, 2, 2, extra_arguments(tiny_weights))
    assert (completed, failed) == (True, [])
    err = capfd.readouterr().err
    assert "[1/2] baseline seed 1: resuming" in err and f"resumed {folder / 'last'} at step 3" in err
    assert (folder / "dev_metrics.json").exists() and (tmp_path / "cos" / "seed1" / "dev_metrics.json").exists()
    steps = [json.loads(line)["step"] for line in (folder / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["type"] == "step"]
    assert steps == [1, 2, 3, 4]


@pytest.mark.parametrize("flag,value,message", [
    ("--steps_per_epoch", "3", "seed1 was trained with --steps_per_epoch=2, this ablation has --steps_per_epoch=3"),
    ("--max_len", "64", "seed1 was trained with --max_len=32, this ablation has --max_len=64"),  # after '--'
])
def test_a_finished_run_with_other_settings_is_an_error(ablation_run, monkeypatch, flag, value, message):
    calls = recording_train(monkeypatch)
    options = command("w", ablation_run)
    options[options.index(flag) + 1] = value
    with pytest.raises(SystemExit) as error:
        ablation.main(options)
    assert message in str(error.value.code)
    assert calls == []


def test_an_interrupted_run_that_train_py_will_not_resume_is_reported_as_failed(tiny_weights, tmp_path,  # noqa: F811
                                                                                monkeypatch, capfd):
    # interrupted with --batch_size 8; asked again without it, train.py's default 32 is not
    # compared by the ablation, but train.py's resume refuses the checkpoint: that run fails
    extra = extra_arguments(tiny_weights)
    with monkeypatch.context() as patch:
        patch.setattr(ablation, "TRAIN_SCRIPT", interrupted_train_py(tmp_path, 1))
        assert ablation.run_all(str(tmp_path), ["baseline"], 1, 1, 2, extra) == (False, [])
    capfd.readouterr()
    del extra[extra.index("--batch_size"):extra.index("--batch_size") + 2]
    assert ablation.run_all(str(tmp_path), ["baseline"], 1, 1, 2, extra) == (True, [("baseline", 1)])
    err = capfd.readouterr().err
    assert "checkpoint was trained with --batch_size=8, this run has --batch_size=32" in err
    assert "[1/1] baseline seed 1: FAILED after" in err and "(exit 1): see train.py's message above" in err


def test_a_finished_run_from_before_a_flag_existed_is_skipped_not_refused(ablation_run, tmp_path, monkeypatch):
    """A run whose args.json predates a RESUME_MUST_MATCH flag was trained with its default
    (tinybert.run.session.SETTINGS_BEFORE_THEY_EXISTED): the ablation skips it like any finished run."""
    calls = recording_train(monkeypatch)
    out = tmp_path / "older"
    for run in ("baseline/seed1", "baseline/seed2", "smart+pcgrad+cos/seed1", "smart+pcgrad+cos/seed2"):
        (out / run).mkdir(parents=True)
        for name in ("dev_metrics.json", "metrics.jsonl"):
            (out / run / name).write_bytes((ablation_run / run / name).read_bytes())
        settings = json.loads((ablation_run / run / "args.json").read_text())
        for key in SETTINGS_BEFORE_THEY_EXISTED:
            del settings[key]
        (out / run / "args.json").write_text(json.dumps(settings))
    # asked for with those settings spelled out, as `make ablation` does since the recipe defaults
    spelled = []
    for key, value in SETTINGS_BEFORE_THEY_EXISTED.items():
        spelled += [f"--{key}", *map(str, value if isinstance(value, list) else [value])]
    ablation.main(command("w", out) + spelled)
    assert calls == []
    assert len(json.loads((out / "results.json").read_text())["runs"]) == 4


def test_report_only_trains_nothing_and_lists_the_missing_runs(ablation_run, tmp_path, monkeypatch):
    calls = recording_train(monkeypatch)
    out = tmp_path / "copy"
    for run in ("baseline/seed1", "smart+pcgrad+cos/seed2"):
        for name in ("dev_metrics.json", "metrics.jsonl", "args.json"):
            (out / run).mkdir(parents=True, exist_ok=True)
            (out / run / name).write_bytes((ablation_run / run / name).read_bytes())
    ablation.main(["--out", str(out), "--seeds", "2", "--configs", *CONFIGS, "--report-only"])
    assert calls == []
    results = json.loads((out / "results.json").read_text())
    assert [r["run"] for r in results["runs"]] == ["baseline/seed1", "smart+pcgrad+cos/seed2"]
    assert results["missing"] == ["smart+pcgrad+cos/seed1", "baseline/seed2"]
    assert "Not finished, left out: smart+pcgrad+cos/seed1, baseline/seed2." in (out / "results.md").read_text()


def test_unknown_configuration_is_a_clear_error(tmp_path, monkeypatch):
    calls = recording_train(monkeypatch)
    with pytest.raises(SystemExit) as error:
        ablation.main(["--out", str(tmp_path), "--configs", "baseline", "smart+cosine"])
    assert str(error.value.code) == ("ablation: unknown configuration 'smart+cosine'; known: baseline, smart, "
                                     "pcgrad, cos, smart+pcgrad, pcgrad+cos, smart+pcgrad+cos, rs+pcgrad+cos, "
                                     "bregman+pcgrad+cos, pcgrad+cos@3x")
    assert calls == [] and not os.listdir(tmp_path)


@pytest.mark.parametrize("extra,named", [(["--seed", "5"], "--seed"), (["--smart"], "--smart"),
                                         (["--epochs", "2"], "--epochs"), (["--ou", "x"], "--out"),
                                         (["--smart_mu", "0"], "--smart_mu"), (["--seed=11711"], "--seed"),
                                         (["--pcg"], "--pcgrad"), (["--smart_l", "0"], "--smart_lambda_s"),
                                         (["--max_len", "32", "--resume"], "--resume")])
def test_train_arguments_the_ablation_sets_are_refused(tmp_path, monkeypatch, extra, named):
    calls = recording_train(monkeypatch)
    with pytest.raises(SystemExit) as error:
        ablation.main(["--out", str(tmp_path), "--", *extra])
    assert f"the ablation sets {named} itself" in str(error.value.code)
    assert calls == []


def test_make_ablation_s_command_line_is_accepted_and_reaches_train_py():
    """The Makefile's `ablation` recipe: its arguments pass check_extra, and every run's argv is
    one train.py parses, with the settings after '--' (--smart_tasks is not --smart)."""
    (line,) = [line for line in (ROOT / "Makefile").read_text().splitlines() if "-m tools.ablation" in line]
    argv = shlex.split(line.split("-m tools.ablation", 1)[1].replace("$(DATA_DIR)", "../shared/data"))
    args = ablation.parse_args(argv)
    ablation.check_extra(args.extra)
    for config in ablation.CONFIGS:
        parsed = train.parse_args(ablation.run_arguments(config, 2, "out/x", args.epochs, args.steps_per_epoch,
                                                         args.extra))
        assert (parsed.task, parsed.seed, parsed.epochs, parsed.max_len) == ("all", 2, 1, 64)
        assert parsed.smart_tasks == ["sst", "para", "sts"] and parsed.smart == ("--smart" in ablation.CONFIGS[config])
        assert parsed.steps_per_epoch == 60 * ablation.STEPS_FACTOR.get(config, 1)


def test_compare_pairs_the_differences_by_seed():
    # with = without + 0.02 on every seed, while the seeds themselves differ by 0.2: paired, the
    # difference has no spread and is told from it; unpaired (difference of the means, spread of
    # the rows) it would be lost in the rows' spread of 0.2
    runs = {"cos": [(0.3, 0.3, 0.3, 100.0), (0.5, 0.5, 0.5, 100.0), (0.7, 0.7, 0.7, 100.0)],
            "baseline": [(0.28, 0.31, 0.28, 50.0), (0.48, 0.52, 0.48, 50.0), (0.68, 0.73, 0.68, 50.0)]}
    (row,) = ablation.compare(hand_made(runs))
    assert (row["technique"], row["with"], row["without"], row["seeds"]) == ("Cosine", "cos", "baseline", 3)
    assert row["sst"] == pytest.approx(0.02) and row["sst_std"] == pytest.approx(0.0, abs=1e-12)
    assert row["sst_exceeds_spread"]
    # para: differences -0.01, -0.02, -0.03 (sign: with minus without): mean -0.02, std 0.01,
    # 95 % half-width t(0.975, 2) * 0.01 / sqrt(3) = 4.3027 * 0.005774 = 0.02484 > 0.02: not told
    assert row["para"] == pytest.approx(-0.02) and row["para_std"] == pytest.approx(0.01)
    assert row["para_half_width"] == pytest.approx(4.302653 * 0.01 / 3 ** 0.5, rel=1e-6)
    assert not row["para_exceeds_spread"]
    assert row["time_ratio"] == pytest.approx(2.0)
    line = ablation.comparison_table(hand_made(runs)).splitlines()[2]
    assert line == "| Cosine | +Cosine | Baseline | 3 | **+0.020 ± 0.000** | -0.020 ± 0.025 | **+0.020 ± 0.000** | 2.00 |"


def test_compare_uses_only_the_seeds_both_rows_have():
    runs = {"smart+pcgrad+cos": [(0.5, 0.7, 0.85, 300.0), (0.52, 0.71, 0.86, 310.0), (0.9, 0.9, 0.9, 320.0)],
            "pcgrad+cos": [(0.49, 0.69, 0.84, 100.0), (0.50, 0.70, 0.85, 110.0)],
            "pcgrad+cos@3x": [(0.51, 0.72, 0.86, 290.0)]}
    rows = ablation.compare(hand_made(runs))
    assert [row["technique"] for row in rows] == ["SMART, with GS + Cosine"]  # the @3x row has one seed only
    (row,) = rows
    assert row["seeds"] == 2 and row["sst"] == pytest.approx((0.01 + 0.02) / 2)   # seed 3 left out
    assert row["time_ratio"] == pytest.approx(305.0 / 105.0)


def test_the_steps_factor_row_trains_longer_on_the_same_recipe(tiny_weights):  # noqa: F811
    argv = ablation.run_arguments("pcgrad+cos@3x", 2, "out/x", 1, 60, extra_arguments(tiny_weights))
    args = train.parse_args(argv)
    assert (args.steps_per_epoch, args.pcgrad, args.cos, args.smart, args.seed) == (180, True, True, False, 2)
    with pytest.raises(ValueError, match="give --steps_per_epoch"):
        ablation.run_arguments("pcgrad+cos@3x", 1, "out/x")
    for config, flag, value in (("rs+pcgrad+cos", "smart_mu", 0.0), ("bregman+pcgrad+cos", "smart_lambda_s", 0.0)):
        args = train.parse_args(ablation.run_arguments(config, 1, "out/x", 1, 60))
        assert args.smart and args.pcgrad and args.cos and getattr(args, flag) == value


def test_runs_side_by_side_each_on_a_core_of_its_own(tiny_weights, tmp_path, capfd):  # noqa: F811
    assert len(os.sched_getaffinity(0)) >= 2, "the project's machines have 2 cores"
    completed, failed = ablation.run_all(str(tmp_path), ["baseline", "cos"], 1, 1, 2, extra_arguments(tiny_weights), jobs=2)
    assert (completed, failed) == (True, [])
    err = capfd.readouterr().err
    assert "[1/2] baseline seed 1: training on core" in err and "[2/2] cos seed 1: training on core" in err
    for config in ("baseline", "cos"):
        assert (tmp_path / config / "seed1" / "dev_metrics.json").exists()
        assert "best dev" in (tmp_path / "logs" / f"{config}-seed1.log").read_text()
    settings = ablation.one_core_process(1)
    assert settings["env"]["OPENBLAS_NUM_THREADS"] == "1"
    assert settings["preexec_fn"].func is os.sched_setaffinity and settings["preexec_fn"].args == (0, {1})


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("returncode,completed,failed", [(130, False, []), (143, False, []), (-2, False, []),
                                                         (1, True, [("baseline", 1), ("cos", 1)])])
def test_a_run_that_stops_is_reported(tiny_weights, tmp_path, monkeypatch, capfd,  # noqa: F811
                                      returncode, completed, failed, jobs):
    # 130, 143 (SIGINT, SIGTERM: train.py saved last/), -2 (a Ctrl-C before train.py's handlers):
    # the ablation stops, the next run is not started; anything else, a divergence's "train.py:
    # ..." exit 1 too: that run failed and the ablation goes on
    calls = recording_train(monkeypatch, returncode)
    result = ablation.run_all(str(tmp_path), ["baseline", "cos"], 1, 1, 2, extra_arguments(tiny_weights), jobs=jobs)
    assert result == (completed, failed)
    assert len(calls) == (2 if returncode == 1 or jobs == 2 else 1)  # side by side, both had started
    err = capfd.readouterr().err
    assert ("interrupted after" in err) == (returncode != 1) and ("FAILED after" in err) == (returncode == 1)


def test_a_signal_to_the_ablation_is_passed_on_to_the_run(monkeypatch):
    """SIGTERM (or SIGINT) sent to the ablation alone reaches the train.py under way, which
    saves last/ and exits, and the ablation stops after it; its own handlers come back after."""
    class Running(StoppedRun):
        def __init__(self):
            super().__init__(None)
            self.signals = []

        def send_signal(self, number):
            self.signals.append(number)
            self.returncode = 128 + number
    run, before = Running(), signal.getsignal(signal.SIGTERM)
    with ablation.signals_passed_on([run]) as received:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(200):  # the handler runs at the interpreter's next check, within a moment
            if received:
                break
            time.sleep(0.01)
    assert received == [signal.SIGTERM] and run.signals == [signal.SIGTERM] and run.returncode == 143
    assert signal.getsignal(signal.SIGTERM) == before
