"""Bar charts of a task table: mean ± std per initialisation, stars where a DiRA variant beats its base.

Drawn on a bare ``matplotlib.figure.Figure`` (Agg canvas), so no pyplot state or display backend is
involved. The y-axis is zoomed to the data: differences between initialisations are fractions of a
point, invisible on a 0–100 axis, so bars start at the lower axis limit, not at zero.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dira.eval.statistics import stars
from dira.io import atomic_path
from dira.report import style
from dira.report.tables import read_table

GROUP_GAP = 0.6  # extra space between methods, in bar widths


def bar_positions(table: pd.DataFrame) -> np.ndarray:
    """x of each row: consecutive within a method, a gap between methods."""
    positions, x, previous = [], 0.0, None
    for method in table["method"]:
        if previous is not None and method != previous:
            x += GROUP_GAP
        positions.append(x)
        x += 1.0
        previous = method
    return np.asarray(positions)


def zoomed_limits(low: np.ndarray, high: np.ndarray, headroom: float = 0.3) -> tuple[float, float]:
    """Axis range around [min(low), max(high)], with room above for the stars."""
    lo, hi = float(np.nanmin(low)), float(np.nanmax(high))
    span = max(hi - lo, 0.01 * max(abs(hi), 1.0))
    return lo - 0.15 * span, hi + headroom * span


def bar_chart(table_csv: Path, out_png: Path, title: str) -> None:
    """One bar per initialisation (percent), std error bars, stars of the t-test against the base."""
    table = read_table(table_csv)
    mean = 100 * table["mean"].to_numpy(dtype=float)
    std = np.nan_to_num(100 * table["std"].to_numpy(dtype=float))
    x = bar_positions(table)

    fig = Figure(figsize=style.FIGURE_SIZE, layout="constrained")
    ax = fig.add_subplot()
    lo, hi = zoomed_limits(mean - std, mean + std)
    for xi, m, s, row in zip(x, mean, std, table.itertuples(), strict=True):
        ax.bar(xi, m - lo, bottom=lo, width=0.8, yerr=s, capsize=3, ecolor="#333333",
               color=style.bar_colour(row.method, row.variant), hatch=style.bar_hatch(row.variant),
               edgecolor="#333333", linewidth=0.6)
        if row.baseline and math.isfinite(row.p_value):
            ax.annotate(stars(row.p_value), (xi, m + s), xytext=(0, 3), textcoords="offset points",
                        ha="center", va="bottom", fontsize=9)
    ax.set_ylim(lo, hi)
    ax.set_xticks(x, [style.init_label(m, v) for m, v in zip(table["method"], table["variant"], strict=True)],
                  rotation=25, ha="right", fontsize=9)
    ax.set_ylabel(f"{style.metric_name(table['metric'].iloc[0])} (%)")
    ax.set_title(title or f"{table['task'].iloc[0]}: mean ± std over seeds", fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", linewidth=0.4, alpha=0.5)
    ax.set_axisbelow(True)
    ax.text(1.0, 1.0, "stars: t-test vs base", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=7, color="#555555")
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=style.DPI, format="png")
