"""Study tables across tasks, beside the paper's numbers: transfer (Table 2 / Fig. 4), ablation (Table 4)
and label fractions (Table 1).

They are compiled from the per-task tables that ``aggregate`` writes, never from runs: means, stds,
run counts and p-values are copied, so a study table cannot disagree with the task tables it cites.
Each input is named with its task and label fraction (``TASK[:FRACTION]=PATH``) and checked against
the table's own columns. The CSV is long (one row per task, fraction and initialisation, in percent);
the Markdown prints the paper's layout with the published value and the difference "this run − paper".
A supervised baseline that the run trained is an ordinary row; one it did not train (no ImageNet file) keeps
the paper's value alone, marked †.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dira import registry
from dira.errors import InputError
from dira.eval.statistics import stars
from dira.io import write_text
from dira.report import style
from dira.report.paper_values import SOURCE, PaperValue, paper_reference
from dira.report.style import init_order
from dira.report.tables import P_VALUE_NOTE, code_line, read_table, split_init

KINDS = ("transfer", "ablation", "fraction")
STUDY_COLUMNS = [
    "kind", "task", "fraction", "metric", "init", "method", "variant", "n", "mean_pct", "std_pct", "baseline",
    "p_value", "stars", "gain_pct", "paper_mean_pct", "paper_std_pct", "paper_mark", "paper_gain_pct",
    "paper_tables", "difference_pct", "source",
]
VARIANT_ROWS = {"base": "Di (base)", "dir": "+ L_res", "dira": "+ L_res + L_adv (DiRA)"}


@dataclass(frozen=True)
class TableSpec:
    """One per-task table and what it is: ``TASK[:FRACTION]=PATH`` on the command line."""

    task: str
    fraction: float
    path: Path


def parse_table_spec(spec: str) -> TableSpec:
    """'chexpert:0.25=t.csv', 'chexpert:25%=t.csv' or 'chexpert=t.csv' (all labels)."""
    match = re.fullmatch(r"([A-Za-z0-9_-]+)(?::([0-9.]+)(%?))?=(.+)", spec)
    if match is None:
        raise InputError(f"--table '{spec}': expected TASK[:FRACTION]=PATH, e.g. chexpert:0.25=tables/chexpert_25.csv")
    task, number, percent, path = match.groups()
    try:
        fraction = 1.0 if number is None else float(number) / (100 if percent else 1)
    except ValueError:
        raise InputError(f"--table '{spec}': fraction '{number}' is not a number") from None
    if not 0 < fraction <= 1:
        raise InputError(f"--table '{spec}': fraction {fraction:g} is not in (0, 1] (write 0.25 or 25%)")
    return TableSpec(task, fraction, Path(path))


def read_results(specs: Sequence[TableSpec]) -> pd.DataFrame:
    """Our results from the per-task tables, one row per (task, fraction, init), in percent."""
    seen: dict[tuple[str, float], Path] = {}
    frames = []
    for spec in specs:
        key = (spec.task, round(spec.fraction, 6))
        table = read_table(spec.path)
        tasks = set(table["task"])
        if tasks != {spec.task}:
            raise InputError(f"{spec.path}: holds task {sorted(tasks)}, but was given as '{spec.task}'")
        fractions = set(table["fraction"].round(6))
        if fractions != {key[1]}:
            raise InputError(f"{spec.path}: holds label fraction {sorted(fractions)}, "
                             f"but was given as {spec.fraction:g}")
        if key in seen:
            raise InputError(f"{spec.path}: {spec.task} at fraction {spec.fraction:g} is already given by {seen[key]}")
        seen[key] = spec.path
        frames.append(pd.DataFrame({
            "task": spec.task, "fraction": key[1], "metric": table["metric"], "init": table["init"],
            "method": table["method"], "variant": table["variant"], "n": table["n"],
            "mean_pct": 100 * table["mean"], "std_pct": 100 * table["std"], "baseline": table["baseline"],
            "p_value": table["p_value"], "source": str(spec.path),
        }))
    if not frames:
        raise InputError("no per-task tables given")
    return pd.concat(frames, ignore_index=True)


def build_study(kind: str, results: pd.DataFrame,
                reference: dict[tuple[str, str, float], PaperValue] | None = None) -> pd.DataFrame:
    """The study's long table: our rows with stars and gains, the paper's value and the difference."""
    if kind not in KINDS:
        raise InputError(f"unknown study kind '{kind}' (choose from {', '.join(KINDS)})")
    reference = paper_reference() if reference is None else reference
    if kind in ("transfer", "ablation") and (results["fraction"] != 1).any():
        partial = results.loc[results["fraction"] != 1, "source"].iloc[0]
        raise InputError(f"{partial}: a {kind} table compares fine-tuning on all labels; "
                         "label-fraction tables belong in --kind fraction")
    if kind == "ablation":
        results = results[results["variant"].isin(style.VARIANTS)]
        if results.empty:
            raise InputError("no '<method>_<base|dir|dira>' rows in the given tables for an ablation table")
    if kind == "transfer":
        results = pd.concat([results, _reference_rows(results, reference)], ignore_index=True)

    means = {(r.task, r.fraction, r.init): r.mean_pct for r in results.itertuples()}
    rows = []
    for r in results.itertuples():
        paper = reference.get((r.init, r.task, r.fraction))
        paper_base = reference.get((f"{r.method}_base", r.task, r.fraction)) if r.variant in ("dir", "dira") else None
        ours_base = means.get((r.task, r.fraction, r.baseline), math.nan) if r.baseline else math.nan
        rows.append({
            "kind": kind, "task": r.task, "fraction": r.fraction, "metric": r.metric, "init": r.init,
            "method": r.method, "variant": r.variant, "n": r.n, "mean_pct": r.mean_pct, "std_pct": r.std_pct,
            "baseline": r.baseline, "p_value": r.p_value, "stars": stars(r.p_value),
            "gain_pct": r.mean_pct - ours_base,
            "paper_mean_pct": paper.mean if paper else math.nan, "paper_std_pct": paper.std if paper else math.nan,
            "paper_mark": paper.mark if paper else "",
            "paper_gain_pct": paper.mean - paper_base.mean if paper and paper_base else math.nan,
            "paper_tables": ";".join(paper.tables) if paper else "",
            "difference_pct": r.mean_pct - paper.mean if paper else math.nan, "source": r.source,
        })
    task_order = list(dict.fromkeys(results["task"]))
    rows.sort(key=lambda row: (task_order.index(row["task"]), row["fraction"], init_order(row["init"])))
    return pd.DataFrame(rows, columns=STUDY_COLUMNS)


def _reference_rows(results: pd.DataFrame, reference: dict[tuple[str, str, float], PaperValue]) -> pd.DataFrame:
    """Paper-only rows (n = 0) for the supervised baselines the run did not train on a task."""
    trained = set(zip(results["task"], results["init"], strict=True))
    rows = []
    for task, metric in dict(zip(results["task"], results["metric"], strict=True)).items():
        for init in style.REFERENCE_INITS:
            if (init, task, 1.0) in reference and (task, init) not in trained:
                rows.append({"task": task, "fraction": 1.0, "metric": metric, "init": init, "method": init,
                             "variant": "", "n": 0, "mean_pct": math.nan, "std_pct": math.nan, "baseline": "",
                             "p_value": math.nan, "source": ""})
    return pd.DataFrame(rows, columns=results.columns)


# --------------------------------------------------------------------------- Markdown


def _number(mean: float, std: float) -> str:
    return f"{mean:.2f}" + (f" ± {std:.2f}" if math.isfinite(std) else "")


def _cells(row: pd.Series, show_gain: bool) -> list[str]:
    """[ours, paper, Δ]: mean ± std with (gain over base, significance) in parentheses."""
    def cell(mean: float, std: float, gain: float, mark: str) -> str:
        if not math.isfinite(mean):
            return "–"
        notes = [f"{gain:+.2f}"] if show_gain and math.isfinite(gain) else []
        notes += [mark] if mark else []
        return _number(mean, std) + (f" ({', '.join(notes)})" if notes else "")

    ours = cell(row["mean_pct"], row["std_pct"], row["gain_pct"], row["stars"])
    paper = cell(row["paper_mean_pct"], row["paper_std_pct"], row["paper_gain_pct"], row["paper_mark"])
    difference = f"{row['difference_pct']:+.2f}" if math.isfinite(row["difference_pct"]) else ""
    return [ours, paper, difference]


def _grid(study: pd.DataFrame, column: str, column_values: list, show_gain: bool,
          label_rows: list[tuple[list[str], str]]) -> list[str]:
    """Markdown lines: one per (labels, init), with [ours, paper, Δ] for each value of ``column``."""
    cells = {(row[column], row["init"]): _cells(row, show_gain) for _, row in study.iterrows()}
    lines = []
    for labels, init in label_rows:
        row = list(labels)
        for value in column_values:
            row += cells.get((value, init), ["", "", ""])
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _header(labels: list[str]) -> list[str]:
    return ["| " + " | ".join(labels) + " |", "|" + "---|" * len(labels)]


def render_study(kind: str, study: pd.DataFrame, specs: Sequence[TableSpec]) -> str:
    """The paper's layout: inits as rows; each task (and fraction) as [this run, paper, Δ] columns."""
    metric_of = dict(zip(study["task"], study["metric"], strict=False))
    tasks = list(dict.fromkeys(study["task"]))
    inits = sorted(set(study["init"]), key=init_order)
    paper_only = paper_only_inits(study)

    def init_label(init: str) -> str:
        return style.init_label(*split_init(init)) + (" †" if init in paper_only else "")

    title = {"transfer": "Transfer to the downstream tasks (paper Table 2, Fig. 4)",
             "ablation": "Ablation of restoration and adversary (paper Table 4)",
             "fraction": "Label efficiency (paper Table 1)"}[kind]
    lines = [f"# {title}: test metric (%), mean ± std over fine-tuning seeds", ""]
    if kind == "fraction":
        for task in tasks:
            part = study[study["task"] == task]
            fractions = sorted(set(part["fraction"]))
            header = ["Initialisation"]
            for fraction in fractions:
                header += [style.fraction_label(fraction), "paper", "Δ"]
            lines += [f"## {style.task_name(task)} ({style.metric_name(metric_of[task])}, %)", "", *_header(header)]
            lines += _grid(part, "fraction", fractions, True,
                           [([init_label(i)], i) for i in inits if i in set(part["init"])])
            lines.append("")
    else:
        # 2D and 3D tasks share no initialisation (they are matched by dimensionality): one table each.
        groups = {dims: [t for t in tasks if _task_dims(t) == dims] for dims in (2, 3)}
        for dims, group in groups.items():
            if not group:
                continue
            part = study[study["task"].isin(group)]
            group_inits = [i for i in inits if i in set(part["init"])]
            if len(groups[2]) and len(groups[3]):
                lines += [f"## {dims}D tasks" + ("" if dims == 2 else f" ({THREE_D_NOTE})"), ""]
            lines += _study_grid(kind, part, group, group_inits, metric_of, init_label)
            lines.append("")

    tables = sorted({t for cell in study["paper_tables"] for t in cell.split(";") if t},
                    key=lambda t: (t.startswith("fig"), t))
    printed = ", ".join(f"Fig. {t[3:]}" if t.startswith("fig") else f"Table {t}" for t in tables) or "none"
    gain = ("In parentheses: the gain over the method's base initialisation, in points, and " if kind != "transfer"
            else "In parentheses: ")
    lines += [
        f"{gain}the significance of the difference to the base, copied from the per-task tables. {P_VALUE_NOTE}",
        "",
        f"paper: {SOURCE}, as printed ({printed}); its marks are its own (>*** p < 0.0001, ↓ a significant drop). "
        "Δ = this run − paper, in percentage points."
        + (" † a supervised baseline this run did not train (no weights): the paper's value only."
           if paper_only else ""),
        "",
        f"Compiled by {code_line()} from "
        + ", ".join(f"{s.path} ({s.task}, {style.fraction_label(s.fraction)})" for s in specs) + ".",
    ]
    return "\n".join(lines) + "\n"


THREE_D_NOTE = "the paper's 3D table was not retrieved: no published values beside them"


def _task_dims(task: str) -> int:
    return registry.TASKS[task].dims if task in registry.TASKS else 2


def _study_grid(kind: str, part: pd.DataFrame, tasks: list[str], inits: list[str], metric_of: dict[str, str],
                init_label) -> list[str]:
    """One table of the transfer or ablation study: inits as rows, each task as [this run, paper, Δ]."""
    header = ["Method", "Variant"] if kind == "ablation" else ["Initialisation"]
    for task in tasks:
        header += [f"{style.task_name(task)} {style.metric_name(metric_of[task])} (%)", "paper", "Δ"]
    if kind == "ablation":
        label_rows, previous = [], None
        for init in inits:
            method, variant = init.rsplit("_", 1)
            label_rows.append(([style.method_name(method) if method != previous else "", VARIANT_ROWS[variant]], init))
            previous = method
    else:
        label_rows = [([init_label(i)], i) for i in inits]
    return [*_header(header), *_grid(part, "task", tasks, kind == "ablation", label_rows)]


def paper_only_inits(study: pd.DataFrame) -> set[str]:
    """Inits with no run of ours on any task of the study (the † rows of the transfer table)."""
    return set(study["init"]) - set(study.loc[study["n"] > 0, "init"])


def compare(kind: str, specs: Sequence[TableSpec], out_csv: Path, out_md: Path) -> None:
    """Write the study's CSV (long, percent) and Markdown table, atomically."""
    study = build_study(kind, read_results(specs))
    write_text(out_csv, study.to_csv(index=False))
    write_text(out_md, render_study(kind, study, specs))
