"""tinybert's fast path: every kernel that exists only for speed, in one place.

The reference path (``ops``, ``functional``, ``nn``, ``model``, ``optim``) is whole-array
NumPy/CuPy that reads as its formulas. Each function of it marked ``@seam.has_fast_kernel``
is replaced, while the fast path is on (``TINYBERT_FAST=1``, the default, or
``seam.use_fast_path(True)``), by the kernel of the same name in ``KERNELS`` below, which
computes the same result to float32 rounding (tests/test_paths.py compares every one):

| reference                 | fast kernel                         | what it buys (docs/performance-log.md) |
|---------------------------|-------------------------------------|----------------------------------------|
| ``ops.matmul``            | ``fast.ops.matmul``                 | x @ W as one BLAS call; attention's stacks row-major, split among the cores |
| ``functional.softmax``    | ``fast.functional.softmax``         | in place: one full-size array, not three |
| ``functional.layer_norm`` | ``fast.functional.layer_norm``      | in place, one scratch array in backward |
| ``functional.gelu``       | ``fast.functional.gelu``            | rational float32 erf; backward in cache-sized blocks on every core |
| ``optim.adamw_update``    | ``fast.optim.adamw_update``         | the update in cache-sized blocks on every core |
| ``run.evaluation.in_row_slices`` | ``fast.evaluation.in_row_slices`` | evaluation: each core runs the model on its own rows |

and, when this package is imported (by ``import tinybert`` unless ``TINYBERT_FAST=0``), two process-wide
settings: malloc is told to keep freed memory for reuse (``fast.memory``), and OpenBLAS's worker
threads to sleep as soon as a product ends instead of spinning on the core that tinybert's
elementwise work needs next (``fast.parallel.blas_workers_sleep_when_idle``). The building
blocks: ``fast.parallel`` (blocks of elementwise work shared among one thread per core, the
batch split, OpenBLAS's threads) and ``fast.erf`` (the rational erf).
"""
from .. import seam
from . import evaluation, functional, memory, ops, optim, parallel

KERNELS = {
    "ops.matmul": ops.matmul,
    "functional.softmax": functional.softmax,
    "functional.layer_norm": functional.layer_norm,
    "functional.gelu": functional.gelu,
    "optim.adamw_update": optim.adamw_update,
    "run.evaluation.in_row_slices": evaluation.in_row_slices,
}

seam.provide(KERNELS)
memory.reuse_freed_memory()
parallel.blas_workers_sleep_when_idle()
