"""Train one BERT encoder on SST-5 sentiment, Quora paraphrase and STS-B similarity at once.

    python train.py --task all --pcgrad --smart --cos          # the full recipe, data from $DATA_DIR
    python train.py --task sst --epochs 1                      # one task alone
    python train.py --task all --cos --data_dir tinybert/sample_data --epochs 3 --max_len 32   # make demo
    python train.py ... --resume                               # continue runs/NAME/last
    python -m tinybert.run.plot runs/all                       # draw the curves of a run

A step takes ``--TASK_batches_per_step`` batches of each task (1, 2 and 1: roughly the sizes of
the training sets, 8,544 / 16,214 / 6,040 examples); each task cycles through its own training
set, reshuffled and bucketed by length on every pass. An epoch is the fewest steps that pass
once over every training set (267 with --task all); --epochs may end in a fraction. The dev
sets are evaluated after each epoch and at the last step; the best evaluation (mean of the task
metrics) is kept in best/ and becomes model/ (``python -m tinybert.run.predict RUN``).

The loss of a batch is its task loss, plus SMART's lambda_s R_s + mu D_Breg with --smart (on the
--smart_tasks, one step in --smart_every), times --TASK_loss_weight. With --pcgrad the
encoder's gradient is each task's gradient projected off the others' where they conflict,
summed; the heads keep their own task's gradient and learn --head_lr_factor times faster. The
defaults (RECIPE) are the recipe that beat a plain PyTorch fine-tune's 60 minutes on the same
machine (docs/12-results.md). The run folder and what it holds: tinybert/run/session.py.
"""
import argparse
import math
import os
import sys

import numpy as np

from tinybert import backend, pcgrad
from tinybert.convert import load_pretrained
from tinybert.data import TASK_FILES, BatchStream, default_data_dir, default_steps_per_epoch, load_task
from tinybert.multitask import TASKS, MultitaskBert, encode_batch
from tinybert.optim import AdamW, clip_grad_norm, linear_warmup_decay
from tinybert.run.flags import within
from tinybert.run import files
from tinybert.run.session import TrainingDiverged, TrainingRun, load_test_sets, what_is_kept
from tinybert.smart import VARIANTS, ProximalPoint, SmartConfig, smoothness_loss

BATCHES_PER_STEP = {"sst": 1, "para": 2, "sts": 1}  # ~ the training sets' sizes
# The recipe that beat the PyTorch peer's 60 minutes on the same machine (docs/12-results.md;
# its run: docs/results/recipe_p15).
RECIPE = {"epochs": 1.9, "head_lr_factor": 30.0, "smart_tasks": ["sts"],
          "sst_loss_weight": 1.5, "para_loss_weight": 1.5, "sts_loss_weight": 2.0}
# The allowed values of SMART's numeric settings (--smart_NAME).
SMART_RANGES = {"sigma": "[0, inf)", "epsilon": "(0, inf)", "eta": "(0, inf)", "steps": "[1, inf)",
                "lambda_s": "[0, inf)", "mu": "[0, inf)", "beta": "[0, 1)", "beta_early": "[0, 1)",
                "beta_early_fraction": "[0, 1]", "every": "[1, inf)"}


SMART_HELP = {"variant": "Algorithm 1 or the authors' released code", "sigma": "std of the start noise",
              "epsilon": "radius of the perturbation's infinity-norm ball", "eta": "ascent step size",
              "steps": "ascent steps T_x", "lambda_s": "weight of R_s", "mu": "weight of D_Breg",
              "beta": "theta~'s decay", "beta_early": "theta~'s decay early on",
              "beta_early_fraction": "fraction of the updates that are early", "every": "SMART on one step in this many"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], usage="%(prog)s [--task T] [--pcgrad] "
                                "[--smart] [--cos] [options]", formatter_class=lambda prog:
                                argparse.ArgumentDefaultsHelpFormatter(prog, max_help_position=34, width=100))
    p.add_argument("--task", choices=["sst", "para", "sts", "all"], default="all")
    p.add_argument("--pcgrad", action="store_true", help="project conflicting task gradients (PCGrad)")
    p.add_argument("--smart", action="store_true", help="SMART adversarial + Bregman regularisation")
    p.add_argument("--cos", action="store_true", help="STS as a bi-encoder with a cosine-similarity loss")
    p.add_argument("--epochs", type=within("(0, inf)"), default=RECIPE["epochs"], help="may end in a fraction")
    p.add_argument("--steps_per_epoch", type=within("[1, inf)", int), default=None,
                   help="default: the fewest steps that pass over every training set")
    for task, count in BATCHES_PER_STEP.items():
        p.add_argument(f"--{task}_batches_per_step", type=within("[1, inf)", int), default=count, metavar="N",
                       help=f"{task} batches in each step")
        p.add_argument(f"--{task}_loss_weight", type=within("(0, inf)"), default=RECIPE[f"{task}_loss_weight"],
                       metavar="W", help=f"multiplies each {task} batch's loss")
    p.add_argument("--lr", type=within("(0, inf)"), default=1e-4, help="peak learning rate (the encoder's)")
    p.add_argument("--head_lr_factor", type=within("(0, inf)"), default=RECIPE["head_lr_factor"],
                   help="the task heads' learning rate as a multiple of the encoder's")
    p.add_argument("--warmup", type=within("[0, 1)"), default=0.06, help="fraction of all steps spent warming up")
    p.add_argument("--weight_decay", type=within("[0, inf)"), default=0.01, help="AdamW's, not on biases and norms")
    p.add_argument("--clip", type=within("(0, inf)"), default=1.0, help="global gradient-norm clip")
    p.add_argument("--batch_size", type=within("[1, inf)", int), default=32, help="per task and step")
    p.add_argument("--hidden_dropout_prob", type=within("[0, 1)"), default=0.1, help="dropout before the task heads")
    p.add_argument("--max_len", type=within("[4, inf)", int), default=128, help="tokens a segment keeps")  # 4: [CLS] a [SEP] b [SEP]
    p.add_argument("--seed", type=within("[0, inf)", int), default=11711, help="the initialisation, batches and dropout")
    p.add_argument("--weights", default="weights/all-MiniLM-L6-v2", help="a converted (or Hugging Face) BERT folder")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda: CuPy on a GPU")
    p.add_argument("--out", default=None, help="run folder (default runs/TASK)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in OUT (else refused)")
    p.add_argument("--max_loss_factor", type=within("(1, inf)"), default=100.0,
                   help="stop when a task's loss exceeds this times its first value: the training diverged")
    p.add_argument("--data_dir", default=default_data_dir(), help="folder of the CS224N files ($DATA_DIR)")
    p.add_argument("--eval_batch_size", type=within("[1, inf)", int), default=64, help="examples a batch at evaluation")
    p.add_argument("--no_test_predictions", action="store_true", help="score the dev sets only")
    p.add_argument("--save_every_minutes", type=within("[0, inf)"), default=15.0, help="also save OUT/last this often")
    smart = p.add_argument_group("SMART (with --smart; chapter 10)")
    smart.add_argument("--smart_tasks", nargs="+", choices=TASKS, default=RECIPE["smart_tasks"],
                       help="the tasks whose batches get SMART's two terms")
    for name, field in SmartConfig.__dataclass_fields__.items():
        if name != "tasks":
            kind = {"choices": VARIANTS} if name == "variant" else {"type": within(SMART_RANGES[name], type(field.default))}
            smart.add_argument(f"--smart_{name}", default=field.default, metavar="X", help=SMART_HELP[name], **kind)
    data = p.add_argument_group("data and prediction files", "--TASK_train, --TASK_dev, --TASK_test (default: "
                                "DATA_DIR/ the CS224N names), --TASK_dev_out, --TASK_test_out (default: "
                                "OUT/predictions/TASK-dev-output.csv ...), TASK one of sst, para, sts")
    for task in TASKS:
        for split in ("train", "dev", "test", "dev_out", "test_out"):
            data.add_argument(f"--{task}_{split}", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.resume and args.overwrite:
        p.error("--resume continues the run in OUT, --overwrite replaces it: pass one of them")
    args.smart_tasks = [task for task in TASKS if task in args.smart_tasks]  # one spelling per set of tasks
    args.out = args.out or os.path.join("runs", args.task)
    for task in TASKS:
        for split, name in zip(("train", "dev", "test"), TASK_FILES[task]):
            if getattr(args, f"{task}_{split}") is None:
                setattr(args, f"{task}_{split}", os.path.join(args.data_dir, name))
            if split != "train" and getattr(args, f"{task}_{split}_out") is None:
                setattr(args, f"{task}_{split}_out", os.path.join(args.out, "predictions", f"{task}-{split}-output.csv"))
    return args


def task_step(model, batch, smart_config, proximal):
    """Forward one task batch, return (total loss Tensor, logged values).

    SMART's terms are added only when the batch's task is one of ``smart_config.tasks``. Two
    snapshots of the random generator let SMART's extra forwards replay the clean forward's
    dropout masks: the averaged model's whole forward replays the first (taken before the
    embedding layer), the perturbed forwards, which start from the embedding output, the second."""
    if smart_config is not None and batch.task not in smart_config.tasks:
        smart_config = None
    whole_forward_rng = backend.snapshot_rng() if smart_config is not None else None
    embedded = model.embed(batch)
    encoder_rng = backend.snapshot_rng() if smart_config is not None else None
    output = model.head_output(batch, embedded)
    loss = model.loss(batch, output)
    logged = {f"loss_{batch.task}": loss.item()}
    total = loss
    # a term whose weight is 0 is not computed at all: the ablation's one-term rows cost only what they use
    if smart_config is not None and smart_config.lambda_s > 0:
        stats = {}
        smoothness = smoothness_loss(model, batch, embedded, output, smart_config, encoder_rng, stats)
        total = total + smoothness * smart_config.lambda_s
        logged[f"smart_{batch.task}"] = smoothness.item()
        logged.update({f"{key}_{batch.task}": value for key, value in stats.items()})
    if smart_config is not None and smart_config.mu > 0:
        bregman = proximal.bregman_loss(model, batch, output, whole_forward_rng)
        total = total + bregman * smart_config.mu
        logged[f"bregman_{batch.task}"] = bregman.item()
    return total, logged


def step_gradients(model, batches, args, smart_config, proximal, pcgrad_rng, check_loss):
    """Backward one step's batches, ``{task: [TaskBatch, ...]}``, into the parameters' ``.grad``;
    return the step's logged values (each task's mean loss and SMART terms over its batches).

    Each batch's backward starts from its total loss times --TASK_loss_weight, and a task's
    batch gradients add up in ``.grad``. With several tasks, each task's encoder gradient g_t is
    set aside before the next task's backward, and the encoder then receives sum_t g_t' (with
    --pcgrad: PCGrad's projections, else g_t' = g_t); a head only ever receives its own task's
    gradient. ``check_loss(task, value)`` sees each batch's loss before its backward (and may raise)."""
    shared = shared_parameters(model)
    record, task_gradients = {}, []
    for task, task_batches in batches.items():
        sums = {}
        for batch in task_batches:
            loss, logged = task_step(model, batch, smart_config, proximal)
            check_loss(task, loss.item())
            for key, value in logged.items():
                sums[key] = sums.get(key, 0.0) + value
            (loss * getattr(args, f"{task}_loss_weight")).backward()
        record.update({key: value / len(task_batches) for key, value in sums.items()})
        if len(batches) > 1:  # set this task's encoder gradient aside
            task_gradients.append([p.grad for p in shared])
            for p in shared:
                p.grad = None
    if task_gradients:
        flat = pcgrad.apply_pcgrad(shared, task_gradients, pcgrad_rng, project_conflicts=args.pcgrad)
        record.update(pcgrad.conflict_stats(flat, batches))
        record.update({f"encoder_grad_norm_{task}": float(backend.xp.linalg.norm(g)) for task, g in zip(batches, flat)})
    return record


def shared_parameters(model):
    """The encoder's parameters, which every task's gradient reaches (PCGrad's surgery is on these only)."""
    return [p for name, p in model.named_parameters() if name.startswith("bert.")]


def parameter_groups(model, weight_decay, head_lr_factor=1.0):
    """AdamW's param groups: no weight decay on biases and LayerNorm parameters (the usual
    BERT recipe), and the task heads (every parameter outside ``model.bert``) at
    lr_heads = head_lr_factor * lr(step), the encoder at lr(step) (AdamW's "lr_scale")."""
    groups = {(is_head, decays): [] for is_head in (False, True) for decays in (True, False)}
    for name, p in model.named_parameters():
        is_head, decays = not name.startswith("bert."), p.ndim != 1  # 1-D: a bias, a LayerNorm gain or shift
        groups[(is_head, decays)].append(p)
    return [{"params": params, "weight_decay": weight_decay if decays else 0.0,
             "lr_scale": head_lr_factor if is_head else 1.0}
            for (is_head, decays), params in groups.items()]


def train(args):
    """Train as the flags say; return the final state (with "interrupted": the signal's
    number when Ctrl-C or SIGTERM stopped it, last/ saved)."""
    tasks = list(TASKS) if args.task == "all" else [args.task]
    run = TrainingRun(args, tasks)  # a run folder or output path it must not use is refused now
    try:
        backend.use_device(args.device)
    except RuntimeError as error:
        raise ValueError(f"--device {args.device}: {error}") from None
    backend.seed(args.seed)
    from tinybert.tokenizer import Tokenizer
    if not os.path.isdir(args.weights):
        raise FileNotFoundError(f"{args.weights}: weights folder not found (run `make weights`, or pass --weights)")
    tokenizer = Tokenizer.from_folder(args.weights)
    train_sets = {t: load_task(t, getattr(args, f"{t}_train")) for t in tasks}
    dev_sets = {t: load_task(t, getattr(args, f"{t}_dev")) for t in tasks}
    test_sets = load_test_sets(args, tasks)  # a bad test file fails now, not after the training
    streams = {t: BatchStream(TASKS.index(t), train_sets[t], args.batch_size, args.seed) for t in tasks}
    per_step = {t: getattr(args, f"{t}_batches_per_step") for t in tasks}
    args.steps_per_epoch = args.steps_per_epoch or default_steps_per_epoch(streams, per_step)
    total_steps = math.ceil(round(args.epochs * args.steps_per_epoch, 6))  # round: 1.5 * 267 is not exact

    model = MultitaskBert(load_pretrained(args.weights), args.hidden_dropout_prob, args.cos)
    if args.max_len > model.bert.config.max_position_embeddings:
        raise ValueError(f"--max_len {args.max_len} exceeds the {model.bert.config.max_position_embeddings} "
                         f"positions of {args.weights}")
    model.train()
    optimizer = AdamW(parameter_groups(model, args.weight_decay, args.head_lr_factor), lr=args.lr)
    smart_config = SmartConfig(**{k: getattr(args, f"smart_{k}") for k in SmartConfig.__dataclass_fields__}) if args.smart else None
    proximal = ProximalPoint(model, smart_config.beta) if args.smart else None
    pcgrad_rng = np.random.default_rng([args.seed, 99])

    with run.start(model, optimizer, proximal, pcgrad_rng, tokenizer, dev_sets, total_steps):
        for step, record in run.steps():
            optimizer.lr = record["lr"] = linear_warmup_decay(step, total_steps, int(args.warmup * total_steps), args.lr)
            batches = {task: [encode_batch(task, streams[task].batch(step * per_step[task] + k), tokenizer,
                                           args.max_len, args.cos) for k in range(per_step[task])]
                       for task in tasks}
            # forward, SMART's terms and backward per task; PCGrad on the encoder's task gradients
            step_smart = smart_config if smart_config is not None and step % smart_config.every == 0 else None
            record.update(step_gradients(model, batches, args, step_smart, proximal, pcgrad_rng, run.check_loss))
            record["grad_norm"] = clip_grad_norm(model.parameters(), args.clip)
            run.check_grad_norm(record["grad_norm"])  # a NaN update would reach the next checkpoint
            optimizer.step()
            optimizer.zero_grad()
            if proximal is not None:  # SMART's theta~ follows the parameters
                proximal.update(model, smart_config.beta_at(step, total_steps))
    return run.finish(test_sets)


def main(argv=None):
    args = parse_args(argv)
    try:
        state = train(args)
    except (TrainingDiverged, FileNotFoundError, ValueError, KeyError) as error:
        sys.exit(f"train.py: {error.args[0] if isinstance(error, KeyError) else error}")
    except OSError as error:  # a full disk: the atomic writes kept every file whole
        if not files.is_disk_full(error):
            raise
        kept = what_is_kept(args.out)
        then = "continue with --resume" if kept.endswith("is kept") else "run again with --overwrite"
        sys.exit(f"train.py: {error.filename or args.out}: no space left on device; {kept} "
                 f"(free some space, then {then})")
    if "interrupted" in state:  # what a shell reports for a process stopped by that signal
        sys.exit(128 + state["interrupted"])


if __name__ == "__main__":
    main()
