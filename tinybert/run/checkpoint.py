"""Training checkpoints: model parameters, AdamW moments, the SMART moving average, the
random generators and the step, in one safetensors file (the JSON state rides in its
metadata, so the whole checkpoint is written by one atomic rename), plus a readable copy of
that state in ``state.json`` beside it."""
import json
import os

from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file

from .. import backend
from . import files

RNG_IN_ARRAYS = "the array rng.state"  # state.json's "rng" when the generator was CuPy's


def _optimizer_names(model, optimizer):
    """The parameter names in the optimiser's own (param group) order."""
    name_of = {id(p): name for name, p in model.named_parameters()}
    return [name_of[id(p)] for p in optimizer.params]


def save(folder, model, optimizer, proximal, state):
    names = _optimizer_names(model, optimizer)
    arrays = {f"model.{name}": p.data for name, p in model.named_parameters()}
    arrays.update({f"adam.{k}": v for k, v in optimizer.state_arrays(names).items()})
    if proximal is not None:
        arrays.update({f"ema.{name}": array for name, array in proximal.average.items()})
    if not isinstance(state["rng"], dict):  # a GPU generator's state: bytes, kept as an array
        arrays["rng.state"] = state["rng"]
        state = {**state, "rng": RNG_IN_ARRAYS}
    text = json.dumps(state)
    files.save_arrays(os.path.join(folder, "checkpoint.safetensors"), arrays, metadata={"state": text})
    files.write_text(os.path.join(folder, "state.json"), json.dumps(state, indent=2))


def load(folder):
    """(arrays by group: {"model": {...}, "adam": {...}, "ema": {...}}, state dict); a GPU
    run's generator state, saved as the array ``rng.state``, is put back as the state's "rng"."""
    path = os.path.join(folder, "checkpoint.safetensors")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no checkpoint to resume from")
    try:
        with safe_open(path, "np") as f:
            state = json.loads(f.metadata()["state"])
        tensors = load_file(path)
    except (SafetensorError, KeyError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a tinybert checkpoint ({error})") from None
    check_state(path, state)
    groups = {"model": {}, "adam": {}, "ema": {}}  # and "rng", the GPU generator's state, if saved
    for key, array in tensors.items():
        group, name = key.split(".", 1)
        groups.setdefault(group, {})[name] = array
    if state.get("rng") == RNG_IN_ARRAYS:
        state["rng"] = groups["rng"]["state"]
    return groups, state


# What a resume reads of the state, and the type each must have.
STATE_KEYS = {"step": int, "settings": dict, "rng": (dict, str), "pcgrad_rng": dict,
              "best_score": (float, int, type(None)), "best_epoch": (float, int, type(None)),
              "best_scores": (dict, type(None))}


def check_state(path, state):
    """A ValueError naming the checkpoint and the key when its state lacks one a resume reads."""
    if not isinstance(state, dict):
        raise ValueError(f"{path}: the checkpoint's state is not a JSON object")
    for key, kind in STATE_KEYS.items():
        if key not in state:
            raise ValueError(f"{path}: the checkpoint's state has no {key!r}")
        if not isinstance(state[key], kind) or isinstance(state[key], bool) or (key == "step" and state[key] < 0):
            raise ValueError(f"{path}: the checkpoint's state has {key!r} = {json.dumps(state[key])[:40]}")


def restore(groups, state, model, optimizer, proximal, source):
    model.load_state_dict(groups["model"], source=source)
    optimizer.load_state_arrays(_optimizer_names(model, optimizer), groups["adam"], state["step"])
    if proximal is not None:
        if not groups["ema"]:
            raise ValueError(f"{source}: the checkpoint has no SMART moving average (it was trained without --smart)")
        for name in proximal.average:
            proximal.average[name][...] = backend.xp.asarray(groups["ema"][name])  # to the GPU, on one
