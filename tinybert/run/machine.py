"""What machine a run or a benchmark ran on: the CPU, its cores, NumPy and the BLAS under it.
A speed figure or a run's minutes mean little without it, so train.py writes ``machine.json``
into every run folder, tools/peer.py into the peer's, and ``make bench`` prints it. On a
virtual machine the same CPU can also run slower when its hypervisor gives the real cores to
other guests (CPU steal): both runs log the share stolen during each step.
"""
import os

import numpy as np

from .. import backend


def describe():
    """The record a run folder keeps as machine.json; on a GPU (``--device cuda``) it names the GPU too."""
    record = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "numpy": np.__version__, "numpy_blas": numpy_blas()}
    if backend.device == "cuda":
        record.update(gpu())
    return record


def gpu():
    """The name of the CUDA GPU that CuPy computes on, and CuPy's version."""
    import cupy
    properties = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    return {"gpu": properties["name"].decode(), "cupy": cupy.__version__}


def cpu_clock(stat_path="/proc/stat"):
    """The CPU time of the whole machine so far, in clock ticks summed over its CPUs, from the
    "cpu" line of /proc/stat (Linux; None elsewhere): ``{"total": ..., "steal": ...}``. Steal is
    time this virtual machine's CPUs were ready to run but the hypervisor ran another guest on
    the real ones: a run's minutes grow with it although tinybert did no more work."""
    try:
        with open(stat_path) as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(value) for value in fields[1:9])
    # guest and guest_nice, after steal, are already counted in user and nice
    return {"total": user + nice + system + idle + iowait + irq + softirq + steal, "steal": steal}


def steal_fraction(before, after):
    """The fraction (0 to 1, to 3 decimals) of the machine's CPU time between two cpu_clock()
    readings that the hypervisor stole; None where either reading is missing or no tick passed."""
    if before is None or after is None or after["total"] <= before["total"]:
        return None
    return round((after["steal"] - before["steal"]) / (after["total"] - before["total"]), 3)


def less_steal(seconds, steal):
    """``seconds`` of wall time less the share ``steal`` of the CPU time (steal_fraction) that the
    hypervisor took in them: seconds * (1 - steal); ``seconds`` unchanged where steal is None.

    An estimate of what the same work takes with the machine's N CPUs to itself. For work that
    keeps every CPU busy it errs long, never short: the work needs W CPU-seconds, W / N of wall
    time unshared; with steal it got at most the N * seconds * (1 - steal) CPU-seconds not stolen,
    so seconds * (1 - steal) >= W / N. It takes off only the time stolen outright: a thread idle
    while it waits for a stolen CPU stays counted, so a run slowed by steal can still lose more
    than this (docs/results/README.md, the fourth run against the peer)."""
    return seconds if steal is None else seconds * (1 - steal)


def cpu_model():
    """The processor's name from /proc/cpuinfo (Linux), else what the platform module knows."""
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        import platform
        return platform.processor() or platform.machine()


def numpy_blas():
    """The BLAS NumPy was built with, as numpy.show_config reports it: name, version and the
    CPU kernels it was configured for (e.g. "scipy-openblas 0.3.27 (DYNAMIC_ARCH ... Haswell)")."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (TypeError, KeyError):   # NumPy < 1.25 prints its configuration only
        return "unknown (NumPy < 1.25)"
    built = f"{blas.get('name')} {blas.get('version')} ({blas.get('openblas configuration', '').strip()})"
    return built + f", kernels chosen at run time: {openblas_core()}"


def openblas_libraries():
    """The OpenBLAS libraries mapped into this process (ctypes handles), NumPy's own before
    SciPy's; [] for another BLAS, or where /proc/self/maps does not exist (not Linux)."""
    import ctypes
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return []
    return [ctypes.CDLL(path) for path in sorted(paths, key=lambda p: "numpy" not in p)]


def openblas_core():
    """The CPU kernels a DYNAMIC_ARCH OpenBLAS picked for this machine (openblas_get_corename:
    "Haswell", "SkylakeX", "Zen"...), from the OpenBLAS library mapped into this process."""
    import ctypes
    for library in openblas_libraries():
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            if hasattr(library, name):
                function = getattr(library, name)
                function.restype = ctypes.c_char_p
                return function().decode()
    return "unknown (not OpenBLAS)"
