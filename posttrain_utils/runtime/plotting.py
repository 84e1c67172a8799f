"""Plots shared by the chapters: the pipeline diagram, training curves and metric comparisons.

Introduced in chapter 0 (the pipeline diagram); chapter 2 adds training curves from a trainer's
`log_history`, chapter 5 a grid of per-iteration metrics, chapter 9 the report card. Every function
returns the matplotlib `Figure` so notebooks can tweak it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

PIPELINE = [("Pretraining", "next-token prediction\non web-scale text", "ch. 0"),
            ("SFT", "imitate good\ndemonstrations", "ch. 2-3"),
            ("Preference tuning", "reward model + PPO,\nor DPO and friends", "ch. 4-7"),
            ("RL with verifiable\nrewards", "GRPO on checkable\ntasks", "ch. 8")]


def pipeline_diagram(stages=PIPELINE):
    """The post-training pipeline as boxes and arrows."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    fig, ax = plt.subplots(figsize=(11, 2.6))
    ax.set_xlim(0, 4 * len(stages))
    ax.set_ylim(0, 3)
    ax.axis("off")
    colours = ["#d9d9d9", "#9ecae1", "#fdae6b", "#a1d99b"]
    for i, (title, body, chapters) in enumerate(stages):
        x = 4 * i + 0.2
        ax.add_patch(FancyBboxPatch((x, 0.4), 3.2, 2.2, boxstyle="round,pad=0.05", fc=colours[i % 4], ec="black"))
        ax.text(x + 1.6, 2.1, title, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(x + 1.6, 1.2, body, ha="center", va="center", fontsize=9)
        ax.text(x + 1.6, 0.6, chapters, ha="center", va="center", fontsize=8, style="italic")
        if i < len(stages) - 1:
            ax.annotate("", xy=(x + 4.0, 1.5), xytext=(x + 3.35, 1.5), arrowprops=dict(arrowstyle="->", lw=2))
    ax.text(2 * len(stages), 2.85, "post-training  →", ha="center", fontsize=10, color="#555")
    fig.tight_layout()
    return fig


def training_curves(log_histories: Mapping[str, Sequence[dict]], keys=("loss", "eval_loss"), title: str = ""):
    """Plot `keys` against step from one or more `trainer.state.log_history` lists.

    Args:
        log_histories: run name -> the trainer's `state.log_history`.
        keys: logged metrics to draw; each run draws a line per key present.
        title: figure title.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for run, history in log_histories.items():
        for key in keys:
            points = [(h["step"], h[key]) for h in history if key in h]
            if points:
                ax.plot(*zip(*points), marker="o" if key.startswith("eval") else None, ms=3,
                        ls="--" if key.startswith("eval") else "-", label=f"{run}: {key}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def compare_bars(results: Mapping[str, Mapping[str, float]], metrics: Sequence[str], title: str = ""):
    """Grouped bars: one group per metric, one bar per model (values in [0, 1])."""
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(results)
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(metrics), 3.2))
    x = np.arange(len(metrics))
    for i, name in enumerate(names):
        values = [results[name][m] for m in metrics]
        bars = ax.bar(x + i * width - 0.4 + width / 2, values, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, metrics)
    ax.set_ylim(0, 1.15)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def metric_grid(histories: Mapping[str, Sequence[dict]], keys: Sequence[str], x: str = "iteration",
                columns: int = 4, title: str = ""):
    """Small multiples: one panel per logged metric, one line per run (chapter 5's PPO curves).

    Args:
        histories: run name -> a list of log entries (dicts), e.g. `PPOTrainer.history`.
        keys: the metrics to draw, one panel each; a run without a key draws nothing there.
        x: the key on the horizontal axis.
        columns: panels per row.
        title: figure title.
    """
    import math

    import matplotlib.pyplot as plt

    rows = math.ceil(len(keys) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.2 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for run, history in histories.items():
            points = [(h[x], h[key]) for h in history if key in h and x in h]
            if points:
                ax.plot(*zip(*points), marker="o", ms=2.5, label=run)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel(x, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    if len(histories) > 1:
        axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def report_card(card, bands=None):
    """Two panels: win rate vs SFT with its 95 % interval, and gold score against KL to SFT.

    Args:
        card: `report_card.build`'s DataFrame (chapter 9).
        bands: optional ``{row: (low, high)}`` of the win rate over seeds, drawn as a grey bar.
    """
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8))
    y = range(len(card))
    err = [card["win_vs_sft"] - card["win_low"], card["win_high"] - card["win_vs_sft"]]
    if bands:
        for i, name in enumerate(card.index):
            if name in bands:
                low, high = bands[name]
                left.plot([low, high], [i, i], color="0.8", lw=8, solid_capstyle="butt",
                          label="seeds 0-2" if i == 0 else None)
    left.errorbar(card["win_vs_sft"], list(y), xerr=err, fmt="o", capsize=3, label="this seed")
    left.axvline(0.5, color="grey", ls="--", lw=1)
    left.set_yticks(list(y), card.index)
    left.invert_yaxis()
    left.set_xlabel("win rate vs SFT on gold score (ties 0.5), 95 % CI")
    left.legend(loc="lower right", fontsize=8)
    right.scatter(card["kl_to_sft"], card["gold"])
    for name, r in card.iterrows():
        right.annotate(name, (r["kl_to_sft"], r["gold"]), fontsize=7, xytext=(3, 3),
                       textcoords="offset points")
    right.set_xscale("symlog", linthresh=1)
    right.set_xlabel("KL to SFT (nats per reply)")
    right.set_ylabel("gold score")
    fig.tight_layout()
    return fig
