"""The DiRA paper's published 2D numbers (``paper_values.csv``), to set our tables beside.

The CSV holds each number where the paper prints it: Table 1 (label fractions, means only), Table 2
(random and supervised initialisations), Table 4 (ablation; std only on the Di+R rows) and Fig. 4
(base vs DiRA with std and significance marks). Values are percent as printed; ``fraction`` 1 is
fine-tuning on all labels. The same result printed in several places is one reference value.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

from dira.errors import InputError

PAPER_COLUMNS = ["table", "init", "task", "fraction", "mean", "std", "mark"]
PAPER_TABLES = ("1", "2", "4", "fig4")
SOURCE = "DiRA (Haghighi, Hosseinzadeh Taher et al., CVPR 2022)"


@dataclass(frozen=True)
class PaperValue:
    mean: float
    std: float  # nan where the paper prints none
    mark: str  # the paper's significance mark against the base method ('' where none is printed)
    tables: tuple[str, ...]  # where it is printed


def read_paper_values(text: str | None = None) -> pd.DataFrame:
    """The packaged CSV (or ``text`` in its format), checked for columns, tables and numbers."""
    source = "dira/report/paper_values.csv"
    if text is None:
        text = resources.files("dira.report").joinpath("paper_values.csv").read_text(encoding="utf-8")
    table = pd.read_csv(io.StringIO(text), dtype={"table": str, "init": str, "task": str, "mark": str},
                        keep_default_na=False, na_values={"std": [""]})
    if list(table.columns) != PAPER_COLUMNS:
        raise InputError(f"{source}: columns {list(table.columns)}, expected {PAPER_COLUMNS}")
    if not table["table"].isin(PAPER_TABLES).all():
        raise InputError(f"{source}: unknown table names {sorted(set(table['table']) - set(PAPER_TABLES))}")
    for column in ("fraction", "mean", "std"):
        if table[column].dtype.kind not in "fi":
            raise InputError(f"{source}: column '{column}' is not numeric")
    return table


def paper_reference(table: pd.DataFrame | None = None) -> dict[tuple[str, str, float], PaperValue]:
    """One value per (init, task, fraction), merged over the places that print it.

    Reprints must agree on the mean; the std and mark come from wherever the paper gives them.
    """
    table = read_paper_values() if table is None else table
    reference = {}
    for (init, task, fraction), rows in table.groupby(["init", "task", "fraction"], sort=False):
        means, stds = rows["mean"].unique(), rows["std"].dropna().unique()
        if means.size != 1 or stds.size > 1:
            raise InputError(f"paper values disagree for {init} on {task} at fraction {fraction}: "
                             f"means {sorted(means)}, stds {sorted(stds)}")
        marks = [mark for mark in rows["mark"] if mark]
        reference[(init, task, round(float(fraction), 6))] = PaperValue(
            float(means[0]), float(stds[0]) if stds.size else np.nan, marks[0] if marks else "",
            tuple(rows["table"]))
    return reference
