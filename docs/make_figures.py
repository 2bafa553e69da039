"""Draw the figures of the course into docs/figures/, from tinybert's own code.

    .venv/bin/python docs/make_figures.py            # all figures
    .venv/bin/python docs/make_figures.py gelu.png   # just the ones named

Every number in a figure is computed here by tinybert (the graph's values and gradients by
backward(), the PCGrad vectors by tinybert.pcgrad, the attention map from the real
all-MiniLM-L6-v2 weights, the training curves from a committed run's metrics.jsonl), never
typed in. Run from the repository root; matplotlib
(a dev dependency) draws with the Agg backend, so no display is needed.
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the repository root, so tinybert imports from a checkout
from tinybert import Tensor, functional as F, ops, pcgrad, plot  # noqa: E402
from tinybert.tensor import _topological_order  # noqa: E402

OUTPUT = os.path.join(HERE, "figures")      # tests/test_docs.py points this at a scratch folder
WEIGHTS = os.path.join("weights", "all-MiniLM-L6-v2")
SENTENCE = "The cat sat on the mat because it was tired."
BLUE, ORANGE, GREEN, GREY = "#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f"


def save(figure, name):
    """PNG without a timestamp or version stamp, so redrawing unchanged code gives the same bytes."""
    path = os.path.join(OUTPUT, name)
    os.makedirs(OUTPUT, exist_ok=True)
    figure.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(figure)
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path) // 1024} KB)")


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


# ---------------------------------------------------------------- chapter 4
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
    mask = model.additive_mask(encoded["attention_mask"], x.dtype)                        # (1, 1, 1, T)
    return F.softmax(q @ k, mask).data[0]                                                 # (nh, T, T)


def attention_map():
    """Layer 0 of all-MiniLM-L6-v2 on one sentence, every head."""
    from tinybert import BertModel, no_grad
    from tinybert.tokenizer import Tokenizer
    model = BertModel.from_pretrained(WEIGHTS).eval()
    tokenizer = Tokenizer.from_folder(WEIGHTS)
    encoded = tokenizer.encode([SENTENCE])
    vocab = open(os.path.join(WEIGHTS, "vocab.txt"), encoding="utf-8").read().splitlines()
    tokens = [vocab[i] for i in encoded["input_ids"][0]]
    with no_grad():
        probs = layer0_attention(model, encoded)
    heads = probs.shape[0]
    columns = 4
    figure, grid = plt.subplots((heads + columns - 1) // columns, columns, figsize=(10, 7.6))
    for head, axes in enumerate(grid.flat):
        axes.imshow(probs[head], cmap="Blues", vmin=0.0, vmax=1.0)
        axes.set_title(f"head {head}", fontsize=8, pad=2)
        axes.set_xticks(range(len(tokens)))
        axes.set_yticks(range(len(tokens)))
        bottom, left = head >= heads - columns, head % columns == 0
        axes.set_xticklabels(tokens if bottom else [], rotation=90, fontsize=6)
        axes.set_yticklabels(tokens if left else [], fontsize=6)
        axes.tick_params(length=0)
    figure.suptitle(f'all-MiniLM-L6-v2, layer 0: attention probabilities for "{SENTENCE}"\n'
                    "row = the token attending (query), column = the token attended to (key); each row sums to 1",
                    fontsize=9)
    figure.tight_layout()
    save(figure, "attention_layer0.png")


# ---------------------------------------------------------------- chapter 9
def pcgrad_projection():
    """Two conflicting 2-D gradients, each projected off the other, and the two sums."""
    g1, g2 = np.array([1.0, 0.0]), np.array([-1.0, 1.0])
    p1, p2 = pcgrad.projected_grads([g1, g2], np.random.default_rng(0))
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 4.2))

    def arrow(axes, vector, color, label, start=(0, 0), style="-"):
        axes.annotate("", xy=(start[0] + vector[0], start[1] + vector[1]), xytext=start,
                      arrowprops={"arrowstyle": "-|>", "color": color, "lw": 2, "ls": style})
        axes.plot([], [], color=color, lw=2, ls=style, label=label)

    normal = np.array([g2[1], -g2[0]]) / np.linalg.norm(g2)
    left.plot(*np.outer([-1.6, 1.6], normal).T, color=GREY, lw=1, ls=":", label="the line perpendicular to g2")
    arrow(left, g1, BLUE, "g1 (task 1)")
    arrow(left, g2, ORANGE, "g2 (task 2)")
    arrow(left, p1, BLUE, "g1' = g1 − (g1·g2 / |g2|²) g2", style="--")
    removed = p1 - g1
    arrow(left, removed, GREY, "the removed part (along g2)", start=g1)
    left.set_title("g1 · g2 < 0: project g1 onto the line perpendicular to g2", fontsize=10)

    arrow(right, g1, BLUE, "g1")
    arrow(right, g2, ORANGE, "g2")
    arrow(right, g1 + g2, GREY, "plain sum g1 + g2")
    arrow(right, p1 + p2, GREEN, "PCGrad g1' + g2'")
    arrow(right, p2, ORANGE, "g2' (g2 projected off g1)", style="--")
    right.set_title("the update: plain sum vs PCGrad", fontsize=10)
    for axes in (left, right):
        axes.set_xlim(-1.6, 1.6)
        axes.set_ylim(-0.6, 1.8)
        axes.set_aspect("equal")
        axes.axhline(0, color="black", lw=0.4)
        axes.axvline(0, color="black", lw=0.4)
        axes.legend(loc="upper left", fontsize=7.5, frameon=False)
    figure.tight_layout()
    save(figure, "pcgrad_projection.png")


# ---------------------------------------------------------------- chapter 12
def full_run_curves():
    """The curves of the committed full-recipe run (docs/results/full), drawn by tinybert.plot."""
    path = os.path.join(OUTPUT, "full_curves.png")
    os.makedirs(OUTPUT, exist_ok=True)
    plot.plot_run(os.path.join(HERE, "results", "full"), out=path, dpi=60)
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path) // 1024} KB)")


FIGURES = {
    "computation_graph.png": computation_graph,
    "gelu.png": gelu,
    "attention_layer0.png": attention_map,
    "pcgrad_projection.png": pcgrad_projection,
    "full_curves.png": full_run_curves,
}


if __name__ == "__main__":
    wanted = sys.argv[1:] or list(FIGURES)
    unknown = [name for name in wanted if name not in FIGURES]
    if unknown:
        sys.exit(f"make_figures.py: unknown figure {unknown[0]!r}; choose from {', '.join(FIGURES)}")
    for name in wanted:
        FIGURES[name]()
