"""The report card as a table: a DataFrame (`build`), Markdown (`to_markdown`) and a figure
(`write`, ``reports/report_card.md`` and ``.png``).

Introduced in chapter 9 ("Evaluation"); ``python -m posttrain_utils.runtime.pipeline`` writes it.
"""

from __future__ import annotations

import math
from pathlib import Path

from . import cache
from . import rows as card_rows

def build(profile=None, rows=None, progress: bool = True):
    """The report card as a pandas DataFrame (one row per `ROWS` entry, `COLUMNS` as columns, plus
    ``chapter``), every row scored through `evaluate_row` (trained and scored if missing)."""
    import pandas as pd
    from tqdm.auto import tqdm

    names = [r.name for r in card_rows.ROWS] if rows is None else list(rows)
    table = {}
    for name in tqdm(names, desc="report card", disable=not progress):
        result = cache.evaluate_row(name, profile)
        table[name] = {"chapter": result["chapter"], **result["figures"]}
    return pd.DataFrame.from_dict(table, orient="index")


def to_markdown(card, digits: int = 2) -> str:
    """The card as a Markdown table (win rate shown with its interval)."""
    lines = ["| checkpoint | ch | format | facts EM | sums EM | rude | refusal | over-refusal | "
             "length | gold | win vs SFT [95 % CI] | KL to SFT |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in card.iterrows():
        cells = [f"{r[c]:.{digits}f}" for c in ("format", "facts_em", "sums_em", "rude", "refusal",
                                                 "over_refusal")]
        win = f"{r['win_vs_sft']:.2f} [{r['win_low']:.2f}, {r['win_high']:.2f}]"
        kl = "n/a" if math.isnan(r["kl_to_sft"]) else f"{r['kl_to_sft']:.2f}"
        lines.append(f"| {name} | {int(r['chapter'])} | " + " | ".join(cells)
                     + f" | {r['length']:.1f} | {r['gold']:.2f} | {win} | {kl} |")
    return "\n".join(lines) + "\n"


def write(card, folder: str | Path = "reports") -> tuple[Path, Path]:
    """Write ``report_card.md`` and ``report_card.png`` into `folder`; returns their paths."""
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md, png = folder / "report_card.md", folder / "report_card.png"
    md.write_text("# Report card\n\n" + to_markdown(card))
    from ...runtime.plotting import report_card as plot

    fig = plot(card)
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return md, png
