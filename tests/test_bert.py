"""BERT layer by layer against transformers.BertModel (eager attention, eval mode): hidden
states to 1e-4 absolute in float32, every parameter gradient to 1e-3 relative in float32
(1e-9 in float64). Committed fixtures (tests/fixtures/make_fixtures.py) make the same checks
without PyTorch; the live tests run the reference itself (docs/04-bert.md)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

import tinybert
from tinybert import BertConfig, BertModel, backend, convert, model as model_module, no_grad, ops
from tinybert.convert import load_pretrained, save_pretrained
from conftest import assert_close

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE_VERSION = "1"
HIDDEN_ATOL = 1e-4           # float32 activations of order 1, six layers of accumulated rounding
GRADIENT_RTOL = {"float32": 1e-3, "float64": 1e-9}


def gradient_errors(model, reference_gradients):
    """{hf name: relative error} of every parameter gradient. A tensor's error is measured
    against the largest gradient entry of the whole model where the tensor's own is tiny:
    the key bias has a gradient that is zero in exact arithmetic (softmax ignores a constant
    added to a row of scores), so both sides hold only rounding noise there."""
    ours = convert.tinybert_to_hf({name: p.grad for name, p in model.named_parameters()}, model.config)
    largest = max(np.abs(g).max() for g in reference_gradients.values())
    errors = {}
    for name, reference in reference_gradients.items():
        scale = max(np.abs(reference).max(), 1e-3 * largest)
        errors[name] = float(np.abs(ours[name] - reference).max() / scale)
    return errors


def tinybert_loss(model, input_ids, attention_mask, token_type_ids, hidden_weights, pooler_weights):
    out = model(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, output_hidden_states=True)
    loss = ops.sum(ops.mul(out.last_hidden_state, hidden_weights)) + ops.sum(ops.mul(out.pooler_output, pooler_weights))
    return out, loss


def test_fixtures_are_current():
    with safe_open(FIXTURES / "tiny_bert_reference.safetensors", "np") as f:
        version = f.metadata()["version"]
    assert version == FIXTURE_VERSION, "stale fixtures: run `make fixtures` (tests/fixtures/make_fixtures.py)"


def test_tiny_bert_matches_committed_reference():
    reference = load_file(FIXTURES / "tiny_bert_reference.safetensors")
    model = load_pretrained(FIXTURES / "tiny_bert_hf").eval()
    out, loss = tinybert_loss(model, reference["input_ids"], reference["attention_mask"], reference["token_type_ids"],
                              reference["hidden_weights"], reference["pooler_weights"])
    for i, hidden in enumerate(out.hidden_states):
        assert_close(f"hidden_states[{i}]", hidden.data, reference[f"hidden_states.{i}"], atol=HIDDEN_ATOL)
    assert_close("pooler_output", out.pooler_output.data, reference["pooler_output"], atol=HIDDEN_ATOL)
    loss.backward()
    gradients = {k[len("grad."):]: v for k, v in reference.items() if k.startswith("grad.")}
    errors = gradient_errors(model, gradients)
    assert len(errors) == len(model.parameters())
    worst = max(errors, key=errors.get)
    assert errors[worst] <= GRADIENT_RTOL["float32"], f"gradient of {worst}: relative error {errors[worst]:.2e}"


# ---------------------------------------------------------------- live against transformers
torch = pytest.importorskip("torch", reason="the live reference needs PyTorch (make setup installs it)")
transformers = pytest.importorskip("transformers")
from fixtures.make_fixtures import CONFIG, reference_inputs, run_reference  # noqa: E402


def padded_pairs(vocab_size, seed=0):
    """Four sentence pairs of different lengths, padded to 13 tokens."""
    rng = np.random.default_rng(seed)
    lengths = [13, 9, 6, 11]
    input_ids = np.zeros((4, 13), np.int64)
    token_type_ids = np.zeros((4, 13), np.int64)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = rng.integers(5, vocab_size, length)
        token_type_ids[row, length // 2:length] = 1
    attention_mask = (np.arange(13) < np.array(lengths)[:, None]).astype(np.int64)
    return input_ids, attention_mask, token_type_ids


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_random_config_matches_transformers(dtype, tmp_path):
    torch.manual_seed(1)
    reference_model = transformers.BertModel(transformers.BertConfig(**CONFIG, attn_implementation="eager"))
    reference_model.save_pretrained(tmp_path / "hf", safe_serialization=True)
    inputs = padded_pairs(CONFIG["vocab_size"])
    hidden, pooled, gradients, hidden_weights, pooler_weights = run_reference(
        reference_model, getattr(torch, dtype), *inputs)
    model = load_pretrained(tmp_path / "hf", dtype=dtype).eval()
    out, loss = tinybert_loss(model, *inputs, hidden_weights.astype(dtype), pooler_weights.astype(dtype))
    atol = HIDDEN_ATOL if dtype == "float32" else 1e-10
    for i, h in enumerate(out.hidden_states):
        assert h.dtype == np.dtype(dtype)
        assert_close(f"hidden_states[{i}] ({dtype})", h.data, hidden[i], atol=atol)
    loss.backward()
    errors = gradient_errors(model, gradients)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= GRADIENT_RTOL[dtype], f"gradient of {worst}: relative error {errors[worst]:.2e}"


@pytest.fixture(scope="module")
def minilm_pair(minilm_source, minilm_folder):
    reference = transformers.BertModel.from_pretrained(minilm_source, attn_implementation="eager").eval()
    return reference, load_pretrained(minilm_folder).eval()


def test_minilm_hidden_states_match_transformers(minilm_pair):
    reference, model = minilm_pair
    input_ids, attention_mask, token_type_ids = padded_pairs(30522, seed=3)
    with torch.no_grad():
        expected = reference(torch.tensor(input_ids), attention_mask=torch.tensor(attention_mask),
                             token_type_ids=torch.tensor(token_type_ids), output_hidden_states=True)
    with no_grad():
        out = model(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, output_hidden_states=True)
    assert len(out.hidden_states) == len(expected.hidden_states) == 7
    for i, (ours, theirs) in enumerate(zip(out.hidden_states, expected.hidden_states)):
        assert_close(f"MiniLM hidden_states[{i}]", ours.data, theirs.numpy(), atol=HIDDEN_ATOL)
    assert_close("MiniLM pooler_output", out.pooler_output.data, expected.pooler_output.numpy(), atol=HIDDEN_ATOL)


def test_minilm_gradients_match_transformers(minilm_pair):
    reference, model = minilm_pair
    inputs = padded_pairs(30522, seed=4)
    _, _, gradients, hidden_weights, pooler_weights = run_reference(reference, torch.float32, *inputs)
    model.zero_grad()
    _, loss = tinybert_loss(model, *inputs, hidden_weights.astype(np.float32), pooler_weights.astype(np.float32))
    loss.backward()
    errors = gradient_errors(model, gradients)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= GRADIENT_RTOL["float32"], f"gradient of {worst}: relative error {errors[worst]:.2e}"


# ---------------------------------------------------------------- conversion
def test_convert_then_export_is_bit_identical(minilm_source, tmp_path):
    convert.main([str(minilm_source), str(tmp_path / "ours")])
    convert.main(["--to-hf", str(tmp_path / "ours"), str(tmp_path / "hf")])
    source = load_file(minilm_source / "model.safetensors")
    exported = load_file(tmp_path / "hf" / "model.safetensors")
    parameters = {k: v for k, v in source.items() if not k.endswith("position_ids")}
    assert set(exported) == set(parameters)
    for name, array in parameters.items():
        assert exported[name].dtype == array.dtype and np.array_equal(exported[name], array), name
    reloaded = transformers.BertModel.from_pretrained(tmp_path / "hf")       # transformers reads it
    assert reloaded.config.hidden_size == 384
    assert (tmp_path / "ours" / "tokenizer.json").exists()


def test_save_pretrained_round_trip(tmp_path):
    model = load_pretrained(FIXTURES / "tiny_bert_hf")
    save_pretrained(model, tmp_path / "saved")
    again = load_pretrained(tmp_path / "saved")
    for (name, a), (_, b) in zip(model.named_parameters(), again.named_parameters()):
        assert np.array_equal(a.data, b.data), name
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config["format"] == convert.FORMAT


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float64", np.dtype("float32")])
def test_load_pretrained_takes_a_numpy_dtype_class_or_name(dtype):
    model = load_pretrained(FIXTURES / "tiny_bert_hf", dtype=dtype)
    assert model.embeddings.word.weight.dtype == np.dtype(dtype)
    assert model.config.dtype == np.dtype(dtype).name


def test_parameter_shapes_are_the_shapes_of_the_model():
    config = BertConfig(vocab_size=11, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=12, max_position_embeddings=16)
    assert convert.parameter_shapes(config) == {name: p.shape for name, p in BertModel(config).named_parameters()}


def test_loading_a_hugging_face_folder_does_not_change_what_the_seed_draws(tmp_path):
    tinybert_folder = tmp_path / "converted"
    convert.convert_hf_folder(str(FIXTURES / "tiny_bert_hf"), str(tinybert_folder))
    draws = {}
    for name, folder in (("tinybert folder", tinybert_folder), ("hugging face folder", FIXTURES / "tiny_bert_hf")):
        backend.seed(11711)
        load_pretrained(folder)
        draws[name] = backend.rng().random(8)
    assert np.array_equal(draws["tinybert folder"], draws["hugging face folder"])


def test_bert_prefix_and_buffers_are_accepted(tmp_path):
    folder = tmp_path / "prefixed"
    folder.mkdir()
    shutil.copy(FIXTURES / "tiny_bert_hf" / "config.json", folder)
    tensors = {"bert." + k: v for k, v in load_file(FIXTURES / "tiny_bert_hf" / "model.safetensors").items()}
    tensors["bert.embeddings.position_ids"] = np.arange(64)[None]
    save_file(tensors, folder / "model.safetensors")
    model = load_pretrained(folder)
    reference = load_pretrained(FIXTURES / "tiny_bert_hf")
    assert np.array_equal(model.embeddings.word.weight.data, reference.embeddings.word.weight.data)


# ---------------------------------------------------------------- bad input
def _copy_fixture(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(FIXTURES / "tiny_bert_hf", folder)
    return folder


def test_pickle_checkpoint_is_refused(tmp_path):
    folder = _copy_fixture(tmp_path)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ValueError, match="pytorch_model.bin: refusing a pickle"):
        load_pretrained(folder)
    with pytest.raises(SystemExit, match="arbitrary code"):
        convert.main([str(folder), str(tmp_path / "out")])


def test_config_missing_a_key_is_named(tmp_path):
    folder = _copy_fixture(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    del config["num_attention_heads"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(KeyError, match="num_attention_heads"):
        load_pretrained(folder)


def test_wrong_shape_names_the_tensor_and_both_shapes(tmp_path):
    folder = _copy_fixture(tmp_path)
    tensors = load_file(folder / "model.safetensors")
    tensors["encoder.layer.1.intermediate.dense.weight"] = np.zeros((36, 48), np.float32)
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(ValueError, match=r"encoder.layer.1.intermediate.dense.weight.*\(36, 48\).*\(37, 48\)"):
        convert.convert_hf_folder(str(folder), str(tmp_path / "out"))


def test_missing_and_unexpected_tensors_are_named(tmp_path):
    folder = _copy_fixture(tmp_path)
    tensors = load_file(folder / "model.safetensors")
    del tensors["encoder.layer.2.output.dense.bias"]
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(KeyError, match="encoder.layer.2.output.dense.bias"):
        load_pretrained(folder)
    tensors = load_file(FIXTURES / "tiny_bert_hf" / "model.safetensors")
    tensors["encoder.layer.9.extra.weight"] = np.zeros(3, np.float32)
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(KeyError, match="unexpected tensor 'encoder.layer.9.extra.weight'"):
        load_pretrained(folder)


def test_the_model_output_record_is_not_named_like_transformers_ffn_layer():
    # transformers' BertOutput is the feed-forward sub-layer; what BertModel returns is EncoderOutput
    assert not hasattr(model_module, "BertOutput") and not hasattr(tinybert, "BertOutput")
    model = load_pretrained(FIXTURES / "tiny_bert_hf")
    assert type(model(np.array([[2, 5, 3]]))).__name__ == "EncoderOutput"


def test_sequence_longer_than_the_position_table_is_a_clear_error():
    model = load_pretrained(FIXTURES / "tiny_bert_hf")
    with pytest.raises(ValueError, match="65 tokens.*64 positions"):
        model(np.ones((1, 65), np.int64))


def test_a_dtype_key_in_a_hugging_face_config_is_ignored(tmp_path):
    folder = _copy_fixture(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["dtype"] = "bfloat16"
    (folder / "config.json").write_text(json.dumps(config))
    assert load_pretrained(folder).embeddings.word.weight.dtype == np.float32


# ---------------------------------------------------------------- every output folder is usable (#32)
def test_convert_of_a_folder_without_tokenizer_files_is_refused_and_writes_nothing(tmp_path, capsys):
    folder = _copy_fixture(tmp_path)
    vocabulary = (folder / "vocab.txt").read_bytes()
    (folder / "vocab.txt").unlink()                 # config.json and model.safetensors only
    with pytest.raises(SystemExit) as error:
        convert.main([str(folder), str(tmp_path / "out")])
    message = str(error.value.code)
    assert message.startswith(f"convert: {folder}: no tokenizer.json or vocab.txt") and "\n" not in message, message
    assert not (tmp_path / "out").exists()
    assert "wrote" not in capsys.readouterr().out
    (folder / "vocab.txt").write_bytes(vocabulary)
    convert.main([str(folder), str(tmp_path / "out")])
    assert capsys.readouterr().out == f"wrote {tmp_path / 'out'}\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.json", "model.safetensors", "vocab.txt"]


def test_export_to_hf_of_a_folder_without_tokenizer_files_is_refused(tmp_path):
    ours = tmp_path / "ours"
    convert.convert_hf_folder(str(FIXTURES / "tiny_bert_hf"), str(ours))
    (ours / "vocab.txt").unlink()
    with pytest.raises(SystemExit, match=f"{ours}: no tokenizer.json or vocab.txt"):
        convert.main(["--to-hf", str(ours), str(tmp_path / "hf")])
    assert not (tmp_path / "hf").exists()


def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path):
    folder = _copy_fixture(tmp_path)
    data = bytearray((folder / "model.safetensors").read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    data[header:] = np.random.default_rng(0).bytes(len(data) - header)         # random bytes for every tensor
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{folder / 'model.safetensors'}: tensor '.*' holds values that are not finite"):
        load_pretrained(folder)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_checkpoints_load_as_float32(dtype, tmp_path, capsys):
    from safetensors.torch import save_file as save_torch
    folder = _copy_fixture(tmp_path)
    tensors = {name: torch.from_numpy(array).to(getattr(torch, dtype))
               for name, array in load_file(FIXTURES / "tiny_bert_hf" / "model.safetensors").items()}
    save_torch(tensors, str(folder / "model.safetensors"))
    model = load_pretrained(folder)
    assert capsys.readouterr().err == f"{folder / 'model.safetensors'}: weights: converted {dtype} to float32\n"
    expected = tensors["encoder.layer.1.intermediate.dense.weight"].to(torch.float32).numpy().T
    assert model.layers[1].ffn_in.weight.dtype == np.float32
    assert np.array_equal(model.layers[1].ffn_in.weight.data, expected)
    convert.main([str(folder), str(tmp_path / "ours")])
    assert "converted" in capsys.readouterr().err
    assert np.array_equal(load_pretrained(tmp_path / "ours").layers[1].ffn_in.weight.data, expected)


def test_a_converted_weights_folder_with_damaged_bytes_is_refused(tmp_path):
    # finite, plausible values written over the word embeddings: only the recorded sha256 tells
    convert.main([str(FIXTURES / "tiny_bert_hf"), str(tmp_path / "weights")])
    path = tmp_path / "weights" / "model.safetensors"
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    noise = np.random.default_rng(0).standard_normal(64).astype(np.float32).tobytes()
    data[header:header + len(noise)] = noise
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="its sha256 does not match the one config.json recorded"):
        load_pretrained(tmp_path / "weights")
