"""The peer: a plain PyTorch + transformers multi-task fine-tune of the same weights on the same
data, for a time budget: what a user would run instead of tinybert's recipe. Run from the
repository root:

    python -m tools.peer --minutes 60                            # runs/peer, data from $DATA_DIR
    make peer MINUTES=60                                         # the same, on $(DATA_DIR)
    python -m tools.peer --minutes 0.1 --max_len 32 --data_dir tinybert/sample_data --out runs/peer-sample
    python -m tools.peer --steps 1500                            # a step budget: the same scores any day
    python -m tinybert.run.plot runs/peer                            # its curves, like a tinybert run's

The recipe (issue 17's): the three tasks' losses summed each step, AdamW at a constant 4e-5,
batches of 32 per task, --max_len 128, dropout as the model's config, no PCGrad, no SMART,
STS as a regression head. It is a reference like tools/bench.py: PyTorch and transformers are
imported here only, never in tinybert/.

Built as tinybert's MultitaskBert builds it (tinybert/multitask.py), so that the two differ in
the engine and the recipe, not in the inputs or the heads:
  - the same tokens: tinybert's Tokenizer from the weights folder and multitask.encode_batch
    ("[CLS] s1 [SEP] s2 [SEP]" pairs, each side cut before pair truncation, padding per batch);
  - the same batches: tinybert.data.BatchStream with the same --seed, so step s sees the examples that
    train.py's step s sees with the same batches per step (here 1, 1, 1 by default: the
    issue's one batch of 32 per task; train.py's default is 1, 2, 1);
  - the same heads: the encoder's last hidden states mean-pooled over the real tokens ->
    dropout (the config's hidden_dropout_prob) -> Linear(C, 5) with cross entropy for sst,
    Linear(C, 1) with binary cross entropy on the logit for para, Linear(C, 1) with MSE on the
    0-5 label for sts (train.py without --cos); heads drawn N(0, 0.02), biases 0, as
    tinybert.nn.Linear;
  - the same dev sets, evaluation batches (sorted by length, --eval_batch_size) and metrics:
    tinybert.run.evaluation.metric (SST and QQP accuracy, STS Pearson r).
Where it differs from train.py, on purpose (the plain fine-tune of the issue):
  - the learning rate is constant: no warm-up and no decay, as a time budget does not know the
    number of steps ahead; no gradient clipping;
  - AdamW as torch.optim.AdamW gives it: weight decay (0.01) on every parameter, where
    train.py spares biases and LayerNorm parameters;
  - dropout masks come from torch's generator, so no step is bit-identical to tinybert's;
  - attention is transformers' default kernel (scaled_dot_product_attention).

The time budget counts training only: a step (encoding its batches, forward, backward, update)
is timed, and the run stops after the step that brings the sum to --minutes. The dev sets are
evaluated each --eval_every_minutes of training (default --minutes / 6) and at the end; an
evaluation's time is recorded in its record but not counted in the budget. With
--budget_less_steal a step counts its time less the share of the CPU time the hypervisor of a
virtual machine stole in it (tinybert.run.machine.less_steal): the time stolen outright is given
back, not all that a busy neighbour costs (docs/results/README.md).

With --steps N the budget is N steps instead, evaluated each --eval_every_steps. The peer's
losses and scores depend on its step count, not on the minutes (its batches and dropout masks
come from --seed; docs/results/README.md shows a 30-minute run's step losses bit for bit a 60-minute run's),
so N steps give, on any day, the scores a --minutes run had at its step N; the minutes are that day's.

Outputs in --out (a folder that already holds a run is refused unless --overwrite):
  args.json           the flags;
  machine.json        CPU model, core count, torch and transformers versions, torch's threads;
  metrics.jsonl       train.py's format: step records (loss_sst, loss_para, loss_sts, "seconds"
                      of training so far as the budget counts it, "step_seconds" of this step,
                      "cpu_steal" the share of the machine's CPU time the hypervisor took during it) and eval records (dev_sst,
                      dev_para, dev_sts, dev_mean, "minutes" of training, "eval_seconds"); an
                      epoch is train.py's default one, the fewest steps that pass over every
                      training set (an eval record's "epoch" is the fraction of them done);
  dev_metrics.json    the final evaluation's scores, {"sst", "para", "sts"} as train.py writes.
"""
import argparse
import json
import math
import os
import sys
import tempfile
import time

import numpy as np
import torch
import transformers

from tinybert import convert
from tinybert.data import TASK_FILES, BatchStream, default_data_dir, default_steps_per_epoch, load_task, make_batches
from tinybert.multitask import SENTIMENT_CLASSES, TASKS, encode_batch
from tinybert.run import files
from tinybert.run.evaluation import metric
from tinybert.run.flags import within
from tinybert.run.machine import cpu_clock, describe, less_steal, steal_fraction
from tinybert.run.folder import check_run_folder, clear_run_folder
from tinybert.tokenizer import Tokenizer

# What the peer writes in its run folder (fewer entries than train.py's run): a folder that holds
# any of them is only replaced with --overwrite, which removes them first.
RUN_ENTRIES = ("args.json", "machine.json", "metrics.jsonl", "dev_metrics.json")
PROGRESS_SECONDS = 30  # a progress line this often (of training time)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.peer", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=within("(0, inf)"), default=60.0,
                        help="training time budget (evaluations not counted)")
    budget.add_argument("--steps", type=within("[1, inf)", int), default=None,
                        help="a budget of this many steps instead of --minutes")
    p.add_argument("--budget_less_steal", action="store_true",
                   help="count each step's time less the share the hypervisor stole (the steps' \"seconds\" then too)")
    p.add_argument("--eval_every_minutes", type=within("(0, inf)"), default=None, help="default: --minutes / 6")
    p.add_argument("--eval_every_steps", type=within("[1, inf)", int), default=None,
                   help="with --steps; default: --steps / 6, rounded up")
    p.add_argument("--lr", type=within("(0, inf)"), default=4e-5, help="constant learning rate")
    p.add_argument("--weight_decay", type=within("[0, inf)"), default=0.01, help="AdamW's, on every parameter")
    p.add_argument("--batch_size", type=within("[1, inf)", int), default=32, help="per task batch")
    for task in TASKS:
        p.add_argument(f"--{task}_batches_per_step", type=within("[1, inf)", int), default=1,
                       help=f"{task} batches in each step")
    p.add_argument("--max_len", type=within("[4, inf)", int), default=128)
    p.add_argument("--eval_batch_size", type=within("[1, inf)", int), default=64)
    p.add_argument("--seed", type=within("[0, inf)", int), default=11711)
    p.add_argument("--threads", type=within("[1, inf)", int), default=os.cpu_count(), help="torch.set_num_threads")
    p.add_argument("--weights", default="weights/all-MiniLM-L6-v2", help="a tinybert (or Hugging Face) BERT folder")
    p.add_argument("--data_dir", default=default_data_dir(), help="folder of the CS224N files ($DATA_DIR)")
    p.add_argument("--out", default=os.path.join("runs", "peer"), help="run folder")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in OUT (else refused)")
    args = p.parse_args(argv)
    if (args.eval_every_steps and not args.steps) or (args.eval_every_minutes and args.steps):
        p.error("--eval_every_steps goes with --steps, --eval_every_minutes with --minutes")
    if args.steps:  # a step budget: no minutes are counted toward it
        args.minutes = args.eval_every_minutes = None
        args.eval_every_steps = args.eval_every_steps or math.ceil(args.steps / 6)
    else:
        args.eval_every_minutes = args.eval_every_minutes or args.minutes / 6
    return args


# ---------------------------------------------------------------- the model
def load_encoder(weights):
    """transformers.BertModel from a tinybert folder (exported to the Hugging Face layout in a
    temporary folder) or from a Hugging Face folder, without its pooler: the heads read
    mean-pooled states (the pooler is loaded, then dropped, so that its weights in the
    folder are expected rather than reported as unused)."""
    if not os.path.isfile(os.path.join(weights, "config.json")):
        raise FileNotFoundError(f"{weights}: no config.json here (run `make weights`, or pass --weights)")
    with open(os.path.join(weights, "config.json"), encoding="utf-8") as f:
        is_tinybert = json.load(f).get("format") == convert.FORMAT
    with tempfile.TemporaryDirectory() as temporary:
        folder = os.path.join(temporary, "hf") if is_tinybert else weights
        if is_tinybert:
            convert.export_hf_folder(weights, folder)
        bert = transformers.BertModel.from_pretrained(folder, dtype=torch.float32)
    bert.pooler = None  # what add_pooling_layer=False builds
    return bert


class PeerModel(torch.nn.Module):
    """The encoder and three heads of tinybert.multitask.MultitaskBert (without --cos), in PyTorch."""

    def __init__(self, bert):
        super().__init__()
        C = bert.config.hidden_size
        self.bert = bert
        self.dropout = torch.nn.Dropout(bert.config.hidden_dropout_prob)
        self.heads = torch.nn.ModuleDict({"sst": torch.nn.Linear(C, SENTIMENT_CLASSES),
                                          "para": torch.nn.Linear(C, 1), "sts": torch.nn.Linear(C, 1)})
        for head in self.heads.values():  # tinybert.nn.Linear's initialisation
            torch.nn.init.normal_(head.weight, std=0.02)
            torch.nn.init.zeros_(head.bias)

    def forward(self, task, segment):
        """sst: (B, 5) logits; para: (B,) logits; sts: (B,) 0-5 regression. ``segment``: the
        (B, T) int64 tensors input_ids, attention_mask, token_type_ids."""
        hidden = self.bert(**segment).last_hidden_state                           # (B, T, C)
        mask = segment["attention_mask"].unsqueeze(-1).to(hidden.dtype)           # (B, T, 1)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)      # (B, C), as F.masked_mean
        output = self.heads[task](self.dropout(pooled))
        return output if task == "sst" else output.squeeze(-1)

    @staticmethod
    def loss(task, output, labels):
        if task == "sst":
            return torch.nn.functional.cross_entropy(output, labels)
        if task == "para":
            return torch.nn.functional.binary_cross_entropy_with_logits(output, labels)
        return torch.nn.functional.mse_loss(output, labels)

    @staticmethod
    def predictions(task, output):
        """What tinybert.run.evaluation.predict gives: a class, 0/1, or the 0-5 regression as it is."""
        values = output.numpy()
        if task == "sst":
            return values.argmax(axis=-1)
        if task == "para":
            return (values > 0).astype(np.int64)
        return values


def as_tensors(batch):
    """A TaskBatch's one segment and labels as torch tensors."""
    (segment,) = batch.segments
    return {name: torch.from_numpy(array) for name, array in segment.items()}, torch.from_numpy(batch.labels)


# ---------------------------------------------------------------- training and evaluation
def train_step(model, optimizer, batches):
    """One step on ``{task: [TaskBatch, ...]}``: the gradient of the sum of every batch loss
    (each backward adds into .grad), then one AdamW update. Returns each task's mean loss."""
    losses = {}
    for task, task_batches in batches.items():
        total = 0.0
        for batch in task_batches:
            segment, labels = as_tensors(batch)
            loss = model.loss(task, model(task, segment), labels)
            loss.backward()
            total += loss.item()
        losses[f"loss_{task}"] = total / len(task_batches)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return losses


def evaluate(model, dev_sets, tokenizer, args):
    """{task: dev metric}, computed as train.py computes it (tinybert.run.evaluation's predict and metric)."""
    model.eval()
    scores = {}
    with torch.no_grad():
        for task, examples in dev_sets.items():
            ids, predictions = [], []
            for chunk in make_batches(examples, args.eval_batch_size):
                batch = encode_batch(task, chunk, tokenizer, args.max_len, cos=False)
                segment, _ = as_tensors(batch)
                ids += batch.ids
                predictions.append(model.predictions(task, model(task, segment)))
            scores[task] = metric(task, examples, ids, np.concatenate(predictions))
    model.train()
    return scores


def machine():
    return {**describe(), "torch": torch.__version__,
            "transformers": transformers.__version__, "torch_threads": torch.get_num_threads()}


def next_mark(seconds, every):
    """The first multiple of ``every`` after ``seconds``: when the next evaluation (or progress line) is due."""
    return (math.floor(seconds / every) + 1) * every


def run(args, clock=time.perf_counter):
    """Train for the budget, evaluating on the way; return the final dev scores. ``clock()``
    (seconds) times the steps and evaluations (a test gives one that ticks as it likes)."""
    # a folder that holds a run (the peer's, or train.py's: they share these names) is only
    # replaced with --overwrite (the peer has no --resume)
    check_run_folder(args.out, None, args.overwrite, RUN_ENTRIES)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if not os.path.isdir(args.weights):
        raise FileNotFoundError(f"{args.weights}: weights folder not found (run `make weights`, or pass --weights)")
    tokenizer = Tokenizer.from_folder(args.weights)
    paths = {task: [os.path.join(args.data_dir, name) for name in names] for task, names in TASK_FILES.items()}
    train_sets = {task: load_task(task, paths[task][0]) for task in TASKS}
    dev_sets = {task: load_task(task, paths[task][1]) for task in TASKS}
    streams = {task: BatchStream(TASKS.index(task), train_sets[task], args.batch_size, args.seed) for task in TASKS}
    per_step = {task: getattr(args, f"{task}_batches_per_step") for task in TASKS}
    steps_per_epoch = default_steps_per_epoch(streams, per_step)

    model = PeerModel(load_encoder(args.weights))
    if args.max_len > model.bert.config.max_position_embeddings:
        raise ValueError(f"--max_len {args.max_len} exceeds the {model.bert.config.max_position_embeddings} "
                         f"positions of {args.weights}")
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    clear_run_folder(args.out, RUN_ENTRIES)  # --overwrite: no file of the previous run is left beside this one's
    os.makedirs(args.out, exist_ok=True)
    files.write_text(os.path.join(args.out, "args.json"), json.dumps(vars(args), indent=2))
    files.write_text(os.path.join(args.out, "machine.json"), json.dumps(machine(), indent=2))
    if args.steps:
        budget, every, spent = args.steps, args.eval_every_steps, lambda: step
    else:
        budget, every, spent = 60 * args.minutes, 60 * args.eval_every_minutes, lambda: trained
    trained, step, next_eval, next_progress = 0.0, 0, every, PROGRESS_SECONDS
    with open(os.path.join(args.out, "metrics.jsonl"), "w", encoding="utf-8") as log:
        def log_evaluation():
            started = clock()
            scores = evaluate(model, dev_sets, tokenizer, args)
            record = {"type": "eval", "step": step, "epoch": round(step / steps_per_epoch, 3),
                      **{f"dev_{task}": value for task, value in scores.items()},
                      "dev_mean": sum(scores.values()) / len(scores), "minutes": round(trained / 60, 3),
                      "eval_seconds": round(clock() - started, 2)}
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(f"peer: {trained / 60:.1f} training minutes, step {step}: "
                  + "  ".join(f"dev_{task} {value:.4f}" for task, value in scores.items()), file=sys.stderr)
            return scores

        while spent() < budget:
            started, cpu_started = clock(), cpu_clock()
            batches = {task: [encode_batch(task, streams[task].batch(step * per_step[task] + k), tokenizer,
                                           args.max_len, cos=False) for k in range(per_step[task])]
                       for task in TASKS}
            losses = train_step(model, optimizer, batches)
            seconds, steal = clock() - started, steal_fraction(cpu_started, cpu_clock())
            trained += less_steal(seconds, steal) if args.budget_less_steal else seconds
            step += 1
            log.write(json.dumps({"type": "step", "step": step, "epoch": (step - 1) // steps_per_epoch + 1,
                                  "lr": args.lr, **losses, "step_seconds": round(seconds, 3),
                                  "seconds": round(trained, 2), "cpu_steal": steal}) + "\n")
            log.flush()
            if trained >= next_progress:
                next_progress = next_mark(trained, PROGRESS_SECONDS)
                where = (f"{trained / 60:.1f} training minutes, step {step}/{budget}" if args.steps
                         else f"{trained / 60:.1f}/{budget / 60:g} training minutes, step {step}")
                print(f"peer: {where}, " + " ".join(f"{key} {value:.3f}" for key, value in losses.items()), file=sys.stderr)
            if next_eval <= spent() < budget:  # the budget's end has its own evaluation below
                log_evaluation()
                next_eval = next_mark(spent(), every)
        scores = log_evaluation()
    files.write_text(os.path.join(args.out, "dev_metrics.json"), json.dumps(scores, indent=2))
    return scores


def main(argv=None):
    args = parse_args(argv)
    try:
        scores = run(args)
    except (FileNotFoundError, ValueError, KeyError) as error:
        sys.exit(f"peer: {error.args[0] if isinstance(error, KeyError) else error}")
    print("peer dev: " + "  ".join(f"{task} {value:.4f}" for task, value in scores.items()))


if __name__ == "__main__":
    main()
