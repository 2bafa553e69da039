"""Use a trained model: ask it about your own sentences.

    python -m tinybert.run.predict runs/full --task sst "a gripping, funny film"
    python -m tinybert.run.predict runs/full --task para "How do I learn Python?" "What is the best way to learn Python?"
    python -m tinybert.run.predict runs/full --task sts "A man is playing a guitar." "A man plays the guitar."
    python -m tinybert.run.predict runs/full --task sts --file pairs.tsv     # one "sentence1 TAB sentence2" a line

At the end of a run, train.py writes the best epoch to RUN/model/ (:func:`save_model_folder`):

    config.json, model.safetensors   the fine-tuned encoder, a tinybert BERT folder
                                     (so `python -m tinybert.convert --to-hf RUN/model DST` exports it)
    heads.safetensors                the task heads (sentiment_head.*, paraphrase_head.*, similarity_head.*)
    tokenizer.json, vocab.txt, ...   the tokenizer
    tasks.json                       the tasks trained, --cos, --max_len, the best epoch and its dev scores,
                                     and the sha256 of heads.safetensors

:func:`load` reads it back in one call. Answers: sst, the class 0-4 and the five class
probabilities softmax(logits); para, the probability of a paraphrase sigmoid(logit); sts, the
0-5 score the prediction files hold (5 x the cosine, clipped to [0, 5], with --cos; else the
regression head's output).

Nothing wrong is answered in silence: :func:`load` checks each file against the sha256 that
tasks.json recorded (a folder written before the checksums loads without that check) and
refuses weights that are not finite, and an answer that comes out NaN or infinite is refused
rather than printed, each in one line naming the file or folder. ``--file`` takes a plain file
of sentences; a CS224N data file (tab-separated, a header naming id/sentence columns) is
refused with one line saying so, rather than read as sentences, header and ids included.
"""
import argparse
import json
import os
import sys

import numpy as np

from . import files
from .evaluation import head_outputs
from ..convert import _load_safetensors
from ..data import PairExample, SentenceExample, make_batches
from ..model import BertModel
from ..multitask import TASKS, MultitaskBert, encode_batch
from ..tensor import no_grad
from ..tokenizer import Tokenizer
from ..convert import check_finite, load_pretrained, save_pretrained

MODEL_FORMAT = "tinybert-multitask-1"
SETTINGS_KEYS = ("format", "tasks", "cos", "max_len")
SENTIMENT_NAMES = ("negative", "somewhat negative", "neutral", "somewhat positive", "positive")
CHECKSUMMED = ("heads.safetensors",)    # its sha256 is in tasks.json (model.safetensors': in config.json)
DATA_FILE_COLUMNS = {"id", "sentence", "sentence1", "sentence2"}     # a CS224N data file's header names some


def save_model_folder(folder, model, tokenizer, tasks, args, state):
    """Write ``model`` (a MultitaskBert, the best epoch's weights loaded) as RUN/model/, in
    one atomic swap of the whole folder."""
    def write(temporary):
        save_pretrained(model.bert, temporary)
        tokenizer.save(temporary)
        heads = {name: p.data for name, p in model.named_parameters() if not name.startswith("bert.")}
        files.save_arrays(os.path.join(temporary, "heads.safetensors"), heads)
        settings = {"format": MODEL_FORMAT, "tasks": list(tasks), "cos": args.cos, "max_len": args.max_len,
                    "best_epoch": state["best_epoch"], "dev_scores": state["best_scores"], "weights": args.weights,
                    "sha256": {name: files.sha256(os.path.join(temporary, name)) for name in CHECKSUMMED}}
        files.write_text(os.path.join(temporary, "tasks.json"), json.dumps(settings, indent=2))
    files.atomic_folder(folder, write)


def verify_checksums(folder, settings):
    """Each file whose sha256 tasks.json recorded still has it; a folder written before the
    checksums (no "sha256" key) is not checked."""
    recorded = settings.get("sha256")
    if recorded is None:
        return
    if not isinstance(recorded, dict):
        raise ValueError(f"{os.path.join(folder, 'tasks.json')}: 'sha256' is not a table of file names")
    for name, digest in recorded.items():
        path = os.path.join(folder, name)
        if os.path.isfile(path) and files.sha256(path) != digest:
            raise ValueError(f"{path}: its sha256 does not match the one tasks.json recorded when the run wrote "
                             "it: the file is damaged or was changed since; restore it or train again")


def model_folder(path):
    """RUN/model for a run folder, ``path`` itself for a model folder."""
    if os.path.isfile(os.path.join(path, "tasks.json")):
        return path
    if os.path.isfile(os.path.join(path, "model", "tasks.json")):
        return os.path.join(path, "model")
    if os.path.isdir(os.path.join(path, "last")):
        raise FileNotFoundError(f"{path}: no model/ folder yet (train.py writes it when the run finishes; "
                                "an interrupted run continues with --resume)")
    raise FileNotFoundError(f"{path}: neither a run folder nor a model folder (no tasks.json)")


def read_settings(folder):
    path = os.path.join(folder, "tasks.json")
    try:
        with open(path, encoding="utf-8") as f:
            settings = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{path}: not a JSON object")
    missing = [key for key in SETTINGS_KEYS if key not in settings]
    if missing:
        raise ValueError(f"{path}: the key {missing[0]!r} is missing")
    if settings["format"] != MODEL_FORMAT:
        raise ValueError(f"{path}: format {settings['format']!r}, expected {MODEL_FORMAT!r}")
    tasks, max_len = settings["tasks"], settings["max_len"]
    if not isinstance(tasks, list) or not tasks or not all(isinstance(task, str) for task in tasks):
        raise ValueError(f"{path}: 'tasks' must be a list of task names, got {tasks!r}")
    unknown = [task for task in tasks if task not in TASKS]
    if unknown:
        raise ValueError(f"{path}: unknown task {unknown[0]!r} under 'tasks'")
    if not isinstance(settings["cos"], bool):
        raise ValueError(f"{path}: 'cos' must be true or false, got {settings['cos']!r}")
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 4:
        raise ValueError(f"{path}: 'max_len' must be a whole number of at least 4, got {max_len!r}")
    return settings


class TrainedModel:
    """A run's model folder, loaded: ``TrainedModel.load("runs/full")``."""

    def __init__(self, model, tokenizer, settings, folder="the model"):
        self.model, self.tokenizer, self.settings, self.folder = model, tokenizer, settings, folder
        self.model.eval()

    @classmethod
    def load(cls, path):
        """From a run folder (its model/) or a model folder."""
        folder = model_folder(path)
        settings = read_settings(folder)
        verify_checksums(folder, settings)
        bert = load_pretrained(folder)           # refuses weights that are not finite
        if settings["max_len"] > bert.config.max_position_embeddings:
            raise ValueError(f"{os.path.join(folder, 'tasks.json')}: 'max_len' {settings['max_len']} exceeds the "
                             f"model's {bert.config.max_position_embeddings} positions")
        model = MultitaskBert(bert, cos=settings["cos"])
        heads_path = os.path.join(folder, "heads.safetensors")
        if not os.path.isfile(heads_path):
            raise FileNotFoundError(f"{heads_path}: the task heads are missing")
        state = {f"bert.{name}": p.data for name, p in bert.named_parameters()}
        heads = _load_safetensors(heads_path)
        check_finite(heads, heads_path)
        state.update(heads)
        model.load_state_dict(state, source=heads_path)
        return cls(model, Tokenizer.from_folder(folder), settings, folder)

    def _finite(self, what, values):
        """``values``, or a ValueError naming the folder when some are NaN or infinite."""
        bad = ~np.isfinite(values).reshape(len(values), -1).all(axis=1)
        if bad.any():
            raise ValueError(f"{self.folder}: the model's {what} are not finite (NaN or inf) for {int(bad.sum())} of "
                             f"{len(values)} inputs: its weights overflow, so it has no answer to give")
        return values

    def _outputs(self, task, examples):
        """The head's output over ``examples``, in their order: (N, 5) logits or (N,)."""
        if task not in self.settings["tasks"]:
            raise ValueError(f"this model was trained for {', '.join(self.settings['tasks'])}, not {task}")
        _, outputs = head_outputs(self.model, task, examples, self.tokenizer, self.settings["max_len"],
                                  sort_by_length=False)
        return self._finite(f"{task} outputs", outputs)

    def sentiment(self, sentences):
        """(classes (N,), probabilities (N, 5)) for a list of sentences."""
        logits = self._outputs("sst", _sentences(sentences)).astype(np.float64)  # float64: probabilities sum to 1
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        return probabilities.argmax(axis=1), probabilities

    def paraphrase(self, first, second):
        """The probability that each pair is a paraphrase, (N,)."""
        logits = self._outputs("para", _pairs(first, second)).astype(np.float64)
        return 1.0 / (1.0 + np.exp(-logits))

    def similarity(self, first, second):
        """The 0-5 similarity of each pair, (N,): what the STS prediction file would hold."""
        return self.model.predictions("sts", self._outputs("sts", _pairs(first, second)))

    def embed(self, sentences):
        """Mean-pooled sentence embeddings (N, C): what the --cos similarity compares, and
        what a sentence-transformers export computes."""
        embeddings = []
        with no_grad():
            for chunk in make_batches(_sentences(sentences), 64, sort_by_length=False):
                batch = encode_batch("sst", chunk, self.tokenizer, self.settings["max_len"], self.settings["cos"])
                embeddings.append(self.model.mean_pooled(self.model.embed(batch)[0], batch.segments[0]).numpy())
        return self._finite("embeddings", np.concatenate(embeddings))


def _sentences(sentences):
    return [SentenceExample(str(i), sentence, None) for i, sentence in enumerate(sentences)]


def _pairs(first, second):
    if len(first) != len(second):
        raise ValueError(f"{len(first)} first sentences but {len(second)} second ones")
    return [PairExample(str(i), a, b, None) for i, (a, b) in enumerate(zip(first, second))]


def read_inputs(path, task):
    """A file of inputs: one sentence a line (sst) or "sentence1 TAB sentence2" (para, sts);
    blank lines are skipped, any other line of the wrong shape is an error naming it. A CS224N
    data file (its first line a tab-separated header naming id/sentence columns) is refused:
    its rows hold an index, an id and a label beside the sentences."""
    fields = 1 if task == "sst" else 2
    rows = []
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a folder, not a file of sentences")
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")    # text mode has turned \r\n and \r into \n
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if not rows and len(parts) > 1 and DATA_FILE_COLUMNS & {part.strip().lower() for part in parts}:
            raise ValueError(f"{path}: looks like a CS224N data file (line {number} is a header naming the "
                             f"columns {', '.join(p.strip() for p in parts if p.strip())}); pass a plain file of "
                             "sentences: one sentence a line (sst), or sentence1 TAB sentence2 a line (para, sts)")
        if fields == 1 and len(parts) > 1:
            raise ValueError(f"{path}, line {number}: {len(parts)} tab-separated fields; --task sst takes a plain "
                             "file of sentences, one a line, without tabs")
        if len(parts) != fields:
            raise ValueError(f"{path}, line {number}: expected two sentences separated by a tab, "
                             f"found {len(parts)} field(s)")
        rows.append(parts)
    if not rows:
        raise ValueError(f"{path}: no sentences")
    return [list(column) for column in zip(*rows)]


def answer(trained, task, columns):
    """Lines of text: one answer per input."""
    if task == "sst":
        classes, probabilities = trained.sentiment(columns[0])
        return [f"{c} {SENTIMENT_NAMES[c]:<17}  p = {' '.join(f'{v:.3f}' for v in p)}  {s}"
                for c, p, s in zip(classes, probabilities, columns[0])]
    values = (trained.paraphrase if task == "para" else trained.similarity)(*columns)
    name = "paraphrase probability" if task == "para" else "similarity 0-5"
    return [f"{v:.3f} {name}  {a}  |  {b}" for v, a, b in zip(values, *columns)]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinybert.run.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run folder (runs/NAME) or its model/ folder")
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("sentences", nargs="*", help="sst: one or more sentences; para, sts: two sentences")
    parser.add_argument("--file", help="read the inputs from a file instead (see above)")
    args = parser.parse_intermixed_args(argv)  # RUN --task sst "a sentence": positionals on both sides
    if bool(args.sentences) == bool(args.file):
        parser.error("give sentences or --file, one of the two")
    if args.sentences and args.task != "sst" and len(args.sentences) != 2:
        parser.error(f"--task {args.task} takes two sentences, got {len(args.sentences)}")
    try:
        columns = read_inputs(args.file, args.task) if args.file else (
            [args.sentences] if args.task == "sst" else [[s] for s in args.sentences])
        trained = TrainedModel.load(args.run)
        print("\n".join(answer(trained, args.task, columns)))
    except (OSError, ValueError, KeyError) as error:
        sys.exit(f"predict: {error.args[0] if isinstance(error, KeyError) else error}")


if __name__ == "__main__":
    main()
