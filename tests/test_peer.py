"""tools/peer.py, the plain PyTorch multi-task fine-tune (`make peer`): its model computes what
tinybert's MultitaskBert computes, a short run on the bundled sample writes every output in
train.py's format, offline, within its time budget, and bad flags are one line."""
import itertools
import json
import math
import os
import socket

import pytest
import torch

from conftest import assert_close
from tinybert import BertModel
from tinybert.data import SAMPLE_DATA_DIR, load_pairs, load_sst
from tinybert.multitask import TASKS, MultitaskBert, encode_batch
from tinybert.tensor import no_grad
from tinybert.tokenizer import Tokenizer
from tools import peer
from tinybert.convert import load_pretrained

MINUTES = 0.09            # 5.4 s of training: four steps of the sample_run fixture's clock
EVAL_EVERY_MINUTES = 0.03  # 1.8 s
TICK = 1.5                # seconds the fixture's clock advances at each call


def test_the_peer_model_computes_what_multitask_bert_computes(minilm_folder):
    """Same weights, same heads, eval mode: the same outputs for every task (mean pooling,
    pairs encoded jointly), to float32 rounding through six layers (test_bert's 1e-4)."""
    torch.manual_seed(0)
    theirs = peer.PeerModel(peer.load_encoder(str(minilm_folder))).eval()
    ours = MultitaskBert(load_pretrained(minilm_folder))
    ours.eval()
    for task, head in (("sst", ours.sentiment_head), ("para", ours.paraphrase_head), ("sts", ours.similarity_head)):
        head.weight.data = theirs.heads[task].weight.detach().numpy().T.copy()   # torch (out, in), tinybert (in, out)
        head.bias.data = theirs.heads[task].bias.detach().numpy().copy()
    tokenizer = Tokenizer.from_folder(minilm_folder)
    for task in TASKS:
        path = SAMPLE_DATA_DIR / {"sst": "ids-sst-dev.csv", "para": "quora-dev.csv", "sts": "sts-dev.csv"}[task]
        examples = (load_sst(path) if task == "sst" else load_pairs(path, task))[:6]
        batch = encode_batch(task, examples, tokenizer, max_length=32, cos=False)
        with no_grad():
            expected = ours(batch).data
        segment, _ = peer.as_tensors(batch)
        with torch.no_grad():
            assert_close(f"{task} head output", theirs(task, segment).numpy(), expected, atol=1e-4)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def no_network(*args, **kwargs):
    raise AssertionError("the peer tried to reach the network")


def scripted_run(out, minilm_folder, *extra,
                 budget=("--minutes", str(MINUTES), "--eval_every_minutes", str(EVAL_EVERY_MINUTES))):
    """A short peer run on the bundled sample (batches of 8 and one thread, to be quick), with
    no network, on a clock that ticks TICK seconds a call (a step, timed by two calls, lasts
    TICK, and so does an evaluation) and a CPU clock on which 50 of the 200 ticks within each
    step are stolen, none between steps."""
    args = peer.parse_args([*budget, "--max_len", "32", "--batch_size", "8", "--threads", "1", "--weights", str(minilm_folder),
                            "--data_dir", str(SAMPLE_DATA_DIR), "--out", str(out), *extra])
    ticks = itertools.count(0.0, TICK)
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", no_network)
        readings = iter([{"total": 1000 * i + end * 200, "steal": 50 * i + end * 50} for i in range(100) for end in (0, 1)])
        patch.setattr(peer, "cpu_clock", lambda: next(readings))
        try:
            peer.run(args, clock=lambda: next(ticks))
        finally:
            torch.set_num_threads(threads)  # the rest of the suite's torch as it was
    return out


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory, minilm_folder):
    """With --minutes 0.09 (5.4 s) and --eval_every_minutes 0.03 (marks at 1.8, 3.6, 5.4 s):
    steps end at 1.5, 3, 4.5 and 6 s; step 1 ends before the first mark, step 2 passes it
    (evaluated), step 3 the next one (evaluated), step 4 the budget (the final evaluation)."""
    return scripted_run(tmp_path_factory.mktemp("peer") / "run", minilm_folder)


def test_a_short_run_writes_every_output(sample_run):
    out = sample_run
    assert sorted(os.listdir(out)) == ["args.json", "dev_metrics.json", "machine.json", "metrics.jsonl"]
    args = json.loads((out / "args.json").read_text())
    assert args["minutes"] == MINUTES and args["batch_size"] == 8 and args["lr"] == 4e-5 and args["seed"] == 11711
    machine = json.loads((out / "machine.json").read_text())
    assert machine["torch"] == torch.__version__ and machine["torch_threads"] == 1 and machine["cpu"]
    records = read_jsonl(out / "metrics.jsonl")
    steps = [r for r in records if r["type"] == "step"]
    for record in steps:
        assert {"loss_sst", "loss_para", "loss_sts", "seconds", "step_seconds", "epoch", "lr"} <= set(record)
        assert all(math.isfinite(record[f"loss_{task}"]) and record[f"loss_{task}"] >= 0 for task in TASKS)
    scores = json.loads((out / "dev_metrics.json").read_text())
    assert set(scores) == set(TASKS)
    assert 0 <= scores["sst"] <= 1 and 0 <= scores["para"] <= 1 and -1 <= scores["sts"] <= 1
    final = [r for r in records if r["type"] == "eval"][-1]
    assert {task: final[f"dev_{task}"] for task in TASKS} == scores


def test_the_run_keeps_its_training_time_budget(sample_run):
    """Training stops at the step that reaches --minutes; the curve's evaluations fall on
    the --eval_every_minutes marks of training time, and their own time is not counted."""
    records = read_jsonl(sample_run / "metrics.jsonl")
    assert [(r["type"], r["step"]) for r in records] == [("step", 1), ("step", 2), ("eval", 2), ("step", 3), ("eval", 3),
                                                        ("step", 4), ("eval", 4)]
    steps = [r for r in records if r["type"] == "step"]
    assert [r["seconds"] for r in steps] == [1.5, 3.0, 4.5, 6.0] and [r["step_seconds"] for r in steps] == [TICK] * 4
    assert [r["cpu_steal"] for r in steps] == [0.25] * 4                  # each step's own share
    evals = [r for r in records if r["type"] == "eval"]
    assert [r["minutes"] for r in evals] == [0.05, 0.075, 0.1] and [r["eval_seconds"] for r in evals] == [TICK] * 3


def test_a_budget_less_steal_counts_each_step_without_its_stolen_share(tmp_path, minilm_folder):
    """--budget_less_steal: each 1.5 s step counts 1.5 * (1 - 0.25) = 1.125 s, so the 5.4 s
    budget holds five steps, and the evaluations fall on the marks of the time so counted."""
    records = read_jsonl(scripted_run(tmp_path / "run", minilm_folder, "--budget_less_steal") / "metrics.jsonl")
    assert [(r["type"], r["step"]) for r in records] == [("step", 1), ("step", 2), ("eval", 2), ("step", 3),
                                                        ("step", 4), ("eval", 4), ("step", 5), ("eval", 5)]
    steps = [r for r in records if r["type"] == "step"]
    assert [r["seconds"] for r in steps] == pytest.approx([1.125, 2.25, 3.375, 4.5, 5.625], abs=0.006)
    assert [r["step_seconds"] for r in steps] == [TICK] * 5 and [r["cpu_steal"] for r in steps] == [0.25] * 5


def test_a_step_budget_runs_its_steps_whatever_the_clock(sample_run, tmp_path, minilm_folder, monkeypatch, capsys):
    """--steps 5 --eval_every_steps 2 on the clock that gives --minutes 0.09 four steps: five
    steps, evaluated after steps 2 and 4 and at the end, with the losses of the minutes run at
    the steps both have (the scores are a function of the step count); its progress lines count
    steps against the budget and carry the losses."""
    monkeypatch.setattr(peer, "PROGRESS_SECONDS", TICK)  # a progress line after every step
    out = scripted_run(tmp_path / "run", minilm_folder, budget=("--steps", "5", "--eval_every_steps", "2"))
    assert "peer: 0.1 training minutes, step 5/5, loss_sst " in capsys.readouterr().err
    records = read_jsonl(out / "metrics.jsonl")
    assert [(r["type"], r["step"]) for r in records] == [("step", 1), ("step", 2), ("eval", 2), ("step", 3),
                                                        ("step", 4), ("eval", 4), ("step", 5), ("eval", 5)]
    args = json.loads((out / "args.json").read_text())
    assert args["steps"] == 5 and args["minutes"] is None and args["eval_every_minutes"] is None
    losses = [[r[f"loss_{task}"] for task in TASKS] for r in records if r["type"] == "step"]
    by_minutes = [[r[f"loss_{task}"] for task in TASKS] for r in read_jsonl(sample_run / "metrics.jsonl")
                  if r["type"] == "step"]
    assert losses[:4] == by_minutes


def test_the_run_draws_like_a_tinybert_run(sample_run, tmp_path):
    from tinybert.run import plot
    assert os.path.getsize(plot.plot_run(str(sample_run), str(tmp_path / "curves.png"))) > 0


@pytest.mark.parametrize("flags, message", [
    (["--minutes", "0"], "argument --minutes: must be in (0, inf), got 0.0"),
    (["--lr", "nan"], "argument --lr: must be in (0, inf), got nan"),
    (["--batch_size", "0"], "argument --batch_size: must be in [1, inf), got 0"),
    (["--max_len", "2"], "argument --max_len: must be in [4, inf), got 2"),
    (["--steps", "0"], "argument --steps: must be in [1, inf), got 0"),
    (["--minutes", "5", "--steps", "100"], "argument --steps: not allowed with argument --minutes"),
    (["--eval_every_steps", "10"], "--eval_every_steps goes with --steps, --eval_every_minutes with --minutes"),
    (["--steps", "100", "--eval_every_minutes", "1"],
     "--eval_every_steps goes with --steps, --eval_every_minutes with --minutes"),
])
def test_a_bad_flag_is_one_usage_line(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        peer.parse_args(flags)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(message)


def test_missing_data_and_a_used_folder_are_one_line(sample_run, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        peer.main(["--data_dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")])
    assert str(exit_.value.code) == f"peer: {tmp_path / 'nowhere' / 'ids-sst-train.csv'}: no such data file"
    with pytest.raises(SystemExit) as exit_:
        peer.main(["--data_dir", str(SAMPLE_DATA_DIR), "--out", str(sample_run)])
    assert "holds a run already" in str(exit_.value.code) and "--overwrite" in str(exit_.value.code)


def test_max_len_beyond_the_models_positions_is_one_line(minilm_folder, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        peer.main(["--weights", str(minilm_folder), "--data_dir", str(SAMPLE_DATA_DIR), "--max_len", "600",
                   "--minutes", "0.001", "--out", str(tmp_path / "run")])  # short, should the check be lost
    assert str(exit_.value.code) == f"peer: --max_len 600 exceeds the 512 positions of {minilm_folder}"
    assert not (tmp_path / "run").exists()  # refused before writing anything
