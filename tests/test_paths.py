"""The two paths (tinybert/seam.py): every fast kernel agrees with the reference it replaces,
a full MiniLM forward and a training step agree between the paths to float32 rounding, one
setting switches the fast path off, and the reference files stay free of threads, blocks and
allocator calls.

Tolerances: the paths differ only in the order of float operations (a folded matmul sums in
another order, an in-place chain rounds at other points) and, for float32 GELU, in erf (the
rational approximation is within 5e-7 of the exact value, tests/test_erf.py). Norm-wise relative
errors of a few float32 ulps (1.2e-7 each) per op are expected: 2e-6 for one op in float32,
1e-12 in float64; six layers of a BERT accumulate more, hence 2e-5 there.
"""
import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinybert import Tensor, fast, functional as F, no_grad, ops, optim, seam
from tinybert.convert import load_pretrained
from tinybert.fast import parallel
from tinybert.multitask import MultitaskBert, TaskBatch
from tinybert.run import evaluation
from conftest import assert_close, relative_error

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
OP_TOLERANCE = {np.float32: 2e-6, np.float64: 1e-12}
REFERENCE_FILES = ["tensor.py", "ops.py", "functional.py", "nn.py", "model.py", "optim.py", "backend.py", "seam.py",
                   "run/evaluation.py"]


def modules_with_marked_functions():
    """The modules of tinybert/ outside tinybert/fast/ with a function decorated
    ``@seam.has_fast_kernel`` (found in the source with ast, then imported)."""
    modules = []
    for path in sorted((ROOT / "tinybert").rglob("*.py")):
        if "fast" in path.relative_to(ROOT / "tinybert").parts[:-1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and any(
                    isinstance(d, ast.Attribute) and d.attr == "has_fast_kernel" for d in node.decorator_list):
                modules.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
                break
    return modules


def marked_functions():
    """{kernel name: reference function} of every function marked @seam.has_fast_kernel."""
    marked = {}
    for name in modules_with_marked_functions():
        for value in vars(importlib.import_module(name)).values():
            if hasattr(value, "reference"):
                marked[seam.kernel_name(value.reference)] = value.reference
    return marked


def test_every_marked_function_has_a_kernel_and_every_kernel_a_reference():
    assert "tinybert.run.evaluation" in modules_with_marked_functions()
    assert set(marked_functions()) == set(fast.KERNELS)


def on_both_paths(function, arrays, differentiate, seed=0):
    """{fast on: (output, [gradient of each differentiated input])} of ``function`` on fresh
    Tensors of ``arrays``, backpropagating fixed random weights of the output."""
    results = {}
    for fast_on in (False, True):
        with seam.fast_path(fast_on):
            tensors = [Tensor(a.copy(), requires_grad=d, dtype=a.dtype) for a, d in zip(arrays, differentiate)]
            out = function(*tensors)
            weights = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
            out.backward(weights)
            results[fast_on] = out.data, [t.grad for t, d in zip(tensors, differentiate) if d]
    return results


def assert_paths_agree(results, dtype):
    (reference_out, reference_grads), (fast_out, fast_grads) = results[False], results[True]
    assert fast_out.dtype == reference_out.dtype == dtype
    assert relative_error(fast_out, reference_out) < OP_TOLERANCE[dtype], "output"
    for index, (ours, expected) in enumerate(zip(fast_grads, reference_grads, strict=True)):
        assert ours.dtype == dtype
        assert relative_error(ours, expected) < OP_TOLERANCE[dtype], f"gradient of input {index}"


def randn(*shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed + len(shape)).standard_normal(shape).astype(dtype)


DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["x@W", "x@W widening", "W@W", "q@k permuted", "broadcast batch", "only b"])
def test_matmul_kernel_agrees_with_reference(case, dtype):
    B, nh, T, hs, C = 3, 2, 5, 4, 8
    if case == "x@W":                # a linear layer: (B, T, C) @ (C, 3)
        function, arrays, differentiate = ops.matmul, [randn(B, T, C, dtype=dtype), randn(C, 3, dtype=dtype)], [True, True]
    elif case == "x@W widening":     # the FFN's first product: (B, T, C) @ (C, 4C), dL/dW taken transposed
        function, arrays, differentiate = ops.matmul, [randn(B, T, 3, dtype=dtype), randn(3, C, dtype=dtype)], [True, True]
    elif case == "W@W":
        function, arrays, differentiate = ops.matmul, [randn(6, C, dtype=dtype), randn(C, 3, dtype=dtype)], [True, True]
    elif case == "q@k permuted":     # attention: both operands permuted views, as SelfAttention makes them
        def function(q, k):
            return ops.matmul(q.reshape(B, T, nh, hs).permute(0, 2, 1, 3), k.reshape(B, T, nh, hs).permute(0, 2, 3, 1))
        arrays, differentiate = [randn(B, T, C, dtype=dtype, seed=1), randn(B, T, C, dtype=dtype, seed=2)], [True, True]
    elif case == "broadcast batch":  # (B, 1, n, k) @ (nh, k, m)
        function, arrays, differentiate = ops.matmul, [randn(B, 1, T, hs, dtype=dtype), randn(nh, hs, 3, dtype=dtype)], [True, True]
    else:                            # only the weight needs a gradient
        function, arrays, differentiate = ops.matmul, [randn(B, T, C, dtype=dtype), randn(C, 3, dtype=dtype)], [False, True]
    assert_paths_agree(on_both_paths(function, arrays, differentiate), dtype)


# (B, heads, T): small, and large enough for several of the fast kernels' blocks per core
SOFTMAX_SHAPES = [(2, 3, 6), (4 * parallel.cores() + 1, 4, 130)]
LAYER_NORM_SHAPES = [(3, 5, 8), (2, 4 * parallel.cores() * 100 + 7, 384)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("B,heads,T", SOFTMAX_SHAPES)
def test_softmax_kernel_agrees_with_reference(B, heads, T, masked, dtype):
    mask = np.where(randn(B, 1, 1, T, seed=3) > 0.5, np.finfo(dtype).min, 0).astype(dtype) if masked else None
    results = on_both_paths(lambda x: F.softmax(x, mask), [randn(B, heads, T, T, dtype=dtype) * 4], [True])
    assert_paths_agree(results, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", LAYER_NORM_SHAPES)
def test_layer_norm_kernel_agrees_with_reference(shape, dtype):
    C = shape[-1]
    arrays = [randn(*shape, dtype=dtype) * 3 + 1, randn(C, dtype=dtype, seed=4), randn(C, dtype=dtype, seed=5)]
    assert_paths_agree(on_both_paths(F.layer_norm, arrays, [True, True, True]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_kernel_agrees_with_reference(dtype):
    arrays = [randn(4, 3, 2 * parallel.cores() * 70_000 // 12, dtype=dtype) * 3]   # several blocks per core
    assert_paths_agree(on_both_paths(F.gelu, arrays, [True]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adamw_kernel_agrees_with_reference_over_steps(dtype):
    size = 3 * (1 << 16) + 5                     # several of the fast kernel's blocks, a ragged end
    states = {}
    for fast_on in (False, True):
        rng = np.random.default_rng(0)
        p, m, v = rng.standard_normal(size).astype(dtype), np.zeros(size, dtype), np.zeros(size, dtype)
        with seam.fast_path(fast_on):
            for t in range(1, 6):
                g = rng.standard_normal(size).astype(dtype)
                optim.adamw_update(p, g, m, v, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6, t=t)
        states[fast_on] = p, m, v
    for name, ours, expected in zip("pmv", states[True], states[False]):
        assert ours.dtype == dtype
        assert relative_error(ours, expected) < OP_TOLERANCE[dtype], name


def padded_rows(rows=7, length=11, vocab=99, seed=0):
    """``rows`` sentences of different lengths for the tiny fixture BERT, padded to ``length``."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, length + 1, size=rows)
    mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int64)
    return {"input_ids": np.where(mask == 1, rng.integers(5, vocab, size=(rows, length)), 0),
            "attention_mask": mask, "token_type_ids": (np.arange(length)[None] >= lengths[:, None] // 2) * mask}


def in_row_slices_on_both_paths(forward, rows, monkeypatch):
    """{fast on: run.evaluation.in_row_slices(forward, rows)} without a graph, the fast path's
    split over three cores; also the slices the fast path ran ``forward`` on."""
    results, slices = {}, []
    with no_grad(), seam.fast_path(False):
        results[False] = evaluation.in_row_slices(forward, rows)
    monkeypatch.setattr(parallel, "cores", lambda: 3)

    def recording(rows_slice):
        slices.append((rows_slice.start, rows_slice.stop))
        return forward(rows_slice)
    with no_grad(), seam.fast_path(True):
        results[True] = evaluation.in_row_slices(recording, rows)
    return results, sorted(slices)


def test_evaluation_split_across_cores_equals_the_whole_batch(monkeypatch):
    """With no graph to record, each core runs the model on its own rows (the fast kernel of
    run.evaluation.in_row_slices, over fast.parallel.over_batch): every layer's output must be
    the whole batch's."""
    batch = padded_rows()
    model = load_pretrained(FIXTURES / "tiny_bert_hf", dtype="float64").eval()

    def hidden_states(rows):    # (rows, layers + 1, T, C), then the pooler's output flattened beside it
        out = model(batch["input_ids"][rows], attention_mask=batch["attention_mask"][rows],
                    token_type_ids=batch["token_type_ids"][rows], output_hidden_states=True)
        stacked = np.stack([h.numpy() for h in out.hidden_states], axis=1)
        return np.concatenate([stacked.reshape(len(stacked), -1), out.pooler_output.numpy()], axis=1)
    results, slices = in_row_slices_on_both_paths(hidden_states, len(batch["input_ids"]), monkeypatch)
    assert slices[0][0] == 0 and slices[-1][1] == len(batch["input_ids"])          # every row, once, in order
    assert all(stop == start for (_, stop), (start, _) in zip(slices, slices[1:]))
    if parallel._openblas() is not None:
        assert len(slices) > 1, "the fast path did not split the rows"
    assert_close("hidden states and pooler output", results[True], results[False], atol=1e-12)


@pytest.mark.parametrize("task,cos", [("sst", False), ("para", False), ("sts", True)])
def test_heads_split_across_cores_equal_the_whole_batch(task, cos, monkeypatch):
    """What evaluation runs: the task head on TaskBatch.rows of a batch, in eval mode."""
    from tinybert import backend
    backend.seed(0)
    model = MultitaskBert(load_pretrained(FIXTURES / "tiny_bert_hf", dtype="float64"), cos=cos).eval()
    segments = [padded_rows(seed=1)] + ([padded_rows(seed=2)] if cos else [])
    batch = TaskBatch(task, [f"id{i}" for i in range(7)], segments)
    results, _ = in_row_slices_on_both_paths(lambda rows: model(batch.rows(rows)).numpy(), 7, monkeypatch)
    assert results[True].shape == ((7, 5) if task == "sst" else (7,))
    assert_close(f"{task} head output", results[True], results[False], atol=1e-12)


def minilm_batch(rows=4, length=16, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, 30522, size=(rows, length))
    lengths = rng.integers(length // 2, length + 1, size=rows)
    mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int64)
    return np.where(mask == 1, ids, 0), mask, (np.arange(length)[None] >= lengths[:, None] // 2) * mask


def test_minilm_forward_agrees_between_the_paths(minilm_folder):
    model = load_pretrained(minilm_folder).eval()
    ids, mask, types = minilm_batch()
    outputs = {}
    for fast_on in (False, True):
        with no_grad(), seam.fast_path(fast_on):
            outputs[fast_on] = model(ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
    for i, (ours, expected) in enumerate(zip(outputs[True].hidden_states, outputs[False].hidden_states, strict=True)):
        assert relative_error(ours.data, expected.data) < 2e-5, f"hidden_states[{i}]"
    assert relative_error(outputs[True].pooler_output.data, outputs[False].pooler_output.data) < 2e-5


def test_a_training_step_agrees_between_the_paths(minilm_folder):
    """Dropout on (the same seed draws the same masks on both paths), a loss on the pooled
    output, backward, clipping and an AdamW step: loss, every gradient and every updated
    parameter agree."""
    from tinybert import backend
    ids, mask, types = minilm_batch(seed=1)
    labels = np.array([0, 2, 1, 1])
    runs = {}
    for fast_on in (False, True):
        backend.seed(7)
        model = load_pretrained(minilm_folder).train()
        head = Tensor(np.random.default_rng(1).standard_normal((384, 3)).astype(np.float32) * 0.02, requires_grad=True)
        parameters = model.parameters() + [head]
        optimizer = optim.AdamW(parameters, lr=1e-3)
        with seam.fast_path(fast_on):
            loss = F.cross_entropy(ops.matmul(model(ids, attention_mask=mask, token_type_ids=types).pooler_output, head), labels)
            loss.backward()
            gradients = [p.grad.copy() for p in parameters]
            optim.clip_grad_norm(parameters, 1.0)
            optimizer.step()
        runs[fast_on] = loss.item(), gradients, [p.data for p in parameters]
    (reference_loss, reference_grads, reference_params), (loss, grads, params) = runs[False], runs[True]
    assert abs(loss - reference_loss) <= 2e-6 * abs(reference_loss)
    largest = max(np.abs(g).max() for g in reference_grads)
    for index, (ours, expected) in enumerate(zip(grads, reference_grads, strict=True)):
        # the key bias's gradient is zero in exact arithmetic: both sides hold rounding noise
        scale = max(np.abs(expected).max(), 1e-3 * largest)
        assert np.abs(ours - expected).max() <= 1e-4 * scale, f"gradient {index}"
    lr = optimizer.lr
    for index, (ours, expected, gradient) in enumerate(zip(params, reference_params, reference_grads, strict=True)):
        # an AdamW step moves an entry by about lr * g / (|g| + eps): where g is rounding noise
        # (the key biases, zero in exact arithmetic) the two paths' steps differ by up to 2 lr;
        # elsewhere by float32 rounding, except for the rare entry whose g is near 0
        difference = np.abs(ours - expected)
        assert difference.max() <= 2.001 * lr, f"parameter {index}"
        if np.abs(gradient).max() > 1e-6 * largest:
            assert np.mean(difference > 1e-2 * lr) < 1e-4, f"parameter {index}: entries moved differently"


# ---------------------------------------------------------------- the switch
def python(code, fast):
    environment = {**os.environ, "TINYBERT_FAST": fast, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                          check=True, cwd=ROOT).stdout.split()


def test_importing_tinybert_starts_no_thread():
    # tinybert.fast is imported with tinybert (unless TINYBERT_FAST=0), but its threads start
    # only when a kernel first runs
    code = "import sys, threading, tinybert; print('tinybert.fast' in sys.modules, threading.active_count())"
    assert python(code, "1") == ["True", "1"]
    assert python(code, "0") == ["False", "1"]


def test_the_fast_path_cannot_be_switched_on_before_its_kernels_are_imported():
    code = ("import tinybert; from tinybert import seam\n"
            "try:\n    seam.use_fast_path(True)\nexcept RuntimeError as error:\n    print('refused', seam.fast_path_on())\n"
            "import tinybert.fast; seam.use_fast_path(True); print(seam.fast_path_on())")
    assert python(code, "0") == ["refused", "False", "True"]


def test_tinybert_fast_0_keeps_the_fast_path_out_of_a_training_step():
    code = ("import sys, numpy, tinybert; from tinybert import Tensor, functional as F; "
            "x = Tensor(numpy.ones((2, 3, 4)), requires_grad=True); "
            "F.gelu(F.layer_norm(x @ Tensor(numpy.ones((4, 4))), Tensor(numpy.ones(4)), Tensor(numpy.zeros(4)))).sum().backward(); "
            "print(tinybert.seam.fast_path_on(), 'tinybert.fast' in sys.modules)")
    assert python(code, "0") == ["False", "False"]
    assert python(code, "1") == ["True", "True"]


# ---------------------------------------------------------------- the reference files stay plain
FORBIDDEN = ("thread", "ThreadPool", "concurrent", "ctypes", "mallopt", "block", "over_batch", "parallel", "erf_",
             "ascontiguousarray")


def identifiers(path):
    """Every name the code of ``path`` uses: variables, attributes, imported modules (not its
    comments or docstrings)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update([node.module or ""] + [alias.name for alias in node.names])
    return names


def imports_fast(path):
    """Whether ``path`` imports tinybert.fast or a module of it, at module level or inside a
    function (``import tinybert.fast``, ``from tinybert import fast``, ``from . import fast``,
    ``from .fast import x``, ``from .. import fast``...)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            if any(alias.name == "tinybert.fast" or alias.name.startswith("tinybert.fast.") for alias in node.names):
                return True
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0:
                if module == "tinybert.fast" or module.startswith("tinybert.fast."):
                    return True
                if module == "tinybert" and any(alias.name == "fast" for alias in node.names):
                    return True
            elif module == "fast" or module.startswith("fast.") or (
                    module in ("", "tinybert") and any(alias.name == "fast" for alias in node.names)):
                return True
    return False


@pytest.mark.parametrize("name", REFERENCE_FILES)
def test_reference_files_hold_no_thread_block_or_allocator_code(name):
    used = identifiers(ROOT / "tinybert" / name)
    offending = sorted(n for n in used for word in FORBIDDEN if word.lower() in n.lower())
    assert not offending, f"tinybert/{name} uses {offending}: speed code belongs in tinybert/fast/"


@pytest.mark.parametrize("name", REFERENCE_FILES)
def test_no_reference_file_imports_the_fast_path(name):
    # seam.py included: tinybert.fast hands its kernels to the seam (seam.provide), never the
    # other way round
    assert not imports_fast(ROOT / "tinybert" / name), f"tinybert/{name} imports tinybert.fast"


def test_the_fast_import_check_sees_every_spelling(tmp_path):
    for code in ("import tinybert.fast", "from tinybert import fast", "from . import fast", "from .fast import ops",
                 "from .. import fast", "def f():\n    from . import fast", "import tinybert.fast.parallel"):
        (tmp_path / "probe.py").write_text(code + "\n")
        assert imports_fast(tmp_path / "probe.py"), code
    (tmp_path / "probe.py").write_text("from . import seam\nfast = seam.fast_path_on()\n")
    assert not imports_fast(tmp_path / "probe.py")
