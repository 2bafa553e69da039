"""Scoring a model on a task file: its outputs over a dataset, the CS224N metrics, and the
prediction files in the CS224N names and columns.

SST and Quora are scored by accuracy, STS by Pearson's r of the 0-5 predictions with the
gold scores.
"""
import numpy as np

from .. import seam
from ..data import make_batches
from ..multitask import encode_batch
from ..tensor import no_grad
from . import files

PREDICTION_HEADERS = {"sst": "Predicted_Sentiment", "para": "Predicted_Is_Paraphrase", "sts": "Predicted_Similiarity"}


@seam.has_fast_kernel
def in_row_slices(forward, rows):
    """``forward(slice(0, rows))``: a batch's outputs, rows first, as a NumPy array.

    Fast kernel (``fast.evaluation.in_row_slices``): without a graph the rows never interact,
    so each core runs ``forward`` on its own slice of them."""
    return forward(slice(0, rows))


def head_outputs(model, task, examples, tokenizer, max_len, batch_size=64, sort_by_length=True):
    """(ids, outputs) over ``examples``: the task head's output ((N, 5) logits, or (N,)) as a
    NumPy array, in eval mode without a graph; ``ids`` in the order of the outputs (by length
    unless ``sort_by_length`` is False: then the examples' order)."""
    was_training = model.training
    model.eval()
    ids, outputs = [], []
    try:
        with no_grad():
            for chunk in make_batches(examples, batch_size, sort_by_length=sort_by_length):
                batch = encode_batch(task, chunk, tokenizer, max_len, model.cos)
                ids += batch.ids
                outputs.append(in_row_slices(lambda rows: model(batch.rows(rows)).numpy(), len(batch.ids)))
    finally:
        model.train(was_training)
    return ids, np.concatenate(outputs)


def predict(model, task, examples, tokenizer, max_len, batch_size=64):
    """(ids, predictions): what the prediction files hold, a class, 0/1 or a 0-5 score."""
    ids, outputs = head_outputs(model, task, examples, tokenizer, max_len, batch_size)
    return ids, model.predictions(task, outputs)


def metric(task, examples, ids, predictions):
    """SST and Quora: accuracy; STS: Pearson correlation."""
    label_of = {e.id: e.label for e in examples}
    labels = np.array([label_of[i] for i in ids], dtype=np.float64)
    if task == "sts":
        return float(np.corrcoef(predictions.astype(np.float64), labels)[0, 1])
    return float((predictions == labels).mean())


def write_predictions(path, task, ids, predictions):
    """The CS224N prediction file: header 'id \\t Predicted_...', rows 'id , value'
    (the header's spelling, 'Similiarity' included, is the course's)."""
    lines = [f"id \t {PREDICTION_HEADERS[task]} \n"]
    lines += [f"{i} , {p} \n" for i, p in zip(ids, predictions.tolist())]
    files.write_text(path, "".join(lines))
