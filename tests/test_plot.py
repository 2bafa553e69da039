"""tinybert.run.plot draws what a run logged as it was logged: raw values (a moving average only on
top, its window named), the conflict fraction at its discrete values, every task's loss
visible, the dev metric readable from one evaluation, and no legend over a curve. Checked on a
made-up run (conftest.write_run) whose values a smoothing, a shared linear axis or a rounding
would visibly change."""
import numpy as np
import pytest

from conftest import write_run
from tinybert.run import plot


@pytest.fixture()
def drawn(tmp_path):
    """(the figure of a made-up 60-step run with one evaluation, {panel title: axes}, its step
    records)."""
    _, steps, evals = write_run(tmp_path / "run")
    figure = plot.draw_run(steps, evals, "run", window=5)
    yield figure, {ax.get_title(): ax for ax in figure.axes if ax.get_visible()}, steps
    plot.pyplot().close(figure)


def panel(panels, start):
    (title,) = [title for title in panels if title.startswith(start)]
    return panels[title]


def line(ax, label):
    (found,) = [line for line in ax.get_lines() if line.get_label() == label]
    return found


def test_curves_are_raw_with_the_moving_average_on_top_and_named(drawn):
    _, panels, steps = drawn
    cosines = panel(panels, "raw pairwise cosines")
    for key in ("cos_sst_para", "cos_sst_sts", "cos_para_sts"):
        logged = [r[key] for r in steps]
        assert list(line(cosines, key).get_ydata()) == logged            # every step, as logged
        smoothed = line(cosines, f"{key}, mean of 5 steps").get_ydata()
        assert np.allclose(smoothed, plot.moving_average(logged, 5))
        assert max(logged) > 0.29 and np.abs(smoothed[4:]).max() < 0.2   # what smoothing alone would hide
    legend = [text.get_text() for text in cosines.get_legend().get_texts()]
    assert "cos_sst_para, mean of 5 steps" in legend and "cos_sst_para" in legend


def test_the_conflict_fraction_is_drawn_at_its_values_with_their_counts(drawn):
    _, panels, steps = drawn
    ax = panel(panels, "conflict fraction")
    (points,) = ax.get_lines()
    assert points.get_linestyle() == "None" and points.get_marker() == "o"      # markers, no line between
    assert list(points.get_ydata()) == [r["conflict_fraction"] for r in steps]
    assert [label.get_text() for label in ax.get_yticklabels()] == [
        "0: 15 steps", "1/3: 15 steps", "2/3: 15 steps", "1: 15 steps"]
    assert np.allclose(ax.get_yticks(), [0, 1 / 3, 2 / 3, 1])


def test_every_tasks_loss_shows_on_a_log_axis(drawn):
    _, panels, steps = drawn
    ax = panel(panels, "training loss")
    assert ax.get_yscale() == "log"
    low, high = ax.get_ylim()
    sts = [r["loss_sts"] for r in steps]
    # on the log axis loss_sts (about 0.02) spans a visible part of the panel, not a line at its floor
    assert low < min(sts) and np.log(max(sts) / min(sts)) / np.log(high / low) > 0.005
    assert list(line(ax, "loss_sts").get_ydata()) == sts
    smart = panel(panels, "sst: loss, SMART's R_s")
    assert smart.get_yscale() == "log"
    assert len(line(smart, "bregman_sst").get_ydata()) == len(steps) - 1        # D_Breg = 0 at step 1 left out


def test_one_evaluation_reads_as_labelled_points(drawn):
    _, panels, _ = drawn
    ax = panel(panels, "dev metric")
    assert sorted(text.get_text() for text in ax.texts) == ["0.461", "0.811", "0.861"]
    assert all(line.get_marker() == "o" for line in ax.get_lines())
    low, high = ax.get_xlim()
    assert low < 1 - 0.25 and high > 1 + 0.25          # the single epoch sits inside the panel, not on its edge


def test_no_legend_covers_its_panel(drawn):
    figure, panels, _ = drawn
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legends = [(title, ax) for title, ax in panels.items() if ax.get_legend() is not None]
    assert len(legends) >= 8
    for title, ax in legends:
        legend, area = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
        assert legend.y1 <= area.y0, f"the legend of {title!r} overlaps its panel"


def test_plot_run_writes_the_png(tmp_path):
    folder, _, _ = write_run(tmp_path / "run", evals=2)
    out = plot.plot_run(str(folder), dpi=40)
    assert out == str(folder / "curves.png")
    assert (folder / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("text,problem", [(b"5", "line 2: not a JSON object"),
                                          (b'{"type": "step", "loss_sst": 1}', 'line 2: no "step" in this step record'),
                                          (b'{"type": "eval", "epoch": 1}', 'line 2: no "step" in this eval record'),
                                          (b'{"type": "step", "step": 2, "x": "\xff"}', "line 2: not UTF-8"),
                                          (b'{"type": "eval", "step": 60}', 'line 2: no "epoch" in this eval record')])
def test_a_damaged_line_is_one_line_naming_the_file_and_the_line(tmp_path, capsys, text, problem):
    folder, _, _ = write_run(tmp_path / "run")
    path = folder / "metrics.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = text + b"\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(SystemExit) as error:
        plot.main([str(folder)])
    message = str(error.value.code)
    assert message.startswith(f"plot: {path}, {problem}") and "\n" not in message, message
    assert not (folder / "curves.png").exists()
