"""The shared plots: each returns a Figure with what was asked for drawn in it."""

import matplotlib

matplotlib.use("Agg")

from posttrain_utils.runtime import plotting  # noqa: E402


def test_metric_grid_draws_one_panel_per_key_and_one_line_per_run():
    runs = {"a": [{"iteration": i, "kl": i / 10, "gold": 0.5} for i in range(1, 5)],
            "b": [{"iteration": i, "kl": i / 5} for i in range(1, 3)]}
    fig = plotting.metric_grid(runs, ["kl", "gold", "entropy"], columns=2)
    axes = fig.axes
    assert len(axes) == 4 and not axes[3].axison  # 3 panels in a 2 x 2 grid, the spare one blank
    assert [ax.get_title() for ax in axes[:3]] == ["kl", "gold", "entropy"]
    assert len(axes[0].lines) == 2 and len(axes[1].lines) == 1 and len(axes[2].lines) == 0
    assert list(axes[0].lines[1].get_xdata()) == [1, 2]


def test_training_curves_and_compare_bars_return_figures():
    fig = plotting.training_curves({"run": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}]})
    assert len(fig.axes[0].lines) == 1
    fig = plotting.compare_bars({"sft": {"facts": 0.5}, "ppo": {"facts": 0.6}}, ["facts"])
    assert len(fig.axes[0].patches) == 2
