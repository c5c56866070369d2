"""Per-task tables over fine-tuning seeds: mean ± std and t-tests of each DiRA variant against its base.

Every run's headline number is recomputed from its ``predictions.npz`` with the metric function that
fine-tuning used and checked against ``metrics.json``, so the table holds nothing that cannot be
re-derived from the saved predictions. The CSV keeps the metric's native unit and every per-seed value
(for figures and later analysis); the Markdown prints the table the way the paper does.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dira import registry
from dira.errors import InputError
from dira.eval.metrics import score_predictions
from dira.eval.statistics import stars, summarize, ttest_p
from dira.io import write_text
from dira.provenance import code_version
from dira.report import style

RECOMPUTE_TOLERANCE = 1e-9
COLUMNS = ["task", "metric", "fraction", "init", "method", "variant", "mean", "std", "n", "p_value", "baseline",
           "seeds", "values"]


@dataclass(frozen=True)
class RunResult:
    init: str
    seed: int
    metric: str
    value: float
    run_dir: Path
    commit: str | None
    fraction: float = 1.0  # share of the training labels it was fine-tuned on


def split_init(init: str) -> tuple[str, str]:
    """(method, variant): a baseline is its own method without a variant ('supervised_imagenet' ->
    ('supervised_imagenet', '')); 'barlow_twins_dira' -> ('barlow_twins', 'dira')."""
    if init in registry.BASELINE_INITS:
        return init, ""
    method, _, variant = init.rpartition("_")
    if not method or variant not in style.VARIANTS:
        raise ValueError(f"init '{init}' is neither a baseline ({', '.join(registry.BASELINE_INITS)}) "
                         f"nor '<method>_<{'|'.join(style.VARIANTS)}>'")
    return method, variant


def read_run(task: str, run_dir: Path) -> RunResult:
    """Load one ``<init>/seed<n>`` run and verify its value against its saved predictions."""
    run_dir = Path(run_dir)
    metrics_path, predictions_path = run_dir / "metrics.json", run_dir / "predictions.npz"
    match = re.fullmatch(r"seed(\d+)", run_dir.name)
    if match is None:
        raise InputError(f"{run_dir}: a run folder must be named seed<n> inside its init folder")
    try:
        metrics = json.loads(metrics_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{metrics_path}: cannot read run metrics ({err})") from err
    expected = {"task": task, "init": run_dir.parent.name, "seed": int(match.group(1))}
    for key, value in expected.items():
        if metrics.get(key) != value:
            raise InputError(f"{metrics_path}: {key} is {metrics.get(key)!r}, "
                             f"but the run folder says {value!r}")
    try:
        with np.load(predictions_path, allow_pickle=False) as npz:
            predictions = {name: npz[name] for name in npz.files}
        recomputed = score_predictions(metrics["metric"], predictions)
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"{predictions_path}: cannot score the saved predictions ({err})") from err
    value = metrics.get("value")
    if not isinstance(value, int | float) or not abs(recomputed - value) <= RECOMPUTE_TOLERANCE:
        raise InputError(f"{predictions_path}: recomputed {metrics['metric']} {recomputed!r} does not match "
                         f"{value!r} in {metrics_path.name}")
    commit = metrics.get("provenance", {}).get("code", {}).get("git_commit")
    fraction = metrics.get("fraction", 1.0)  # runs from before label fractions used all labels
    return RunResult(expected["init"], expected["seed"], metrics["metric"], float(value), run_dir, commit,
                     float(fraction))


def build_table(task: str, runs: list[RunResult]) -> pd.DataFrame:
    """One row per init in Table 2's order (:func:`style.init_order`): the baselines, then each method's
    base, dir, dira."""
    metrics = {run.metric for run in runs}
    if len(metrics) != 1:
        raise InputError(f"runs of task '{task}' mix metrics {sorted(metrics)}")
    (metric,) = metrics
    fractions = {run.fraction for run in runs}
    if len(fractions) != 1:
        raise InputError(f"runs of task '{task}' mix label fractions {sorted(fractions)}; "
                         "aggregate each fraction into its own table")
    (fraction,) = fractions
    by_init: dict[str, list[RunResult]] = {}
    for run in runs:
        by_init.setdefault(run.init, []).append(run)
    for group in by_init.values():
        seeds = [run.seed for run in group]
        if len(set(seeds)) != len(seeds):
            raise InputError(f"{group[0].run_dir.parent}: the same seed is listed twice")
        group.sort(key=lambda run: run.seed)

    rows = []
    for init in sorted(by_init, key=style.init_order):
        method, variant = split_init(init)
        values = [run.value for run in by_init[init]]
        mean, std, n = summarize(values)
        baseline = f"{method}_base" if variant in ("dir", "dira") and f"{method}_base" in by_init else ""
        p_value = ttest_p(values, [r.value for r in by_init[baseline]]) if baseline else math.nan
        rows.append({
            "task": task, "metric": metric, "fraction": fraction, "init": init, "method": method,
            "variant": variant, "mean": mean, "std": std, "n": n, "p_value": p_value,
            "baseline": baseline, "seeds": ";".join(str(run.seed) for run in by_init[init]),
            "values": ";".join(repr(v) for v in values),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV written by :func:`aggregate`, keeping empty text cells as '' (not nan)."""
    try:
        text_columns = {c: str for c in ("task", "metric", "init", "method", "variant", "baseline",
                                         "seeds", "values")}
        table = pd.read_csv(path, dtype=text_columns, keep_default_na=False,
                            na_values={"std": [""], "p_value": [""]})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path}: cannot read table ({err})") from err
    if "fraction" not in table.columns:  # tables from before label fractions
        table["fraction"] = 1.0
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing or table.empty:
        raise InputError(f"{path}: not a dira task table (missing columns {missing} or no rows)")
    return table


def render_markdown(table: pd.DataFrame, runs: list[RunResult]) -> str:
    """The paper's presentation: percent, mean ± std, stars against the base method."""
    task, fraction = table["task"].iloc[0], table["fraction"].iloc[0]
    metric = style.metric_name(table["metric"].iloc[0])
    labels = "" if fraction == 1 else f", {style.fraction_label(fraction)} of the training labels"
    lines = [
        f"# {task}: test {metric} (%){labels}, mean ± std over fine-tuning seeds",
        "",
        f"| Initialisation | {metric} (%) | vs | p | n |",
        "|---|---|---|---|---|",
    ]
    for row in table.itertuples():
        cell = f"{100 * row.mean:.2f}" + (f" ± {100 * row.std:.2f}" if math.isfinite(row.std) else "")
        versus = p_text = ""
        if row.baseline:
            versus = style.init_label(*split_init(row.baseline))
            if math.isfinite(row.p_value):
                cell += f" ({stars(row.p_value)})"
                p_text = f"{row.p_value:.2e}" if row.p_value < 1e-3 else f"{row.p_value:.3f}"
        label = style.init_label(row.method, row.variant)
        lines.append(f"| {label} | {cell} | {versus} | {p_text} | {row.n} |")
    run_commits = sorted({run.commit or "unknown" for run in runs})
    lines += [
        "",
        P_VALUE_NOTE,
        "",
        f"Aggregated by {code_line()} from {len(runs)} runs (fine-tuned at git {', '.join(run_commits)}).",
    ]
    return "\n".join(lines) + "\n"


P_VALUE_NOTE = ("p: independent two-sample t-test (equal variances) of the per-seed values against the method's "
                "base initialisation; n.s. p ≥ 0.05, * p < 0.05, ** p < 0.01, *** p < 0.001.")


def code_line() -> str:
    """'dira 0.1.0 (git <commit>[, dirty], python …, torch …)': the code a table was made with."""
    code = code_version()
    commit = code["git_commit"] or "unknown"
    return (f"dira {code['dira']} (git {commit}{', dirty' if code['git_dirty'] else ''}, "
            f"python {code['python']}, torch {code['torch']})")


def aggregate(task: str, run_dirs: list[Path], out_csv: Path, out_md: Path) -> None:
    """Write the task's CSV (native units, all per-seed values) and Markdown table, atomically."""
    if not run_dirs:
        raise InputError(f"no runs given for task '{task}'")
    runs = [read_run(task, Path(run_dir)) for run_dir in run_dirs]
    for run in runs:
        try:
            split_init(run.init)
        except ValueError as err:
            raise InputError(f"{run.run_dir}: {err}") from err
    table = build_table(task, runs)
    write_text(out_csv, table.to_csv(index=False))
    write_text(out_md, render_markdown(table, runs))
