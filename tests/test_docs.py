"""The course in docs/ is part of the code: its snippets run, its links lead somewhere, the
functions it names exist, and every chapter ends with exercises.

- Every fenced block opened with ```python run is executed, in order, one namespace per
  chapter (and per appendix, docs/performance.md), with the repository root as working
  directory. Other ```python blocks are illustrative and are not run.
- Every relative link and image in docs/*.md must point at an existing file.
- Every dotted name tinybert.module.attribute mentioned in docs/ must import and resolve.
- Every test named as tests/test_x.py::test_name must exist.
- Chapters 01..13 exist and each ends with an "Exercises" section of two or three items.
- The figures are small PNGs, each drawn by docs/make_figures.py and shown by a chapter.
- The results tables (README, chapter 12, the results log docs/results/README.md) equal the
  committed runs and ablation JSON; the log's ```python run blocks run as a chapter's do.
- docs/README.md's path from a fresh clone to the full recipe names only make targets,
  train.py flags and modules that exist, and its data step is `make data`, which says the
  project's Quora split as tinybert/run/download.py makes it (tests/test_download.py checks that
  the split rebuilds the project's files byte for byte).
"""
import ast
import importlib
import importlib.util
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, data_dir, write_run

DOCS = ROOT / "docs"
CHAPTERS = sorted(DOCS.glob("[0-9][0-9]-*.md"))
APPENDICES = [DOCS / "performance.md"]                # pages of the course outside the numbered chapters
LOG = DOCS / "results" / "README.md"                  # the results log: every committed run, how it was made
MARKDOWN = sorted(DOCS.glob("*.md"))
FIGURE_LIMIT = 150 * 1024          # bytes: figures are committed, keep the repository light

RUN_BLOCK = re.compile(r"^```python run[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
FENCE = re.compile(r"^```.*?^```[ \t]*$", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
DOTTED = re.compile(r"\btinybert(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
TRAIN_NAME = re.compile(r"`train\.(?!py\b)([A-Za-z_]\w*)")
TEST_ID = re.compile(r"\b(tests/test_\w+\.py)::(\w+)")


def run_blocks(path):
    """[(line number of the block's first code line, code)] of the ```python run blocks."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, match.start(1)) + 1, match.group(1)) for match in RUN_BLOCK.finditer(text)]


# ---------------------------------------------------------------- the snippets run
@pytest.mark.parametrize("chapter", CHAPTERS + APPENDICES + [LOG], ids=lambda path: path.relative_to(DOCS).as_posix())
def test_chapter_code_runs(chapter, monkeypatch):
    """The chapter's runnable blocks, in order, in one namespace. Each block is compiled with
    the chapter's file name and padded to its line number, so a traceback points at the line
    of the .md file that failed."""
    from tinybert import backend
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))                 # `import train`, as from the repo root
    monkeypatch.setenv("DATA_DIR", str(data_dir()))
    backend.use_device("cpu")
    backend.seed(0)
    namespace = {"__name__": f"docs_{chapter.stem.replace('-', '_')}"}
    for line, code in run_blocks(chapter):
        exec(compile("\n" * (line - 1) + code, str(chapter), "exec"), namespace)


def test_run_blocks_are_found():
    """Guard against a fence typo silently turning a chapter's blocks illustrative: every
    chapter runs something, and no fence carries an info string this file does not know."""
    for chapter in CHAPTERS + APPENDICES + [LOG]:
        assert run_blocks(chapter), f"{chapter.name}: no ```python run block"
    for path in MARKDOWN + [LOG]:
        for block in FENCE.findall(path.read_text(encoding="utf-8")):
            info = block.split("\n", 1)[0][3:].strip()
            assert info in ("", "python", "python run", "text", "bash", "json"), f"{path.name}: fence info {info!r}"


# ---------------------------------------------------------------- links and names
def _links_in(text):
    """The relative link targets of Markdown ``text`` (code blocks hold no links)."""
    return [target for target in LINK.findall(FENCE.sub("", text)) if not re.match(r"[a-z]+:", target)]


def _links(path):
    return _links_in(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", MARKDOWN + [LOG], ids=lambda path: path.relative_to(DOCS).as_posix())
def test_relative_links_exist(path):
    for target in _links(path):
        file = target.split("#", 1)[0]
        if not file:                                          # an anchor in the same page
            continue
        assert not file.startswith("/"), f"{path.name}: absolute link {target}"
        assert (path.parent / file).exists(), f"{path.name}: link to {target}, which does not exist"


def resolve(dotted):
    """Import the longest importable module prefix of ``dotted``, then getattr the rest."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
        return obj
    raise ModuleNotFoundError(dotted)


def test_dotted_names_resolve():
    names = {(path.name, name) for path in MARKDOWN for name in DOTTED.findall(path.read_text(encoding="utf-8"))}
    assert len(names) > 40
    unresolved = []
    for file, name in sorted(names):
        try:
            resolve(name)
        except (ImportError, AttributeError) as error:
            unresolved.append(f"{file}: {name} ({error})")
    assert not unresolved, "names in docs/ that do not exist:\n" + "\n".join(unresolved)


def test_train_names_resolve(monkeypatch):
    """Names of train.py's helpers, written `train.name` (as in `train.task_step`), exist too."""
    monkeypatch.syspath_prepend(str(ROOT))
    import train
    names = {name for path in MARKDOWN for name in TRAIN_NAME.findall(path.read_text(encoding="utf-8"))}
    assert names, "expected the docs to name train.py's helpers"
    missing = sorted(name for name in names if not hasattr(train, name))
    assert not missing, f"train.py has no {missing}"


def test_named_tests_exist():
    for path in MARKDOWN:
        for file, test in TEST_ID.findall(path.read_text(encoding="utf-8")):
            source = (ROOT / file).read_text(encoding="utf-8")
            assert re.search(rf"^def {test}\(", source, re.M), f"{path.name}: {file}::{test} does not exist"


def test_no_machine_paths():
    for path in MARKDOWN + [DOCS / "make_figures.py"]:
        text = path.read_text(encoding="utf-8")
        found = re.findall(r"(?<![\w.])/(?:home|work|Users|root|tmp)/\S*", text)
        assert not found, f"{path.name}: machine-specific path {found[0]}"


# ---------------------------------------------------------------- structure
def test_chapters_01_to_13_exist_and_end_with_exercises():
    numbers = [int(path.name[:2]) for path in CHAPTERS]
    assert numbers == list(range(1, 14)), f"chapters found: {[p.name for p in CHAPTERS]}"
    for path in CHAPTERS:
        text = FENCE.sub("", path.read_text(encoding="utf-8"))
        headings = re.findall(r"^## (.+)$", text, re.M)
        assert headings and headings[-1].strip() == "Exercises", f"{path.name}: last section is not Exercises"
        exercises = text[text.rindex("## Exercises"):]
        items = re.findall(r"^\d+\. ", exercises, re.M)
        assert 2 <= len(items) <= 3, f"{path.name}: {len(items)} exercises, expected 2 or 3"
        assert exercises.count("*Check:*") == len(items), f"{path.name}: every exercise says how to check it"


def test_table_of_contents_lists_every_chapter_in_order():
    table = "\n".join(line for line in (DOCS / "README.md").read_text(encoding="utf-8").splitlines()
                      if line.startswith("|"))
    links = [target for target in LINK.findall(table) if re.match(r"\d\d-", target)]
    assert links == [path.name for path in CHAPTERS]


def test_every_chapter_links_the_code_it_explains():
    for path in CHAPTERS:
        assert any(t.startswith(("../tinybert/", "../train.py", "../tests/")) for t in _links(path)), path.name


# ---------------------------------------------------------------- figures
def _figures_drawn():
    """The file names docs/make_figures.py writes (its FIGURES table), read without running it."""
    tree = ast.parse((DOCS / "make_figures.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "FIGURES" for t in node.targets):
            return {key.value for key in node.value.keys}
    raise AssertionError("docs/make_figures.py has no FIGURES table")


def test_figures_are_small_drawn_by_the_script_and_shown():
    committed = {path.name for path in (DOCS / "figures").glob("*.png")}
    assert committed == _figures_drawn(), "run `.venv/bin/python docs/make_figures.py` to redraw the figures"
    shown = {Path(t).name for path in CHAPTERS for t in _links(path) if t.startswith("figures/")}
    shown |= {Path(t).name for t in _links(LOG) if t.startswith("../figures/")}   # the curves of past runs
    assert committed == shown, f"figures not shown by any chapter or the results log: {sorted(committed - shown)}"
    for name in committed:
        size = os.path.getsize(DOCS / "figures" / name)
        assert size < FIGURE_LIMIT, f"docs/figures/{name} is {size // 1024} KB, over {FIGURE_LIMIT // 1024} KB"
        assert (DOCS / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_illustrative_blocks_are_valid_python():
    """Illustrative blocks are not run, but they should at least be valid Python."""
    for path in MARKDOWN:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^```python(?: run)?[ \t]*\n(.*?)^```", text, re.S | re.M):
            try:
                ast.parse(match.group(1))
            except SyntaxError as error:
                line = text.count("\n", 0, match.start(1)) + (error.lineno or 1)
                pytest.fail(f"{path.name}, line {line}: {error.msg}")


def load_make_figures(output):
    """docs/make_figures.py as a module, drawing into ``output``."""
    spec = importlib.util.spec_from_file_location("make_figures", DOCS / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.OUTPUT = str(output)
    return module


def test_figure_script_draws_every_figure(tmp_path, monkeypatch, capsys):
    """docs/make_figures.py still runs against the current code (into a scratch folder: the
    committed PNGs are left alone) and draws exactly its FIGURES, each within the size limit."""
    monkeypatch.chdir(ROOT)
    module = load_make_figures(tmp_path)
    for draw in module.FIGURES.values():
        draw()
    drawn = {path.name: path.stat().st_size for path in tmp_path.glob("*.png")}
    assert set(drawn) == set(module.FIGURES) == _figures_drawn()
    assert all(size < FIGURE_LIMIT for size in drawn.values()), drawn


@pytest.fixture()
def run_figures(tmp_path, monkeypatch):
    """(make_figures, {file name: the figure it would save}, a made-up full-recipe run folder:
    conftest.write_run): the figures of a run, kept open to be read rather than saved."""
    module = load_make_figures(tmp_path / "figures")
    saved = {}
    monkeypatch.setattr(module, "save", lambda figure, name, **options: saved.setdefault(name, figure))
    run, _, _ = write_run(tmp_path / "full")
    yield module, saved, run
    for figure in saved.values():
        module.plt.close(figure)


def bar_heights(ax):
    return [patch.get_height() for patch in ax.patches]


def test_gradient_norm_figure_counts_the_steps_each_task_leads(run_figures):
    module, saved, run = run_figures
    module.encoder_gradient_norms(str(run))
    curves, bars = saved["encoder_gradient_norms.png"].axes
    _, steps, _ = write_run(run)                            # the same made-up values again
    for task in ("sst", "para", "sts"):
        (raw,) = [line for line in curves.get_lines() if line.get_label() == f"encoder_grad_norm_{task}"]
        assert list(raw.get_ydata()) == [r[f"encoder_grad_norm_{task}"] for r in steps]
    assert bar_heights(bars) == [60, 0, 0]                  # made up: sst's norm is always the largest
    assert [text.get_text() for text in bars.texts] == ["60 of 60", "0 of 60", "0 of 60"]


def test_cosine_figure_is_a_histogram_of_the_raw_values_and_the_conflict_counts(run_figures):
    module, saved, run = run_figures
    module.gradient_cosines(str(run))
    *histograms, conflicts = saved["gradient_cosines.png"].axes
    _, steps, _ = write_run(run)
    for ax, pair in zip(histograms, ("sst_para", "sst_sts", "para_sts")):
        assert sum(bar_heights(ax)) == 60
        edges = [(patch.get_x(), patch.get_x() + patch.get_width()) for patch in ax.patches]
        high = sum(h for h, (left, _) in zip(bar_heights(ax), edges) if left >= 0.25)
        low = sum(h for h, (_, right) in zip(bar_heights(ax), edges) if right <= -0.25)
        assert (high, low) == (sum(r[f"cos_{pair}"] > 0 for r in steps), 20) == (40, 20)   # +-0.3, not smoothed
        assert ax.get_title() == f"cos_{pair}: negative (a conflict) at 20 of 60 steps"
    assert bar_heights(conflicts) == [15, 15, 15, 15]
    assert [label.get_text() for label in conflicts.get_xticklabels()] == ["0", "1/3", "2/3", "1"]


def test_smart_figure_draws_delta_against_eps_and_the_terms_against_the_loss(run_figures):
    module, saved, run = run_figures
    module.smart_delta(str(run))
    axes = saved["smart_delta.png"].axes
    radius = [line for line in axes[0].get_lines() if line.get_label().startswith("the radius eps")]
    assert len(radius) == 1 and list(radius[0].get_ydata()) == [0.05, 0.05]   # from the run's args.json
    for ax in axes[2:]:
        smart, bregman = ax.collections
        assert len(smart.get_offsets()) == 60 and len(bregman.get_offsets()) == 59  # D_Breg = 0 at step 1: no log
        assert ax.get_yscale() == "log"


def test_ablation_figure_draws_every_configuration_of_the_json(run_figures, tmp_path):
    from tools import ablation
    module, saved, _ = run_figures
    rng = np.random.default_rng(0)
    seeds = {config: 1 + i % 3 for i, config in enumerate(ablation.CONFIGS)}      # one, two or three seeds
    results = {"recipe": {"epochs": 1, "steps_per_epoch": 36}, "missing": [],
               "runs": [{"config": config, "seed": seed, "sst": rng.random(), "para": rng.random(),
                         "sts": rng.random(), "seconds": 100.0}
                        for config, n in seeds.items() for seed in range(1, n + 1)]}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    module.ablation_bars(str(path))
    rows = ablation.summarise(results)
    assert len(rows) == len(ablation.CONFIGS)
    for ax, metric in zip(saved["ablation.png"].axes, ablation.METRICS):
        (bars,) = [c for c in ax.containers if hasattr(c, "errorbar")]
        widths = [patch.get_width() for patch in bars.patches]
        assert np.allclose(widths, [row[metric] for row in rows])
        segments = bars.errorbar.lines[2][0].get_segments()                    # one (left, right) per bar
        spreads = [(segment[1][0] - segment[0][0]) / 2 for segment in segments]
        assert np.allclose(spreads, [row[f"{metric}_std"] or 0.0 for row in rows])
        assert sum(len(line.get_xdata()) for line in ax.get_lines() if line.get_marker() == "o") == len(results["runs"])
    labels = [label.get_text() for label in saved["ablation.png"].axes[0].get_yticklabels()]
    assert labels == [f"{row['label']} ({row['seeds']} seeds)" for row in rows]


def test_ablation_minutes_figure_puts_each_configuration_at_its_mean_minutes_and_score(run_figures, tmp_path):
    from tools import ablation
    module, saved, _ = run_figures
    rng = np.random.default_rng(1)
    results = {"recipe": {"epochs": 1, "steps_per_epoch": 60}, "missing": [],
               "runs": [{"config": config, "seed": seed, "sst": rng.random(), "para": rng.random(),
                         "sts": rng.random(), "seconds": 60.0 * (number + 1) + 30.0 * seed}
                        for number, config in enumerate(ablation.CONFIGS) for seed in (1, 2, 3)]}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    module.ablation_minutes(str(path))
    rows = ablation.summarise(results)
    for ax, metric in zip(saved["ablation_minutes.png"].axes, ablation.METRICS):
        points = [(c.lines[0].get_xdata()[0], c.lines[0].get_ydata()[0]) for c in ax.containers]
        assert np.allclose(points, [(row["seconds"] / 60, row[metric]) for row in rows])
        for container, row in zip(ax.containers, rows):
            (vertical,) = [segments for segments in container.lines[2] if segments.get_segments()[0][0][0] ==
                           segments.get_segments()[0][1][0]]                    # the bar whose x does not change
            (bottom, top) = vertical.get_segments()[0][:, 1]
            assert np.isclose((top - bottom) / 2, row[f"{metric}_std"])


def test_configuration_figure_overlays_every_run(run_figures, tmp_path):
    module, saved, _ = run_figures
    (long, long_steps, _), (short, short_steps, _) = (write_run(tmp_path / name, steps=steps, seed=seed)
                                                      for name, steps, seed in (("full", 150, 1), ("plain", 100, 2)))
    module.configuration_curves((str(long), str(short)))
    for ax, task in zip(saved["configuration_curves.png"].axes, ("sst", "para", "sts")):
        assert ax.get_yscale() == "log"
        raw = [line for line in ax.get_lines() if line.get_label().startswith("_")]      # unlabelled: the raw curves
        assert [list(line.get_ydata()) for line in raw] == [[r[f"loss_{task}"] for r in long_steps],
                                                           [r[f"loss_{task}"] for r in short_steps]]
    labels = [text.get_text() for text in saved["configuration_curves.png"].legends[0].get_texts()]
    assert labels == ["full: --pcgrad --smart --cos (mean of 3 steps)",
                      "plain: --pcgrad --smart --cos (mean of 2 steps)"]

# ---------------------------------------------------------------- reported results
RESULTS = sorted((DOCS / "results").glob("*/dev_metrics.json"))
REPORTS = [ROOT / "README.md", DOCS / "12-results.md", LOG]      # the documents whose tables quote runs


def linked_run(document, line):
    """The committed run folder docs/results/NAME a table row of ``document`` links, or None:
    `results/NAME/` from the README and the chapters, `NAME/` from the log inside docs/results/."""
    if not line.startswith("|"):
        return None
    found = re.search(r"\]\(([\w.+-]+)/\)" if document == LOG else r"results/([\w.+-]+)/?\)", line)
    return found and found.group(1)


def run_rows(document):
    """[(run folder name, row)] of the table rows of ``document`` that link a committed run."""
    rows = [(linked_run(document, line), line) for line in document.read_text(encoding="utf-8").splitlines()]
    rows = [(name, line) for name, line in rows if name]
    for name, line in rows:
        assert (DOCS / "results" / name / "args.json").exists(), f"{document.name}: {line!r} links no run"
    return rows


@pytest.mark.parametrize("document", REPORTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_reported_results_equal_the_committed_runs(document):
    """Every table row that links a committed run folder docs/results/NAME reports that run's
    dev metrics (SST, QQP, STS, in that order, to 3 decimals); the results log has a row for
    every committed run with dev metrics."""
    import json
    assert RESULTS, "no committed runs under docs/results/"
    rows = run_rows(document)
    assert rows, f"{document.name}: no table row links a committed run"
    if document == LOG:
        missing = sorted({path.parent.name for path in RESULTS} - {name for name, _ in rows})
        assert not missing, f"the results log has no table row for {missing}"
    for name, row in rows:
        path = DOCS / "results" / name / "dev_metrics.json"
        assert path.exists(), f"{document.name}: row {row!r} quotes a run without dev_metrics.json"
        metrics = json.loads(path.read_text(encoding="utf-8"))
        expected = [f"{metrics[task]:.3f}" for task in ("sst", "para", "sts")]
        cells = [cell.strip().strip("*") for cell in row.strip("|").split("|")]
        numbers = [cell for cell in cells if re.fullmatch(r"[01]\.\d{3}", cell)]
        assert numbers[:3] == expected, f"{document.name}: row {row!r} does not match {path}"


# what a row's command must share with the run it links; runs made before the
# --TASK_batches_per_step flags existed drew one batch of each task per step, those made before
# --head_lr_factor, --smart_tasks, --smart_every and --TASK_loss_weight trained with their defaults
# (tinybert.run.session.SETTINGS_BEFORE_THEY_EXISTED)
RECIPE = ("task", "pcgrad", "smart", "cos", "epochs", "steps_per_epoch", "lr", "warmup", "weight_decay", "clip",
          "batch_size", "hidden_dropout_prob", "max_len", "seed", "sst_batches_per_step",
          "para_batches_per_step", "sts_batches_per_step", "head_lr_factor", "smart_tasks", "smart_every",
          "sst_loss_weight", "para_loss_weight", "sts_loss_weight")


@pytest.mark.parametrize("document", REPORTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_reported_commands_reproduce_the_committed_runs(document):
    """The command in every row that links docs/results/NAME, parsed by train.py, asks for the
    recipe NAME/args.json was trained with (steps per epoch resolved from the data, as train() does)."""
    import functools
    import json
    import shlex
    import train
    from tinybert.data import BatchStream, default_steps_per_epoch, load_task
    from tinybert.multitask import TASKS
    from tinybert.run.folder import SETTINGS_BEFORE_THEY_EXISTED
    training_set = functools.lru_cache(load_task)
    checked = 0
    for name, line in run_rows(document):
        command = re.search(r"`python train\.py ([^`]*)`", line)
        if not command:
            continue
        checked += 1
        args = train.parse_args(shlex.split(command.group(1)) + ["--data_dir", str(data_dir())])
        if args.steps_per_epoch is None:
            tasks = list(TASKS) if args.task == "all" else [args.task]
            streams = {t: BatchStream(0, training_set(t, getattr(args, f"{t}_train")), args.batch_size, 0)
                       for t in tasks}
            args.steps_per_epoch = default_steps_per_epoch(
                streams, {t: getattr(args, f"{t}_batches_per_step") for t in tasks})
        recorded = json.loads((DOCS / "results" / name / "args.json").read_text(encoding="utf-8"))
        for key in RECIPE:
            if key.startswith("smart_") and not args.smart:  # inert without --smart
                continue
            before_the_flag = 1 if key.endswith("_batches_per_step") else SETTINGS_BEFORE_THEY_EXISTED.get(key)
            wanted = recorded.get(key, before_the_flag)
            assert getattr(args, key) == wanted, (f"{document.name}: {command.group(0)} has --{key}={getattr(args, key)}, "
                                                  f"results/{name} was trained with {wanted}")
    assert checked, f"{document.name}: no row names the train.py command of its run"


def minutes_rows(document):
    """[(run, row)] whose minutes, steps and machine are checked: in chapter 12 the rows of its
    equal-minutes section, in the README and the results log every row that links a run."""
    rows = run_rows(document)
    if document == DOCS / "12-results.md":
        section = document.read_text(encoding="utf-8").split("## Equal minutes", 1)[1].split("\n## ", 1)[0]
        rows = [(name, row) for name, row in rows if row in section.splitlines()]
    return rows


@pytest.mark.parametrize("document", REPORTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_equal_minutes_table_equals_the_runs(document):
    """Each such row's training minutes and steps are its run's last step record (metrics.jsonl,
    training time only, as train.py and tools/peer.py both count it), its machine is the run's
    machine.json (the GPU, for a --device cuda run; "not recorded" for a run before machine.json);
    the scores are checked with every other table's."""
    import json
    rows = minutes_rows(document)
    assert rows, f"{document.name}: no table gives a run's minutes"
    for name, row in rows:
        run = DOCS / "results" / name
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        last = [r for r in steps if r["type"] == "step"][-1]
        named = "not recorded"
        if (run / "machine.json").exists():
            machine = json.loads((run / "machine.json").read_text(encoding="utf-8"))
            named = (f"{machine['gpu']}, CuPy {machine['cupy']}" if "gpu" in machine  # a --device cuda run
                     else f"{machine['cpu']}, {machine['cpu_count']} cores")
        assert cells[5:8] == [f"{last['seconds'] / 60:.1f}", str(last["step"]), named], row


@pytest.mark.parametrize("folder", ["ablation_59e4933", "ablation_60steps"])
def test_ablation_table_equals_the_committed_json(folder):
    """The ablation's results.md holds tools.ablation's markdown_table (and comparison_table,
    once two rows share two seeds) of its committed results.json, whose runs are exactly the
    committed run folders with their dev metrics; chapter 12's table is the comparison_table
    of ablation_60steps."""
    import json
    from tools import ablation
    root = DOCS / "results" / folder
    results = json.loads((root / "results.json").read_text(encoding="utf-8"))
    finished = sorted(path.parent.relative_to(root).as_posix() for path in root.glob("*/seed*/dev_metrics.json"))
    assert sorted(run["run"] for run in results["runs"]) == finished
    for run in results["runs"]:
        dev = json.loads((root / run["run"] / "dev_metrics.json").read_text(encoding="utf-8"))
        assert {m: run[m] for m in ablation.METRICS} == {m: dev[m] for m in ablation.METRICS}, run["run"]
    report = (root / "results.md").read_text(encoding="utf-8")
    assert ablation.markdown_table(results) in report
    if ablation.compare(results):
        assert ablation.comparison_table(results) in report
    if folder == "ablation_60steps":
        assert ablation.comparison_table(results) in (DOCS / "12-results.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------- order of terms
# Key terms of the course and the chapter that explains each (docs/README.md: a chapter uses only
# terms explained before it, or says which later chapter explains them).
TERMS = {
    "logits": (2, r"\blogits?\b"),
    "softmax": (2, r"\bsoftmax\b"),
    "layer norm": (2, r"\blayer[ _]?norm"),
    "GELU": (2, r"\bGELU\b"),
    "finite differences": (3, r"\bfinite[- ]differences?\b"),
    "gradient check": (3, r"\bgradcheck\b|\bgradient checks?\b"),
    "residual connection": (4, r"\bresidual\b"),
    "dropout": (4, r"\bdropout\b"),
    "attention": (4, r"\battention\b"),
    "fine-tuning": (4, r"\bfine-tun"),
    "load_pretrained": (5, r"\bload_pretrained\b"),
    "safetensors": (5, r"\bsafetensors\b"),
    "epoch": (5, r"\bepochs?\b"),
    "tokenizer": (6, r"\btokeni[sz]er\b"),
    "WordPiece": (6, r"\bWordPiece\b"),
    "[CLS]": (6, r"\[CLS\]"),
    "[SEP]": (6, r"\[SEP\]"),
    "[PAD]": (6, r"\[PAD\]"),
    "cross-encoder": (7, r"\bcross-encoder"),
    "mean pooling": (7, r"\bmean pool|\bmasked_mean\b"),
    "Pearson correlation": (7, r"\bPearson\b"),
    "dev set": (7, r"\bdev(?:elopment)? sets?\b"),
    "Adam": (8, r"\bAdam(?:W)?\b"),
    "gradient clipping": (8, r"\bclip_grad_norm\b|\bgradients? (?:is |are )?clipped\b|\bgradient clipping\b|--clip\b"),
    "warm-up": (8, r"\bwarm-?up\b"),
    "weight decay": (8, r"\bweight[ _]decay\b"),
    "PCGrad": (9, r"\bPCGrad\b"),
    "SMART": (10, r"\bSMART\b"),
    "Bregman": (10, r"\bBregman\b"),
    "bi-encoder": (11, r"\bbi-encoder"),
    "Sentence-BERT": (11, r"\bSentence-BERT\b"),
    "cosine similarity": (11, r"\bcosine[_ ]similarity\b"),
    "fast path": (13, r"\bfast (?:path|kernel)s?\b"),
}
CASE_SENSITIVE = {"GELU", "WordPiece", "PCGrad", "SMART", "Bregman", "Sentence-BERT", "Adam"}


def _names_chapter(paragraph, number):
    """Whether a paragraph points at chapter ``number``: "chapter 6", "chapters 5 and 6", "(chapter 5-6)"."""
    return re.search(rf"\bchapters?\s+(?:\d+\s*(?:,|and|-|–)\s*)*0?{number}\b", paragraph, re.I) is not None


def forward_uses(path):
    """[(line, term, defining chapter)]: the terms that chapter ``path`` uses before the chapter
    that explains them, where their first use does not say which chapter that is. The first use
    is the first paragraph (run of non-blank lines, prose or code) holding the term; once it has
    pointed ahead ("a tokenizer, chapter 6, turns text into ids"), later uses need not repeat it."""
    number = int(path.name[:2])
    text = path.read_text(encoding="utf-8")
    paragraphs = [(text.count("\n", 0, match.start()) + 1, match.group(0))
                  for match in re.finditer(r"(?:[^\n]+\n?)+", text)]
    found = []
    for term, (defined, pattern) in TERMS.items():
        if defined <= number:
            continue
        flags = 0 if term in CASE_SENSITIVE else re.I
        uses = [(line, paragraph) for line, paragraph in paragraphs if re.search(pattern, paragraph, flags)]
        if uses and not _names_chapter(uses[0][1], defined):
            found.append((uses[0][0], term, defined))
    return found


def test_terms_are_explained_before_they_are_used():
    """Every chapter uses a key term only if an earlier chapter (or itself) explains it, or if
    its first use says which later chapter does (docs/README.md's promise about the order)."""
    early = [f"{path.name}:{line}: {term!r} (explained in chapter {defined})"
             for path in CHAPTERS for line, term, defined in forward_uses(path)]
    assert not early, "terms used before the chapter that explains them:\n" + "\n".join(early)


def test_the_order_check_sees_a_forward_use(tmp_path):
    """The check above can fail: a first use of a later chapter's term is caught unless it names
    that chapter, and a use after a first one that points ahead is accepted."""
    unmarked = tmp_path / "07-example.md"
    unmarked.write_text("Then the gradient is clipped and the optimiser, AdamW, steps.\n\nAdamW again.\n",
                        encoding="utf-8")
    assert forward_uses(unmarked) == [(1, "Adam", 8), (1, "gradient clipping", 8)]
    marked = tmp_path / "07-marked.md"
    marked.write_text("Text.\n\nThe optimiser, AdamW (chapter 8), steps.\n\n```python\nAdamW(params)\n```\n",
                      encoding="utf-8")
    assert forward_uses(marked) == []
    assert _names_chapter("chapters 5 and 8", 8) and _names_chapter("Chapter 8's optimiser", 8)
    assert not _names_chapter("chapter 18", 8) and not _names_chapter("chapter 8", 9)


# ---------------------------------------------------------------- the newcomer's path
PATH_HEADING = "## Your path through the course"


def path_section():
    """docs/README.md's "Your path through the course", up to the next section."""
    text = (DOCS / "README.md").read_text(encoding="utf-8")
    start = text.index(PATH_HEADING)
    end = text.find("\n## ", start + len(PATH_HEADING))
    return text[start:end if end >= 0 else None]


def commands(section):
    """[(command, comment)]: each line of the section's code blocks and each inline code span,
    split at the shell comment that follows two spaces."""
    lines = [line for block in FENCE.findall(section) for line in block.splitlines()[1:-1]]
    lines += re.findall(r"`([^`\n]+)`", FENCE.sub("", section))
    split = [re.split(r"\s{2,}#\s*", line.strip(), maxsplit=1) for line in lines]
    return list(dict.fromkeys((parts[0], parts[1] if len(parts) > 1 else "") for parts in split))


def make_recipe(target):
    """The command lines of the Makefile's rule for ``target``, or None if there is none."""
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if re.match(rf"{re.escape(target)}:(?!=)", line):
            recipe = []
            for following in lines[number + 1:]:
                if not following.startswith("\t"):
                    break
                recipe.append(following.strip())
            return recipe
    return None


def heading_anchor(heading):
    """The anchor a Markdown renderer (GitHub's) gives a heading: "Our results" -> "our-results"."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def path_problems(section):
    """What in the path section names something that does not exist: a make target, a
    train.py flag, a `python -m` module, a make target's spelled-out command that is not its
    recipe, or a link to a chapter's section that has no such heading."""
    import shlex
    import train
    problems = []
    for command, comment in commands(section):
        words = command.split()
        if words[:1] == ["make"] and len(words) > 1:
            recipe = make_recipe(words[1])
            if recipe is None:
                problems.append(f"{command}: the Makefile has no target {words[1]!r}")
            elif comment.startswith("python "):
                spelled = [line.replace("$(PY)", "python").replace("$(DATA_DIR)", "$DATA_DIR") for line in recipe]
                if comment not in spelled:
                    problems.append(f"{command}: said to run {comment!r}, the Makefile runs {recipe}")
        elif re.match(r"(?:\.venv/bin/)?python train\.py\b", command):
            argv = shlex.split(command.replace("$DATA_DIR", str(data_dir())))[2:]
            try:
                train.parse_args(argv)
            except SystemExit:
                problems.append(f"{command}: train.py refuses these flags")
        elif re.match(r"(?:\.venv/bin/)?python -m ", command):
            module = words[2]
            if importlib.util.find_spec(module) is None:
                problems.append(f"{command}: no module {module}")
    for target in _links_in(section):
        file, _, anchor = target.partition("#")
        if anchor and re.fullmatch(r"\d\d-[\w-]+\.md", file):
            headings = re.findall(r"^#+ (.+)$", FENCE.sub("", (DOCS / file).read_text(encoding="utf-8")), re.M)
            if anchor not in map(heading_anchor, headings):
                problems.append(f"link {target}: {file} has no such heading")
    return problems


def test_the_path_names_commands_that_exist(monkeypatch):
    """docs/README.md walks a newcomer from a fresh clone to the full recipe; every command it
    names must still exist, and `make train` must still run the command it spells out."""
    monkeypatch.syspath_prepend(str(ROOT))
    section = path_section()
    named = [command for command, _ in commands(section)]
    assert "make train" in named and any(c.startswith("python train.py") for c in named)
    problems = path_problems(section)
    assert not problems, "docs/README.md, " + PATH_HEADING[3:] + ":\n" + "\n".join(problems)


def test_the_path_check_sees_a_missing_command(monkeypatch):
    """The check above can fail: a target, a flag, a module, a recipe and a heading that are not there."""
    monkeypatch.syspath_prepend(str(ROOT))
    broken = ("```text\nmake trian      # python train.py --task all\n"
              "make train      # python train.py --task all\n```\n"
              "`python train.py --task all --pcgradd` `python -m tinybert.plott runs/full`\n"
              "[chapter 12](12-results.md#no-such-section)\n")
    problems = path_problems(broken)
    assert len(problems) == 5, problems
    assert [p.split(":")[0] for p in problems] == ["make trian", "make train", "python train.py --task all --pcgradd",
                                                   "python -m tinybert.plott runs/full", "link 12-results.md#no-such-section"]


def test_the_path_gets_the_data_in_one_command():
    """docs/README.md's data step is one command, `make data` (whose recipe runs
    tinybert.run.download, the module that carves the project's Quora split: tests/test_download.py
    checks it rebuilds the project's files byte for byte), with no shell recipe and no export
    beside it; the split it describes is the module's and the files': the first 16,214 pairs of
    the canonical dev file for training, the other 4,000 for dev, and no Quora test file."""
    from tinybert.run.download import QUORA_TRAIN_PAIRS
    section = path_section()
    named = [command for command, _ in commands(section)]
    assert "make data" in named and make_recipe("data") == ["$(PY) -m tinybert.run.download --dest data"]
    assert not any(re.match(r"(export|head|tail|cp|mkdir|git hash-object)\b", command) for command in named), named
    dev_pairs = len((data_dir() / "quora-dev.csv").read_bytes().splitlines()) - 1
    train_pairs = len((data_dir() / "quora-train.csv").read_bytes().splitlines()) - 1
    assert train_pairs == QUORA_TRAIN_PAIRS
    assert f"first {train_pairs:,} pairs" in section and f"other {dev_pairs:,}" in section
    assert not (data_dir() / "quora-test-student.csv").exists()          # "there is no Quora test file"


# ---------------------------------------------------------------- the course's size
CHAPTER_LINES = {"10-smart.md": 250, "12-results.md": 250}   # Algorithm 1 and what the runs say; history goes to the log
README_RESULT_ROWS = 6


def test_the_results_chapters_and_the_readmes_results_stay_short():
    for chapter, most in CHAPTER_LINES.items():
        lines = (DOCS / chapter).read_text(encoding="utf-8").count("\n")
        assert lines <= most, f"docs/{chapter} has {lines} lines (at most {most}): run history goes to docs/results/README.md"
    results = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in results.splitlines() if line.startswith("|") and not line.startswith("|---")][1:]
    assert 0 < len(rows) <= README_RESULT_ROWS, f"the README's Results table has {len(rows)} rows (at most {README_RESULT_ROWS})"
