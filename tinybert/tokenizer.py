"""WordPiece tokenization for BERT, on top of Hugging Face's ``tokenizers`` library.

A checkpoint folder holds either a ``tokenizer.json`` (the full pipeline) or
just a ``vocab.txt`` (one WordPiece per line, the line number is the id), and
optionally a ``tokenizer_config.json`` saying whether the model is cased.
``Tokenizer.encode`` turns a batch of sentences (or sentence pairs) into the
three integer arrays BERT takes, exactly as ``transformers`` does with
``padding=True, truncation=True``.
"""
import json
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import normalizers
from tokenizers.implementations import BertWordPieceTokenizer

PAD_TOKEN = "[PAD]"


def _read_config(folder: Path) -> dict:
    """The contents of ``tokenizer_config.json``, or {} when the folder has none."""
    path = folder / "tokenizer_config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def _match_case_setting(wordpiece, config: dict) -> None:
    """Make a BERT normalizer lower-case (or not) as ``tokenizer_config.json`` says.

    ``transformers`` lets ``do_lower_case`` in the config override the
    normalizer stored in ``tokenizer.json``; doing the same keeps the two in
    agreement when a checkpoint's files disagree.
    """
    normalizer = json.loads(wordpiece.to_str()).get("normalizer") or {}
    if "do_lower_case" not in config or normalizer.get("type") != "BertNormalizer":
        return
    lowercase = bool(config["do_lower_case"])
    strip_accents = config.get("strip_accents")
    if normalizer["lowercase"] != lowercase or normalizer["strip_accents"] != strip_accents:
        wordpiece.normalizer = normalizers.BertNormalizer(
            clean_text=normalizer["clean_text"],
            handle_chinese_chars=normalizer["handle_chinese_chars"],
            strip_accents=strip_accents,
            lowercase=lowercase,
        )


class Tokenizer:
    """A BERT WordPiece tokenizer that encodes batches into NumPy arrays."""

    def __init__(self, wordpiece, config: dict):
        """Wrap a ``tokenizers`` tokenizer; ``config`` is kept for ``save``."""
        self._wordpiece = wordpiece
        self._config = config
        pad_token = config.get("pad_token") or PAD_TOKEN
        # Newer configs store special tokens as {"content": "[PAD]", ...}.
        if isinstance(pad_token, dict):
            pad_token = pad_token["content"]
        self.pad_token_id = wordpiece.token_to_id(pad_token)
        if self.pad_token_id is None:
            raise ValueError(f"the vocabulary has no padding token {pad_token!r}")
        self._pad_token = pad_token
        # A checkpoint's tokenizer.json may fix its own padding and truncation
        # (all-MiniLM pads everything to 128); encode() sets both itself.
        self._wordpiece.no_padding()
        self._wordpiece.no_truncation()

    @classmethod
    def from_folder(cls, folder) -> "Tokenizer":
        """Load from ``tokenizer.json``, or else build an uncased BERT tokenizer from ``vocab.txt``."""
        folder = Path(folder)
        config = _read_config(folder)
        if (folder / "tokenizer.json").is_file():
            try:
                wordpiece = HFTokenizer.from_file(str(folder / "tokenizer.json"))
            except Exception as error:  # the Rust library raises a bare Exception
                raise ValueError(f"{folder / 'tokenizer.json'}: not a valid tokenizer file ({error})") from None
            _match_case_setting(wordpiece, config)
        elif (folder / "vocab.txt").is_file():
            # strip_accents=None means "strip when lower-casing", as BERT uncased does.
            try:
                wordpiece = BertWordPieceTokenizer(
                    str(folder / "vocab.txt"),
                    lowercase=bool(config.get("do_lower_case", True)),
                    strip_accents=config.get("strip_accents"),
                )
            except Exception as error:  # e.g. TypeError("sep_token not found in the vocabulary")
                raise ValueError(f"{folder / 'vocab.txt'}: not a usable BERT vocabulary ({error})") from None
        else:
            raise FileNotFoundError(f"{folder}: no tokenizer.json or vocab.txt found")
        try:
            return cls(wordpiece, config)
        except ValueError as error:
            source = "tokenizer.json" if (folder / "tokenizer.json").is_file() else "vocab.txt"
            raise ValueError(f"{folder / source}: {error}") from None

    @property
    def vocab_size(self) -> int:
        """Number of token ids, special tokens included."""
        return self._wordpiece.get_vocab_size(with_added_tokens=True)

    def encode(self, sentences, pairs=None, max_length=128) -> dict:
        """Tokenize a batch into ``input_ids``, ``attention_mask`` and ``token_type_ids``.

        Each is an int64 array of shape (batch, seq), where seq is the longest
        encoding in the batch (at most ``max_length``). With ``pairs`` each row
        is ``[CLS] a [SEP] b [SEP]`` with token types 0 for ``a`` and 1 for
        ``b``; too-long pairs are cut one token at a time from the longer side.
        Long pair sides are first cut to about ``max_length`` tokens (:meth:`_cut_pairs`),
        which changes nothing in the result but keeps the cost linear in their length.
        """
        if isinstance(sentences, str) or (pairs is not None and isinstance(pairs, str)):
            raise TypeError("encode takes a list of sentences, not a single string")
        sentences = list(sentences)
        if not sentences:
            raise ValueError("encode needs at least one sentence")
        if pairs is not None:
            pairs = list(pairs)
            if len(pairs) != len(sentences):
                raise ValueError(f"got {len(sentences)} sentences but {len(pairs)} pair sentences")
        needed = self._wordpiece.num_special_tokens_to_add(is_pair=pairs is not None)
        if max_length <= needed:
            raise ValueError(f"max_length must exceed the {needed} special tokens, got {max_length}")

        if pairs is not None:
            sentences, pairs = self._cut_pairs(sentences, pairs, max_length)
        self._wordpiece.enable_truncation(max_length, strategy="longest_first")
        self._wordpiece.enable_padding(pad_id=self.pad_token_id, pad_token=self._pad_token)
        inputs = sentences if pairs is None else list(zip(sentences, pairs))
        encodings = self._wordpiece.encode_batch(inputs)
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }

    def _cut_pairs(self, firsts, seconds, max_length):
        """Each side of each pair cut to at most ``max_length`` tokens (the longer side of
        two long ones to ``max_length`` + 1, so that which side is longer, what longest-first
        truncation goes by, stays the same), at a token's end offset.

        The tokenizers library truncates a pair by building every overflowing combination
        of its two sides, which costs memory in the square of their length (a known issue,
        huggingface/tokenizers#2035). Encoding each side
        alone is linear, and what is cut would be truncated away anyway, so the result is
        the same. A pair of sides of at most ``max_length`` characters each is kept whole:
        every token spans at least a character.
        """
        long = [i for i, pair in enumerate(zip(firsts, seconds)) if max(map(len, pair)) > max_length]
        if not long:
            return firsts, seconds
        self._wordpiece.no_padding()
        self._wordpiece.no_truncation()
        sides = [list(firsts), list(seconds)]
        encodings = self._wordpiece.encode_batch([sides[s][i] for i in long for s in (0, 1)], add_special_tokens=False)
        for number, i in enumerate(long):
            pair = encodings[2 * number:2 * number + 2]
            counts = [len(e.ids) for e in pair]
            keep = [min(n, max_length + (n > min(counts))) for n in counts]
            for side, (encoding, n, k) in enumerate(zip(pair, counts, keep)):
                if k < n:
                    sides[side][i] = sides[side][i][:encoding.offsets[k - 1][1]]
        return sides

    def save(self, folder) -> None:
        """Write ``tokenizer.json``, ``tokenizer_config.json`` and, for WordPiece, ``vocab.txt``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        # Saved without padding or truncation, so the file describes the
        # vocabulary and normalisation only.
        self._wordpiece.no_padding()
        self._wordpiece.no_truncation()
        self._wordpiece.save(str(folder / "tokenizer.json"))

        pipeline = json.loads(self._wordpiece.to_str())
        by_id = sorted(self._wordpiece.get_vocab(with_added_tokens=True).items(), key=lambda item: item[1])
        # vocab.txt identifies a token by its line number, so it can only
        # describe a WordPiece vocabulary whose ids run 0, 1, 2, ... without gaps.
        if pipeline["model"]["type"] == "WordPiece" and [i for _, i in by_id] == list(range(len(by_id))):
            (folder / "vocab.txt").write_text("".join(token + "\n" for token, _ in by_id), encoding="utf-8")

        normalizer = pipeline.get("normalizer") or {}
        config = dict(self._config)
        if normalizer.get("type") == "BertNormalizer":
            config["do_lower_case"] = normalizer["lowercase"]
            config["strip_accents"] = normalizer["strip_accents"]
        config.setdefault("tokenizer_class", "BertTokenizer")
        config.setdefault("pad_token", self._pad_token)
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
