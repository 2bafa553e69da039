#!/usr/bin/env bash
# The GPU checks, for a bare CUDA machine: CuPy, PyTorch with CUDA, transformers and pytest
# installed; no network, no virtual environment needed, no pretrained weights (the bench then
# gives both systems the same random weights of MiniLM's shapes). Installs nothing.
#
#   1. the CUDA tests: tests/test_cuda.py (what `make cudacheck` runs) and the bench's own GPU
#      test in tests/test_bench.py (a small bench: memory hooks and launch counting work);
#   2. the bench on the GPU: batch 32 at T=64 and T=128 and batch 256 at T=128, inference and a
#      training step, tinybert against PyTorch on the same GPU, peak GPU memory of each, kernel
#      launches per training step, ratios tinybert / PyTorch.
#
# Output, in $OUT when set, else docs/results/bench_gpu: environment.txt, cudacheck.txt,
# bench.txt (the printed table), bench.md and bench.json. Each step runs under a time limit
# (240 s and 300 s) so that the whole script ends within 10 minutes; the exit status is
# non-zero when a step failed or ran out of time, and the later step runs anyway.
#
#   bash tools/gpu_check.sh      # or: make gpucheck
set -u
cd "$(dirname "$0")/.." || exit 1
if [ -x .venv/bin/python ]; then PY=.venv/bin/python
elif command -v python >/dev/null 2>&1; then PY=python
else PY=python3; fi
DEST=${OUT:-docs/results/bench_gpu}
mkdir -p "$DEST"
status=0
report() {   # report STEP EXIT_STATUS
    [ "$2" -eq 0 ] && return
    status=1
    if [ "$2" -eq 124 ]; then echo "$1: out of time"; else echo "$1: failed (exit status $2)"; fi
}

{
    echo "python: $($PY --version 2>&1) ($PY)"
    $PY - <<'PYTHON' 2>&1
import importlib
for name in ("numpy", "cupy", "torch", "transformers", "pytest"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as error:
        print(name, "unavailable:", type(error).__name__, error)
import torch
print("torch CUDA", torch.version.cuda, "available:", torch.cuda.is_available())
PYTHON
    command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L
    echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} > "$DEST/environment.txt" 2>&1
cat "$DEST/environment.txt"

echo "== CUDA tests: $PY -m pytest -m cuda tests/test_cuda.py tests/test_bench.py"
timeout 240 $PY -m pytest -m cuda tests/test_cuda.py tests/test_bench.py -q -p no:cacheprovider 2>&1 | tee "$DEST/cudacheck.txt"
test_status=${PIPESTATUS[0]}
report "CUDA tests" "$test_status"

echo "== bench: $PY -m tools.bench --device cuda --progress --out $DEST"
timeout 300 $PY -m tools.bench --device cuda --progress --out "$DEST" 2>&1 | tee "$DEST/bench.txt"
bench_status=${PIPESTATUS[0]}
report bench "$bench_status"
exit $status
