"""make bench's program runs end to end on the MiniLM weights at a short length and reports
every key it promises. No timing is asserted: speed lives in the benchmark's output only."""
import json

from tools import bench


def test_quick_bench_reports_every_row(capsys):
    bench.main(["--quick", "--json", "--lengths", "8"])
    result = json.loads(capsys.readouterr().out)
    for key in ("infer_ratio_T8", "train_ratio_T8", "mem_ratio_train_T8", "numpy_matmul_gflops",
                "page_faults_per_step_tinybert_T8", "page_faults_per_step_pytorch_T8",
                "erf_ns_per_value_tinybert", "erf_ns_per_value_scipy", "erf_ns_per_value_pytorch",
                "blas_spin_cpu_s", "infer_ratio_reference_T8", "train_ratio_reference_T8", "cpu", "numpy_blas"):
        assert key in result, key
    assert all(result[key] > 0 for key in ("infer_ratio_T8", "train_ratio_T8", "mem_ratio_train_T8",
                                           "infer_ratio_reference_T8", "train_ratio_reference_T8"))
    assert result["page_faults_per_step_tinybert_T8"] >= 0
    assert 0 <= result["blas_spin_cpu_s"] < 1.0
    assert 0 <= result["blas_spin_cpu_s_fast_path"] < 0.03   # its workers sleep as soon as a product ends
    assert 0 <= result["cpu_steal"] <= 1                          # Linux's /proc/stat, read around the bench


def test_erf_rates_are_per_value_of_each_system():
    rates = bench.erf_nanoseconds(size=1 << 16, repeats=1)
    assert set(rates) == {"tinybert", "scipy", "pytorch"} and all(rate > 0 for rate in rates.values())
