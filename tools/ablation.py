"""The ablation table of the report (Josiah Griggs, "Enhancing Multi-Task Learning with BERT",
Stanford CS224N Default Project report): every configuration, several seeds, mean ± std.
Run from the repository root (``-m`` puts the tools package on the module path):

    python -m tools.ablation --jobs 2 --epochs 1 --steps_per_epoch 60 -- --data_dir ../shared/data --max_len 64
    python -m tools.ablation --configs baseline smart+pcgrad+cos --seeds 2 --steps_per_epoch 60
    python -m tools.ablation --report-only                    # only (re)write the tables from the finished runs
    make ablation                                                # the CPU budget recipe below, on $(DATA_DIR)

Configurations (``--configs``, default all), each the train.py flags it adds to ``--task all``:

    baseline             (none)                       the report's "Baseline"
    smart                --smart                      the report's "SMART"
    pcgrad               --pcgrad
    cos                  --cos
    smart+pcgrad         --smart --pcgrad             the report's "SMART + Gradient Surgery"
    pcgrad+cos           --pcgrad --cos               the full recipe without SMART
    smart+pcgrad+cos     --smart --pcgrad --cos       the report's "SMART + GS + Cosine", train.py's recipe
    rs+pcgrad+cos        ... --smart_mu 0             SMART's smoothness term R_s alone
    bregman+pcgrad+cos   ... --smart_lambda_s 0       SMART's Bregman proximal point term alone
    pcgrad+cos@3x        --pcgrad --cos, 3x --steps_per_epoch   about the minutes of a SMART run

``compare`` (the second table of results.md) pairs the runs by seed to say what each
technique adds (COMPARISONS) and whether that can be told from the seed-to-seed spread.

Every run is a ``python train.py`` process (train.py beside the tools folder; the ablation never
imports it). ``--jobs N`` trains N runs at a time, each pinned to a core of its own with OpenBLAS
on one thread (``run_side_by_side``; logs in OUT/logs/); the default, 1, trains them one after
the other, each on every core this process may use, its output on this terminal.

Seed k (1..``--seeds``) is ``--seed k``; its run folder is OUT/CONFIG/seedK, a normal train.py
run folder. The runs go seed by seed (every configuration with seed 1, then seed 2, ...), so an
ablation stopped half-way already has a complete one-seed table. Arguments after ``--`` go to
every run's train.py unchanged; those the ablation sets itself (--task, --pcgrad, --smart,
--cos, --seed, --out, --resume, --epochs, --steps_per_epoch, --smart_mu, --smart_lambda_s) are
refused there, as is any abbreviation argparse could take for one of them (--se, --pcg).

Resumable: a run with a dev_metrics.json is finished and skipped; a run with
last/checkpoint.safetensors but no dev_metrics.json is continued with --resume (train.py's
exact resume). Ctrl-C (or SIGTERM, passed on to the runs) saves the current run (train.py does)
and stops the ablation; the same command continues it. A run already started with other
settings than this command gives it (tinybert.run.session.RESUME_MUST_MATCH: the configuration's
flags, --seed, --epochs, --steps_per_epoch and those of the arguments after ``--`` spelled in
full, such as --max_len) is an error before anything trains, rather than a silent mix of recipes
in one table; train.py's own resume check refuses an interrupted run whose checkpoint differs
from what train.py's defaults make of the rest, and that run is reported as failed. A run that
diverges (train.py stops it with a "train.py: ..." message) is reported as failed too, and the
ablation goes on with the next.

Outputs in OUT: results.json (every run's dev metrics sst, para, sts and its training
seconds, the ``seconds`` of its last step record) and results.md (the table of
``markdown_table``: mean ± sample std over seeds per configuration, beside the report's
numbers). ``summarise`` and ``markdown_table`` take the parsed results.json, so a test can
check that a table in the docs equals the committed JSON.

The budget of ``make ablation``: 30 runs (10 configurations x 3 seeds), each one epoch of 60
steps (60 x 32 = 1,920 examples per task: the table compares short runs, not converged ones),
--max_len 64, one batch of each task a step, and the dev sets only (--no_test_predictions), two
runs at a time (--jobs 2), each on one core. Why shortened: the default recipe's 267 steps at
--max_len 128 take over an hour a run with SMART. Why --max_len 64: batches are bucketed by
length and the examples average 25-30 tokens (90th percentile 40-51), so it truncates only the
longest 2-3 % of the QQP and STS pairs; it bounds the cost of the few long batches. Why one core
a run: on two cores a single run's threads wait on each other at every product, and badly
when anything else runs. The full-recipe rerun committed in docs/results/full/ shows it: its
first 35 steps, on both cores of an idle machine, took 13.6 s each on average; steps 49 to 59,
with a test suite running beside it, 66 to 94 s; it went on on one core. One core a run keeps
each run's minutes comparable with the others' whatever else the machine does. The
minutes a run took are in results.json ("seconds") and results.md ("train min").
The whole table took about 2 h 20 min on two cores: its last 23 runs, trained in one go, took
1 h 46 min, evaluation included (docs/results/ablation_60steps/ablation.log); its 30 runs add up
to 4.2 hours of training on one core.
"""
import argparse
import contextlib
import functools
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time

from scipy import stats

from tinybert.run import files
from tinybert.run.plot import read_metrics
from tinybert.run.folder import RESUME_MUST_MATCH, SETTINGS_BEFORE_THEY_EXISTED

# The training script every run is: train.py at the repository root, beside this tools folder.
TRAIN_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train.py")

# name: train.py flags, in the report's order of adding techniques, then the rows that take the
# full recipe apart: without SMART, SMART's two terms one at a time, and the steps SMART's
# minutes would buy without it
CONFIGS = {
    "baseline": [],
    "smart": ["--smart"],
    "pcgrad": ["--pcgrad"],
    "cos": ["--cos"],
    "smart+pcgrad": ["--smart", "--pcgrad"],
    "pcgrad+cos": ["--pcgrad", "--cos"],
    "smart+pcgrad+cos": ["--smart", "--pcgrad", "--cos"],
    "rs+pcgrad+cos": ["--smart", "--smart_mu", "0", "--pcgrad", "--cos"],
    "bregman+pcgrad+cos": ["--smart", "--smart_lambda_s", "0", "--pcgrad", "--cos"],
    "pcgrad+cos@3x": ["--pcgrad", "--cos"],
}
LABELS = {"baseline": "Baseline", "smart": "+SMART", "pcgrad": "+Gradient Surgery", "cos": "+Cosine",
          "smart+pcgrad": "SMART + Gradient Surgery", "pcgrad+cos": "GS + Cosine",
          "smart+pcgrad+cos": "SMART + GS + Cosine", "rs+pcgrad+cos": "SMART's R_s only + GS + Cosine",
          "bregman+pcgrad+cos": "SMART's Bregman only + GS + Cosine",
          "pcgrad+cos@3x": "GS + Cosine, 3x the steps"}
# A configuration trained for this many times the ablation's steps per epoch: "pcgrad+cos@3x"
# has about the minutes of a SMART run (a SMART step costs about 3 plain ones), so that
# SMART can be compared with what its time buys otherwise.
STEPS_FACTOR = {"pcgrad+cos@3x": 3}
# What each technique adds, as (technique, configuration with it, the same without it): the
# differences are paired by seed (``compare``).
COMPARISONS = [
    ("SMART", "smart", "baseline"),
    ("Gradient Surgery", "pcgrad", "baseline"),
    ("Cosine", "cos", "baseline"),
    ("SMART, with GS", "smart+pcgrad", "pcgrad"),
    ("Gradient Surgery, with Cosine", "pcgrad+cos", "cos"),
    ("SMART, with GS + Cosine", "smart+pcgrad+cos", "pcgrad+cos"),
    ("SMART's R_s alone, with GS + Cosine", "rs+pcgrad+cos", "pcgrad+cos"),
    ("SMART's Bregman term alone, with GS + Cosine", "bregman+pcgrad+cos", "pcgrad+cos"),
    ("SMART against 3x the steps (equal minutes)", "smart+pcgrad+cos", "pcgrad+cos@3x"),
]
# The report's dev scores (docs/12-results.md), for the configurations it has.
REPORT = {"baseline": {"sst": 0.306, "para": 0.347, "sts": 0.054},
          "smart": {"sst": 0.306, "para": 0.347, "sts": 0.054},
          "smart+pcgrad": {"sst": 0.402, "para": 0.632, "sts": 0.054},
          "smart+pcgrad+cos": {"sst": 0.328, "para": 0.616, "sts": 0.440}}
METRICS = ("sst", "para", "sts")
# train.py settings the ablation sets per run; refused among the extra arguments
CONTROLLED = ("task", "pcgrad", "smart", "cos", "seed", "out", "resume", "epochs", "steps_per_epoch",
              "smart_mu", "smart_lambda_s")
# the train.py switches (no value) among CONTROLLED: a run has them on exactly when its configuration says so
SWITCHES = ("pcgrad", "smart", "cos")
# exit codes of a train.py that a signal stopped: 128 + the signal when train.py saved last/ and
# returned, minus the signal when it came before train.py's handlers were in place
INTERRUPTED = (128 + signal.SIGINT, 128 + signal.SIGTERM, -signal.SIGINT, -signal.SIGTERM)
# settings every run of one table must share, recorded in results.json
RECIPE = ("epochs", "steps_per_epoch", "batch_size", "max_len", "lr")


# ---------------------------------------------------------------- the runs
def check_configs(configs):
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown configuration {', '.join(map(repr, unknown))}; known: {', '.join(CONFIGS)}")
    return list(dict.fromkeys(configs))  # each once, in the order given


def check_extra(extra):
    """Refuse train.py arguments that would override what the ablation sets per run: a flag
    named as one of CONTROLLED (``--seed 5``, ``--seed=5``), or one that argparse could take for
    an abbreviation of them (``--se``, ``--pcg``; one that is ambiguous is refused too, where
    train.py would refuse it anyway)."""
    named = set()
    for token in extra:
        name = token[2:].split("=", 1)[0] if token.startswith("--") else ""
        if name:
            named.update([name] if name in CONTROLLED else [key for key in CONTROLLED if key.startswith(name)])
    overridden = [key for key in CONTROLLED if key in named]
    if overridden:
        raise ValueError(f"the ablation sets {', '.join('--' + k for k in overridden)} itself: "
                         f"give --epochs/--steps_per_epoch before '--', and no --task/--seed/--out/--resume/"
                         f"--pcgrad/--smart/--cos after it")


def run_folder(out, config, seed):
    return os.path.join(out, config, f"seed{seed}")


def run_arguments(config, seed, folder, epochs=None, steps_per_epoch=None, extra=()):
    """train.py's argv for one run (without --resume)."""
    argv = ["--task", "all", *CONFIGS[config], "--seed", str(seed), "--out", folder]
    if epochs is not None:
        argv += ["--epochs", str(epochs)]
    if config in STEPS_FACTOR:
        if steps_per_epoch is None:
            raise ValueError(f"{config} trains {STEPS_FACTOR[config]}x the steps of the other rows: give "
                             f"--steps_per_epoch, or leave {config} out of --configs")
        steps_per_epoch *= STEPS_FACTOR[config]
    if steps_per_epoch is not None:
        argv += ["--steps_per_epoch", str(steps_per_epoch)]
    return argv + list(extra)


def run_state(folder):
    """'finished' (dev_metrics.json), 'interrupted' (a last/ checkpoint only) or 'new'."""
    if os.path.exists(os.path.join(folder, "dev_metrics.json")):
        return "finished"
    if os.path.exists(os.path.join(folder, "last", "checkpoint.safetensors")):
        return "interrupted"
    return "new"


def given_settings(argv):
    """{flag name: its value tokens} for every flag spelled out in full in ``argv`` (``--name
    a b`` or ``--name=a``; the last one wins, as in argparse; a switch such as --smart has [])."""
    given, name = {}, None
    for token in argv:
        if token.startswith("--"):
            name, equals, value = token[2:].partition("=")
            given[name] = [value] if equals else []
            name = None if equals else name
        elif name is not None:
            given[name].append(token)
    return given


def same_setting(trained, tokens):
    """Whether the value ``trained`` (from a run's args.json) is what the argument ``tokens`` give."""
    if isinstance(trained, list):  # --smart_tasks: a set of tasks, in train.py's order
        return sorted(set(map(str, trained))) == sorted(set(tokens))
    if isinstance(trained, (int, float)) and not isinstance(trained, bool):
        try:
            return len(tokens) == 1 and float(tokens[0]) == trained
        except ValueError:
            return False
    return tokens == [trained]


def check_settings(folder, argv):
    """A run already started must have been trained with the settings this ablation gives it in
    ``argv`` (train.py's argv for the run): every RESUME_MUST_MATCH setting that ``argv`` spells
    out in full, and the configuration's switches, on or off. A setting left to train.py's
    default is not compared here: for an interrupted run train.py's resume compares it."""
    path = os.path.join(folder, "args.json")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        recorded = json.load(f)
    given = given_settings(argv)
    for key in RESUME_MUST_MATCH:
        trained = recorded.get(key, SETTINGS_BEFORE_THEY_EXISTED.get(key))  # args.json older than the flag
        if key in SWITCHES:
            wanted, same = key in given, trained == (key in given)
        elif key in given:
            wanted, same = " ".join(given[key]), same_setting(trained, given[key])
        else:
            continue
        if not same:
            raise ValueError(f"{folder} was trained with --{key}={trained}, this ablation has "
                             f"--{key}={wanted}: use another --out, or delete that run folder")


def read_run(out, config, seed):
    """The results.json entry of a finished run."""
    folder = run_folder(out, config, seed)
    with open(os.path.join(folder, "dev_metrics.json"), encoding="utf-8") as f:
        dev = json.load(f)
    missing = [m for m in METRICS if m not in dev]
    if missing:
        raise ValueError(f"{folder}/dev_metrics.json lacks {', '.join(missing)} (not a --task all run?)")
    steps, _ = read_metrics(os.path.join(folder, "metrics.jsonl"))
    return {"config": config, "seed": seed, **{m: dev[m] for m in METRICS},
            "seconds": steps[-1]["seconds"] if steps else None, "run": f"{config}/seed{seed}"}


def read_recipe(out, runs):
    """The RECIPE settings shared by all ``runs`` (from their args.json); an error if they differ."""
    recipe, first = {}, None
    for run in runs:
        path = os.path.join(out, run["run"], "args.json")
        with open(path, encoding="utf-8") as f:
            recorded = json.load(f)
        settings = {key: recorded.get(key) for key in RECIPE}
        if settings["steps_per_epoch"] is not None:  # a STEPS_FACTOR row shares the others' recipe
            settings["steps_per_epoch"] //= STEPS_FACTOR.get(run["config"], 1)
        if first is None:
            recipe, first = settings, run["run"]
        elif settings != recipe:
            differ = [k for k in RECIPE if settings[k] != recipe[k]]
            raise ValueError(f"{run['run']} and {first} were trained with different "
                             f"{', '.join('--' + k for k in differ)}: one table cannot mix them")
    return recipe


def clock(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


def run_all(out, configs, seeds, epochs=None, steps_per_epoch=None, extra=(), stream=None, jobs=1):
    """Train every (config, seed) not finished yet: one after the other (``run_one_by_one``), or
    with ``jobs`` > 1 that many at a time (``run_side_by_side``), each a ``python train.py``
    process. Returns (completed, failed): completed is False when a run was interrupted (Ctrl-C),
    failed the runs whose train.py failed (diverged, or stopped with another error)."""
    stream = stream or sys.stderr
    plan = [(config, seed) for seed in range(1, seeds + 1) for config in configs]
    arguments = {(c, s): run_arguments(c, s, run_folder(out, c, s), epochs, steps_per_epoch, extra) for c, s in plan}
    for (config, seed), argv in arguments.items():  # fail now, not after an hour of training
        check_settings(run_folder(out, config, seed), argv)
    started, pending = time.time(), []
    for number, (config, seed) in enumerate(plan, 1):
        prefix = f"[{number}/{len(plan)}] {config} seed {seed}"
        state = run_state(run_folder(out, config, seed))
        if state == "finished":
            print(f"{prefix}: finished earlier, skipped", file=stream)
        else:
            flag = "--resume" if state == "interrupted" else "--overwrite"
            pending.append((prefix, config, seed, arguments[config, seed] + [flag]))
    if jobs > 1:
        return run_side_by_side(out, pending, jobs, stream, started)
    return run_one_by_one(out, pending, stream, started)


@contextlib.contextmanager
def signals_passed_on(processes):
    """While inside, a SIGINT or SIGTERM this process gets is passed on to the ``processes``
    still running (train.py then saves last/ and exits 130 or 143) instead of stopping this
    one, and listed in the list the block receives. A Ctrl-C at a terminal reaches the
    children anyway (one process group); a second signal only repeats what train.py does."""
    received = []

    def pass_on(number, frame):
        received.append(number)
        for process in list(processes):
            if process.poll() is None:
                process.send_signal(number)
    previous = {number: signal.signal(number, pass_on) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def report_end(out, prefix, config, seed, returncode, elapsed, stream, where):
    """Print how a run's train.py ended: 'finished', 'interrupted' (a signal: last/ saved) or
    'failed' (diverged, or another error: ``where`` says where its message is)."""
    if run_state(run_folder(out, config, seed)) == "finished":
        print(f"{prefix}: done in {elapsed}: {scores_line(out, config, seed)}", file=stream, flush=True)
        return "finished"
    if returncode in INTERRUPTED:
        print(f"{prefix}: interrupted after {elapsed}; run the same command again to continue", file=stream)
        return "interrupted"
    print(f"{prefix}: FAILED after {elapsed} (exit {returncode}): {where}", file=stream, flush=True)
    return "failed"


def run_one_by_one(out, pending, stream, started):
    """Train the ``pending`` runs one after the other, each a ``python train.py`` process in the
    foreground (its output on this terminal, on every core this process may use). A run that
    fails is reported and the next one starts; a signal (Ctrl-C) stops the ablation once the
    run under way has saved its last/."""
    failed = []
    for prefix, config, seed, argv in pending:
        print(f"{prefix}: {'resuming' if '--resume' in argv else 'training'} in {run_folder(out, config, seed)}",
              file=stream, flush=True)
        run_started = time.time()
        process = subprocess.Popen([sys.executable, TRAIN_SCRIPT, *argv])
        with signals_passed_on([process]) as received:
            returncode = process.wait()
        elapsed = f"{clock(time.time() - run_started)} (ablation {clock(time.time() - started)})"
        end = report_end(out, prefix, config, seed, returncode, elapsed, stream, "see train.py's message above")
        if end == "failed":
            failed.append((config, seed))
        if end == "interrupted" or received:
            return False, failed
    return True, failed


def scores_line(out, config, seed):
    return "  ".join(f"{m} {v:.3f}" for m, v in read_run(out, config, seed).items() if m in METRICS)


def one_core_process(core):
    """A child's settings for one core: pinned to it (tinybert's fast path counts the cores it
    may use, so it runs no thread pool) and OpenBLAS on one thread."""
    return {"env": {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
            "preexec_fn": functools.partial(os.sched_setaffinity, 0, {core})}


def run_side_by_side(out, pending, jobs, stream, started):
    """Train the ``pending`` runs ``jobs`` at a time, each a ``python train.py`` process on a
    core of its own (``one_core_process``), its output in OUT/logs/CONFIG-seedK.log. On two
    cores, two one-core runs side by side finish more runs an hour than one run on both cores
    (whose threads wait on each other at every product), and each run's minutes stay
    comparable with the others'. Ctrl-C reaches the children too (one process group; a SIGINT
    or SIGTERM sent to this process alone is passed on to them): each saves its last/ and the
    ablation returns once all have stopped."""
    cores = sorted(os.sched_getaffinity(0))
    if jobs > len(cores):
        raise ValueError(f"--jobs {jobs}: this process may use {len(cores)} core(s)")
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    free, running, failed, queue = cores[:jobs], {}, [], list(pending)
    interrupted = False
    with signals_passed_on(running) as received:
        while queue or running:
            while queue and free and not (interrupted or received):
                prefix, config, seed, argv = queue.pop(0)
                core = free.pop(0)
                log = open(os.path.join(out, "logs", f"{config}-seed{seed}.log"), "w", encoding="utf-8")
                process = subprocess.Popen([sys.executable, TRAIN_SCRIPT, *argv], stdout=log, stderr=subprocess.STDOUT,
                                           **one_core_process(core))
                running[process] = (prefix, config, seed, core, time.time(), log)
                print(f"{prefix}: {'resuming' if '--resume' in argv else 'training'} on core {core} in "
                      f"{run_folder(out, config, seed)}", file=stream, flush=True)
            time.sleep(0.2)
            for process in [p for p in running if p.poll() is not None]:
                prefix, config, seed, core, run_started, log = running.pop(process)
                log.close()
                free.append(core)
                elapsed = f"{clock(time.time() - run_started)} (ablation {clock(time.time() - started)})"
                end = report_end(out, prefix, config, seed, process.returncode, elapsed, stream, f"see {log.name}")
                interrupted = interrupted or end == "interrupted"
                if end == "failed":
                    failed.append((config, seed))
            if (interrupted or received) and not running:
                return False, failed
    return True, failed


# ---------------------------------------------------------------- the table
def summarise(results):
    """One row per configuration present, in CONFIGS order: the number of seeds, the mean and
    sample standard deviation (None with one seed) of each metric, the mean training seconds,
    and the report's numbers (None where the report has no such row)."""
    rows = []
    for config in CONFIGS:
        runs = [r for r in results["runs"] if r["config"] == config]
        if not runs:
            continue
        row = {"config": config, "label": LABELS[config], "seeds": len(runs)}
        for metric in METRICS:
            values = [r[metric] for r in runs]
            row[metric] = statistics.mean(values)
            row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else None
        seconds = [r["seconds"] for r in runs if r.get("seconds") is not None]
        row["seconds"] = statistics.mean(seconds) if seconds else None
        row["report"] = REPORT.get(config)
        rows.append(row)
    return rows


def mean_std(mean, std):
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def markdown_table(results):
    """The Markdown table of ``summarise(results)``: ours (mean ± std over seeds) beside the report's."""
    lines = ["| configuration | train.py flags | seeds | SST acc | QQP acc | STS r "
             "| report SST | report QQP | report STS | train min |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in summarise(results):
        flags = " ".join(CONFIGS[row["config"]])
        ours = [mean_std(row[m], row[f"{m}_std"]) for m in METRICS]
        report = [f"{row['report'][m]:.3f}" for m in METRICS] if row["report"] else ["—"] * 3
        minutes = "—" if row["seconds"] is None else f"{row['seconds'] / 60:.1f}"
        lines.append(f"| {row['label']} | {f'`{flags}`' if flags else '(none)'} | {row['seeds']} | "
                     + " | ".join(ours + report) + f" | {minutes} |")
    return "\n".join(lines) + "\n"


def compare(results, confidence=0.95):
    """One row per COMPARISONS entry whose two configurations share at least two seeds. The
    differences are paired by seed, d_k = score(with, seed k) - score(without, seed k), so that
    what a seed fixes (head initialisation, data order) cancels. For each metric: the mean and
    sample std of the d_k, the half-width of the mean's confidence interval (Student's t with
    n - 1 degrees of freedom: t * std / sqrt(n)), and ``METRIC_exceeds_spread``, whether that
    interval leaves 0 out. ``time_ratio``: the with-configuration's mean training seconds over
    the without-configuration's, on the same seeds (None where a run has no time)."""
    by_run = {(run["config"], run["seed"]): run for run in results["runs"]}
    rows = []
    for technique, with_config, without_config in COMPARISONS:
        seeds = sorted(seed for config, seed in by_run if config == with_config and (without_config, seed) in by_run)
        if len(seeds) < 2:
            continue
        t_quantile = stats.t.ppf(0.5 + confidence / 2, len(seeds) - 1)
        row = {"technique": technique, "with": with_config, "without": without_config, "seeds": len(seeds)}
        for metric in METRICS:
            differences = [by_run[with_config, seed][metric] - by_run[without_config, seed][metric] for seed in seeds]
            mean, std = statistics.mean(differences), statistics.stdev(differences)
            half_width = t_quantile * std / math.sqrt(len(seeds))
            row.update({metric: mean, f"{metric}_std": std, f"{metric}_half_width": half_width,
                        f"{metric}_exceeds_spread": abs(mean) > half_width})
        seconds = [(by_run[with_config, seed].get("seconds"), by_run[without_config, seed].get("seconds")) for seed in seeds]
        row["time_ratio"] = (None if any(None in pair for pair in seconds)
                             else statistics.mean(w for w, _ in seconds) / statistics.mean(o for _, o in seconds))
        rows.append(row)
    return rows


def comparison_table(results):
    """The Markdown table of ``compare(results)``: each difference as mean ± the 95 % interval's
    half-width, in bold where the interval leaves 0 out."""
    lines = ["| technique | with | without | seeds | Δ SST acc | Δ QQP acc | Δ STS r | time ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for row in compare(results):
        cells = []
        for metric in METRICS:
            cell = f"{row[metric]:+.3f} ± {row[f'{metric}_half_width']:.3f}"
            cells.append(f"**{cell}**" if row[f"{metric}_exceeds_spread"] else cell)
        ratio = "—" if row["time_ratio"] is None else f"{row['time_ratio']:.2f}"
        lines.append(f"| {row['technique']} | {LABELS[row['with']]} | {LABELS[row['without']]} | {row['seeds']} | "
                     + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines) + "\n"


def collect(out, configs, seeds, stream=None):
    """results.json's object from the finished runs of ``configs`` x seeds 1..``seeds``."""
    stream = stream or sys.stderr
    runs, missing = [], []
    for seed in range(1, seeds + 1):
        for config in configs:
            if run_state(run_folder(out, config, seed)) == "finished":
                runs.append(read_run(out, config, seed))
            else:
                missing.append(f"{config}/seed{seed}")
    if missing:
        print(f"not finished, left out of the table: {', '.join(missing)}", file=stream)
    runs.sort(key=lambda r: (list(CONFIGS).index(r["config"]), r["seed"]))
    return {"recipe": read_recipe(out, runs), "runs": runs, "missing": missing}


def write_results(out, results):
    files.write_text(os.path.join(out, "results.json"), json.dumps(results, indent=2) + "\n")
    recipe = ", ".join(f"--{k} {v}" for k, v in results["recipe"].items())
    text = ["# Ablation", "",
            f"Dev scores (SST and QQP: accuracy; STS: Pearson r), mean ± sample std over seeds; "
            f"every run `python train.py --task all FLAGS --seed K` with {recipe or 'no finished run'}. "
            f"Written by `python -m tools.ablation` from results.json; the report's numbers are "
            f"those of docs/12-results.md (its QQP data differ, see there). \"train min\" is the "
            f"mean training time of a run, evaluation not included.", "",
            markdown_table(results).rstrip("\n")]
    if compare(results):
        text += ["", "## What each technique adds",
                 "", "Paired by seed: each seed's score with the technique minus the same seed's score "
                 "without it; mean ± the half-width of its 95 % confidence interval (Student's t over "
                 "the seeds), in bold where that interval leaves 0 out, i.e. where the difference can "
                 "be told from the seed-to-seed spread. \"time ratio\": training minutes with over "
                 "without.", "", comparison_table(results).rstrip("\n")]
    if results["missing"]:
        text += ["", f"Not finished, left out: {', '.join(results['missing'])}."]
    files.write_text(os.path.join(out, "results.md"), "\n".join(text) + "\n")


# ---------------------------------------------------------------- command line
def parse_args(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    own, extra = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(prog="python -m tools.ablation", description=__doc__.split("\n\n")[0],
                                usage="%(prog)s [options] [-- train.py arguments]")
    p.add_argument("--out", default=os.path.join("runs", "ablation"), help="the ablation folder (default runs/ablation)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 1..SEEDS per configuration (default 3)")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), help=f"any of (default all): {' '.join(CONFIGS)}")
    p.add_argument("--epochs", type=int, default=None, help="train.py --epochs (default: train.py's)")
    p.add_argument("--steps_per_epoch", type=int, default=None, help="train.py --steps_per_epoch (default: train.py's)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs trained at a time, each a process on one core (default 1: one after the other, "
                        "each on every core)")
    p.add_argument("--report-only", action="store_true", help="train nothing; write the results of the finished runs")
    args = p.parse_args(own)
    if args.seeds < 1:
        p.error("--seeds must be at least 1")
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    args.extra = extra
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        configs = check_configs(args.configs)
        check_extra(args.extra)
        completed, failed = True, []
        if not args.report_only:
            completed, failed = run_all(args.out, configs, args.seeds, args.epochs, args.steps_per_epoch, args.extra,
                                        jobs=args.jobs)
        results = collect(args.out, configs, args.seeds)
        write_results(args.out, results)
    except (FileNotFoundError, ValueError, KeyError) as error:
        sys.exit(f"ablation: {error.args[0] if isinstance(error, KeyError) else error}")
    except KeyboardInterrupt:  # Ctrl-C between the runs (while one runs, train.py handles it)
        sys.exit("\nablation: interrupted; run the same command again to continue")
    print(f"wrote {os.path.join(args.out, 'results.json')} and results.md ({len(results['runs'])} runs)", file=sys.stderr)
    print(markdown_table(results), end="")
    if failed:
        sys.exit(f"ablation: {len(failed)} run(s) failed: {', '.join(f'{c}/seed{s}' for c, s in failed)}")
    if not completed:
        print("ablation: interrupted; the table holds the runs finished so far", file=sys.stderr)


if __name__ == "__main__":
    main()
