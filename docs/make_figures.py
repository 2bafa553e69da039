"""Draw the figures of the course into docs/figures/, from tinybert's own code.

    .venv/bin/python docs/make_figures.py            # all figures
    .venv/bin/python docs/make_figures.py gelu.png   # just the ones named

Every number in a figure is computed here by tinybert (the graph's values and gradients by
backward(), the finite-difference errors from tinybert's tanh and its backward, the PCGrad
vectors by tinybert.pcgrad, the schedule by tinybert.optim, the attention map and the token
strings from the real all-MiniLM-L6-v2 weights and tokenizer, the curves, gradient norms,
cosines and SMART's terms from the committed runs' metrics.jsonl, the ablation's bars from its
results.json), never typed in. A figure of a run draws "not logged" where the run predates a
key it needs. The three diagrams (an encoder layer, the three heads, cross- against
bi-encoder) label their boxes with sizes read from the model.
Run from the repository root; matplotlib (a dev dependency) draws with the Agg backend, so no
display is needed. Each figure is one function, registered in FIGURES under its file name: a
new figure is a new function and a new entry.
"""
import functools
import io
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the repository root, so tinybert imports from a checkout
from tinybert import Tensor, functional as F, ops, optim, pcgrad  # noqa: E402
from tinybert.run import plot  # noqa: E402
from tinybert.tensor import _topological_order  # noqa: E402
from tinybert.convert import load_pretrained  # noqa: E402

OUTPUT = os.path.join(HERE, "figures")      # tests/test_docs.py points this at a scratch folder
WEIGHTS = os.path.join("weights", "all-MiniLM-L6-v2")
SENTENCE = "The cat sat on the mat because it was tired."
PAIR = ("A man plays a guitar.", "A man is playing the guitar.")
FULL_RUN = os.path.join(HERE, "results", "full")
CONFIGURATION_RUNS = tuple(os.path.join(HERE, "results", name)                # chapter 12's table, bottom up
                           for name in ("plain", "cos", "pcgrad_cos", "full_189", "full"))
ABLATION = os.path.join(HERE, "results", "ablation_60steps", "results.json")
EQUAL_MINUTES_RUNS = tuple(os.path.join(HERE, "results", name)                # on the Intel Xeon
                           for name in ("peer_60min", "recipe_60min", "recipe_sst2", "recipe_w15"))
EQUAL_MINUTES_AMD_RUNS = tuple(os.path.join(HERE, "results", name)            # on the AMD EPYC
                               for name in ("peer_60min_amd", "recipe_w15_sts2", "recipe_p15"))
BLUE, ORANGE, GREEN, GREY, RED = "#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f", "#d62728"
TASK_COLORS = {"sst": BLUE, "para": ORANGE, "sts": GREEN}


def save(figure, name, dpi=90, colors=None):
    """PNG without a timestamp or version stamp, so redrawing unchanged code gives the same bytes.
    ``colors``: reduce the image to a palette of that many (median cut); for the curves of a
    run, whose hundreds of anti-aliased crossings would otherwise take several times the bytes."""
    path = os.path.join(OUTPUT, name)
    os.makedirs(OUTPUT, exist_ok=True)
    if colors is None:
        figure.savefig(path, dpi=dpi, metadata={"Software": None})
    else:
        from PIL import Image                                      # matplotlib's own dependency
        drawn = io.BytesIO()
        figure.savefig(drawn, format="png", dpi=dpi)
        Image.open(drawn).convert("RGB").quantize(colors, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    plt.close(figure)
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path) // 1024} KB)")


# ---------------------------------------------------------------- diagram pieces
def box(axes, center, text, color=BLUE, width=2.6, height=0.7, fontsize=9, fill="#ffffff"):
    """A rounded box with centred text; returns its (left, right, bottom, top) for arrows."""
    x, y = center
    axes.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.05",
                                  facecolor=fill, edgecolor=color, lw=1.5))
    axes.text(x, y, text, ha="center", va="center", fontsize=fontsize)
    return x - width / 2, x + width / 2, y - height / 2, y + height / 2


def link(axes, start, end, color="black", style="-", lw=1.2, text=None, fontsize=8.5):
    """An arrow from start to end, optionally labelled at its middle."""
    axes.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=11, color=color, lw=lw,
                                   linestyle=style, shrinkA=0, shrinkB=0))
    if text:
        axes.text((start[0] + end[0]) / 2 + 0.1, (start[1] + end[1]) / 2, text, fontsize=fontsize,
                  color=color, va="center")


def diagram_axes(axes, xlim, ylim, title):
    axes.set_xlim(*xlim)
    axes.set_ylim(*ylim)
    axes.set_aspect("equal")
    axes.axis("off")
    axes.set_title(title, fontsize=10)


def minilm_sizes():
    """(C, I, layers) of all-MiniLM-L6-v2, from its config.json."""
    from tinybert.model import BertConfig
    config = BertConfig.from_json(os.path.join(WEIGHTS, "config.json"))
    return config.hidden_size, config.intermediate_size, config.num_hidden_layers


# ---------------------------------------------------------------- a run's records
def run_steps(run):
    """The step records of a run folder's metrics.jsonl (tinybert.run.plot.read_metrics)."""
    return plot.read_metrics(os.path.join(run, "metrics.jsonl"))[0]


def run_args(run):
    """The train.py arguments a run folder recorded in its args.json."""
    with open(os.path.join(run, "args.json"), encoding="utf-8") as f:
        return json.load(f)


def run_label(run):
    """A run's folder name and the techniques it switched on, e.g. "full: --pcgrad --smart --cos"."""
    args = run_args(run)
    flags = " ".join(f"--{name}" for name in ("pcgrad", "smart", "cos") if args.get(name))
    return f"{os.path.basename(os.path.normpath(run))}: {flags or 'no technique'}"


def legend_below(axes, columns=3):
    """The legend under the x-axis label, off the points."""
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=columns, frameon=False)


# ---------------------------------------------------------------- chapter 1
def computation_graph():
    """y = tanh(w * x + b): each node with its op, value and gradient, laid out by depth."""
    x = Tensor(np.array(2.0), requires_grad=True)
    w = Tensor(np.array(-0.75), requires_grad=True)
    b = Tensor(np.array(1.0), requires_grad=True)
    y = ops.tanh(w * x + b)
    y.backward(retain_graph=True)
    gradients = {id(y): 1.0}                        # interior gradients are not kept: recompute them
    names = {id(x): "x", id(w): "w", id(b): "b", id(y): "y"}
    order = _topological_order(y)
    for node in reversed(order):
        if node._backward is not None:
            for parent, grad in zip(node._parents, node._backward(np.array(gradients[id(node)]))):
                gradients[id(parent)] = gradients.get(id(parent), 0.0) + float(grad)

    depth, row = {}, {}
    for node in order:                               # inputs before outputs
        depth[id(node)] = 1 + max((depth[id(p)] for p in node._parents), default=-1)
    leaves = [node for node in order if not node._parents]
    for i, leaf in enumerate(leaves):
        row[id(leaf)] = -1.3 * i
    for node in order:
        if node._parents:
            row[id(node)] = float(np.mean([row[id(p)] for p in node._parents]))

    figure, axes = plt.subplots(figsize=(8.4, 3.4))
    width, height = 1.55, 0.8
    for step, node in enumerate(order, start=1):
        cx, cy = 2.2 * depth[id(node)], row[id(node)]
        label = names.get(id(node), "") if not node._parents else f"{names.get(id(node), '')} {node.op}".strip()
        leaf = not node._parents
        axes.add_patch(FancyBboxPatch((cx - width / 2, cy - height / 2), width, height,
                                      boxstyle="round,pad=0.04", facecolor="#eef4fb" if leaf else "#fdf1e6",
                                      edgecolor=BLUE if leaf else ORANGE))
        axes.text(cx, cy + 0.17, label, ha="center", va="center", fontsize=10, weight="bold")
        axes.text(cx, cy - 0.05, f"value {float(node.data):+.3f}", ha="center", va="center", fontsize=8.5)
        axes.text(cx, cy - 0.25, f"grad {gradients[id(node)]:+.3f}", ha="center", va="center", fontsize=8.5, color="#b03a00")
        axes.text(cx - width / 2 + 0.02, cy + height / 2 - 0.02, str(step), ha="left", va="top", fontsize=7, color=GREY)
        for parent in node._parents:
            px, py = 2.2 * depth[id(parent)], row[id(parent)]
            axes.add_patch(FancyArrowPatch((px + width / 2 + 0.05, py), (cx - width / 2 - 0.05, cy),
                                           arrowstyle="-|>", mutation_scale=12, color="black", lw=1))
    axes.set_xlim(-1.0, 2.2 * max(depth.values()) + 1.0)
    axes.set_ylim(-1.3 * (len(leaves) - 1) - 0.7, 0.7)
    axes.axis("off")
    axes.set_title("y = tanh(w·x + b): forward along the arrows, backward against them\n"
                   "(small numbers: the topological order; grad = dy/d(node))", fontsize=10)
    figure.tight_layout()
    save(figure, "computation_graph.png")


# ---------------------------------------------------------------- chapter 2
def gelu():
    """GELU and its derivative, both from tinybert.functional.gelu (the derivative by backward)."""
    x = Tensor(np.linspace(-4.0, 4.0, 401), requires_grad=True)
    y = F.gelu(x)
    ops.sum(y).backward()                            # dL/dx of a sum = the elementwise derivative
    figure, axes = plt.subplots(figsize=(6.4, 3.8))
    axes.plot(x.data, np.maximum(x.data, 0.0), color=GREY, lw=1, ls=":", label="ReLU(x), for comparison")
    axes.plot(x.data, y.data, color=BLUE, lw=2, label="GELU(x) = x Φ(x)")
    axes.plot(x.data, x.grad, color=ORANGE, lw=2, label="GELU'(x) = Φ(x) + x φ(x)")
    lowest = int(np.argmin(y.data))
    axes.plot(x.data[lowest], y.data[lowest], "o", color=BLUE)
    axes.annotate("minimum: the derivative\ncrosses zero here", (x.data[lowest], y.data[lowest]),
                  xytext=(-3.9, 1.2), fontsize=8, arrowprops={"arrowstyle": "->", "color": GREY})
    axes.axhline(0, color="black", lw=0.5)
    axes.axvline(0, color="black", lw=0.5)
    axes.set_xlabel("x")
    axes.legend(loc="upper left", fontsize=8, frameon=False)
    axes.set_title("GELU and its derivative (both computed by tinybert)", fontsize=10)
    figure.tight_layout()
    save(figure, "gelu.png")


# ---------------------------------------------------------------- chapter 3
def finite_difference_error():
    """The V of chapter 3: relative error of the central difference of tinybert's tanh at
    x = 0.7 against the exact derivative (its backward, in float64), over eps, in float32 and
    float64; beside them the two error models the chapter derives, truncation
    eps^2 |f'''| / (6 f') and rounding u |f| / (eps f') for the unit roundoff u of each type."""
    from tinybert.gradcheck import EPS
    point = Tensor(np.array(0.7), requires_grad=True)
    value = ops.tanh(point)
    value.backward()
    slope, t = float(point.grad), float(value.data)
    third = abs((6 * t * t - 2) * (1 - t * t))                    # tanh''' = (6 tanh^2 - 2)(1 - tanh^2)
    sweep = 10.0 ** -np.arange(1.0, 12.01, 0.125)
    figure, axes = plt.subplots(figsize=(6.8, 5.2))
    for dtype, color in ((np.float32, ORANGE), (np.float64, BLUE)):
        x, errors = dtype(0.7), []
        for eps in sweep:
            step = dtype(eps)
            ahead, behind = (ops.tanh(Tensor(np.array(x + sign * step))).data for sign in (1, -1))
            errors.append(max(abs(float((ahead - behind) / (2 * step)) - slope) / slope, 1e-17))  # 0 has no log
        errors = np.array(errors)
        name = np.dtype(dtype).name
        axes.loglog(sweep, errors, "o-", ms=2.5, lw=1.2, color=color, label=f"{name}: measured")
        axes.loglog(sweep, np.finfo(dtype).eps / 2 * t / (sweep * slope), ":", color=color, lw=1,
                    label=f"{name}: rounding u·|f| / (ε f')")
        best = int(np.argmin(errors))
        axes.annotate(f"best {errors[best]:.0e}\nat ε = {sweep[best]:.0e}", (sweep[best], errors[best]),
                      xytext=(0, -30), textcoords="offset points", ha="center", fontsize=9, color=color)
    axes.loglog(sweep, sweep ** 2 * third / (6 * slope), "--", color=GREY, lw=1,
                label="truncation ε² |f'''| / (6 f')")
    axes.axvline(EPS, color=GREEN, lw=1, label=f"gradcheck's EPS = {EPS:.0e} (float64)")
    axes.set_ylim(1e-14, 10.0)
    axes.invert_xaxis()                                            # smaller steps to the right
    axes.set_xlabel("ε, the step of the central difference (smaller to the right)", fontsize=9)
    axes.set_ylabel("relative error of d tanh/dx at x = 0.7", fontsize=9)
    axes.tick_params(labelsize=9)
    axes.legend(fontsize=8.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    axes.set_title("Central differences: truncation falls as ε², rounding grows as 1/ε", fontsize=10)
    figure.tight_layout()
    save(figure, "finite_difference_error.png")


# ---------------------------------------------------------------- chapter 4
def residual_layer(axes, post_norm, C, I):
    """One encoder layer as boxes, bottom to top: the residual stream straight up on the left (in
    red, the identity path), each sublayer as a branch on the right that rejoins it at a "+";
    post-norm (BERT's) or pre-norm. Returns the height it used."""
    stream_x, branch_x = -0.9, 1.2
    y = 0.0
    stream = box(axes, (stream_x, y), f"x  (B, T, C = {C})", color=GREY, width=2.4)
    for sublayer in ("self-attention\n+ dropout", f"FFN {C} → {I} → {C}\n+ dropout"):
        pieces = ([("LayerNorm", ORANGE)] if not post_norm else []) + [(sublayer, BLUE)]
        start = (min(stream_x + 0.6, stream[1]), stream[3])        # the branch leaves the stream here
        for k, (text, color) in enumerate(pieces):
            piece = box(axes, (branch_x, y + 1.2 * (k + 1)), text, color=color, width=2.4, height=0.75)
            link(axes, start, (branch_x, piece[2]))
            start = (branch_x, piece[3])
        y += 1.2 * (len(pieces) + 1)
        plus = box(axes, (stream_x, y), "+", color="black", width=0.55, height=0.55, fontsize=11)
        link(axes, start, (plus[1], y))
        link(axes, (stream_x, stream[3]), (stream_x, plus[2]), color=RED, lw=2.2)
        stream = plus
        if post_norm:                                              # post-norm: the sum itself is normalised
            y += 1.1
            stream = box(axes, (stream_x, y), "LayerNorm", color=RED, width=1.9, fill="#fde8e8")
            link(axes, (stream_x, plus[3]), (stream_x, stream[2]), color=RED, lw=2.2)
    y += 1.3
    label = "to the next layer" if post_norm else "to the next layer\n(one LayerNorm after the last)"
    out = box(axes, (stream_x, y), label, color=GREY, width=2.6, height=0.8)
    link(axes, (stream_x, stream[3]), (stream_x, out[2]), color=RED, lw=2.2)
    return y


def encoder_layer():
    """tinybert.model.EncoderLayer (post-norm) beside the pre-norm arrangement: on which the
    identity path of the residual connections meets a LayerNorm."""
    C, I, _ = minilm_sizes()
    figure, panels = plt.subplots(1, 2, figsize=(9.6, 7.0))
    for axes, post_norm, title in ((panels[0], True, "post-norm (BERT, tinybert.model.EncoderLayer)\n"
                                                      "y = LayerNorm(x + f(x))"),
                                   (panels[1], False, "pre-norm (for comparison)\ny = x + f(LayerNorm(x))")):
        top = residual_layer(axes, post_norm, C, I)
        diagram_axes(axes, (-2.7, 2.7), (-0.6, top + 0.7), title)
    figure.text(0.5, 0.02, "red, on the left: the residual stream, the identity path from input to output.\n"
                "Post-norm passes it through two LayerNorms in every layer; pre-norm through none.",
                ha="center", fontsize=9.5, color=RED)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    save(figure, "encoder_layer.png")


def layer0_attention(model, encoded):
    """The attention probabilities (nh, T, T) of layer 0 for one sentence, following
    tinybert.model.SelfAttention.forward step by step on the model's own parameters."""
    layer = model.layers[0].attention
    x = model.embeddings(encoded["input_ids"], encoded["token_type_ids"])             # (1, T, C)
    B, T, C = x.shape
    nh = layer.heads
    hs = C // nh
    q = (layer.query(x) * (1.0 / np.sqrt(hs))).reshape(B, T, nh, hs).permute(0, 2, 1, 3)  # (1, nh, T, hs)
    k = layer.key(x).reshape(B, T, nh, hs).permute(0, 2, 3, 1)                           # (1, nh, hs, T)
    keep = np.asarray(encoded["attention_mask"]).astype(x.dtype)[:, None, None, :]        # (1, 1, 1, T)
    mask = (1.0 - keep) * np.finfo(x.dtype).min                                           # as BertModel.forward
    return F.softmax(q @ k, mask).data[0]                                                 # (nh, T, T)


def attention_map():
    """Layer 0 of all-MiniLM-L6-v2 on one sentence, every head, one shared colour scale."""
    from tinybert import no_grad
    from tinybert.tokenizer import Tokenizer
    model = load_pretrained(WEIGHTS).eval()
    tokenizer = Tokenizer.from_folder(WEIGHTS)
    encoded = tokenizer.encode([SENTENCE])
    tokens = token_strings(encoded["input_ids"][0])
    with no_grad():
        probs = layer0_attention(model, encoded)
    heads = probs.shape[0]
    columns = 4
    figure, grid = plt.subplots((heads + columns - 1) // columns, columns, figsize=(12.5, 10.4), layout="constrained")
    for head, axes in enumerate(grid.flat):
        image = axes.imshow(probs[head], cmap="Blues", vmin=0.0, vmax=1.0)
        axes.set_title(f"head {head}", fontsize=10, pad=3)
        axes.set_xticks(range(len(tokens)))
        axes.set_yticks(range(len(tokens)))
        bottom, left = head >= heads - columns, head % columns == 0
        axes.set_xticklabels(tokens if bottom else [], rotation=90, fontsize=9)
        axes.set_yticklabels(tokens if left else [], fontsize=9)
        axes.tick_params(length=0)
        if bottom:
            axes.set_xlabel("key: the token attended to", fontsize=9)
        if left:
            axes.set_ylabel("query: the token attending", fontsize=9)
    bar = figure.colorbar(image, ax=grid, shrink=0.6, pad=0.02)
    bar.set_label("attention probability (each row sums to 1)", fontsize=10)
    bar.ax.tick_params(labelsize=9)
    figure.suptitle(f'all-MiniLM-L6-v2, layer 0: attention probabilities of its {heads} heads for "{SENTENCE}"',
                    fontsize=11)
    save(figure, "attention_layer0.png")


def two_lines(text):
    """The words of ``text`` split evenly over two lines, to fit a box."""
    words = text.split()
    return " ".join(words[:len(words) // 2]) + "\n" + " ".join(words[len(words) // 2:])


def token_strings(ids):
    """The vocabulary entries of a row of token ids."""
    vocab = open(os.path.join(WEIGHTS, "vocab.txt"), encoding="utf-8").read().splitlines()
    return [vocab[i] for i in ids]


# ---------------------------------------------------------------- chapter 7
def multitask_heads():
    """One shared encoder, three heads, three losses: tinybert.multitask.MultitaskBert, its head
    sizes read from a MultitaskBert on MiniLM's config."""
    from tinybert import BertModel
    from tinybert.model import BertConfig
    from tinybert.multitask import MultitaskBert
    config = BertConfig.from_json(os.path.join(WEIGHTS, "config.json"))
    model = MultitaskBert(BertModel(config))
    C = config.hidden_size
    heads = {"sst": model.sentiment_head, "para": model.paraphrase_head, "sts": model.similarity_head}
    rows = {"sst": ("sst: one sentence\n[CLS] s [SEP]", "logits (B, {})", "cross entropy", BLUE),
            "para": ("para: two questions\n[CLS] a [SEP] b [SEP]", "logit (B,)", "binary cross entropy", ORANGE),
            "sts": ("sts: two sentences\n[CLS] a [SEP] b [SEP]", "score (B,)", "mean squared error", GREEN)}
    figure, axes = plt.subplots(figsize=(11.5, 5.4))
    encoder = box(axes, (4.3, 2.0), f"shared BERT encoder\n{config.num_hidden_layers} layers, C = {C}\n\n"
                  "one forward and backward\nfor each task's batch", color=GREY, width=2.6, height=5.0, fontsize=9.5,
                  fill="#f2f2f2")
    for row, (task, (source, output, loss, color)) in enumerate(rows.items()):
        y = 4.0 - 2.0 * row
        inputs = box(axes, (0.6, y), source, color=color, width=2.9, height=0.9)
        link(axes, (inputs[1], y), (encoder[0], y), color=color)
        pool = box(axes, (7.3, y), "masked mean\nof the tokens (B, C)", color=color, width=2.2, height=0.9)
        link(axes, (encoder[1], y), (pool[0], y), color=color)
        size_in, size_out = heads[task].weight.shape
        head = box(axes, (10.1, y), f"Dropout, Linear({size_in}, {size_out})\n→ {output.format(size_out)}",
                   color=color, width=2.6, height=0.9)
        link(axes, (pool[1], y), (head[0], y), color=color)
        target = box(axes, (12.9, y), loss, color=color, width=2.1, height=0.6)
        link(axes, (head[1], y), (target[0], y), color=color)
    bottom = target[2]                                            # the sts loss box, the lowest
    axes.plot([12.9, 12.9, 4.3], [bottom, -1.0, -1.0], color=RED, lw=1.5, ls="--")
    link(axes, (4.3, -1.0), (4.3, encoder[2]), color=RED, style="--", lw=1.5)
    axes.text(8.6, -1.2, "backward: each loss's gradient reaches its own head and the shared encoder;\n"
              "in the encoder the three add up (chapter 7) or PCGrad combines them (chapter 9)",
              ha="center", va="top", fontsize=9, color=RED)
    diagram_axes(axes, (-1.0, 14.2), (-2.0, 4.7), "tinybert.multitask.MultitaskBert: one encoder, three heads")
    figure.tight_layout()
    save(figure, "multitask_heads.png")


def encoder_gradient_norms(run=FULL_RUN):
    """Each task's encoder-gradient norm at every step of a run (encoder_grad_norm_TASK, logged
    before PCGrad), and at how many steps each task's is the largest of the three."""
    steps = run_steps(run)
    keys = [f"encoder_grad_norm_{task}" for task in plot.TASKS]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10.5, 4.2), width_ratios=(2.2, 1), layout="constrained")
    drawn = plot.curves(left, steps, keys, max(1, len(steps) // 50))
    left.set_ylabel("‖g_t‖ (encoder parameters)", fontsize=9)   # short: a long label is cut at the figure's edge
    left.set_title("each task's encoder-gradient norm, before PCGrad", fontsize=10)
    if drawn:   # the figure's legend, not the panel's: one anchored below a panel pushed its y label off the figure
        left.get_legend().remove()
        figure.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    complete = [r for r in steps if all(key in r for key in keys)]
    if drawn and complete:
        largest = np.argmax([[r[key] for key in keys] for r in complete], axis=1)
        counts = np.bincount(largest, minlength=len(keys))
        bars = right.bar(plot.TASKS, counts, color=[TASK_COLORS[task] for task in plot.TASKS])
        right.bar_label(bars, [f"{n} of {len(complete)}" for n in counts], fontsize=8.5)
        right.set_ylim(0, len(complete) * 1.1)
    else:
        right.text(0.5, 0.5, "not logged", ha="center", va="center", transform=right.transAxes)
    right.set_title("steps at which the task's\ngradient is the largest", fontsize=10)
    figure.suptitle(run_label(run), fontsize=10)
    save(figure, "encoder_gradient_norms.png", colors=256)


# ---------------------------------------------------------------- chapter 8
def learning_rate_schedule():
    """tinybert.optim.linear_warmup_decay for the settings of the committed full run, and the
    learning rate that run logged at each step (metrics.jsonl), which must lie on it."""
    args = json.load(open(os.path.join(FULL_RUN, "args.json"), encoding="utf-8"))
    total = args["epochs"] * args["steps_per_epoch"]
    warmup = int(args["warmup"] * total)
    steps = np.arange(total + 1)
    schedule = [optim.linear_warmup_decay(step, total, warmup, args["lr"]) for step in steps]
    logged = [json.loads(line) for line in open(os.path.join(FULL_RUN, "metrics.jsonl"), encoding="utf-8")]
    logged = [(record["step"] - 1, record["lr"])                  # the record of step k holds lr(k - 1)
              for record in logged if record["type"] == "step"]
    figure, axes = plt.subplots(figsize=(6.8, 3.6))
    axes.plot(steps, schedule, color=BLUE, lw=2, label="linear_warmup_decay(step, total, warm-up, peak)")
    axes.plot(*zip(*logged[::6]), "o", ms=3, color=ORANGE, label="lr logged by the full run (every 6th step)")
    axes.axvline(warmup, color=GREY, lw=1, ls=":")
    axes.annotate(f"warm-up ends: step {warmup}\n({args['warmup']:.0%} of {total})", (warmup, args["lr"]),
                  xytext=(30, -30), textcoords="offset points", fontsize=9, va="top")
    axes.set_xlabel("optimizer step", fontsize=9)
    axes.set_ylabel("learning rate", fontsize=9)
    axes.tick_params(labelsize=9)
    axes.legend(fontsize=8.5, loc="lower center", frameon=False)
    axes.set_title(f"The committed full run (the earlier default): peak {args['lr']:g}, {total} steps",
                   fontsize=10)
    figure.tight_layout()
    save(figure, "learning_rate_schedule.png")


# ---------------------------------------------------------------- chapter 9
PCGRAD_EXAMPLE = (np.array([1.0, 0.0]), np.array([-2.0, 1.0]))   # chapter 9 asserts its numbers


def pcgrad_projection():
    """Two conflicting 2-D gradients, each projected off the other (left), and the two updates,
    each drawn as its two terms head to tail and their sum (right)."""
    g1, g2 = PCGRAD_EXAMPLE
    p1, p2 = pcgrad.projected_grads([g1, g2], np.random.default_rng(0))
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.9))

    def arrow(axes, vector, color, label, start=(0, 0), style="-", width=2.0):
        axes.annotate("", xy=(start[0] + vector[0], start[1] + vector[1]), xytext=start,
                      arrowprops={"arrowstyle": "-|>", "color": color, "lw": width, "ls": style,
                                  "shrinkA": 0, "shrinkB": 0})
        axes.plot([], [], color=color, lw=width, ls=style, label=label)

    arrow(left, g1, BLUE, "g1 (task 1)")
    arrow(left, g2, ORANGE, "g2 (task 2)")
    arrow(left, p1, BLUE, "g1' = g1 − (g1·g2 / |g2|²) g2", style="--")
    arrow(left, p2, ORANGE, "g2' = g2 − (g1·g2 / |g1|²) g1", style="--")
    arrow(left, p1 - g1, GREY, "what each projection removed", start=g1, width=1.2)
    arrow(left, p2 - g2, GREY, None, start=g2, width=1.2)
    left.set_title("g1 · g2 < 0: each projected off the other\n(g1' ⊥ g2, g2' ⊥ g1)", fontsize=10)

    arrow(right, g1, BLUE, "g1", width=1.4)
    arrow(right, g2, ORANGE, "g2, from the tip of g1", start=g1, width=1.4)
    arrow(right, g1 + g2, GREY, f"plain sum g1 + g2 = ({g1[0] + g2[0]:g}, {g1[1] + g2[1]:g})", width=2.5)
    arrow(right, p1, BLUE, "g1'", style="--", width=1.4)
    arrow(right, p2, ORANGE, "g2', from the tip of g1'", start=p1, style="--", width=1.4)
    total = p1 + p2
    arrow(right, total, GREEN, f"PCGrad sum g1' + g2' = ({total[0]:g}, {total[1]:g})", width=2.5)
    right.set_title("the update: plain sum against PCGrad", fontsize=10)
    for axes in (left, right):
        axes.set_xlim(-2.3, 1.5)
        axes.set_ylim(-0.3, 1.7)
        axes.set_aspect("equal")
        axes.axhline(0, color="black", lw=0.4)
        axes.axvline(0, color="black", lw=0.4)
        axes.tick_params(labelsize=9)
        handles = [h for h in axes.get_legend_handles_labels()[0] if not h.get_label().startswith("_")]
        axes.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=8.5,
                    frameon=False)
    figure.tight_layout()
    save(figure, "pcgrad_projection.png")


def gradient_cosines(run=FULL_RUN):
    """Histograms of the raw pairwise cosines of the task gradients over a run's steps (cos_A_B,
    before any projection), and the count of steps at each value of the conflict fraction."""
    import fractions
    steps = run_steps(run)
    figure, axes = plt.subplots(2, 2, figsize=(9.5, 6.4), layout="constrained")
    pairs = plot.keys_with_prefix(steps, "cos_")
    values = [plot.series(steps, pair)[1] for pair in pairs]
    limit = max((np.abs(v).max() for v in values if v), default=1.0)
    bins = np.linspace(-limit, limit, 31)
    for ax, pair, cosines, color in zip(axes.flat, pairs, values, (BLUE, ORANGE, GREEN)):
        ax.hist(cosines, bins=bins, color=color, alpha=0.8)
        ax.axvline(0.0, color="black", lw=0.8)
        negative = sum(c < 0 for c in cosines)
        ax.set_title(f"{pair}: negative (a conflict) at {negative} of {len(cosines)} steps", fontsize=9.5)
        ax.set_xlabel("cosine of the two tasks' raw encoder gradients", fontsize=8.5)
        ax.set_ylabel("steps", fontsize=8.5)
    fractions_logged = plot.series(steps, "conflict_fraction")[1]
    ax = axes.flat[3]
    if fractions_logged:
        levels, counts = np.unique(np.round(fractions_logged, 9), return_counts=True)
        names = [str(fractions.Fraction(v).limit_denominator(12)) for v in levels]
        ax.bar_label(ax.bar(names, counts, color=GREY), fontsize=8.5)
        ax.set_ylim(0, counts.max() * 1.15)
    else:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("conflict fraction: steps at each value", fontsize=9.5)
    ax.set_xlabel("share of task pairs with g_a · g_b < 0", fontsize=8.5)
    for ax in axes.flat[len(pairs):3]:
        ax.set_visible(False)
    figure.suptitle(f"{run_label(run)}: {len(steps)} steps", fontsize=10)
    save(figure, "gradient_cosines.png")


# ---------------------------------------------------------------- chapter 10
SMART_FLOOR = 1e-9   # below it, R_s or D_Breg is rounding (D_Breg at the first steps, ~1e-15): not drawn to scale


def clip_log_axis(axes, values, floor=SMART_FLOOR):
    """A log y-axis over the values at or above ``floor``; those below it (but above 0) stay in
    the scatter, off the axis, and the panel says how many there are."""
    values = np.asarray([v for v in values if v > 0], dtype=np.float64)
    kept = values[values >= floor]
    if kept.size == 0 or kept.size == values.size:
        return
    axes.set_ylim(kept.min() / 3, kept.max() * 3)
    below = values.size - kept.size
    axes.text(0.02, 0.03, f"{below} value{'s' * (below != 1)} below $10^{{{np.log10(floor):.0f}}}$ not shown", fontsize=8,
              color=GREY, transform=axes.transAxes)


def smart_delta(run=FULL_RUN):
    """SMART in a run: the perturbation at every step (delta_linf_TASK, the mean over examples
    of ||delta_b||_inf, against the radius eps; delta_at_eps_TASK, the fraction of its entries
    at the bound), and each task's R_s (smart_TASK) and D_Breg (bregman_TASK) against its loss."""
    steps = run_steps(run)
    epsilon = run_args(run).get("smart_epsilon")
    figure, axes = plt.subplot_mosaic([["linf"] * 3 + ["at"] * 3, [task for task in plot.TASKS for _ in (0, 1)]],
                                      figsize=(11, 7.2), layout="constrained")
    window = max(1, len(steps) // 50)
    if epsilon and plot.keys_with_prefix(steps, "delta_linf_"):
        axes["linf"].axhline(epsilon, color=GREY, ls="--", lw=1, label=f"the radius eps = {epsilon:g}")
    plot.curves(axes["linf"], steps, [f"delta_linf_{task}" for task in plot.TASKS], window)
    axes["linf"].set_title("mean over examples of ‖δ_b‖∞", fontsize=10)
    plot.curves(axes["at"], steps, [f"delta_at_eps_{task}" for task in plot.TASKS], window)
    axes["at"].set_title("fraction of δ's entries (real tokens) at ±eps", fontsize=10)
    for task in plot.TASKS:
        ax = axes[task]
        drawn = False
        for key, marker, color in ((f"smart_{task}", "o", ORANGE), (f"bregman_{task}", "x", GREEN)):
            points = [(r[f"loss_{task}"], r[key]) for r in steps if r.get(key, 0) > 0 and f"loss_{task}" in r]
            if points:
                ax.scatter(*zip(*points), s=9, marker=marker, color=color, alpha=0.6,
                           label=f"{key} ({'R_s' if key.startswith('smart') else 'D_Breg'})")
                drawn = True
        if drawn:
            ax.set_yscale("log")                 # R_s and D_Breg span decades; a loss, within a step, does not
            clip_log_axis(ax, [r.get(key, 0) for r in steps for key in (f"smart_{task}", f"bregman_{task}")])
            legend_below(ax, columns=2)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(f"loss_{task}, the same step", fontsize=8.5)
        ax.set_title(f"{task}: SMART's terms against the loss", fontsize=10)
    figure.suptitle(run_label(run), fontsize=10)
    save(figure, "smart_delta.png", colors=256)


# ---------------------------------------------------------------- chapter 11
def cross_and_bi_encoder():
    """The two arrangements of chapter 11 on one STS pair: the tokens each feeds the encoder
    (from tinybert's tokenizer), and the untrained MiniLM's cosine of the pair (tinybert)."""
    from tinybert import no_grad
    from tinybert.tokenizer import Tokenizer
    tokenizer = Tokenizer.from_folder(WEIGHTS)
    model = load_pretrained(WEIGHTS).eval()
    C, _, _ = minilm_sizes()
    together = " ".join(token_strings(tokenizer.encode([PAIR[0]], [PAIR[1]])["input_ids"][0]))
    apart = [tokenizer.encode([sentence]) for sentence in PAIR]
    with no_grad():
        pooled = [F.masked_mean(model(e["input_ids"], e["attention_mask"]).last_hidden_state, e["attention_mask"])
                  for e in apart]
    cosine = F.cosine_similarity(*pooled).item()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11.5, 5.6))
    box(left, (0, 0), two_lines(together), color=GREY, width=5.4, height=0.9)
    encoder = box(left, (0, 1.7), "BERT encoder: attention between the\ntokens of both sentences, in every layer",
                  width=5.0, height=0.9)
    link(left, (0, 0.45), (0, encoder[2]))
    pool = box(left, (0, 3.2), f"masked mean (1, C = {C})", width=3.2)
    link(left, (0, encoder[3]), (0, pool[2]))
    head = box(left, (0, 4.5), f"Linear({C}, 1), trained from scratch", color=ORANGE, width=3.6)
    link(left, (0, pool[3]), (0, head[2]))
    out = box(left, (0, 5.7), "similarity score", color=GREY, width=2.4)
    link(left, (0, head[3]), (0, out[2]))
    diagram_axes(left, (-3.0, 3.0), (-0.7, 6.3), "cross-encoder (chapter 7): one pass over the pair")

    score = box(right, (0, 4.5), "cos(u, v), no new parameters", color=GREEN, width=3.2)
    for x, encoded, name in ((-1.5, apart[0], "u"), (1.5, apart[1], "v")):
        box(right, (x, 0), two_lines(" ".join(token_strings(encoded["input_ids"][0]))), color=GREY, width=2.8,
            height=0.9)
        encoder = box(right, (x, 1.7), "BERT encoder\n(the same weights)", width=2.6, height=0.9)
        link(right, (x, 0.45), (x, encoder[2]))
        pool = box(right, (x, 3.2), f"masked mean: {name} (C = {C})", width=2.8)
        link(right, (x, encoder[3]), (x, pool[2]))
        link(right, (x, pool[3]), (0.6 * np.sign(x), score[2]))
    out = box(right, (0, 5.7), f"5 · cos = {5 * cosine:.2f} here,\nMiniLM before any fine-tuning", color=GREY,
              width=3.4, height=0.8)
    link(right, (0, score[3]), (0, out[2]))
    diagram_axes(right, (-3.0, 3.0), (-0.7, 6.3), "bi-encoder (chapter 11, --cos): one pass per sentence")
    figure.tight_layout()
    save(figure, "cross_and_bi_encoder.png")


# ---------------------------------------------------------------- chapter 12
def full_run_curves(run=FULL_RUN):
    """The committed full-recipe run (docs/results/full): each task's training loss, raw and its
    moving average, one panel per task, and the dev scores against the step where the run
    evaluated more than once (one evaluation is a point, not a curve: it goes in the titles).
    The run's other curves have figures of their own (encoder_gradient_norms, gradient_cosines,
    smart_delta, learning_rate_schedule); `python -m tinybert.run.plot RUN` draws them all."""
    steps, evals = plot.read_metrics(os.path.join(run, "metrics.jsonl"))
    names = {"sst": ("SST", "cross-entropy", "accuracy"), "para": ("QQP", "binary cross-entropy", "accuracy"),
             "sts": ("STS", "MSE" + (" of the cosine against label / 5" if run_args(run).get("cos") else ""),
                     "Pearson r")}
    with_dev = len(evals) > 1
    figure, axes = plt.subplots(1, len(plot.TASKS) + with_dev, figsize=(4.2 * (len(plot.TASKS) + with_dev), 4.4),
                                layout="constrained")
    window = max(1, len(steps) // 50)
    for ax, task in zip(axes, plot.TASKS):
        name, loss, metric = names[task]
        x, y = plot.series(steps, f"loss_{task}")
        ax.plot(x, y, color=plot.tint(TASK_COLORS[task]), lw=0.8, label="every step")
        ax.plot(x, plot.moving_average(y, window), color=TASK_COLORS[task], lw=1.8, label=f"mean of {window} steps")
        title = f"{name}: training {loss}"
        if len(evals) == 1:
            title += f"\n(dev {metric} {evals[0][f'dev_{task}']:.3f} at step {evals[0]['step']})"
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("step", fontsize=10)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=9)
        ax.legend(fontsize=9.5, loc="upper right")
    if with_dev:
        ax = axes[-1]
        for task in plot.TASKS:
            x, y = plot.series(evals, f"dev_{task}")
            ax.plot(x, y, "o-", color=TASK_COLORS[task], label=f"{names[task][0]} {names[task][2]}")
        ax.set_title("dev scores", fontsize=11)
        ax.set_xlabel("step", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9.5)
    figure.suptitle(run_label(run), fontsize=11)
    save(figure, "full_curves.png", colors=256)


def ablation_bars(results_path=ABLATION):
    """The ablation (tools.ablation's results.json): each configuration's mean dev score over
    its seeds with a bar of ± the sample std (tools.ablation.summarise), each seed a dot."""
    from tools import ablation
    with open(results_path, encoding="utf-8") as f:
        results = json.load(f)
    rows = ablation.summarise(results)
    names = {"sst": "SST accuracy", "para": "QQP accuracy", "sts": "STS Pearson r"}
    figure, axes = plt.subplots(1, len(ablation.METRICS), figsize=(12, 1.2 + 0.42 * len(rows)), sharey=True,
                                layout="constrained")
    place = np.arange(len(rows))[::-1]                                 # the first configuration on top
    for ax, metric in zip(axes, ablation.METRICS):
        means = [row[metric] for row in rows]
        spreads = [row[f"{metric}_std"] or 0.0 for row in rows]       # one seed: no spread to draw
        ax.barh(place, means, xerr=spreads, color=BLUE, alpha=0.75, capsize=3, error_kw={"lw": 1})
        for y, row in zip(place, rows):
            seeds = [run[metric] for run in results["runs"] if run["config"] == row["config"]]
            ax.plot(seeds, [y] * len(seeds), "o", color="black", ms=2.5)
            right_end = max(seeds + [row[metric] + (row[f"{metric}_std"] or 0.0)])
            ax.annotate(ablation.mean_std(row[metric], row[f"{metric}_std"]), (right_end, y),
                        xytext=(5, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_xlim(0, 1.25 * max(max(run[metric] for run in results["runs"]), 1e-9))
        ax.set_title(names.get(metric, metric), fontsize=10)
        ax.tick_params(labelsize=8.5)
    axes[0].set_yticks(place, [f"{row['label']} ({row['seeds']} seeds)" for row in rows])
    recipe = ", ".join(f"{key} {value}" for key, value in results["recipe"].items())
    figure.suptitle(f"The ablation: mean ± sample std over seeds (bars), each seed a dot; {recipe}", fontsize=10)
    save(figure, "ablation.png")


def ablation_minutes(results_path=ABLATION):
    """The ablation against the clock: each configuration's mean dev score (± the sample std
    over its seeds) against its mean training minutes, one panel per task. A technique pays at
    equal minutes when its point sits above the line from the cheaper rows to the plain recipe
    given more steps."""
    from tools import ablation
    with open(results_path, encoding="utf-8") as f:
        results = json.load(f)
    rows = [row for row in ablation.summarise(results) if row["seconds"] is not None]
    names = {"sst": "SST accuracy", "para": "QQP accuracy", "sts": "STS Pearson r"}
    figure, axes = plt.subplots(1, len(ablation.METRICS), figsize=(13, 4.8), layout="constrained")
    for ax, metric in zip(axes, ablation.METRICS):
        for number, row in enumerate(rows):
            minutes = [run["seconds"] / 60 for run in results["runs"] if run["config"] == row["config"]]
            spread = (max(minutes) - min(minutes)) / 2
            ax.errorbar(row["seconds"] / 60, row[metric], yerr=row[f"{metric}_std"] or 0.0, xerr=spread,
                        fmt="o", color=plt.get_cmap("tab10")(number % 10), ms=6, capsize=3,
                        label=f"{row['label']} ({row['seeds']} seed{'s' if row['seeds'] > 1 else ''})")
        ax.set_xlabel("training minutes of a run (one core)", fontsize=9)
        ax.set_title(names.get(metric, metric), fontsize=10)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8.5)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8.5, frameon=False)
    figure.suptitle("The ablation against the clock: mean dev score ± sample std over seeds, "
                    "against mean training minutes (horizontal bar: half the range of the seeds' minutes)", fontsize=10)
    save(figure, "ablation_minutes.png")


def configuration_curves(runs=CONFIGURATION_RUNS):
    """Each task's training loss against the step in the committed runs of chapter 12, one
    colour per run: raw, and a moving average over it. Each run's average is drawn a little
    thinner than the one before, so that two runs that coincide still show both colours."""
    records = [(run, run_steps(run)) for run in runs]
    figure, axes = plt.subplots(1, len(plot.TASKS), figsize=(13, 4.6), layout="constrained")
    for ax, task in zip(axes, plot.TASKS):
        for number, (color, (run, steps)) in enumerate(zip(plot.COLORS, records)):
            x, y = plot.series(steps, f"loss_{task}")
            window = max(1, len(steps) // 50)
            if window > 1:
                ax.plot(x, y, color=plot.tint(color), lw=0.5)
            ax.plot(x, plot.moving_average(y, window), color=color, lw=2.6 - 1.6 * number / max(len(records), 1),
                    label=run_label(run) + (f" (mean of {window} steps)" if window > 1 else ""))
        ax.set_yscale("log")
        ax.set_xlabel("step", fontsize=9)
        ax.set_title(f"loss_{task} (log scale)", fontsize=10)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8.5, frameon=False)
    figure.suptitle("Training loss of each configuration; thin: every step, thick: its moving average", fontsize=10)
    save(figure, "configuration_curves.png", colors=256)


def run_evaluations(run):
    """The evaluation records of a run folder's metrics.jsonl, each with its training minutes."""
    return plot.read_metrics(os.path.join(run, "metrics.jsonl"))[1]


def recipe_label(run):
    """A tinybert run of the equal-minutes table by what sets it apart from the others (they all
    train with --pcgrad --smart --cos): its epochs, task-loss weights and batches a step, e.g.
    "recipe_w15: 1.4 epochs, losses x1.5/1/1 (SST/QQP/STS)". A weight or a count the run's
    args.json lacks predates the flag: 1, as train.py had it then."""
    args = run_args(run)
    weights = "/".join(f"{args.get(f'{task}_loss_weight') or 1:g}" for task in plot.TASKS)
    label = f"{os.path.basename(os.path.normpath(run))}: {args['epochs']:g} epochs, losses x{weights} (SST/QQP/STS)"
    if (args.get("sst_batches_per_step") or 1) != 1:
        label += f", {args['sst_batches_per_step']} SST batches a step"
    return label


def equal_minutes(runs=EQUAL_MINUTES_RUNS, name="equal_minutes.png"):
    """Each task's dev score against the training minutes (evaluations left out, as train.py and
    tools/peer.py both count them) of the runs in chapter 12's equal-minutes table: the
    PyTorch peer and tinybert, on one machine (named from the runs' machine.json)."""
    names = {"sst": "SST accuracy", "para": "QQP accuracy", "sts": "STS Pearson r"}
    figure, axes = plt.subplots(1, len(plot.TASKS), figsize=(13, 4.4), layout="constrained")
    machines = set()
    for color, run in zip(plot.COLORS, runs):
        evals = run_evaluations(run)
        with open(os.path.join(run, "machine.json"), encoding="utf-8") as f:
            machine = json.load(f)
        machines.add(f"{machine['cpu']}, {machine['cpu_count']} cores")
        # the peer's machine.json names torch, the engine it trained with; its args.json has no techniques
        label = (f"{os.path.basename(os.path.normpath(run))}: PyTorch peer" if "torch" in machine else recipe_label(run))
        for ax, task in zip(axes, plot.TASKS):
            ax.plot([r["minutes"] for r in evals], [r[f"dev_{task}"] for r in evals], "o-", color=color, label=label)
    for ax, task in zip(axes, plot.TASKS):
        ax.set_xlabel("training minutes (evaluations not counted)", fontsize=9)
        ax.set_title(names[task], fontsize=10)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8.5)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8.5, frameon=False)
    figure.suptitle(f"Dev score against training minutes on one machine ({'; '.join(sorted(machines))}); "
                    "every tinybert run: --pcgrad --smart --cos, SMART on STS, heads at 30x", fontsize=10)
    save(figure, name)


FIGURES = {
    "computation_graph.png": computation_graph,
    "gelu.png": gelu,
    "finite_difference_error.png": finite_difference_error,
    "encoder_layer.png": encoder_layer,
    "attention_layer0.png": attention_map,
    "multitask_heads.png": multitask_heads,
    "learning_rate_schedule.png": learning_rate_schedule,
    "pcgrad_projection.png": pcgrad_projection,
    "cross_and_bi_encoder.png": cross_and_bi_encoder,
    "full_curves.png": full_run_curves,
    "encoder_gradient_norms.png": encoder_gradient_norms,
    "gradient_cosines.png": gradient_cosines,
    "smart_delta.png": smart_delta,
    "ablation.png": ablation_bars,
    "ablation_minutes.png": ablation_minutes,
    "configuration_curves.png": configuration_curves,
    "equal_minutes.png": equal_minutes,
    "equal_minutes_amd.png": functools.partial(equal_minutes, EQUAL_MINUTES_AMD_RUNS, "equal_minutes_amd.png"),
}


if __name__ == "__main__":
    wanted = sys.argv[1:] or list(FIGURES)
    unknown = [name for name in wanted if name not in FIGURES]
    if unknown:
        sys.exit(f"make_figures.py: unknown figure {unknown[0]!r}; choose from {', '.join(FIGURES)}")
    for name in wanted:
        FIGURES[name]()
