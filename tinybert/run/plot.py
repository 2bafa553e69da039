"""Draw the curves of a training run from its metrics.jsonl.

    python -m tinybert.run.plot runs/all                   # writes runs/all/curves.png
    python -m tinybert.run.plot runs/all --out curves.png

Panels (each only when the run logged it): the training loss of each task (log scale, so a
loss of 0.02 shows beside one of 1.6); the dev metric of each task at each evaluation, every
point labelled with its value (accuracy for sst and para, Pearson correlation for sts); the
pairwise cosines of the raw task gradients; the conflict fraction, one marker per step at its
discrete values (0, 1/3, 2/3, 1 with three tasks), each value's count of steps on its tick;
each task's encoder-gradient norm; with SMART, one panel per task with its loss, R_s and D_Breg
(log scale, zeros left out), and the perturbation: mean per-example ||delta||_inf and the
fraction of its entries at the eps bound; the learning rate.

Every curve is drawn raw, one point per step; over a noisy one, a moving average in the same
colour whose legend entry names its window ("mean of N steps"). Legends sit below their panels,
off the curves.

Needs matplotlib (``pip install matplotlib``), imported only when drawing.
"""
import argparse
import fractions
import json
import math
import os
import sys

import numpy as np

from ..multitask import TASKS
from . import files

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")   # matplotlib's first six


def read_metrics(path):
    """(step records, eval records) of a metrics.jsonl. A resumed run appends to the same
    file, so a step logged twice keeps its latest record. A line that is not a JSON object,
    or a record without a whole-number "step" (an evaluation: without "epoch"), is a
    ValueError naming the file and the line; a half-written last line is left out."""
    steps, evals = {}, {}
    for number, record, _ in files.read_jsonl(path):
        kind = "step" if record.get("type") == "step" else "eval"
        for key in ("step",) if kind == "step" else ("step", "epoch"):
            if key not in record:
                raise ValueError(f'{path}, line {number}: no "{key}" in this {kind} record')
            value = record[key]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f'{path}, line {number}: "{key}" is not a number ({value!r})')
        (steps if kind == "step" else evals)[record["step"]] = record
    return [steps[s] for s in sorted(steps)], [evals[s] for s in sorted(evals)]


def moving_average(values, window):
    """Mean of the last ``window`` values at each point (fewer at the start), so the curve
    keeps its length and starts at the first value."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or values.size == 0:
        return values
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    index = np.arange(1, values.size + 1)
    start = np.maximum(index - window, 0)
    return (cumulative[index] - cumulative[start]) / (index - start)


def series(records, key):
    """(steps, values) of the records that have ``key`` with a finite value."""
    pairs = [(r["step"], r[key]) for r in records
             if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return [s for s, _ in pairs], [v for _, v in pairs]


def keys_with_prefix(records, prefix):
    """Every key starting with ``prefix`` in any record, in first-seen order."""
    seen = {}
    for record in records:
        for key in record:
            if key.startswith(prefix):
                seen.setdefault(key, None)
    return list(seen)


def plot_run(run_dir, out=None, window=None, dpi=100):
    """Draw RUN_DIR/metrics.jsonl to ``out`` (default RUN_DIR/curves.png); returns the path."""
    plt = pyplot()
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no metrics here (is {run_dir} a training run folder?)")
    steps, evals = read_metrics(path)
    if not steps:
        raise ValueError(f"{path}: no step records to plot")
    out = out or os.path.join(run_dir, "curves.png")
    figure = draw_run(steps, evals, os.path.basename(os.path.normpath(run_dir)), window)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    figure.savefig(out, dpi=dpi, metadata={"Software": None})
    plt.close(figure)
    return out


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display needed)."""
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("plotting needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def draw_run(steps, evals, title, window=None):
    """The figure of a run's step and eval records (``read_metrics``), one panel per kind of
    value logged. ``window``: the moving average drawn over noisy curves (default: 1/50 of the
    run's steps; 1 draws none)."""
    plt = pyplot()
    window = window or max(1, len(steps) // 50)
    panels = [("training loss (log scale)",
               lambda ax: curves(ax, steps, [f"loss_{t}" for t in TASKS], window, log_scale=True))]
    panels.append(("dev metric (acc: sst, para; Pearson: sts)", lambda ax: dev_points(ax, evals)))
    cosine_keys = keys_with_prefix(steps, "cos_")
    if cosine_keys:
        panels.append(("raw pairwise cosines of the task gradients",
                       lambda ax: curves(ax, steps, cosine_keys, window, zero_line=True)))
    if keys_with_prefix(steps, "conflict_fraction"):
        panels.append(("conflict fraction: share of task pairs with g_a . g_b < 0",
                       lambda ax: levels(ax, steps, "conflict_fraction")))
    norm_keys = keys_with_prefix(steps, "encoder_grad_norm_")
    if norm_keys:
        panels.append(("each task's encoder-gradient norm (before PCGrad)",
                       lambda ax: curves(ax, steps, norm_keys, window)))
    for task in TASKS:
        if keys_with_prefix(steps, f"smart_{task}") or keys_with_prefix(steps, f"bregman_{task}"):
            keys = [f"loss_{task}", f"smart_{task}", f"bregman_{task}"]
            panels.append((f"{task}: loss, SMART's R_s (smart_) and D_Breg (bregman_), log scale",
                           lambda ax, keys=keys: curves(ax, steps, keys, window, log_scale=True)))
    delta_keys = keys_with_prefix(steps, "delta_linf_") + keys_with_prefix(steps, "delta_at_eps_")
    if delta_keys:
        panels.append(("SMART's delta: mean per-example inf-norm, fraction at eps (log scale)",
                       lambda ax: curves(ax, steps, delta_keys, window, log_scale=True)))
    panels.append(("learning rate", lambda ax: curves(ax, steps, ["lr"], 1)))

    columns = 2
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(6.5 * columns, 4.2 * rows), squeeze=False,
                                layout="constrained")      # makes room for the legends below the panels
    for ax, (panel_title, draw) in zip(axes.flat, panels):
        draw(ax)
        ax.set_title(panel_title, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    figure.suptitle(title)
    return figure


def curves(ax, records, keys, window, zero_line=False, log_scale=False):
    """Each key's values against the step, raw; with ``window`` > 1, their moving average over
    it in the same colour, labelled with the window. Log scale: zeros and negatives left out."""
    drawn = []
    for color, key in zip(COLORS, keys):
        x, y = series(records, key)
        if log_scale:  # a zero (D_Breg at step 1) has no place on a log axis: that point is left out
            x, y = [s for s, v in zip(x, y) if v > 0], [v for v in y if v > 0]
        if not x:
            continue
        if window > 1:
            ax.plot(x, y, color=tint(color), linewidth=0.7, label=key)
            ax.plot(x, moving_average(y, window), color=color, linewidth=1.6, label=f"{key}, mean of {window} steps")
        else:
            ax.plot(x, y, color=color, linewidth=1.2, label=key)
        drawn.append(key)
    if zero_line:
        ax.axhline(0.0, color="gray", linewidth=0.8)
    if log_scale and drawn:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    if drawn:
        legend_below(ax, columns=2 if window > 1 else 3)
    else:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    return drawn


def levels(ax, records, key):
    """A value that takes a few discrete values (the conflict fraction: k / pairs): one marker
    per step, no line between them, and each value's tick labelled with its count of steps."""
    x, y = series(records, key)
    if not x:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        return {}
    values, counts = np.unique(np.round(y, 9), return_counts=True)
    ax.plot(x, y, linestyle="none", marker="o", markersize=2.5, color=COLORS[0])
    ax.set_yticks(values, [f"{fractions.Fraction(v).limit_denominator(12)}: {n} steps" for v, n in zip(values, counts)])
    ax.set_ylim(-0.1, 1.1)
    ax.set_xlabel("step")
    return dict(zip(values.tolist(), counts.tolist()))


def dev_points(ax, evals):
    """Each task's dev metric at each evaluation (by epoch), a marker labelled with its value,
    so that a run with one evaluation still reads."""
    drawn = False
    epochs = []
    for color, task in zip(COLORS, TASKS):
        x, y = series([{**r, "step": r["epoch"]} for r in evals], f"dev_{task}")
        if not x:
            continue
        ax.plot(x, y, marker="o", color=color, label=f"dev_{task}")
        for epoch, value in zip(x, y):
            ax.annotate(f"{value:.3f}", (epoch, value), xytext=(7, 0), textcoords="offset points",
                        va="center", fontsize=8, color=color)
        epochs += x
        drawn = True
    ax.set_xlabel("epoch")
    if drawn:
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)     # room for the labels, even with one epoch
        ax.set_xticks(sorted(set(epochs)))
        legend_below(ax, columns=3)
    else:
        ax.text(0.5, 0.5, "no evaluation yet", ha="center", va="center", transform=ax.transAxes)


def tint(color, strength=0.45):
    """``color`` ("#rrggbb") mixed with white: a raw curve under its moving average. Opaque
    rather than transparent, so that a PNG of hundreds of crossings keeps few distinct colours
    and stays small."""
    rgb = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    return tuple(strength * rgb + (1 - strength))


def legend_below(ax, columns):
    """The panel's legend under its x-axis label, where it covers no curve."""
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=columns, frameon=False)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinybert.run.plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a training run folder (holding metrics.jsonl)")
    parser.add_argument("--out", default=None, help="the PNG to write (default RUN_DIR/curves.png)")
    parser.add_argument("--window", type=int, default=None,
                        help="moving-average window in steps (default: 1/50 of the run)")
    args = parser.parse_args(argv)
    try:
        out = plot_run(args.run_dir, args.out, args.window)
    except (OSError, ValueError, RuntimeError) as error:
        sys.exit(f"plot: {error}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
