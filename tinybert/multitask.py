"""One BERT encoder, three task heads (the CS224N multitask minBERT setup).

- sst  (SST-5 sentiment): mean-pooled sentence embedding -> dropout -> Linear(C, 5); cross entropy.
- para (Quora paraphrase): cross-encoder, "[CLS] s1 [SEP] s2 [SEP]" mean-pooled -> Linear(C, 1);
  binary cross entropy on the logit.
- sts  (STS-B similarity): cross-encoder regression like para, MSE against the 0-5 label; or,
  with ``cos=True``, a Sentence-BERT bi-encoder: each sentence encoded alone and mean-pooled,
  the prediction is the cosine of the two embeddings, trained with MSE against label / 5.

Mean pooling (not the [CLS] pooler) because all-MiniLM-L6-v2 was trained with it.
A batch is encoded into "segments": the token arrays of each encoder pass it needs (one for
sst and the cross-encoders, two for the bi-encoder). SMART perturbs the embedding output of
every segment, so the forward is split into ``embed`` and ``head_output``.
"""
import dataclasses

import numpy as np

from . import backend, functional as F, ops
from .nn import Dropout, Linear, Module

TASKS = ("sst", "para", "sts")
SENTIMENT_CLASSES = 5


@dataclasses.dataclass
class TaskBatch:
    task: str
    ids: list                 # example ids, for prediction files
    segments: list            # [{"input_ids", "attention_mask", "token_type_ids"}, ...] (B, T) arrays
    labels: object = None     # (B,) array, or None for unlabelled test data

    def rows(self, index):
        """The batch of rows ``index`` (a slice) of this one, padded as this one is."""
        return TaskBatch(self.task, self.ids[index], [{k: v[index] for k, v in s.items()} for s in self.segments],
                         None if self.labels is None else self.labels[index])


def encode_batch(task, examples, tokenizer, max_length, cos):
    """Tokenise a list of examples of ``task`` into a TaskBatch."""
    if task == "sst":
        segments = [tokenizer.encode([e.sentence for e in examples], max_length=max_length)]
    elif task == "sts" and cos:
        segments = [tokenizer.encode([e.sentence1 for e in examples], max_length=max_length),
                    tokenizer.encode([e.sentence2 for e in examples], max_length=max_length)]
    else:
        segments = [tokenizer.encode([e.sentence1 for e in examples], [e.sentence2 for e in examples],
                                     max_length=max_length)]
    labels = None
    if examples[0].label is not None:
        labels = np.array([e.label for e in examples], dtype=np.int64 if task == "sst" else np.float32)
    return TaskBatch(task, [e.id for e in examples], segments, labels)


class MultitaskBert(Module):
    def __init__(self, bert, hidden_dropout_prob=0.1, cos=False):
        C, dtype = bert.config.hidden_size, bert.config.dtype
        self.bert = bert
        self.cos = cos
        self.dropout = Dropout(hidden_dropout_prob)
        self.sentiment_head = Linear(C, SENTIMENT_CLASSES, dtype=dtype)
        self.paraphrase_head = Linear(C, 1, dtype=dtype)
        self.similarity_head = None if cos else Linear(C, 1, dtype=dtype)

    def embed(self, batch):
        """Embedding-layer output of each segment: [(B, T, C), ...]."""
        return [self.bert.embeddings(backend.xp.asarray(s["input_ids"]), backend.xp.asarray(s["token_type_ids"]))
                for s in batch.segments]

    def head_output(self, batch, embedded):
        """The task's prediction from embedding outputs: sst (B, 5) logits, para (B,) logits,
        sts (B,) similarity (a cosine in [-1, 1] with cos, else a 0-5 regression)."""
        pooled = [self.mean_pooled(x, s) for x, s in zip(embedded, batch.segments)]   # [(B, C), ...]
        if batch.task == "sst":
            return self.sentiment_head(self.dropout(pooled[0]))
        if batch.task == "para":
            return self.paraphrase_head(self.dropout(pooled[0])).reshape(-1)
        if self.cos:
            return F.cosine_similarity(pooled[0], pooled[1])
        return self.similarity_head(self.dropout(pooled[0])).reshape(-1)

    def mean_pooled(self, embedded, segment):
        """A segment's sentence embeddings (B, C): the encoder's last hidden states averaged
        over the real tokens (what the heads read, and what --cos compares)."""
        hidden = self.bert(segment["input_ids"], segment["attention_mask"], embedding_output=embedded)
        return F.masked_mean(hidden.last_hidden_state, segment["attention_mask"])

    def forward(self, batch):
        return self.head_output(batch, self.embed(batch))

    def loss(self, batch, output):
        labels = backend.xp.asarray(batch.labels)
        if batch.task == "sst":
            return F.cross_entropy(output, labels)
        if batch.task == "para":
            return F.binary_cross_entropy_with_logits(output, labels)
        return F.mse_loss(output, labels / 5.0 if self.cos else labels)

    @staticmethod
    def divergence(task, output, target):
        """SMART's l_s between two outputs of the same head: symmetric KL for the classifiers
        (a paraphrase logit z is the two-class distribution softmax([0, z])), squared error
        for the similarity regression."""
        if task == "sst":
            return F.symmetric_kl(output, target)
        if task == "para":
            def two_class(z):
                return ops.concatenate([ops.mul(z, 0.0).reshape(-1, 1), z.reshape(-1, 1)], axis=1)
            return F.symmetric_kl(two_class(output), two_class(target))
        return F.mse_loss(output, target)

    def predictions(self, task, values):
        """Head output (a NumPy array) -> what the prediction files hold: a class, 0/1, or a
        0-5 score."""
        if task == "sst":
            return values.argmax(axis=-1)
        if task == "para":
            return (values > 0).astype(np.int64)
        return np.clip(values * 5.0, 0.0, 5.0) if self.cos else values
