"""Convert BERT weights between the Hugging Face layout and tinybert's.

    python -m tinybert.convert SRC DST            # Hugging Face folder -> tinybert folder
    python -m tinybert.convert --to-hf SRC DST    # tinybert folder -> Hugging Face folder
    python -m tinybert.convert ... --overwrite    # replace a DST that is not empty

DST must be a new or empty folder, not SRC nor inside it (or --overwrite: DST is replaced as a
whole, nothing stale is left beside the new files); it is written to a temporary folder first
and swapped in, so a failure leaves it as it was. Shapes are checked in both directions.

A folder holds ``config.json``, ``model.safetensors`` and the tokenizer files; a source without
tokenizer files is refused (a folder without its tokenizer cannot be trained on nor used), and
the folder written is loaded back (config, weights, tokenizer) before it is swapped in, so DST
is either usable or left as it was. Weights that are not finite (NaN, inf: a damaged file, a
diverged run) are refused naming the tensor. float16 and bfloat16 checkpoints (common on the
Hub) load as float32, said once on stderr; safetensors' NumPy reader has no bfloat16, so such a
file is read from its raw bytes (:func:`_read_raw`). Weights load only from safetensors: a PyTorch ``.bin``/``.pt`` checkpoint is a pickle, and unpickling runs
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
from .tokenizer import Tokenizer

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


# safetensors' dtype names -> NumPy's; BF16 has none (read by hand, below)
SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
                      "I8": "i1", "U8": "u1", "BOOL": "?"}
HALF_PRECISION = {"BF16": "bfloat16", "F16": "float16"}


def _header(path):
    """(the length of the JSON header, the header) of a safetensors file: an 8-byte
    little-endian length, then that many bytes of JSON {name: {dtype, shape, data_offsets}};
    the tensors' bytes follow. None where the file does not start so (load_file says why)."""
    try:
        with open(path, "rb") as f:
            length = int.from_bytes(f.read(8), "little")
            if not 2 <= length <= 100_000_000:
                return None
            header = json.loads(f.read(length))
    except (OSError, ValueError):
        return None
    return (length, header) if isinstance(header, dict) else None


def _read_raw(path, length, header):
    """Every tensor of a safetensors file from its raw bytes: for the bfloat16 that
    safetensors.numpy cannot read. A bfloat16 is the high half of a float32, so shifting its
    16 bits into the high half of a uint32 and viewing that as float32 is exact."""
    with open(path, "rb") as f:
        data = f.read()[8 + length:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: not a readable safetensors file (tensor {name!r}'s header entry is malformed)") from None
        if dtype != "BF16" and dtype not in SAFETENSORS_DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has dtype {dtype}, which tinybert does not read")
        numpy_dtype = numpy.dtype("<u2" if dtype == "BF16" else SAFETENSORS_DTYPES[dtype])
        count = int(numpy.prod(shape, dtype=numpy.int64))
        if not 0 <= begin <= end <= len(data) or end - begin != count * numpy_dtype.itemsize:
            raise ValueError(f"{path}: not a readable safetensors file (tensor {name!r}'s data_offsets "
                             f"{[begin, end]} do not fit its shape {list(shape)} and the file's {len(data)} bytes)")
        array = numpy.frombuffer(data, numpy_dtype, count, begin).reshape(shape)
        if dtype == "BF16":
            array = (array.astype(numpy.uint32) << 16).view(numpy.float32)
        tensors[name] = array if dtype == "BF16" else array.copy()     # writable, not a view of ``data``
    return tensors


def _load_safetensors(path):
    """{name: array} of a safetensors file; float16 and bfloat16 tensors as float32, said once
    on stderr. float32 files are read by safetensors itself, unchanged."""
    found = _header(path)
    dtypes = {entry.get("dtype") for name, entry in found[1].items()
              if name != "__metadata__" and isinstance(entry, dict)} if found else set()
    try:
        tensors = _read_raw(path, *found) if "BF16" in dtypes else load_file(path)
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from None
    halves = [HALF_PRECISION[d] for d in HALF_PRECISION if d in dtypes]
    if halves:
        tensors = {name: array.astype(numpy.float32) if array.dtype == numpy.float16 else array
                   for name, array in tensors.items()}
        print(f"{path}: weights: converted {' and '.join(halves)} to float32", file=sys.stderr)
    return tensors


def check_finite(tensors, source):
    """A ValueError naming the first tensor that holds a NaN or an infinity."""
    for name, array in tensors.items():
        if array.dtype.kind == "f" and not numpy.isfinite(array).all():
            raise ValueError(f"{source}: tensor {name!r} holds values that are not finite (NaN or inf): the file is "
                             "damaged, or the run that wrote it diverged")


def check_tokenizer(folder):
    """The folder's tokenizer loads, else one line naming the folder."""
    try:
        Tokenizer.from_folder(folder)
    except FileNotFoundError:
        raise FileNotFoundError(f"{folder}: no tokenizer.json or vocab.txt here; a model folder without its "
                                "tokenizer cannot be trained on nor used (copy the tokenizer files of the "
                                "model it came from beside config.json)") from None


def check_loads(folder, shown_as):
    """The folder just written loads (config, weights, tokenizer), else a ValueError naming
    ``shown_as``, the place it was about to be swapped in at."""
    try:
        load_pretrained(folder)
        Tokenizer.from_folder(folder)
    except (OSError, KeyError, ValueError) as error:
        message = (error.args[0] if isinstance(error, KeyError) else str(error)).replace(str(folder), str(shown_as))
        raise ValueError(f"{shown_as}: the folder written does not load back, so it was not kept ({message})") from None


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
    """(BertConfig, is a tinybert folder, the sha256 its config.json recorded for model.safetensors or None)."""
    path = os.path.join(folder, "config.json")
    config = BertConfig.from_json(path)
    with open(path, encoding="utf-8") as f:
        values = json.load(f)
    return config, values.get("format") == FORMAT, values.get("model_sha256")


def _check_sha256(folder, recorded):
    """model.safetensors still has the sha256 that config.json recorded when it was written
    (a folder written before the checksum, or a Hugging Face one, records none)."""
    path = os.path.join(folder, "model.safetensors")
    if recorded is not None and files.sha256(path) != recorded:
        raise ValueError(f"{path}: its sha256 does not match the one config.json recorded when it was written: "
                         "the file is damaged or was changed since; restore it or convert (or train) again")


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
    config = _read_config(src)[0]
    path = os.path.join(src, "model.safetensors")
    tensors = hf_to_tinybert(_load_safetensors(path), config, path)
    check_finite(tensors, path)
    check_tokenizer(src)

    def write(folder):
        _write_tinybert(tensors, config, folder)
        _copy_tokenizer(src, folder)
        check_loads(folder, dst)
    files.atomic_folder(dst, write)


def export_hf_folder(src, dst, overwrite=False, extra_files=None):
    """tinybert folder -> Hugging Face BERT folder (readable by transformers.BertModel);
    ``extra_files(folder)`` may add files before the folder is swapped in."""
    config, is_tinybert, recorded = _read_config(src)
    if not is_tinybert:
        raise ValueError(f"{src}: not a tinybert folder (its config.json has no \"format\": \"{FORMAT}\")")
    check_destination(src, dst, overwrite)
    path = os.path.join(src, "model.safetensors")
    tensors = _load_safetensors(path)
    config.add_pooler = "pooler.weight" in tensors
    check_tinybert_tensors(tensors, config, path)
    _check_sha256(src, recorded)          # after: a damaged file the checks above let through
    check_finite(tensors, path)
    check_tokenizer(src)
    hf_config = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("dtype", "add_pooler")}
    hf_config.update(architectures=["BertModel"], model_type="bert")

    def write(folder):
        files.write_text(os.path.join(folder, "config.json"), json.dumps(hf_config, indent=2))
        files.save_arrays(os.path.join(folder, "model.safetensors"), tinybert_to_hf(tensors, config), metadata={"format": "pt"})
        _copy_tokenizer(src, folder)
        if extra_files is not None:
            extra_files(folder)
        check_loads(folder, dst)
    files.atomic_folder(dst, write)


def _write_tinybert(tensors, config, dst):
    os.makedirs(dst, exist_ok=True)
    values = {"format": FORMAT, "model_type": "bert", **dataclasses.asdict(config)}
    values.pop("dtype")
    files.save_arrays(os.path.join(dst, "model.safetensors"), tensors, metadata={"format": FORMAT})
    values["model_sha256"] = files.sha256(os.path.join(dst, "model.safetensors"))   # load_pretrained checks it
    files.write_text(os.path.join(dst, "config.json"), json.dumps(values, indent=2))


def save_pretrained(model, folder):
    """Write a BertModel as a tinybert folder (config.json, model.safetensors)."""
    _write_tinybert(model.state_dict(), model.config, folder)


def load_pretrained(folder, dtype=None):
    """A BertModel with the weights of a tinybert folder, or of a Hugging Face folder
    converted in memory on the way; ``dtype`` (e.g. "float64") overrides float32."""
    _refuse_pickles(folder)
    config, is_tinybert, recorded = _read_config(folder)
    path = os.path.join(folder, "model.safetensors")
    tensors = _load_safetensors(path)
    if is_tinybert:
        config.add_pooler = "pooler.weight" in tensors
    else:
        tensors = hf_to_tinybert(tensors, config, path)
    check_finite(tensors, path)
    if dtype is not None:
        config.dtype = numpy.dtype(dtype).name   # numpy.float32, "float32" or a dtype alike
    model = BertModel(config)
    model.load_state_dict(tensors, source=path)
    _check_sha256(folder, recorded)   # last: a damaged file the checks above let through
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
