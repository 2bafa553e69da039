"""Tests for tinybert.data: loading the task files and batching."""
import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from tinybert.data import (
    SAMPLE_DATA_DIR, PairExample, SentenceExample, default_data_dir, load_pairs, load_sst, make_batches,
)

# The real CS224N files: $DATA_DIR, else ../shared/data next to the repository.
REAL_DATA = Path(os.environ.get("DATA_DIR", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


def real_file(name):
    """Path of one real data file; fail (not skip) with a hint when it is missing."""
    path = REAL_DATA / name
    if not path.is_file():
        pytest.fail(f"real data file {path} not found: set DATA_DIR to the folder holding the CS224N files")
    return path


def load_quietly(load, *args, **kwargs):
    """Call a loader and return (examples, list of warning messages)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        examples = load(*args, **kwargs)
    return examples, [str(w.message) for w in caught]


def write(tmp_path, text, name="task.csv"):
    """Write ``text`` to a file in tmp_path and return its path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------ real data ----

# (file, loader arguments, rows expected): row counts from ../shared/data/README.md.
REAL_FILES = [
    ("ids-sst-train.csv", ("sst", True), 8544),
    ("ids-sst-dev.csv", ("sst", True), 1101),
    ("ids-sst-test-student.csv", ("sst", False), 2210),
    ("quora-dev.csv", ("para", True), 4000),
    ("sts-train.csv", ("sts", True), 6040),
    ("sts-dev.csv", ("sts", True), 863),
    ("sts-test-student.csv", ("sts", False), 1725),
]


def load_task(path, task, labelled):
    """Dispatch to load_sst or load_pairs."""
    if task == "sst":
        return load_sst(path, labelled=labelled)
    return load_pairs(path, task, labelled=labelled)


@pytest.mark.parametrize("name, how, rows", REAL_FILES)
def test_real_file_loads_every_row_without_warnings(name, how, rows):
    task, labelled = how
    examples, messages = load_quietly(load_task, real_file(name), task, labelled)
    assert len(examples) == rows
    assert messages == []
    for example in examples:
        texts = [example.sentence] if task == "sst" else [example.sentence1, example.sentence2]
        assert all(text == text.strip() for text in texts)
        assert example.id and example.id == example.id.strip()
        if not labelled:
            assert example.label is None
        elif task == "sst":
            assert example.label in range(5)
        elif task == "para":
            assert example.label in (0.0, 1.0)
        else:
            assert 0.0 <= example.label <= 5.0


def test_real_quora_train_skips_the_two_rows_without_label_with_one_warning():
    examples, messages = load_quietly(load_pairs, real_file("quora-train.csv"), "para")
    assert len(examples) == 16214 - 2
    assert len(messages) == 1
    assert "quora-train.csv" in messages[0]
    assert "skipped 2 " in messages[0]
    assert "line 2577" in messages[0]  # data row 2576, after the header line


def test_real_sst_sentences_lose_their_leading_space():
    examples = load_sst(real_file("ids-sst-dev.csv"))
    assert examples[0] == SentenceExample(
        "a7d575c9ed86ea9633660c67e", "It 's a lovely film with lovely performances by Buy and Accorsi .", 3)


# ------------------------------------------------------------ bad input ----

def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        load_sst(tmp_path / "nowhere.csv")


def test_empty_file_is_named(tmp_path):
    path = write(tmp_path, "", "empty.csv")
    with pytest.raises(ValueError, match="empty.csv.*empty"):
        load_pairs(path, "sts")


def test_header_only_file_gives_no_examples(tmp_path):
    path = write(tmp_path, "\tid\tsentence\tsentiment\n")
    assert load_quietly(load_sst, path) == ([], [])


def test_wrong_header_names_file_and_columns(tmp_path):
    path = write(tmp_path, "\tid\tsentence1\tsentence2\tsimilarity\n0\ta\tx\ty\t1.0\n", "sts-like.csv")
    with pytest.raises(ValueError, match=r"sts-like.csv: wrong header: expected columns \['id', 'sentence1', "
                                         r"'sentence2', 'is_duplicate'\], found"):
        load_pairs(path, "para")


def test_unlabelled_file_read_as_labelled_is_a_header_error(tmp_path):
    path = write(tmp_path, "\tid\tsentence\n0\ta\tFine .\n")
    with pytest.raises(ValueError, match="sentiment"):
        load_sst(path)


def test_labelled_file_can_be_read_without_labels(tmp_path):
    path = write(tmp_path, "\tid\tsentence\tsentiment\n0\ta\tFine .\t3\n")
    assert load_sst(path, labelled=False) == [SentenceExample("a", "Fine .", None)]


def test_bad_sst_labels_are_skipped_and_counted_once(tmp_path):
    path = write(tmp_path, "".join([
        "\tid\tsentence\tsentiment\n",
        "0\ta\tGood .\t4\n",
        "1\tb\tNo label .\t\n",      # line 3: first bad row
        "2\tc\tToo high .\t5\n",
        "3\td\tNot a number .\tgood\n",
        "4\te\tA float .\t2.5\n",
        "5\tf\tToo few fields\n",
        "6\tg\tBad .\t0\n",
    ]), "sst-bad.csv")
    examples, messages = load_quietly(load_sst, path)
    assert examples == [SentenceExample("a", "Good .", 4), SentenceExample("g", "Bad .", 0)]
    assert len(messages) == 1
    assert "sst-bad.csv" in messages[0] and "skipped 5 " in messages[0] and "line 3" in messages[0]


@pytest.mark.parametrize("task, label", [("para", "0.5"), ("para", "2"), ("sts", "5.1"), ("sts", "-0.1"),
                                         ("sts", "nan"), ("sts", "")])
def test_bad_pair_labels_are_skipped(tmp_path, task, label):
    column = {"para": "is_duplicate", "sts": "similarity"}[task]
    path = write(tmp_path, f"\tid\tsentence1\tsentence2\t{column}\n0\ta\tx\ty\t{label}\n1\tb\tx\ty\t1.0\n")
    examples, messages = load_quietly(load_pairs, path, task)
    assert examples == [PairExample("b", "x", "y", 1.0)]
    assert len(messages) == 1 and "line 2" in messages[0]


def test_quotes_are_ordinary_characters(tmp_path):
    # the CS224N files have no quoting convention: quotes stay as written, a tab always separates
    path = write(tmp_path, '\tid\tsentence1\tsentence2\tsimilarity\n'
                           '0\ta\t"She said ""hi"""\t  "padded  \t4.2\n')
    assert load_pairs(path, "sts") == [PairExample("a", '"She said ""hi"""', '"padded', 4.2)]


@pytest.mark.parametrize("labelled", [True, False])
def test_a_stray_quote_never_merges_rows(tmp_path, labelled):
    # one opening quote used to swallow every row up to the next quote into one field
    opening = {1: '"'}
    label = {True: lambda i: f"\t{i % 5}", False: lambda i: ""}[labelled]
    rows = "".join(f"{i}\tid{i}\t{opening.get(i, '')}sentence {i}{label(i)}\n" for i in range(300))
    header = "\tid\tsentence\tsentiment\n" if labelled else "\tid\tsentence\n"
    examples, messages = load_quietly(load_sst, write(tmp_path, header + rows), labelled)
    assert [e.id for e in examples] == [f"id{i}" for i in range(300)] and messages == []
    assert examples[1].sentence == '"sentence 1'


def test_every_kind_of_bad_row_is_counted_with_its_first_line(tmp_path):
    path = write(tmp_path, "\tid\tsentence\tsentiment\n0\ta\tfine\t1\n1\tb\tno label\n2\tc\tbad\t9\n"
                           "3\td\ttoo\tmany\t2\n4\te\tbad\tx\n5\tf\tfine\t2\n")
    examples, messages = load_quietly(load_sst, path)
    assert [e.id for e in examples] == ["a", "f"]
    assert messages == [f"{path}: skipped 4 malformed row(s) of 6: 2 with wrong number of fields (first at line 3); "
                        "2 with missing or invalid 'sentiment' (first at line 4)"]


def test_unknown_pair_task_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown pair task 'sst'"):
        load_pairs(tmp_path / "x.csv", "sst")


def test_non_utf8_file_is_named(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("\tid\tsentence\tsentiment\n0\ta\tcaf\xe9\t2\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.csv: not a UTF-8"):
        load_sst(path)


def test_default_data_dir_follows_environment(monkeypatch):
    monkeypatch.delenv("DATA_DIR", raising=False)
    assert default_data_dir() == "data"
    monkeypatch.setenv("DATA_DIR", "elsewhere")
    assert default_data_dir() == "elsewhere"


# ---------------------------------------------------------- sample data ----

SAMPLE_SIZES = {"train": 240, "dev": 60, "test-student": 40}


@pytest.mark.parametrize("split, rows", SAMPLE_SIZES.items())
def test_sample_data_loads(split, rows):
    labelled = split != "test-student"
    for prefix, task in [("ids-sst", "sst"), ("quora", "para"), ("sts", "sts")]:
        examples, messages = load_quietly(load_task, SAMPLE_DATA_DIR / f"{prefix}-{split}.csv", task, labelled)
        assert len(examples) == rows and messages == []
        assert all((example.label is not None) == labelled for example in examples)


def test_sample_data_has_every_label():
    assert {e.label for e in load_sst(SAMPLE_DATA_DIR / "ids-sst-train.csv")} == {0, 1, 2, 3, 4}
    assert {e.label for e in load_pairs(SAMPLE_DATA_DIR / "quora-train.csv", "para")} == {0.0, 1.0}
    scores = [e.label for e in load_pairs(SAMPLE_DATA_DIR / "sts-train.csv", "sts")]
    assert min(scores) < 1.0 and max(scores) > 4.0


def test_sample_data_matches_its_generator(tmp_path, monkeypatch):
    script = Path(__file__).resolve().parents[1] / "tools" / "make_sample.py"
    spec = importlib.util.spec_from_file_location("make_sample", script)
    make_sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_sample)
    monkeypatch.setattr(make_sample, "HERE", tmp_path)
    make_sample.main()
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == sorted(path.name for path in SAMPLE_DATA_DIR.glob("*.csv"))
    for name in written:
        assert (tmp_path / name).read_bytes() == (SAMPLE_DATA_DIR / name).read_bytes(), name


def test_sample_data_is_small():
    assert sum(path.stat().st_size for path in SAMPLE_DATA_DIR.iterdir() if path.is_file()) < 200_000


# -------------------------------------------------------------- batching ----

def examples_of_lengths(lengths):
    """SentenceExamples whose sentences have the given numbers of characters."""
    return [SentenceExample(str(i), "x" * length, 0) for i, length in enumerate(lengths)]


def padded_size(batches):
    """Characters a batch would hold once every sentence is padded to its batch's longest."""
    return sum(len(batch) * max(len(e.sentence) for e in batch) for batch in batches)


def test_batches_cover_every_example_once():
    examples = examples_of_lengths(np.random.default_rng(0).integers(1, 100, size=103))
    batches = make_batches(examples, 10, rng=np.random.default_rng(1))
    assert [len(b) for b in batches].count(10) == 10 and sorted(len(b) for b in batches)[0] == 3
    assert sorted(e.id for b in batches for e in b) == sorted(e.id for e in examples)


def test_batches_are_deterministic_for_a_seed():
    examples = examples_of_lengths(range(200))

    def ids(seed):
        return [[e.id for e in b] for b in make_batches(examples, 8, rng=np.random.default_rng(seed))]

    assert ids(5) == ids(5)
    assert ids(5) != ids(6)


def test_without_rng_or_sorting_order_is_kept():
    examples = examples_of_lengths([5, 1, 4, 2, 3])
    assert make_batches(examples, 2, sort_by_length=False) == [examples[0:2], examples[2:4], examples[4:]]


def test_sorting_by_length_reduces_padding():
    examples = examples_of_lengths(np.random.default_rng(0).integers(1, 200, size=1000))
    sorted_batches = make_batches(examples, 16, rng=np.random.default_rng(0))
    shuffled_batches = make_batches(examples, 16, rng=np.random.default_rng(0), sort_by_length=False)
    assert padded_size(sorted_batches) < 0.7 * padded_size(shuffled_batches)


def test_pairs_are_sorted_by_total_length():
    pairs = [PairExample("long", "x" * 50, "x" * 50, 1.0), PairExample("short", "x", "x", 0.0)]
    assert [e.id for b in make_batches(pairs, 1) for e in b] == ["short", "long"]


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_bad_batch_size_is_rejected(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        make_batches(examples_of_lengths([1, 2]), batch_size)
