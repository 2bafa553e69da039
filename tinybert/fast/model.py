"""Fast kernel of ``BertModel.encode``: evaluation split by rows of the batch, one slice per
core.

With no graph to record, rows of a batch never interact, so each core runs the whole encoder
on its own rows (:func:`tinybert.fast.parallel.over_batch`, NumPy's BLAS held to one thread)
and the threads meet once per forward. Splitting op by op does worse on OpenBLAS: after each
matmul its idle worker spins on the other core for about 0.1 s, so elementwise work handed to
a second thread between two matmuls finds that core busy. Training steps (a graph to record)
and CuPy arrays run the reference unchanged.
"""
from .. import backend, ops
from ..model import BertModel
from ..tensor import is_grad_enabled
from . import parallel


def encode(model, embedded, attention_mask, output_hidden_states=False):
    """``BertModel.encode``, each core encoding its own rows when no graph is recorded."""
    if is_grad_enabled() or backend.device != "cpu":
        return BertModel.encode.reference(model, embedded, attention_mask, output_hidden_states)
    additive_mask = model.additive_mask(attention_mask, embedded.dtype)
    parts = parallel.over_batch(lambda rows: model.layer_outputs(embedded[rows], additive_mask[rows]),
                                embedded.shape[0])
    wanted = range(len(parts[0])) if output_hidden_states else [-1]
    hidden_states = [ops.concatenate([part[i] for part in parts]) for i in wanted] if len(parts) > 1 else parts[0]
    return model.pool(hidden_states, output_hidden_states)
