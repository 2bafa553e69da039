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
    tasks.json                       the tasks trained, --cos, --max_len, the best epoch and its dev scores

:func:`load` reads it back in one call. Answers: sst, the class 0-4 and the five class
probabilities softmax(logits); para, the probability of a paraphrase sigmoid(logit); sts, the
0-5 score the prediction files hold (5 x the cosine, clipped to [0, 5], with --cos; else the
regression head's output).
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
from ..convert import load_pretrained, save_pretrained

MODEL_FORMAT = "tinybert-multitask-1"
SETTINGS_KEYS = ("format", "tasks", "cos", "max_len")
SENTIMENT_NAMES = ("negative", "somewhat negative", "neutral", "somewhat positive", "positive")


def save_model_folder(folder, model, tokenizer, tasks, args, state):
    """Write ``model`` (a MultitaskBert, the best epoch's weights loaded) as RUN/model/, in
    one atomic swap of the whole folder."""
    def write(temporary):
        save_pretrained(model.bert, temporary)
        tokenizer.save(temporary)
        heads = {name: p.data for name, p in model.named_parameters() if not name.startswith("bert.")}
        files.save_arrays(os.path.join(temporary, "heads.safetensors"), heads)
        settings = {"format": MODEL_FORMAT, "tasks": list(tasks), "cos": args.cos, "max_len": args.max_len,
                    "best_epoch": state["best_epoch"], "dev_scores": state["best_scores"], "weights": args.weights}
        files.write_text(os.path.join(temporary, "tasks.json"), json.dumps(settings, indent=2))
    files.atomic_folder(folder, write)


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
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    missing = [key for key in SETTINGS_KEYS if key not in settings] if isinstance(settings, dict) else ["format"]
    if missing:
        raise ValueError(f"{path}: the key {missing[0]!r} is missing")
    if settings["format"] != MODEL_FORMAT:
        raise ValueError(f"{path}: format {settings['format']!r}, expected {MODEL_FORMAT!r}")
    unknown = [task for task in settings["tasks"] if task not in TASKS]
    if unknown:
        raise ValueError(f"{path}: unknown task {unknown[0]!r} under 'tasks'")
    return settings


class TrainedModel:
    """A run's model folder, loaded: ``TrainedModel.load("runs/full")``."""

    def __init__(self, model, tokenizer, settings):
        self.model, self.tokenizer, self.settings = model, tokenizer, settings
        self.model.eval()

    @classmethod
    def load(cls, path):
        """From a run folder (its model/) or a model folder."""
        folder = model_folder(path)
        settings = read_settings(folder)
        bert = load_pretrained(folder)
        model = MultitaskBert(bert, cos=settings["cos"])
        heads_path = os.path.join(folder, "heads.safetensors")
        if not os.path.isfile(heads_path):
            raise FileNotFoundError(f"{heads_path}: the task heads are missing")
        state = {f"bert.{name}": p.data for name, p in bert.named_parameters()}
        state.update(_load_safetensors(heads_path))
        model.load_state_dict(state, source=heads_path)
        return cls(model, Tokenizer.from_folder(folder), settings)

    def _outputs(self, task, examples):
        """The head's output over ``examples``, in their order: (N, 5) logits or (N,)."""
        if task not in self.settings["tasks"]:
            raise ValueError(f"this model was trained for {', '.join(self.settings['tasks'])}, not {task}")
        _, outputs = head_outputs(self.model, task, examples, self.tokenizer, self.settings["max_len"],
                                  sort_by_length=False)
        return outputs

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
        return np.concatenate(embeddings)


def _sentences(sentences):
    return [SentenceExample(str(i), sentence, None) for i, sentence in enumerate(sentences)]


def _pairs(first, second):
    if len(first) != len(second):
        raise ValueError(f"{len(first)} first sentences but {len(second)} second ones")
    return [PairExample(str(i), a, b, None) for i, (a, b) in enumerate(zip(first, second))]


def read_inputs(path, task):
    """A file of inputs: one sentence a line (sst) or "sentence1 TAB sentence2" (para, sts);
    blank lines are skipped, any other line of the wrong shape is an error naming it."""
    fields = 1 if task == "sst" else 2
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = [line] if fields == 1 else line.split("\t")
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
