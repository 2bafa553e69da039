"""The capstone (tools/capstone.py): the learner's pieces trained inside tinybert, beside tinybert's own.

Right answers (tests/fixtures/exercise_answers/) must give tinybert's run, every piece called; a
wrong piece must show in the run. Two short trainings a test, on the reference path."""
import shutil
from pathlib import Path

import pytest

from tools import capstone

ANSWERS = Path(__file__).parent / "fixtures" / "exercise_answers"
SHORT = ["--", "--epochs", "1", "--steps_per_epoch", "2", "--max_len", "16", "--batch_size", "8"]


def run_capstone(answers, out, capsys):
    status = capstone.main([str(answers), "--out", str(out), *SHORT])
    return status, capsys.readouterr().out


def test_right_pieces_train_as_tinybert_does_and_every_one_is_called(tmp_path, capsys):
    answers = tmp_path / "answers"
    shutil.copytree(ANSWERS, answers)
    status, printed = run_capstone(answers, tmp_path / "runs", capsys)
    assert status == 0, printed
    for number in capstone.PLUGS:
        assert f"{number} {capstone.exercises.EXERCISES[number].name}" in printed
    assert printed.count(" correct\n") == len(capstone.PLUGS), printed
    calls = capstone.files.read_json(str(tmp_path / "runs" / "yours.calls.json"))
    assert sorted(calls) == sorted(capstone.PLUGS) and all(count > 0 for count in calls.values()), calls
    ours, yours = (capstone.step_values(str(tmp_path / "runs" / who), "loss_") for who in ("tinybert", "yours"))
    assert len(ours) == 6 and ours.keys() == yours.keys()                    # 2 steps x 3 tasks
    gap, count = capstone.largest_difference(ours, yours)
    assert count == 6 and gap < 1e-3
    norms = [capstone.step_values(str(tmp_path / "runs" / who), "grad_norm")[1, "grad_norm"] for who in ("tinybert", "yours")]
    assert abs(norms[1] / norms[0] - 1) < 1e-5                                # step 1: float32 rounding only
    assert "a backward or a loss gradient differs" not in printed
    scores = {who: capstone.files.read_json(str(tmp_path / "runs" / who / "dev_metrics.json")) for who in ("tinybert", "yours")}
    for task in ("sst", "para", "sts"):
        assert scores["yours"][task] == pytest.approx(scores["tinybert"][task], abs=0.02)   # an example of 60


def test_a_wrong_piece_shows_in_the_run(tmp_path, capsys):
    answers = tmp_path / "answers"
    answers.mkdir()
    right = (ANSWERS / "02_layer_norm_backward.py").read_text()
    wrong = right.replace("d - d.mean(axis=-1, keepdims=True)", "d")             # the dropped -mean(d)
    assert wrong != right
    (answers / "02_layer_norm_backward.py").write_text(wrong)
    status, printed = run_capstone(answers, tmp_path / "runs", capsys)
    assert status == 0, printed
    assert "02 layer_norm_backward    not correct" in printed
    assert "not in your folder" in printed
    ours, yours = (capstone.step_values(str(tmp_path / "runs" / who), "") for who in ("tinybert", "yours"))
    assert all(ours[1, f"loss_{task}"] == pytest.approx(yours[1, f"loss_{task}"], abs=1e-6) for task in ("sst", "para", "sts"))
    assert abs(yours[1, "grad_norm"] / ours[1, "grad_norm"] - 1) > 1e-3      # the wrong backward, at step 1
    assert "a backward or a loss gradient differs" in printed


def test_a_missing_folder_or_one_without_answers_is_a_usage_error(tmp_path, capsys):
    assert capstone.main([str(tmp_path / "absent")]) == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "03_numeric_gradient.py").write_text("")
    assert capstone.main([str(tmp_path)]) == 2
    assert "none of the answers the capstone plugs in" in capsys.readouterr().err
