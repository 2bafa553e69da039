"""The multitask model: batches, the three heads' outputs, the cosine mode, predictions, and
the losses against torch.nn.functional on the same outputs."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as torch_F

from tinybert import backend
from tinybert.data import PairExample, SentenceExample
from tinybert.multitask import SENTIMENT_CLASSES, MultitaskBert, TaskBatch, encode_batch
from tinybert.tensor import Tensor, no_grad
from tinybert.tokenizer import Tokenizer
from tinybert.convert import load_pretrained

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "tiny_bert_hf"  # vocab 99, hidden 48, 3 layers
B = 3


def segment(ids, types=None):
    ids = np.asarray(ids)
    return {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int64),
            "token_type_ids": np.zeros_like(ids) if types is None else np.asarray(types)}


FIRST = segment([[2, 15, 27, 33, 3, 0], [2, 40, 3, 0, 0, 0], [2, 61, 62, 63, 64, 3]])
SECOND = segment([[2, 70, 3, 0], [2, 41, 42, 3], [2, 61, 62, 3]])
PAIR = segment([[2, 15, 27, 3, 70, 3], [2, 40, 3, 41, 42, 3], [2, 61, 3, 62, 3, 0]],
               [[0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 0]])
LABELS = {"sst": np.array([0, 4, 2]), "para": np.array([1.0, 0.0, 1.0], dtype=np.float32),
          "sts": np.array([4.2, 0.0, 2.5], dtype=np.float32)}


def batch_for(task, cos, labelled=True):
    segments = [FIRST] if task == "sst" else [FIRST, SECOND] if task == "sts" and cos else [PAIR]
    return TaskBatch(task, ["a", "b", "c"], segments, LABELS[task] if labelled else None)


@pytest.fixture(scope="module", params=[False, True], ids=["cross-encoder", "cos"])
def model(request):
    backend.seed(0)
    return MultitaskBert(load_pretrained(FIXTURE, dtype="float64"), hidden_dropout_prob=0.1,
                         cos=request.param).eval()


def numpy_mean_pooled(model, s):
    """Mean over the real tokens of the encoder's last hidden state, in NumPy."""
    with no_grad():
        hidden = model.bert(s["input_ids"], s["attention_mask"], s["token_type_ids"]).last_hidden_state.data
    mask = s["attention_mask"][:, :, None]
    return (hidden * mask).sum(axis=1) / mask.sum(axis=1)


# ---------------------------------------------------------------- outputs
@pytest.mark.parametrize("task,shape", [("sst", (B, SENTIMENT_CLASSES)), ("para", (B,)), ("sts", (B,))])
def test_head_output_shapes(model, task, shape):
    with no_grad():
        output = model(batch_for(task, model.cos))
    assert output.shape == shape and output.data.dtype == np.float64
    assert model.predictions(task, output.data).shape == (B,)


def test_heads_read_the_mean_of_the_real_tokens(model):
    # the sentiment logits are the head applied to the mean over non-padding tokens
    pooled = numpy_mean_pooled(model, FIRST)
    expected = pooled @ model.sentiment_head.weight.data + model.sentiment_head.bias.data
    with no_grad():
        np.testing.assert_allclose(model(batch_for("sst", model.cos)).data, expected, rtol=1e-10, atol=1e-12)
        # more padding changes nothing
        padded = {k: np.pad(v, ((0, 0), (0, 3))) for k, v in FIRST.items()}
        np.testing.assert_allclose(model(TaskBatch("sst", ["a", "b", "c"], [padded])).data, expected,
                                   rtol=1e-10, atol=1e-12)


def test_dropout_only_in_training(model):
    batch = batch_for("sst", model.cos)
    with no_grad():
        first, second = model(batch).data, model(batch).data
        assert np.array_equal(first, second)  # eval: deterministic
        model.train()
        try:
            assert not np.allclose(model(batch).data, first)
        finally:
            model.eval()


def test_cos_mode_predicts_a_cosine_mapped_to_0_5():
    backend.seed(0)
    model = MultitaskBert(load_pretrained(FIXTURE, dtype="float64"), cos=True).eval()
    assert model.similarity_head is None  # the bi-encoder has no regression head
    with no_grad():
        output = model(batch_for("sts", cos=True))
    a, b = numpy_mean_pooled(model, FIRST), numpy_mean_pooled(model, SECOND)
    cosine = (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(output.data, cosine, rtol=1e-8)
    assert np.all(np.abs(output.data) <= 1.0)
    # predictions: 5 * cosine, negative cosines (dissimilar) clipped to 0
    outputs = np.array([-1.0, -0.2, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(model.predictions("sts", outputs), [0.0, 0.0, 0.0, 2.5, 5.0])
    assert np.all((model.predictions("sts", output.data) >= 0) & (model.predictions("sts", output.data) <= 5))


def test_predictions_of_the_classifiers_and_the_regression():
    backend.seed(0)
    model = MultitaskBert(load_pretrained(FIXTURE, dtype="float64"), cos=False)
    logits = np.array([[0.1, 2.0, -1.0, 0.0, 0.3], [5.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.1]])
    np.testing.assert_array_equal(model.predictions("sst", logits), [1, 0, 4])
    np.testing.assert_array_equal(model.predictions("para", np.array([-0.5, 0.0, 2.0])), [0, 0, 1])
    np.testing.assert_allclose(model.predictions("sts", np.array([4.2, 0.3])), [4.2, 0.3])


def test_rows_of_a_batch_are_the_batch_of_those_rows():
    batch = batch_for("sts", cos=True)
    part = batch.rows(slice(1, 3))
    assert part.task == "sts" and part.ids == ["b", "c"] and part.labels.tolist() == LABELS["sts"][1:3].tolist()
    assert len(part.segments) == 2
    for whole, sliced in zip(batch.segments, part.segments, strict=True):
        assert whole.keys() == sliced.keys()
        assert all(np.array_equal(sliced[key], whole[key][1:3]) for key in whole)   # padded as the whole batch
    assert batch_for("sst", cos=False, labelled=False).rows(slice(0, 1)).labels is None


# ---------------------------------------------------------------- losses
def test_losses_match_torch(model):
    with no_grad():
        outputs = {task: model(batch_for(task, model.cos)) for task in ("sst", "para", "sts")}
    ours = {task: model.loss(batch_for(task, model.cos), outputs[task]).item() for task in outputs}
    theirs = {
        "sst": torch_F.cross_entropy(torch.tensor(outputs["sst"].data), torch.tensor(LABELS["sst"])),
        "para": torch_F.binary_cross_entropy_with_logits(torch.tensor(outputs["para"].data),
                                                          torch.tensor(LABELS["para"], dtype=torch.float64)),
        # the cosine is trained against the label scaled to [0, 1]
        "sts": torch_F.mse_loss(torch.tensor(outputs["sts"].data),
                                torch.tensor(LABELS["sts"], dtype=torch.float64) / (5.0 if model.cos else 1.0)),
    }
    for task in ours:
        assert ours[task] == pytest.approx(theirs[task].item(), rel=1e-6), task  # float32 labels


def test_loss_gradients_match_torch():
    # the losses' backward, on hand-picked outputs, against torch's autograd (float64)
    backend.seed(0)
    model = MultitaskBert(load_pretrained(FIXTURE, dtype="float64"))
    rng = np.random.default_rng(0)
    outputs = {"sst": rng.standard_normal((B, 5)), "para": rng.standard_normal(B), "sts": rng.standard_normal(B) * 3}
    labels = {"sst": LABELS["sst"], "para": LABELS["para"].astype(np.float64), "sts": LABELS["sts"].astype(np.float64)}
    losses = {"sst": torch_F.cross_entropy, "para": torch_F.binary_cross_entropy_with_logits, "sts": torch_F.mse_loss}
    for task, value in outputs.items():
        ours = Tensor(value.copy(), requires_grad=True)
        loss = model.loss(TaskBatch(task, ["a", "b", "c"], [], labels[task]), ours)
        loss.backward()
        theirs = torch.tensor(value, requires_grad=True)
        reference = losses[task](theirs, torch.tensor(labels[task]))
        reference.backward()
        assert loss.item() == pytest.approx(reference.item(), rel=1e-12), task
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-10, atol=1e-14, err_msg=task)


# ---------------------------------------------------------------- batches
@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vocab")
    words = "[PAD] [UNK] [CLS] [SEP] [MASK] a man is slicing bread the film was fine .".split()
    (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    return Tokenizer.from_folder(folder)


def test_encode_batch_segments_and_labels(tokenizer):
    sentences = [SentenceExample("s1", "The film was fine.", 3), SentenceExample("s2", "fine", 0)]
    pairs = [PairExample("p1", "A man is slicing bread.", "The man is slicing.", 4.5),
             PairExample("p2", "bread", "", 0.0)]
    sst = encode_batch("sst", sentences, tokenizer, 16, cos=False)
    assert sst.ids == ["s1", "s2"] and len(sst.segments) == 1
    assert sst.labels.dtype == np.int64 and sst.labels.tolist() == [3, 0]
    assert sst.segments[0]["input_ids"][1].tolist()[:3] == [2, 13, 3]  # [CLS] fine [SEP]
    cross = encode_batch("sts", pairs, tokenizer, 16, cos=False)
    assert len(cross.segments) == 1 and cross.segments[0]["token_type_ids"].max() == 1
    assert cross.labels.dtype == np.float32 and cross.labels.tolist() == [4.5, 0.0]
    bi = encode_batch("sts", pairs, tokenizer, 16, cos=True)
    assert len(bi.segments) == 2 and all(s["token_type_ids"].max() == 0 for s in bi.segments)
    assert bi.segments[1]["input_ids"][1].tolist()[:2] == [2, 3]  # an empty sentence: [CLS] [SEP]
    para = encode_batch("para", [PairExample("q", "a man", "the man", None)], tokenizer, 16, cos=True)
    assert len(para.segments) == 1 and para.labels is None  # cos changes sts only; test data has no labels
    truncated = encode_batch("sst", sentences, tokenizer, 4, cos=False)
    assert truncated.segments[0]["input_ids"].shape == (2, 4)
