"""BERT (Devlin et al. 2019), read top to bottom like the paper: embeddings, self-attention,
the encoder layer, the config, the model.

Dimensions: B batch, T tokens, C hidden size, nh attention heads, hs = C / nh head size,
I intermediate (feed-forward) size, V vocabulary.
"""
import dataclasses
import json
import math
import os

from . import backend, functional as F, ops
from .nn import Dropout, Embedding, LayerNorm, Linear, Module


class BertEmbeddings(Module):
    """x = LayerNorm(word[ids] + position[0..T-1] + token_type[types]), then dropout."""

    def __init__(self, config):
        dtype = config.dtype
        self.word = Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id, dtype=dtype)
        self.position = Embedding(config.max_position_embeddings, config.hidden_size, dtype=dtype)
        self.token_type = Embedding(config.type_vocab_size, config.hidden_size, dtype=dtype)
        self.norm = LayerNorm(config.hidden_size, config.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids):
        positions = backend.xp.arange(input_ids.shape[1])                             # (T,)
        x = self.word(input_ids) + self.token_type(token_type_ids)                   # (B, T, C)
        x = x + self.position(positions)                                             # broadcast over B
        return self.dropout(self.norm(x))


class SelfAttention(Module):
    """Multi-head scaled dot-product attention over the sequence, padding masked out:
    softmax(Q K^T / sqrt(hs) + mask) V per head, heads concatenated, then projected."""

    def __init__(self, config):
        C, dtype = config.hidden_size, config.dtype
        self.heads = config.num_attention_heads
        self.query = Linear(C, C, dtype=dtype)
        self.key = Linear(C, C, dtype=dtype)
        self.value = Linear(C, C, dtype=dtype)
        self.out = Linear(C, C, dtype=dtype)
        self.attention_dropout = Dropout(config.attention_probs_dropout_prob)

    def forward(self, x, additive_mask):
        B, T, C = x.shape
        nh, hs = self.heads, C // self.heads
        # the 1/sqrt(hs) scale is applied to q, (B, nh, T, hs), smaller than the (B, nh, T, T) scores
        q = (self.query(x) * (1.0 / math.sqrt(hs))).reshape(B, T, nh, hs).permute(0, 2, 1, 3)  # (B, nh, T, hs)
        k = self.key(x).reshape(B, T, nh, hs).permute(0, 2, 3, 1)                              # (B, nh, hs, T)
        v = self.value(x).reshape(B, T, nh, hs).permute(0, 2, 1, 3)                            # (B, nh, T, hs)
        probs = F.softmax(q @ k, additive_mask)                                                # (B, nh, T, T)
        context = self.attention_dropout(probs) @ v                                            # (B, nh, T, hs)
        return self.out(context.permute(0, 2, 1, 3).reshape(B, T, C))                         # (B, T, C)


class EncoderLayer(Module):
    """Post-norm transformer layer: x = LN(x + Attn(x)); x = LN(x + FFN(x)),
    FFN(x) = GELU(x W1 + b1) W2 + b2, each sub-layer's output dropped out before the sum."""

    def __init__(self, config):
        C, I, dtype = config.hidden_size, config.intermediate_size, config.dtype
        self.attention = SelfAttention(config)
        self.attention_norm = LayerNorm(C, config.layer_norm_eps, dtype=dtype)
        self.ffn_in = Linear(C, I, dtype=dtype)
        self.ffn_out = Linear(I, C, dtype=dtype)
        self.ffn_norm = LayerNorm(C, config.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, x, additive_mask):
        x = self.attention_norm(x + self.dropout(self.attention(x, additive_mask)))
        return self.ffn_norm(x + self.dropout(self.ffn_out(F.gelu(self.ffn_in(x)))))


@dataclasses.dataclass
class BertConfig:
    """The fields of a Hugging Face BERT ``config.json`` that the model uses."""
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    pad_token_id: int = 0
    add_pooler: bool = True     # all-MiniLM and bert-base ship a pooler; sentence encoders ignore it
    dtype: str = "float32"      # float64 for gradient checks

    @classmethod
    def from_json(cls, path):
        """Read ``config.json`` (Hugging Face's or tinybert's); unknown keys are ignored."""
        try:
            with open(path, encoding="utf-8") as f:
                values = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no config.json here") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: not a JSON object")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        required = [name for name, f in fields.items() if f.default is dataclasses.MISSING]
        for name in required:
            if name not in values:
                raise KeyError(f"{path}: config is missing the key {name!r}")
        problem = cls._bad_value({k: v for k, v in values.items() if k in fields})
        if problem:
            raise ValueError(f"{path}: the key {problem}")
        if values.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"{path}: hidden_act {values['hidden_act']!r} is not supported (only the exact 'gelu')")
        # "dtype" is how tinybert computes, not a property of the checkpoint (recent
        # transformers write their own "dtype" key, which must not leak in)
        config = cls(**{k: v for k, v in values.items() if k in fields and k != "dtype"})
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(f"{path}: hidden_size {config.hidden_size} is not a multiple of "
                             f"num_attention_heads {config.num_attention_heads}")
        return config

    @staticmethod
    def _bad_value(values):
        """"'key' must be ..." for the first value of the wrong type or range, else None."""
        for name, value in values.items():
            if name in ("hidden_act", "dtype", "add_pooler") or (name == "pad_token_id" and value is None):
                continue
            if name.endswith(("_prob", "_eps")):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    return f"{name!r} must be a number, got {value!r}"
                if not (0 <= value < 1 if name.endswith("_prob") else 0 < value < 1):
                    return f"{name!r} must be in {'[0, 1)' if name.endswith('_prob') else '(0, 1)'}, got {value!r}"
            elif isinstance(value, bool) or not isinstance(value, int):
                return f"{name!r} must be an integer, got {value!r}"
            elif value < (0 if name == "pad_token_id" else 1):
                return f"{name!r} must be at least {0 if name == 'pad_token_id' else 1}, got {value}"
        return None


@dataclasses.dataclass
class EncoderOutput:
    """What ``BertModel`` returns (transformers calls this record BaseModelOutputWithPooling;
    its ``BertOutput`` is the feed-forward sub-layer, here part of ``EncoderLayer``)."""
    last_hidden_state: object            # Tensor (B, T, C)
    hidden_states: tuple = None          # embeddings output, then each layer's output
    pooler_output: object = None         # Tensor (B, C): tanh(W h[CLS] + b), or None


class BertModel(Module):
    def __init__(self, config):
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = [EncoderLayer(config) for _ in range(config.num_hidden_layers)]
        self.pooler = Linear(config.hidden_size, config.hidden_size, dtype=config.dtype) if config.add_pooler else None

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, output_hidden_states=False,
                embedding_output=None):
        """input_ids, attention_mask (1 token / 0 padding), token_type_ids: (B, T) -> EncoderOutput.

        ``embedding_output`` (B, T, C), when given, replaces the embedding layer's output:
        SMART perturbs that output and runs the rest of the model from there."""
        xp = backend.xp
        input_ids = xp.asarray(input_ids)
        B, T = input_ids.shape
        if T > self.config.max_position_embeddings:
            raise ValueError(f"input of {T} tokens, but the model has only "
                             f"{self.config.max_position_embeddings} positions: truncate it (max_len)")
        token_type_ids = xp.zeros_like(input_ids) if token_type_ids is None else xp.asarray(token_type_ids)
        attention_mask = xp.ones_like(input_ids) if attention_mask is None else xp.asarray(attention_mask)
        x = self.embeddings(input_ids, token_type_ids) if embedding_output is None else embedding_output  # (B, T, C)
        # padding gets the most negative float added to its scores: zero weight after the softmax
        keep = attention_mask.astype(x.dtype)[:, None, None, :]                                        # (B, 1, 1, T)
        additive_mask = (1.0 - keep) * xp.finfo(x.dtype).min
        hidden_states = [x]
        for layer in self.layers:
            x = layer(x, additive_mask)                                                                 # (B, T, C)
            hidden_states.append(x)
        pooled = ops.tanh(self.pooler(x[:, 0])) if self.pooler is not None else None                   # (B, C)
        return EncoderOutput(x, tuple(hidden_states) if output_hidden_states else None, pooled)
