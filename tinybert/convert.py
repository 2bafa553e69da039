"""Convert BERT weights between the Hugging Face layout and tinybert's.

    python -m tinybert.convert SRC DST            # Hugging Face folder -> tinybert folder
    python -m tinybert.convert --to-hf SRC DST    # tinybert folder -> Hugging Face folder
    python -m tinybert.convert ... --overwrite    # replace a DST that is not empty

DST must be a new or empty folder, not SRC nor inside it (or --overwrite: DST is replaced as a
whole, nothing stale is left beside the new files); it is written to a temporary folder first
and swapped in, so a failure leaves it as it was. Shapes are checked in both directions.

A folder holds ``config.json``, ``model.safetensors`` and the tokenizer files. Weights load
only from safetensors: a PyTorch ``.bin``/``.pt`` checkpoint is a pickle, and unpickling runs
whatever code the file contains, so it is refused with a message saying how to convert it.

The name map below is the whole conversion: every Hugging Face tensor is used exactly once,
every shape is checked, and the Linear weights (stored (out, in) by PyTorch, (in, out) by
tinybert so the forward is ``x @ W``) are the only ones transposed.
"""
import argparse
import dataclasses
import json
import os
import shutil
import sys

import numpy
from safetensors import SafetensorError
from safetensors.numpy import load_file

from . import backend
from .run import files
from .model import BertConfig, BertModel
from .nn import check_names

FORMAT = "tinybert-1"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
IGNORED_SUFFIXES = ("position_ids",)     # buffers, not parameters
IGNORED_PREFIXES = ("cls.",)             # pre-training heads (masked LM, next sentence)


def name_map(config):
    """[(hf_name, tinybert_name, transposed)] for a BertModel with this config."""
    pairs = [
        ("embeddings.word_embeddings.weight", "embeddings.word.weight", False),
        ("embeddings.position_embeddings.weight", "embeddings.position.weight", False),
        ("embeddings.token_type_embeddings.weight", "embeddings.token_type.weight", False),
        ("embeddings.LayerNorm.weight", "embeddings.norm.weight", False),
        ("embeddings.LayerNorm.bias", "embeddings.norm.bias", False),
    ]
    for i in range(config.num_hidden_layers):
        hf, ours = f"encoder.layer.{i}.", f"layers.{i}."
        linears = [("attention.self.query", "attention.query"), ("attention.self.key", "attention.key"),
                   ("attention.self.value", "attention.value"), ("attention.output.dense", "attention.out"),
                   ("intermediate.dense", "ffn_in"), ("output.dense", "ffn_out")]
        norms = [("attention.output.LayerNorm", "attention_norm"), ("output.LayerNorm", "ffn_norm")]
        for hf_part, our_part in linears:
            pairs.append((f"{hf}{hf_part}.weight", f"{ours}{our_part}.weight", True))
            pairs.append((f"{hf}{hf_part}.bias", f"{ours}{our_part}.bias", False))
        for hf_part, our_part in norms:
            pairs.append((f"{hf}{hf_part}.weight", f"{ours}{our_part}.weight", False))
            pairs.append((f"{hf}{hf_part}.bias", f"{ours}{our_part}.bias", False))
    if config.add_pooler:
        pairs += [("pooler.dense.weight", "pooler.weight", True), ("pooler.dense.bias", "pooler.bias", False)]
    return pairs


def _refuse_pickles(folder):
    if os.path.isfile(folder) and folder.endswith(PICKLE_SUFFIXES):
        raise ValueError(f"{folder}: refusing a pickle checkpoint (loading one can run arbitrary code); "
                         "convert it to model.safetensors first, e.g. with transformers' "
                         "save_pretrained(..., safe_serialization=True)")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such weights folder")
    if not os.path.exists(os.path.join(folder, "model.safetensors")):
        pickles = [f for f in sorted(os.listdir(folder)) if f.endswith(PICKLE_SUFFIXES)]
        if pickles:
            raise ValueError(f"{os.path.join(folder, pickles[0])}: refusing a pickle checkpoint (loading one can "
                             "run arbitrary code); only model.safetensors is read. Convert it first, e.g. with "
                             "transformers' save_pretrained(..., safe_serialization=True)")
        raise FileNotFoundError(f"{folder}: no model.safetensors here")


def _load_safetensors(path):
    try:
        return load_file(path)
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from None


def _normalise_hf_names(tensors):
    """Drop a ``bert.`` prefix, buffers and pre-training heads; rename old gamma/beta."""
    out = {}
    for name, array in tensors.items():
        if name.startswith("bert."):
            name = name[len("bert."):]
        if name.endswith(IGNORED_SUFFIXES) or name.startswith(IGNORED_PREFIXES):
            continue
        name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        out[name] = array
    return out


def parameter_shapes(config):
    """{tinybert name: shape} of every parameter of a BertModel with this config (Linear
    weights stored (in, out))."""
    C, I = config.hidden_size, config.intermediate_size
    shapes = {"embeddings.word.weight": (config.vocab_size, C),
              "embeddings.position.weight": (config.max_position_embeddings, C),
              "embeddings.token_type.weight": (config.type_vocab_size, C)}
    linears = {"attention.query": (C, C), "attention.key": (C, C), "attention.value": (C, C),
               "attention.out": (C, C), "ffn_in": (C, I), "ffn_out": (I, C)}
    for _, name, transposed in name_map(config):
        module, kind = name.rsplit(".", 1)
        if name in shapes:
            continue
        part = module.split(".", 2)[-1] if module.startswith("layers.") else module   # "attention.query"
        if part in linears or module == "pooler":
            fan_in, fan_out = linears.get(part, (C, C))
            shapes[name] = (fan_in, fan_out) if kind == "weight" else (fan_out,)
        else:  # a LayerNorm's gain or shift
            shapes[name] = (C,)
    return shapes


def hf_to_tinybert(hf_tensors, config, source):
    """{hf name: array} -> {tinybert name: array}, every key used and every shape checked."""
    hf_tensors = _normalise_hf_names(hf_tensors)
    if "pooler.dense.weight" not in hf_tensors:
        config.add_pooler = False
    pairs = name_map(config)
    check_names([hf for hf, _, _ in pairs], hf_tensors, source, "tensor")
    expected = parameter_shapes(config)
    converted = {}
    for hf_name, our_name, transposed in pairs:
        array = hf_tensors[hf_name]
        array = array.T.copy() if transposed else array
        if tuple(array.shape) != expected[our_name]:
            want = expected[our_name][::-1] if transposed else expected[our_name]
            raise ValueError(f"{source}: tensor {hf_name!r} has shape {tuple(hf_tensors[hf_name].shape)}, "
                             f"the config implies {want}")
        converted[our_name] = array
    return converted


def check_tinybert_tensors(tensors, config, source):
    """Every parameter of a BertModel with this config present, of its shape, and nothing else."""
    expected = parameter_shapes(config)
    check_names(expected, tensors, source, "tensor")
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise ValueError(f"{source}: tensor {name!r} has shape {tuple(tensors[name].shape)}, the config implies {shape}")


def tinybert_to_hf(tensors, config):
    return {hf: (tensors[ours].T.copy() if transposed else tensors[ours]) for hf, ours, transposed in name_map(config)}


def _copy_tokenizer(src, dst):
    for name in TOKENIZER_FILES:
        if os.path.exists(os.path.join(src, name)):
            shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))


def _read_config(folder):
    path = os.path.join(folder, "config.json")
    config = BertConfig.from_json(path)
    with open(path) as f:
        is_tinybert = json.load(f).get("format") == FORMAT
    return config, is_tinybert


def check_destination(src, dst, overwrite):
    """DST may not be SRC, lie inside it or hold it; a DST that is not empty needs ``overwrite``."""
    source, target = os.path.realpath(src), os.path.realpath(dst)
    if target == source or target.startswith(source + os.sep) or source.startswith(target + os.sep):
        raise ValueError(f"{dst}: is the source folder {src} or overlaps it; write somewhere else")
    if os.path.exists(dst) and not os.path.isdir(dst):
        raise ValueError(f"{dst}: is a file, not a folder")
    if os.path.isdir(dst) and os.listdir(dst) and not overwrite:
        raise ValueError(f"{dst}: is not empty ({len(os.listdir(dst))} entries); pass --overwrite to replace "
                         "it as a whole, or pick a new folder")


# ---------------------------------------------------------------- the two directions
def convert_hf_folder(src, dst, overwrite=False):
    """Hugging Face BERT folder -> tinybert folder."""
    _refuse_pickles(src)
    check_destination(src, dst, overwrite)
    config, _ = _read_config(src)
    tensors = hf_to_tinybert(_load_safetensors(os.path.join(src, "model.safetensors")), config,
                             os.path.join(src, "model.safetensors"))

    def write(folder):
        _write_tinybert(tensors, config, folder)
        _copy_tokenizer(src, folder)
    files.atomic_folder(dst, write)


def export_hf_folder(src, dst, overwrite=False, extra_files=None):
    """tinybert folder -> Hugging Face BERT folder (readable by transformers.BertModel);
    ``extra_files(folder)`` may add files before the folder is swapped in."""
    config, is_tinybert = _read_config(src)
    if not is_tinybert:
        raise ValueError(f"{src}: not a tinybert folder (its config.json has no \"format\": \"{FORMAT}\")")
    check_destination(src, dst, overwrite)
    path = os.path.join(src, "model.safetensors")
    tensors = _load_safetensors(path)
    config.add_pooler = "pooler.weight" in tensors
    check_tinybert_tensors(tensors, config, path)
    hf_config = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("dtype", "add_pooler")}
    hf_config.update(architectures=["BertModel"], model_type="bert")

    def write(folder):
        files.write_text(os.path.join(folder, "config.json"), json.dumps(hf_config, indent=2))
        files.save_arrays(os.path.join(folder, "model.safetensors"), tinybert_to_hf(tensors, config), metadata={"format": "pt"})
        _copy_tokenizer(src, folder)
        if extra_files is not None:
            extra_files(folder)
    files.atomic_folder(dst, write)


def _write_tinybert(tensors, config, dst):
    os.makedirs(dst, exist_ok=True)
    values = {"format": FORMAT, "model_type": "bert", **dataclasses.asdict(config)}
    values.pop("dtype")
    files.save_arrays(os.path.join(dst, "model.safetensors"), tensors, metadata={"format": FORMAT})
    files.write_text(os.path.join(dst, "config.json"), json.dumps(values, indent=2))


def save_pretrained(model, folder):
    """Write a BertModel as a tinybert folder (config.json, model.safetensors)."""
    _write_tinybert(model.state_dict(), model.config, folder)


def load_pretrained(folder, dtype=None):
    """A BertModel with the weights of a tinybert folder, or of a Hugging Face folder
    converted in memory on the way; ``dtype`` (e.g. "float64") overrides float32."""
    _refuse_pickles(folder)
    config, is_tinybert = _read_config(folder)
    path = os.path.join(folder, "model.safetensors")
    tensors = _load_safetensors(path)
    if is_tinybert:
        config.add_pooler = "pooler.weight" in tensors
    else:
        tensors = hf_to_tinybert(tensors, config, path)
    if dtype is not None:
        config.dtype = numpy.dtype(dtype).name   # numpy.float32, "float32" or a dtype alike
    model = BertModel(config)
    model.load_state_dict(tensors, source=path)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinybert.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="source folder (config.json + model.safetensors)")
    parser.add_argument("dst", help="destination folder")
    parser.add_argument("--to-hf", action="store_true", help="export a tinybert folder to the Hugging Face layout")
    parser.add_argument("--overwrite", action="store_true", help="replace DST as a whole if it is not empty")
    args = parser.parse_args(argv)
    try:
        (export_hf_folder if args.to_hf else convert_hf_folder)(args.src, args.dst, overwrite=args.overwrite)
    except (OSError, KeyError, ValueError) as error:
        message = error.args[0] if isinstance(error, KeyError) else str(error)
        sys.exit(f"convert: {message}")
    print(f"wrote {args.dst}")


if __name__ == "__main__":
    main()
