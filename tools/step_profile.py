"""Where the time of one training step goes, tinybert (fast path) against PyTorch, by kind of op.

    python -m tools.step_profile              # 32x64 and 32x128, median of 3 steps each
    python -m tools.step_profile --lengths 64 --steps 5

The step is ``make bench``'s (tools/bench.py): all-MiniLM-L6-v2, batch 32, a 3-class head on the
pooled output, backward, AdamW. Each phase (forward, backward, optimizer) is timed by the wall
clock. Inside forward + backward the time is split by op:
  - tinybert: ``Tensor.from_op`` is wrapped, so an op's forward is the time since the previous
    op was recorded (its own computation comes just before) and its backward is the time of its
    closure; what the backward loop spends outside the closures (summing gradients) is
    ``engine``;
  - PyTorch: torch.profiler's self CPU time of the aten ops (mm, addmm and bmm are ``matmul``).
The last line says how long tinybert's matrix products alone take against PyTorch's whole step:
when that share is near 1, no work on the elementwise ops can bring the step to PyTorch's time.
"""
import argparse
import collections
import contextlib
import json
import os
import statistics
import time

from tools import bench

# PyTorch's aten ops per category; everything else is "other"
TORCH_CATEGORIES = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm"),
    "dropout": ("aten::bernoulli_", "aten::native_dropout", "aten::native_dropout_backward"),
    "gelu": ("aten::gelu", "aten::gelu_backward"),
    "layer_norm": ("aten::native_layer_norm", "aten::native_layer_norm_backward"),
    "softmax": ("aten::_softmax", "aten::_softmax_backward_data"),
    "add": ("aten::add", "aten::add_"),
}
CATEGORIES = tuple(TORCH_CATEGORIES)


def tinybert_step(system, inputs):
    """One training step of a tools.bench.TinyBert, split by phase and by op (seconds)."""
    from tinybert.tensor import Tensor
    ids, mask, types, labels = inputs
    by_op = collections.Counter()
    clock = {"last": 0.0}
    record = Tensor.from_op

    def timed_from_op(data, parents, backward, op):
        by_op[op] += time.perf_counter() - clock["last"]

        def timed_backward(grad):
            start = time.perf_counter()
            grads = backward(grad)
            by_op[op] += time.perf_counter() - start
            return grads
        out = record(data, parents, timed_backward, op)
        clock["last"] = time.perf_counter()
        return out
    Tensor.from_op = staticmethod(timed_from_op)
    try:
        system.model.train()
        with system.seam.fast_path(True):
            start = clock["last"] = time.perf_counter()
            out = system.model(ids, attention_mask=mask, token_type_ids=types)
            loss = system.F.cross_entropy(system.head(out.pooler_output), labels)
            forward_end = time.perf_counter()
            in_closures_before = sum(by_op.values())
            loss.backward()
            backward_end = time.perf_counter()
            system.optimizer.step()
            step_end = time.perf_counter()
        system.optimizer.zero_grad()
    finally:
        Tensor.from_op = staticmethod(record)
    phases = {"forward": forward_end - start, "backward": backward_end - forward_end,
              "optimizer": step_end - backward_end}
    by_op["engine"] = phases["backward"] - (sum(by_op.values()) - in_closures_before)
    return phases, by_op


def torch_step(system, inputs, profile):
    """One training step of a tools.bench.TorchBert, split by phase and (``profile``) by aten op."""
    import torch
    ids, mask, types, labels = system._tensors(*inputs)
    system.model.train()
    by_op = collections.Counter()
    profiler = (torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if profile
                else contextlib.nullcontext())
    with profiler:
        start = time.perf_counter()
        out = system.model(input_ids=ids, attention_mask=mask, token_type_ids=types)
        loss = torch.nn.functional.cross_entropy(system.head(out.pooler_output), labels)
        forward_end = time.perf_counter()
        loss.backward()
        backward_end = time.perf_counter()
    if profile:
        for event in profiler.key_averages():
            by_op[event.key] += event.self_cpu_time_total / 1e6
    optimizer_start = time.perf_counter()
    system.optimizer.step()
    system.optimizer.zero_grad(set_to_none=True)
    step_end = time.perf_counter()
    phases = {"forward": forward_end - start, "backward": backward_end - forward_end,
              "optimizer": step_end - optimizer_start}
    return phases, by_op


def categorised(by_op, torch_names):
    """{category: seconds} with "other" = what no category took."""
    if torch_names:
        out = {c: sum(by_op[name] for name in names) for c, names in TORCH_CATEGORIES.items()}
        out["engine"] = 0.0
    else:
        out = {c: by_op[c] for c in CATEGORIES}
        out["engine"] = by_op["engine"]
    out["other"] = sum(by_op.values()) - sum(out.values())
    return out


def medians(records):
    """Median of each key over a list of dicts."""
    return {key: statistics.median(r.get(key, 0.0) for r in records) for key in records[0]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=bench.WEIGHTS)
    parser.add_argument("--lengths", type=int, nargs="+", default=list(bench.LENGTHS))
    parser.add_argument("--steps", type=int, default=3, help="measured steps per system (median reported)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = parser.parse_args(argv)
    config = json.load(open(os.path.join(args.weights, "config.json")))
    weights = bench.resolve_weights(args.weights)
    tiny, torch_bert = bench.TinyBert(weights), bench.TorchBert(weights)
    import tinybert.fast  # noqa: F401  (sets OPENBLAS_THREAD_TIMEOUT unless the user did)
    result = {"cpu": bench.cpu_model(), "numpy_blas": bench.numpy_blas(), "cores": os.cpu_count(),
              "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT")}
    for T in args.lengths:
        inputs = bench.make_inputs(T, config["vocab_size"])
        for _ in range(2):   # warm-up
            tinybert_step(tiny, inputs)
            torch_step(torch_bert, inputs, profile=False)
        rows = {"tinybert": [], "pytorch": []}
        for _ in range(args.steps):   # the two systems take turns, so a drift of the machine hits both
            phases, by_op = tinybert_step(tiny, inputs)
            rows["tinybert"].append({**phases, **categorised(by_op, torch_names=False)})
            phases, _ = torch_step(torch_bert, inputs, profile=False)     # phases unprofiled...
            _, by_op = torch_step(torch_bert, inputs, profile=True)       # ...ops from a profiled step
            rows["pytorch"].append({**phases, **categorised(by_op, torch_names=True)})
        for name, records in rows.items():
            m = medians(records)
            m["step"] = m["forward"] + m["backward"] + m["optimizer"]
            result[f"{name}_T{T}"] = {key: round(value * 1e3, 1) for key, value in m.items()}
        tiny_ms, torch_ms = result[f"tinybert_T{T}"], result[f"pytorch_T{T}"]
        result[f"tinybert_matmul_share_of_pytorch_step_T{T}"] = round(tiny_ms["matmul"] / torch_ms["step"], 3)
    if args.json:
        print(json.dumps(result))
        return
    print(f"CPU: {result['cpu']}; NumPy's BLAS: {result['numpy_blas']}; {result['cores']} cores; "
          f"OPENBLAS_THREAD_TIMEOUT={result['openblas_thread_timeout']}")
    for T in args.lengths:
        tiny_ms, torch_ms = result[f"tinybert_T{T}"], result[f"pytorch_T{T}"]
        print(f"\none 32x{T} training step, ms (median of {args.steps}); ops are forward + backward")
        print(f"{'':22}{'tinybert':>10}{'pytorch':>10}")
        for key in ("forward", "backward", "optimizer", "step"):
            print(f"{key:22}{tiny_ms[key]:10.1f}{torch_ms[key]:10.1f}")
        print("by op:")
        for key in CATEGORIES + ("engine", "other"):
            print(f"  {key:20}{tiny_ms[key]:10.1f}{torch_ms[key]:10.1f}")
        share = result[f"tinybert_matmul_share_of_pytorch_step_T{T}"]
        print(f"tinybert's matrix products alone: {tiny_ms['matmul']:.0f} ms, {share:.0%} of PyTorch's whole step "
              f"({torch_ms['step']:.0f} ms); PyTorch's: {torch_ms['matmul']:.0f} ms (profiled)")


if __name__ == "__main__":
    main()
