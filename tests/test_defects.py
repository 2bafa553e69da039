"""Six defects found while reading the engine (issue 14), each pinned by a test that failed
before its fix: shared gradient arrays, item() of a non-scalar, a NumPy dtype class passed to
from_pretrained, a generator reseeded or advanced by loading weights, PyTorch imported inside
tinybert/, and a model output record named like transformers' feed-forward sub-layer."""
import ast
from pathlib import Path

import numpy as np
import pytest

import tinybert
from tinybert import BertModel, Tensor, backend, convert, model as model_module
from tinybert.convert import load_pretrained

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


def test_inputs_of_add_do_not_share_one_gradient_array():
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    ((a + b) * 2).sum().backward()
    assert not np.shares_memory(a.grad, b.grad)
    a.grad += 1.0                                   # an in-place change to one gradient...
    assert np.array_equal(b.grad, [2.0, 2.0, 2.0])  # ...leaves the other as it was


def test_a_reshaped_input_does_not_share_its_gradient_with_another_leaf():
    a = Tensor(np.ones((2, 3)), requires_grad=True)
    b = Tensor(np.ones(6), requires_grad=True)
    ((a + b.reshape(2, 3)) * 2).sum().backward()    # b.grad is a reshaped view of a's gradient
    assert not np.shares_memory(a.grad, b.grad)


def test_a_leaf_does_not_keep_the_seed_array_it_was_given():
    x = Tensor(np.ones(3), requires_grad=True)
    seed = np.full(3, 2.0)
    x.backward(seed)
    x.grad *= 10.0
    assert np.array_equal(seed, [2.0, 2.0, 2.0])


def test_item_of_a_non_scalar_is_a_clear_error():
    with pytest.raises(ValueError, match=r"item\(\).*one element.*\(2, 3\)"):
        Tensor(np.zeros((2, 3))).item()
    assert Tensor(np.full((1, 1), 4.0)).item() == 4.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float64", np.dtype("float32")])
def test_from_pretrained_takes_a_numpy_dtype_class_or_name(dtype):
    model = load_pretrained(FIXTURES / "tiny_bert_hf", dtype=dtype)
    assert model.embeddings.word.weight.dtype == np.dtype(dtype)
    assert model.config.dtype == np.dtype(dtype).name


def dropout_draws():
    return backend.rng().random(8)


def test_use_device_does_not_reseed_the_generator():
    backend.seed(5)
    expected = dropout_draws()
    backend.seed(5)
    backend.use_device(backend.device)               # the device it is on already
    assert np.array_equal(dropout_draws(), expected)


def test_loading_a_hugging_face_folder_does_not_change_what_the_seed_draws(tmp_path):
    tinybert_folder = tmp_path / "converted"
    convert.convert_hf_folder(str(FIXTURES / "tiny_bert_hf"), str(tinybert_folder))
    draws = {}
    for name, folder in (("tinybert folder", tinybert_folder), ("hugging face folder", FIXTURES / "tiny_bert_hf")):
        backend.seed(11711)
        load_pretrained(folder)
        draws[name] = dropout_draws()
    assert np.array_equal(draws["tinybert folder"], draws["hugging face folder"])


def imported_modules(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "tinybert").rglob("*.py")), ids=lambda p: p.name)
def test_the_library_never_imports_pytorch(path):
    assert not {"torch", "transformers"} & imported_modules(path)


def test_the_ablation_runner_imports_train_without_editing_sys_path():
    source = (ROOT / "tools" / "ablation.py").read_text()
    assert "import train" in source and "sys.path" not in source


def test_the_model_output_record_is_not_named_like_transformers_ffn_layer():
    assert not hasattr(model_module, "BertOutput") and not hasattr(tinybert, "BertOutput")
    model = load_pretrained(FIXTURES / "tiny_bert_hf")
    assert type(model(np.array([[2, 5, 3]]))).__name__ == "EncoderOutput"
