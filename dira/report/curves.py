"""Label-efficiency curves (the paper's Table 1 as a figure): test metric against the share of labels.

One line per initialisation fine-tuned at two or more fractions, mean ± std over seeds as error bars,
from the per-task tables that ``dira aggregate`` writes for each label fraction (and for all labels).
The x axis is logarithmic: the study's fractions (1 %, 25 %, 50 %, 100 %) span two decades. Base
methods are dashed, DiRA variants solid in the full colour of the same method, as in the bar charts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dira.errors import InputError
from dira.io import atomic_path
from dira.report import style
from dira.report.studies import TableSpec, init_order, read_results

VARIANT_LINESTYLE = {"": ":", "base": "--", "dir": "-.", "dira": "-"}


def fraction_curves(specs: Sequence[TableSpec], out_png, title: str = "") -> None:
    """Plot every initialisation found in the tables of one task at its label fractions."""
    results = read_results(specs)
    tasks = sorted(set(results["task"]))
    if len(tasks) != 1:
        raise InputError(f"label-fraction curves take the tables of one task, got {tasks}")
    if results["fraction"].nunique() < 2:
        raise InputError(f"{tasks[0]}: tables of a single label fraction make no curve")
    fig = Figure(figsize=style.FIGURE_SIZE, layout="constrained")
    ax = fig.add_subplot()
    for init in sorted(set(results["init"]), key=init_order):
        rows: pd.DataFrame = results[results["init"] == init].sort_values("fraction")
        if len(rows) < 2:
            continue  # fine-tuned on all labels only (random, the Di+R ablation): a point, not a curve
        method, variant = rows["method"].iloc[0], rows["variant"].iloc[0]
        ax.errorbar(100 * rows["fraction"], rows["mean_pct"], yerr=np.nan_to_num(rows["std_pct"]), capsize=3,
                    marker="o", markersize=4, linewidth=1.4, linestyle=VARIANT_LINESTYLE.get(variant, "-"),
                    color=style.bar_colour(method, variant) if variant != "base" else style.method_colour(method),
                    alpha=0.75 if variant == "base" else 1.0, label=style.init_label(method, variant))
    fractions = sorted(set(100 * results["fraction"]))
    ax.set_xscale("log")
    ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
    ax.minorticks_off()
    ax.set_xlabel("labelled training images (%)")
    ax.set_ylabel(f"{style.metric_name(results['metric'].iloc[0])} (%)")
    ax.set_title(title or f"{style.task_name(tasks[0])}: label efficiency, mean ± std over seeds", fontsize=11)
    ax.grid(linewidth=0.4, alpha=0.5)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=style.DPI, format="png")
