"""After training: the model folder a run ends with, `python -m tinybert.run.predict`, and the
exports to transformers (convert --to-hf) and sentence-transformers (tinybert.run.export), each
loaded with the real library and compared with tinybert to 1e-5."""
import json
import shutil

import numpy as np
import pytest

from conftest import assert_close
from test_train import SAMPLE_DATA_DIR, exit_message, read_predictions, run, tiny_weights  # noqa: F401
from tinybert import convert
from tinybert.run import checkpoint, export, predict
from tinybert.data import load_pairs, load_sst
from tinybert.run.predict import TrainedModel

SENTENCES = ["a gripping , funny film .", "The script is familiar .", "A man is slicing bread .", ""]


@pytest.fixture(scope="module")
def cos_run(tiny_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cos"
    run(tiny_weights, out, "--task", "all", "--cos", "--lr", "1e-3", epochs=2)
    return out


@pytest.fixture(scope="module")
def trained(cos_run):
    return TrainedModel.load(cos_run)


def file_values(path):
    return {i: float(v) for i, v in read_predictions(path)[1]}


def test_the_model_folder_answers_as_the_dev_prediction_files(cos_run, trained):
    assert sorted(p.name for p in (cos_run / "model").iterdir()) == [
        "config.json", "heads.safetensors", "model.safetensors", "tasks.json", "tokenizer.json",
        "tokenizer_config.json", "vocab.txt"]
    settings = json.loads((cos_run / "model" / "tasks.json").read_text())
    assert settings["tasks"] == ["sst", "para", "sts"] and settings["cos"] and settings["max_len"] == 32
    assert settings["dev_scores"] == json.loads((cos_run / "dev_metrics.json").read_text())
    best = checkpoint.load(cos_run / "best")[0]["model"]  # the best epoch's encoder and heads, exactly
    loaded = dict(trained.model.named_parameters())
    assert loaded.keys() == best.keys()
    assert all(np.array_equal(loaded[name].data, best[name]) for name in best)
    sst = load_sst(SAMPLE_DATA_DIR / "ids-sst-dev.csv")
    classes, probabilities = trained.sentiment([e.sentence for e in sst])
    expected = file_values(cos_run / "predictions" / "sst-dev-output.csv")
    assert classes.tolist() == [expected[e.id] for e in sst]
    assert_close("probabilities sum", probabilities.sum(axis=1), np.ones(len(sst)), atol=1e-12)
    para = load_pairs(SAMPLE_DATA_DIR / "quora-dev.csv", "para")
    chance = trained.paraphrase([e.sentence1 for e in para], [e.sentence2 for e in para])
    expected = file_values(cos_run / "predictions" / "para-dev-output.csv")
    assert (chance > 0.5).astype(int).tolist() == [expected[e.id] for e in para]
    sts = load_pairs(SAMPLE_DATA_DIR / "sts-dev.csv", "sts")
    scores = trained.similarity([e.sentence1 for e in sts], [e.sentence2 for e in sts])
    expected = file_values(cos_run / "predictions" / "sts-dev-output.csv")
    assert_close("sts scores", scores, np.array([expected[e.id] for e in sts]), atol=1e-5)


def test_predict_command_sst(cos_run, trained, capsys):
    predict.main([str(cos_run), "--task", "sst", "a gripping, funny film", "a dull one"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].endswith("a gripping, funny film")
    classes, probabilities = trained.sentiment(["a gripping, funny film"])
    assert lines[0].startswith(f"{classes[0]} {predict.SENTIMENT_NAMES[classes[0]]}")
    assert " ".join(f"{p:.3f}" for p in probabilities[0]) in lines[0]


@pytest.mark.parametrize("task", ["para", "sts"])
def test_predict_command_pairs_from_arguments_and_a_file(cos_run, trained, task, tmp_path, capsys):
    predict.main([str(cos_run / "model"), "--task", task, "A man is slicing bread.", "A man cuts bread."])
    single = capsys.readouterr().out
    inputs = tmp_path / "pairs.tsv"
    inputs.write_text("A man is slicing bread.\tA man cuts bread.\n\nA girl is reading.\tThe film is dull.\n")
    predict.main([str(cos_run), "--task", task, "--file", str(inputs)])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0] == single.strip()
    method = trained.paraphrase if task == "para" else trained.similarity
    values = method(["A man is slicing bread.", "A girl is reading."], ["A man cuts bread.", "The film is dull."])
    assert [line.split()[0] for line in lines] == [f"{v:.3f}" for v in values]


@pytest.mark.parametrize("case,problem", [
    ("no model", "neither a run folder nor a model folder"),
    ("interrupted run", "no model/ folder yet"),
    ("one sentence for para", "--task para takes two sentences, got 1"),
    ("file line without a tab", "pairs.tsv, line 2: expected two sentences separated by a tab, found 1"),
    ("untrained task", "this model was trained for sst, not sts"),
    ("tasks.json without a key", "tasks.json: the key 'max_len' is missing"),
])
def test_predict_bad_input_is_one_line(cos_run, tmp_path, case, problem, capsys):
    model = tmp_path / "model"
    shutil.copytree(cos_run / "model", model)
    settings = json.loads((model / "tasks.json").read_text())
    argv = [str(model), "--task", "sts", "a", "b"]
    if case == "no model":
        argv[0] = str(tmp_path / "nothing")
    elif case == "interrupted run":
        (tmp_path / "run" / "last").mkdir(parents=True)
        argv[0] = str(tmp_path / "run")
    elif case == "one sentence for para":
        argv = [str(model), "--task", "para", "only one"]
    elif case == "file line without a tab":
        (tmp_path / "pairs.tsv").write_text("a\tb\nno tab here\n")
        argv = [str(model), "--task", "sts", "--file", str(tmp_path / "pairs.tsv")]
    elif case == "untrained task":
        (model / "tasks.json").write_text(json.dumps({**settings, "tasks": ["sst"]}))
    else:
        del settings["max_len"]
        (model / "tasks.json").write_text(json.dumps(settings))
    with pytest.raises(SystemExit) as error:
        predict.main(argv)
    message = exit_message(error) if error.value.code != 2 else capsys.readouterr().err.splitlines()[-1]
    assert problem in message


def test_hf_export_loads_in_transformers_and_agrees(cos_run, trained, tmp_path):
    import torch
    import transformers
    convert.main(["--to-hf", str(cos_run / "model"), str(tmp_path / "hf")])
    reference = transformers.BertModel.from_pretrained(str(tmp_path / "hf")).eval()
    tokens = trained.tokenizer.encode(SENTENCES, max_length=32)
    with torch.no_grad():
        expected = reference(**{k: torch.from_numpy(v) for k, v in tokens.items()})
    ours = trained.model.bert(tokens["input_ids"], tokens["attention_mask"], tokens["token_type_ids"])
    assert_close("last_hidden_state", ours.last_hidden_state.numpy(), expected.last_hidden_state.numpy(), atol=1e-5)
    assert_close("pooler_output", ours.pooler_output.numpy(), expected.pooler_output.numpy(), atol=1e-5)


def test_sentence_transformers_export_loads_and_agrees(cos_run, trained, tmp_path):
    from sentence_transformers import SentenceTransformer
    export.main([str(cos_run), str(tmp_path / "st")])
    loaded = SentenceTransformer(str(tmp_path / "st"), device="cpu")
    assert loaded.max_seq_length == 32
    embeddings = loaded.encode(SENTENCES, convert_to_numpy=True, batch_size=2)
    assert_close("sentence embeddings", embeddings, trained.embed(SENTENCES), atol=1e-5)
    first, second = SENTENCES[:2], SENTENCES[2:]
    a, b = loaded.encode(first), loaded.encode(second)
    cosine = (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert_close("sts scores", np.clip(cosine * 5, 0, 5), trained.similarity(first, second), atol=1e-5)


def test_export_refuses_a_folder_that_is_not_empty(cos_run, tmp_path):
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit) as error:
        export.main([str(cos_run), str(tmp_path / "st")])
    assert "is not empty" in exit_message(error)
    assert (tmp_path / "st" / "keep.txt").read_text() == "mine"


def test_export_of_a_run_without_cos_warns(cos_run, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(cos_run / "model", model)
    settings = json.loads((model / "tasks.json").read_text())
    (model / "tasks.json").write_text(json.dumps({**settings, "cos": False}))
    export.main([str(model), str(tmp_path / "st")])
    assert "trained without --cos" in capsys.readouterr().err
    assert (tmp_path / "st" / "1_Pooling" / "config.json").exists()


# ---------------------------------------------------------------- no silent wrong answer (#32)
def copy_model(cos_run, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(cos_run / "model", model)
    return model


def refresh_checksums(model):
    """After a test changes a model file on purpose: record its new sha256, as a run that
    wrote those weights would have."""
    from tinybert.run.files import sha256
    settings = json.loads((model / "tasks.json").read_text())
    if "sha256" in settings:
        settings["sha256"] = {name: sha256(model / name) for name in settings["sha256"]}
        (model / "tasks.json").write_text(json.dumps(settings))
    config = json.loads((model / "config.json").read_text())
    if "model_sha256" in config:
        config["model_sha256"] = sha256(model / "model.safetensors")
        (model / "config.json").write_text(json.dumps(config))


def one_line_exit(argv, main=predict.main):
    with pytest.raises(SystemExit) as error:
        main(argv)
    message = exit_message(error)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize("task,name", [("sst", "ids-sst-dev.csv"), ("para", "quora-dev.csv"), ("sts", "sts-dev.csv")])
def test_predict_refuses_a_cs224n_data_file(cos_run, task, name, capsys):
    path = SAMPLE_DATA_DIR / name
    message = one_line_exit([str(cos_run), "--task", task, "--file", str(path)])
    assert message.startswith(f"predict: {path}: looks like a CS224N data file"), message
    assert "pass a plain file of sentences" in message
    assert capsys.readouterr().out == ""


def test_predict_refuses_sst_lines_with_more_fields_than_one_sentence(cos_run, tmp_path, capsys):
    path = tmp_path / "rows.tsv"
    path.write_text("a fine film\n7\tabc\ta dull film\t1\n")
    message = one_line_exit([str(cos_run), "--task", "sst", "--file", str(path)])
    assert f"{path}, line 2: 4 tab-separated fields" in message, message
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("case", ["encoder NaN", "head inf", "outputs overflow"])
def test_predict_refuses_non_finite_weights_or_outputs(cos_run, tmp_path, case, capsys):
    from safetensors.numpy import load_file, save_file
    model = copy_model(cos_run, tmp_path)
    file = "model.safetensors" if case == "encoder NaN" else "heads.safetensors"
    tensors = load_file(model / file)
    if case == "encoder NaN":
        tensors["layers.0.ffn_in.weight"][3, 5] = np.nan
    elif case == "head inf":
        tensors["sentiment_head.bias"][2] = np.inf
    else:                                  # finite weights whose logits overflow float32
        tensors["sentiment_head.weight"][:] = 3e38
    save_file(tensors, model / file, metadata={"format": convert.FORMAT} if file == "model.safetensors" else None)
    refresh_checksums(model)
    with np.errstate(over="ignore"):                 # the overflow is the point
        message = one_line_exit([str(model), "--task", "sst", "a gripping, funny film"])
    assert str(model) in message and "not finite" in message, message
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("file", ["model.safetensors", "heads.safetensors"])
def test_a_damaged_model_file_fails_its_checksum(cos_run, tmp_path, file):
    model = copy_model(cos_run, tmp_path)
    assert set(json.loads((model / "tasks.json").read_text())["sha256"]) == {"heads.safetensors"}
    assert "model_sha256" in json.loads((model / "config.json").read_text())
    data = bytearray((model / file).read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    noise = np.random.default_rng(0).standard_normal(64).astype(np.float32).tobytes()  # finite, plausible values
    data[header + 64:header + 64 + len(noise)] = noise
    (model / file).write_bytes(bytes(data))
    message = one_line_exit([str(model), "--task", "sst", "a gripping, funny film"])
    assert f"{model / file}: its sha256 does not match" in message, message


def test_an_old_model_folder_without_checksums_still_loads(cos_run, trained, tmp_path):
    model = copy_model(cos_run, tmp_path)
    settings = json.loads((model / "tasks.json").read_text())
    settings.pop("sha256", None)
    (model / "tasks.json").write_text(json.dumps(settings))
    config = json.loads((model / "config.json").read_text())
    config.pop("model_sha256", None)
    (model / "config.json").write_text(json.dumps(config))
    classes, _ = TrainedModel.load(model).sentiment(["a gripping, funny film"])
    assert classes.tolist() == trained.sentiment(["a gripping, funny film"])[0].tolist()


def test_export_of_a_run_without_a_tokenizer_is_refused_and_writes_nothing(cos_run, tmp_path, capsys):
    model = copy_model(cos_run, tmp_path)
    for name in convert.TOKENIZER_FILES:
        (model / name).unlink(missing_ok=True)
    message = one_line_exit([str(model), str(tmp_path / "st")], main=export.main)
    assert f"{model}: no tokenizer.json or vocab.txt" in message, message
    assert not (tmp_path / "st").exists()
    assert "wrote" not in capsys.readouterr().out


@pytest.mark.parametrize("file,content,problem", [
    ("tasks.json", {"tasks": 5}, "'tasks' must be a list of task names"),
    ("tasks.json", {"max_len": "32"}, "'max_len' must be a whole number"),
    ("tasks.json", {"max_len": 100000}, "'max_len' 100000 exceeds the model's"),
    ("tasks.json", {"cos": "yes"}, "'cos' must be true or false"),
    ("tasks.json", b"\xff\xfe{", "tasks.json: not valid JSON"),
    ("config.json", None, "config.json: not a JSON object"),
])
def test_a_damaged_json_file_of_a_model_folder_is_one_line_naming_it(cos_run, tmp_path, file, content, problem):
    model = tmp_path / "model"
    shutil.copytree(cos_run / "model", model)
    if isinstance(content, bytes):
        (model / file).write_bytes(content)
    elif content is None:
        (model / file).write_text("null")
    else:
        (model / file).write_text(json.dumps({**json.loads((model / file).read_text()), **content}))
    with pytest.raises(SystemExit) as error:
        predict.main([str(model), "--task", "sts", "a", "b"])
    assert problem in exit_message(error)


@pytest.mark.parametrize("content,problem", [(b"good\n\xdb\xff film\n", "not UTF-8 text"), (None, "is a folder")])
def test_an_input_file_that_is_not_text_is_one_line_naming_it(cos_run, tmp_path, content, problem):
    path = tmp_path / "inputs"
    path.mkdir() if content is None else path.write_bytes(content)
    with pytest.raises(SystemExit) as error:
        predict.main([str(cos_run / "model"), "--task", "sst", "--file", str(path)])
    assert f"{path}: {problem}" in exit_message(error)
