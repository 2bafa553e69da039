"""make bench's program runs end to end on the MiniLM weights at a short length and reports
every key it promises. No timing is asserted: speed lives in the benchmark's output only."""
import json

import pytest

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
    assert result["blas_spin_cpu_s"] >= 0 and result["blas_spin_cpu_s_fast_path"] >= 0
    assert 0 <= result["cpu_steal"] <= 1                          # Linux's /proc/stat, read around the bench


def test_erf_rates_are_per_value_of_each_system():
    rates = bench.erf_nanoseconds(size=1 << 16, repeats=1)
    assert set(rates) == {"tinybert", "scipy", "pytorch"} and all(rate > 0 for rate in rates.values())


# ---------------------------------------------------------------- random weights (a bare GPU machine)
TINY_SHAPES = {"vocab_size": 200, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
               "intermediate_size": 64, "max_position_embeddings": 64, "type_vocab_size": 2}


def tiny_config(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(TINY_SHAPES))
    return str(path)


def test_random_weight_mode_runs_both_systems_on_the_same_weights(tmp_path, capsys):
    out = tmp_path / "out"
    bench.main(["--random_weights", "--config", tiny_config(tmp_path), "--batch", "4", "--lengths", "8",
                "--repeats", "1", "--warmup", "0", "--json", "--out", str(out)])
    result = json.loads(capsys.readouterr().out)
    assert result["random_weights"] and result["weights"].startswith("random weights of ")
    assert "speed does not depend on values" in result["weights"]
    assert result["rows"] == ["4x8"]                       # no GPU row on the CPU
    for key in ("infer_ratio_B4_T8", "train_ratio_B4_T8", "infer_ratio_reference_B4_T8",
                "train_ratio_reference_B4_T8", "mem_ratio_train_B4_T8"):
        assert result[key] > 0, key
    # the same random values reached both: their outputs agree to float32 rounding (each model's
    # own random initialisation would differ by the size of the outputs themselves)
    assert result["outputs_max_abs_B4_T8"] > 0.1
    assert result["outputs_max_abs_diff_B4_T8"] < 1e-5 * result["outputs_max_abs_B4_T8"]
    assert result["outputs_max_abs_diff_reference_B4_T8"] < 1e-5 * result["outputs_max_abs_B4_T8"]
    assert json.loads((out / "bench.json").read_text()) == result
    table = (out / "bench.md").read_text()
    assert "| train 4x8 | tinybert |" in table and "| mem 4x8 | pytorch |" in table


def test_random_weights_stand_in_where_the_pretrained_ones_are_missing(monkeypatch):
    weights = bench.resolve_weights("no/such/folder")
    assert weights.random and weights.config == bench.MINILM_SHAPES and "no pretrained weights" in weights.why
    assert weights.describe().startswith("random weights of MiniLM's shapes: speed does not depend on values")
    # the converted folder without PyTorch's copy of the weights: random, of the folder's shapes
    monkeypatch.setattr(bench, "PRETRAINED_PACKAGE", "no_such_package_here")
    weights = bench.resolve_weights(bench.WEIGHTS)
    assert weights.random and weights.shapes_of == "MiniLM" and "no_such_package_here" in weights.why


def test_random_tensors_fill_every_parameter_of_both_models():
    import torch
    config = dict(TINY_SHAPES)
    tinybert_model = bench.TinyBert(bench.Weights(config=config, random=True)).model
    torch_model = bench.TorchBert(bench.Weights(config=config, random=True)).model
    tensors = bench.random_tensors(config)
    assert {name for name, _ in tinybert_model.named_parameters()} == set(tensors)
    assert tinybert_model.embeddings.word.weight.data.tobytes() == tensors["embeddings.word.weight"].tobytes()
    assert torch.equal(torch_model.encoder.layer[1].intermediate.dense.weight,
                       torch.from_numpy(tensors["layers.1.ffn_in.weight"].T.copy()))


def test_cuda_without_a_usable_gpu_is_one_line(capsys):
    if bench.cuda_unavailable_reason() is None:
        pytest.skip("CuPy can use a GPU here")
    with pytest.raises(SystemExit) as stop:
        bench.main(["--device", "cuda"])
    message = str(stop.value.code)
    assert message.startswith("bench --device cuda: CuPy cannot use a GPU here") and "\n" not in message


@pytest.mark.cuda
def test_gpu_bench_reports_every_row_memory_and_launches(tmp_path, capsys):
    """On a GPU (make cudacheck's machine): a small bench, GPU row included, in random weights."""
    from tinybert import backend
    try:
        bench.main(["--device", "cuda", "--random_weights", "--config", tiny_config(tmp_path), "--batch", "4",
                    "--lengths", "8", "--gpu-row", "16x8", "--repeats", "1", "--warmup", "1", "--json"])
    finally:
        backend.use_device("cpu")
    result = json.loads(capsys.readouterr().out)
    assert result["rows"] == ["4x8", "16x8"] and result["gpu"] and result["torch_device"] == "cuda"
    for key in ("B4_T8", "B16_T8"):
        for name in ("infer_ratio", "train_ratio", "mem_ratio_train", "mem_held_ratio_train", "launches_ratio_train"):
            assert result[f"{name}_{key}"] > 0, (name, key)
        assert result[f"outputs_max_abs_diff_{key}"] < 1e-4 * result[f"outputs_max_abs_{key}"]
    assert "launches_error" not in result and result["launches_calibration_cupy_torch"] == [10, 10]
