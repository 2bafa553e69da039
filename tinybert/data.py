"""Loading the CS224N minBERT task files and cutting them into batches.

The three tasks ship as tab-separated files whose first column is an unnamed
row index written by pandas:

* SST (``ids-sst-*.csv``): ``id, sentence, sentiment`` with sentiment 0-4.
* Quora (``quora-*.csv``): ``id, sentence1, sentence2, is_duplicate`` (0.0/1.0).
* STS (``sts-*.csv``): ``id, sentence1, sentence2, similarity`` (0.0-5.0).

The ``*-test-student.csv`` files have no label column. Columns are looked up by
name, so any number of leading index columns is accepted (the SST test file
has two of them).

Quotes: the files follow no quoting convention (a sentence may begin with ``"`` and
not end with one), so a quote is an ordinary character and every line is one row: a
stray quote never merges the rows after it into one field.
"""
import csv
import math
import numbers
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Where the bundled toy versions of the nine task files live.
SAMPLE_DATA_DIR = Path(__file__).resolve().parent / "sample_data"

# The label column of each pair task.
PAIR_TASKS = {"para": "is_duplicate", "sts": "similarity"}
# Each task's train, dev and test file in the CS224N data folder.
TASK_FILES = {"sst": ("ids-sst-train.csv", "ids-sst-dev.csv", "ids-sst-test-student.csv"),
              "para": ("quora-train.csv", "quora-dev.csv", "quora-test-student.csv"),
              "sts": ("sts-train.csv", "sts-dev.csv", "sts-test-student.csv")}


def default_data_dir() -> str:
    """The folder holding the task files: ``$DATA_DIR``, else ``data`` under the current directory."""
    return os.environ.get("DATA_DIR", "data")


@dataclass
class SentenceExample:
    """One single-sentence example (SST). ``label`` is None for unlabelled files."""
    id: str
    sentence: str
    label: int | None


@dataclass
class PairExample:
    """One sentence-pair example (Quora or STS). ``label`` is None for unlabelled files."""
    id: str
    sentence1: str
    sentence2: str
    label: float | None


def _parse_sst_label(text: str) -> int | None:
    """The sentiment class 0-4, or None if ``text`` is not one."""
    try:
        value = int(text)
    except ValueError:
        return None
    return value if 0 <= value <= 4 else None


def _parse_para_label(text: str) -> float | None:
    """The duplicate flag as 0.0 or 1.0, or None if ``text`` is neither."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value in (0.0, 1.0) else None


def _parse_sts_label(text: str) -> float | None:
    """The similarity score in [0, 5], or None if ``text`` is not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    # The comparison is False for NaN, so NaN is rejected too.
    return value if 0.0 <= value <= 5.0 else None


_LABEL_PARSERS = {"sst": _parse_sst_label, "para": _parse_para_label, "sts": _parse_sts_label}


def _read_rows(path, text_columns, label_column, parse_label):
    """Return ``(id, texts, label)`` for every well-formed row of one task file.

    ``text_columns`` are the sentence columns to return (stripped of
    surrounding whitespace); ``label_column`` is None when labels are not
    wanted. Malformed rows (wrong number of fields, or a label ``parse_label``
    rejects) are skipped and reported in one warning naming the file, how
    many of each kind and the first line of each.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such data file")
    wanted = ["id", *text_columns] + ([label_column] if label_column else [])

    rows = []
    bad = {"wrong number of fields": [], f"missing or invalid {label_column!r}": []}  # kind -> line numbers
    # utf-8-sig so that a byte-order mark does not end up glued to the header.
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{path}: file is empty (expected a header with columns {wanted})")
            if any(name not in header for name in wanted):
                raise ValueError(f"{path}: wrong header: expected columns {wanted}, found {header}")
            position = {name: header.index(name) for name in wanted}

            for row in reader:
                label = None
                if len(row) != len(header):
                    bad["wrong number of fields"].append(reader.line_num)
                    continue
                if label_column:
                    label = parse_label(row[position[label_column]])
                    if label is None:
                        bad[f"missing or invalid {label_column!r}"].append(reader.line_num)
                        continue
                texts = [row[position[name]].strip() for name in text_columns]
                rows.append((row[position["id"]], texts, label))
        except csv.Error as error:
            raise ValueError(f"{path}, line {reader.line_num}: not valid tab-separated data ({error})") from None
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a UTF-8 text file") from None

    found = {kind: lines for kind, lines in bad.items() if lines}
    if found:
        kinds = "; ".join(f"{len(lines)} with {kind} (first at line {lines[0]})" for kind, lines in found.items())
        # stacklevel 3 points the warning at whoever called load_sst / load_pairs.
        warnings.warn(f"{path}: skipped {sum(map(len, found.values()))} malformed row(s) of "
                      f"{reader.line_num - 1}: {kinds}", stacklevel=3)
    return rows


def load_sst(path, labelled=True) -> list[SentenceExample]:
    """Read an SST file (``ids-sst-*.csv``) into SentenceExamples.

    With ``labelled=False`` the sentiment column is not needed (test-student
    files) and every label is None.
    """
    label_column = "sentiment" if labelled else None
    rows = _read_rows(path, ["sentence"], label_column, _LABEL_PARSERS["sst"])
    return [SentenceExample(id_, sentence, label) for id_, (sentence,), label in rows]


def load_pairs(path, task, labelled=True) -> list[PairExample]:
    """Read a Quora (``task="para"``) or STS (``task="sts"``) file into PairExamples."""
    if task not in PAIR_TASKS:
        raise ValueError(f"unknown pair task {task!r}: expected one of {sorted(PAIR_TASKS)}")
    label_column = PAIR_TASKS[task] if labelled else None
    rows = _read_rows(path, ["sentence1", "sentence2"], label_column, _LABEL_PARSERS[task])
    return [PairExample(id_, first, second, label) for id_, (first, second), label in rows]


def _length(example) -> int:
    """Characters of text in an example: a cheap stand-in for its token count."""
    if isinstance(example, PairExample):
        return len(example.sentence1) + len(example.sentence2)
    return len(example.sentence)


def make_batches(examples, batch_size, rng=None, sort_by_length=True, batches_per_chunk=50):
    """Split ``examples`` into lists of at most ``batch_size`` examples.

    ``rng`` (a ``numpy.random.Generator``) shuffles the examples first and the
    batch order last; without it the order is deterministic. With
    ``sort_by_length`` the examples are sorted by length within chunks of
    ``batches_per_chunk`` batches, so each batch holds sentences of similar
    length and needs little padding, while chunking keeps enough randomness
    for training. At most one batch (the last one cut) is smaller than ``batch_size``.
    """
    if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    examples = list(examples)
    if rng is not None:
        examples = [examples[i] for i in rng.permutation(len(examples))]
    if sort_by_length:
        chunk = batch_size * batches_per_chunk
        examples = [
            example
            for start in range(0, len(examples), chunk)
            for example in sorted(examples[start:start + chunk], key=_length)
        ]
    batches = [examples[start:start + batch_size] for start in range(0, len(examples), batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def load_task(task, path, labelled=True):
    """The examples of ``task``'s file at ``path`` (refused when no row is usable)."""
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


def default_steps_per_epoch(streams, batches_per_step):
    """The fewest steps in which every task passes once over its training set, when a step
    takes ``batches_per_step[task]`` batches of each task's stream."""
    return max(math.ceil(stream.count / batches_per_step[task]) for task, stream in streams.items())
