"""Draw the curves of a training run from its metrics.jsonl.

    python -m tinybert.plot runs/all                   # writes runs/all/curves.png
    python -m tinybert.plot runs/all --out curves.png

Panels (each only when the run logged it): the training loss of each task; the dev metric
of each task per epoch (accuracy for sst and para, Pearson correlation for sts); the
pairwise cosines of the raw task gradients and the conflict fraction; each task's
encoder-gradient norm; with SMART, one panel per task with its loss, R_s and D_Breg side by
side (raw, log scale, zeros left out), and the perturbation: mean per-example ||delta||_inf and the fraction
of its entries at the eps bound; the learning rate. A curve smoothed by a moving average says
so in its legend ("mean of N steps"); the SMART panels are drawn raw.

Needs matplotlib (``pip install matplotlib``), imported only when drawing.
"""
import argparse
import json
import math
import os
import sys

import numpy as np

TASKS = ("sst", "para", "sts")


def read_metrics(path):
    """(step records, eval records) of a metrics.jsonl. A resumed run appends to the same
    file, so a step logged twice keeps its latest record."""
    steps, evals = {}, {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not JSON ({error})") from None
            (steps if record.get("type") == "step" else evals)[record["step"]] = record
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
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("plotting needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no metrics here (is {run_dir} a training run folder?)")
    steps, evals = read_metrics(path)
    if not steps:
        raise ValueError(f"{path}: no step records to plot")
    out = out or os.path.join(run_dir, "curves.png")
    window = window or max(1, len(steps) // 50)

    panels = [("training loss", lambda ax: _lines(ax, steps, [f"loss_{t}" for t in TASKS], window))]
    panels.append(("dev metric (acc: sst, para; Pearson: sts)", lambda ax: _dev(ax, evals)))
    gradient_keys = keys_with_prefix(steps, "cos_") + keys_with_prefix(steps, "conflict_fraction")
    if gradient_keys:
        panels.append(("task gradients: raw pairwise cosines, conflict fraction",
                       lambda ax: _lines(ax, steps, gradient_keys, window, zero_line=True)))
    norm_keys = keys_with_prefix(steps, "encoder_grad_norm_")
    if norm_keys:
        panels.append(("each task's encoder-gradient norm (before PCGrad)",
                       lambda ax: _lines(ax, steps, norm_keys, window)))
    for task in TASKS:
        if keys_with_prefix(steps, f"smart_{task}") or keys_with_prefix(steps, f"bregman_{task}"):
            keys = [f"loss_{task}", f"smart_{task}", f"bregman_{task}"]
            panels.append((f"{task}: loss, SMART's R_s (smart_) and D_Breg (bregman_)",
                           lambda ax, keys=keys: _lines(ax, steps, keys, 1, log_scale=True)))
    delta_keys = keys_with_prefix(steps, "delta_linf_") + keys_with_prefix(steps, "delta_at_eps_")
    if delta_keys:
        panels.append(("SMART's delta: mean per-example inf-norm, fraction at eps",
                       lambda ax: _lines(ax, steps, delta_keys, 1, log_scale=True)))
    panels.append(("learning rate", lambda ax: _lines(ax, steps, ["lr"], 1)))

    columns = 2
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.6 * rows), squeeze=False)
    for ax, (title, draw) in zip(axes.flat, panels):
        draw(ax)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    figure.suptitle(os.path.basename(os.path.normpath(run_dir)))
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    figure.savefig(out, dpi=dpi, metadata={"Software": None})
    plt.close(figure)
    return out


def _lines(ax, records, keys, window, zero_line=False, log_scale=False):
    drawn = False
    for key in keys:
        x, y = series(records, key)
        if log_scale:  # a zero (D_Breg at step 1) has no place on a log axis: that point is left out
            x, y = [s for s, v in zip(x, y) if v > 0], [v for v in y if v > 0]
        if not x:
            continue
        label = f"{key} (mean of {window} steps)" if window > 1 else key
        ax.plot(x, moving_average(y, window), label=label, linewidth=1.2)
        drawn = True
    if zero_line:
        ax.axhline(0.0, color="gray", linewidth=0.8)
    if log_scale and drawn:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)


def _dev(ax, evals):
    drawn = False
    for task in TASKS:
        x, y = series([{**r, "step": r["epoch"]} for r in evals], f"dev_{task}")
        if x:
            ax.plot(x, y, marker="o", label=f"dev_{task}")
            drawn = True
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no evaluation yet", ha="center", va="center", transform=ax.transAxes)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinybert.plot", description=__doc__.split("\n\n")[0])
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
