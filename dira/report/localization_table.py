"""Table 5: weakly-supervised localization accuracy per IoU threshold δ, each DiRA variant against its base.

Every run's ``accuracy.csv`` is first recomputed from its ``boxes.csv`` and must agree, so the table rests
on the per-box IoUs that anyone can inspect. The number per (init, δ) is the mean over runs of the
accuracy averaged over the eight boxed pathologies, with the boxes of both heatmap thresholds as
candidates (the ``any`` rows), as Table 5 prints it. Beside it: the std over runs, the gain over the
method's base (the paper's green arrow), a t-test of the per-run values, and the published numbers.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from dira.errors import InputError
from dira.eval.localization import ANY_THRESHOLD, accuracy_from_boxes
from dira.eval.statistics import stars, summarize, ttest_p
from dira.io import write_text
from dira.report import style
from dira.report.paper_values import SOURCE
from dira.report.studies import init_order
from dira.report.tables import P_VALUE_NOTE, code_line, split_init

RECOMPUTE_TOLERANCE = 1e-9
TABLE5_COLUMNS = ["init", "method", "variant", "delta", "n", "mean_pct", "std_pct", "seeds", "values_pct",
                  "baseline", "gain_pct", "p_value", "stars", "paper_pct", "paper_gain_pct", "difference_pct"]


@dataclass(frozen=True)
class LocalizationRun:
    init: str
    seed: int
    accuracy: dict[float, float]  # δ -> mean accuracy over the classes (both thresholds' boxes), a fraction
    run_dir: Path
    commit: str | None


def read_localization_run(run_dir: Path) -> LocalizationRun:
    """One ``<init>/seed<n>`` folder of ``dira localize``, its accuracies checked against its boxes."""
    run_dir = Path(run_dir)
    match = re.fullmatch(r"seed(\d+)", run_dir.name)
    if match is None:
        raise InputError(f"{run_dir}: a localization folder must be named seed<n> inside its init folder")
    summary_path = run_dir / "localization.json"
    try:
        summary = json.loads(summary_path.read_text())
        accuracy = pd.read_csv(run_dir / "accuracy.csv", dtype={"threshold": str, "label": str})
        boxes = pd.read_csv(run_dir / "boxes.csv", dtype={"threshold": str, "label": str, "image": str})
    except FileNotFoundError as err:
        raise InputError(f"{run_dir}: incomplete localization run ({err.filename} missing)") from err
    except (json.JSONDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{run_dir}: unreadable localization output ({err})") from err
    if summary.get("init") != run_dir.parent.name or summary.get("seed") != int(match[1]):
        raise InputError(f"{summary_path}: init/seed {summary.get('init')}/{summary.get('seed')} do not match "
                         f"the folder {run_dir.parent.name}/{run_dir.name}")
    try:
        settings = summary["provenance"]["config"]["localization"]
        thresholds, deltas = [f"{t:g}" for t in settings["thresholds"]], list(settings["deltas"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{summary_path}: no localization thresholds and deltas in its provenance ({err!r}); "
                         "not written by `dira localize`?") from err
    missing = sorted({"box_id", "label", "threshold", "iou"} - set(boxes.columns))
    if missing:
        raise InputError(f"{run_dir / 'boxes.csv'}: missing columns {missing}")
    recomputed = accuracy_from_boxes(boxes, thresholds, deltas)
    merged = accuracy.merge(recomputed, on=["label", "threshold", "delta"], suffixes=("", "_boxes"), how="outer")
    differs = ~np.isclose(merged["accuracy"], merged["accuracy_boxes"], rtol=0, atol=RECOMPUTE_TOLERANCE,
                          equal_nan=True)
    if len(merged) != len(accuracy) or differs.any():
        first = merged[differs].iloc[0] if differs.any() else merged.iloc[0]
        raise InputError(f"{run_dir / 'accuracy.csv'}: disagrees with boxes.csv (e.g. {first['label']} at threshold "
                         f"{first['threshold']}, δ={first['delta']}: {first['accuracy']} vs {first['accuracy_boxes']})")
    mean = accuracy[(accuracy["label"] == "mean") & (accuracy["threshold"] == ANY_THRESHOLD)]
    commit = summary.get("provenance", {}).get("code", {}).get("git_commit")
    return LocalizationRun(summary["init"], int(match[1]), dict(zip(mean["delta"].round(6), mean["accuracy"],
                                                                      strict=True)), run_dir, commit)


def read_paper_localization() -> dict[tuple[str, float], float]:
    """Table 5 as published: (init, δ) -> accuracy in percent."""
    text = resources.files("dira.report").joinpath("paper_localization.csv").read_text(encoding="utf-8")
    table = pd.read_csv(io.StringIO(text))
    return {(r.init, round(float(r.delta), 6)): float(r.accuracy) for r in table.itertuples()}


def build_table5(runs: list[LocalizationRun], paper: dict[tuple[str, float], float] | None = None) -> pd.DataFrame:
    """Long table, one row per (init, δ), in percent."""
    if not runs:
        raise InputError("no localization runs given")
    paper = read_paper_localization() if paper is None else paper
    deltas = sorted(runs[0].accuracy)
    for run in runs:
        if sorted(run.accuracy) != deltas:
            raise InputError(f"{run.run_dir}: δ values {sorted(run.accuracy)} differ from {runs[0].run_dir}'s {deltas}")
    by_init: dict[str, list[LocalizationRun]] = {}
    for run in runs:
        by_init.setdefault(run.init, []).append(run)
    rows = []
    for init in sorted(by_init, key=init_order):
        try:
            method, variant = split_init(init)
        except ValueError as err:
            raise InputError(f"{by_init[init][0].run_dir}: {err}") from err
        baseline = f"{method}_base" if variant in ("dir", "dira") and f"{method}_base" in by_init else ""
        for delta in deltas:
            values = [100 * r.accuracy[delta] for r in sorted(by_init[init], key=lambda r: r.seed)]
            mean, std, n = summarize(values)
            base_values = [100 * r.accuracy[delta] for r in by_init[baseline]] if baseline else []
            base_mean = summarize(base_values)[0] if baseline else math.nan
            p = ttest_p(values, base_values) if baseline else math.nan
            paper_value = paper.get((init, delta), math.nan)
            paper_base = paper.get((baseline, delta), math.nan) if baseline else math.nan
            rows.append({
                "init": init, "method": method, "variant": variant, "delta": delta, "n": n, "mean_pct": mean,
                "std_pct": std, "seeds": ";".join(str(r.seed) for r in sorted(by_init[init], key=lambda r: r.seed)),
                "values_pct": ";".join(f"{v:.6g}" for v in values), "baseline": baseline,
                "gain_pct": mean - base_mean, "p_value": p, "stars": stars(p), "paper_pct": paper_value,
                "paper_gain_pct": paper_value - paper_base, "difference_pct": mean - paper_value,
            })
    return pd.DataFrame(rows, columns=TABLE5_COLUMNS)


def _arrow(gain: float) -> str:
    if not math.isfinite(gain):
        return ""
    return f"↑{gain:.1f}" if gain >= 0 else f"↓{-gain:.1f}"


def _cell(mean: float, std: float, gain: float, mark: str) -> str:
    if not math.isfinite(mean):
        return "–"
    text = f"{mean:.2f}" + (f" ± {std:.2f}" if math.isfinite(std) else "")
    notes = [n for n in (_arrow(gain), mark) if n]
    return text + (f" ({' '.join(notes)})" if notes else "")


def _label(row: pd.Series) -> str:
    return style.init_label(row["method"], row["variant"])


def render_markdown(table: pd.DataFrame, runs: list[LocalizationRun]) -> str:
    deltas = sorted(set(table["delta"]))
    lines = [
        "# Weakly-supervised localization on ChestX-ray14 (paper Table 5): accuracy (%) per IoU threshold δ",
        "",
        "| Initialisation | Source | " + " | ".join(f"δ = {100 * d:g}%" for d in deltas) + " |",
        "|---|---|" + "---|" * len(deltas),
    ]
    for _, rows in table.groupby("init", sort=False):
        rows = rows.set_index("delta").loc[deltas]
        ours = [_cell(r.mean_pct, r.std_pct, r.gain_pct, r.stars) for r in rows.itertuples()]
        lines.append(f"| {_label(rows.iloc[0])} | this run (n={rows['n'].iloc[0]}) | " + " | ".join(ours) + " |")
        if rows["paper_pct"].notna().any():
            paper = [_cell(r.paper_pct, math.nan, r.paper_gain_pct, "") for r in rows.itertuples()]
            lines.append("|  | paper | " + " | ".join(paper) + " |")
            difference = [f"{d:+.2f}" if math.isfinite(d) else "" for d in rows["difference_pct"]]
            lines.append("|  | Δ | " + " | ".join(difference) + " |")
    commits = sorted({run.commit or "unknown" for run in runs})
    lines += [
        "",
        "Accuracy: share of the ground-truth boxes that a box of their class reaches with IoU ≥ δ, boxes from "
        "Grad-CAM heatmaps binarised at both thresholds, averaged over the 8 boxed pathologies; mean ± std over "
        "fine-tuning seeds. ↑/↓: difference to the method's base, in points. " + P_VALUE_NOTE,
        "",
        f"paper: {SOURCE}, appendix Table 5 (mean of ten runs). Δ = this run − paper, in points.",
        "",
        f"Compiled by {code_line()} from {len(runs)} localization runs (at git {', '.join(commits)}).",
    ]
    return "\n".join(lines) + "\n"


def latex_name(method: str, variant: str) -> str:
    """The paper's row names in LaTeX: 'DiRA\\textsubscript{MoCo-v2}', 'MoCo-v2 + $\\mathcal{L}_{res}$'."""
    name = style.method_name(method).replace("_", "\\_")
    if variant == "dira":
        return f"DiRA\\textsubscript{{{name}}}"
    if variant == "dir":
        return f"{name} + $\\mathcal{{L}}_{{res}}$"
    return name


def render_latex(table: pd.DataFrame) -> str:
    """A booktabs tabular in the paper's layout; the better of each base/DiRA pair is bold."""
    deltas = sorted(set(table["delta"]))
    best = {}  # (init, δ) of each method's strictly best variant; a tie is bold nowhere
    for (_method, delta), group in table[table["variant"] != ""].groupby(["method", "delta"]):
        ranked = group["mean_pct"].dropna().sort_values(ascending=False)
        if len(ranked) > 1 and ranked.iloc[0] > ranked.iloc[1]:
            best[(group.loc[ranked.index[0], "init"], delta)] = True
    lines = [
        "% Weakly-supervised localization accuracy (%) under IoU thresholds; generated by " + code_line(),
        "\\begin{tabular}{l" + "c" * len(deltas) + "}",
        "\\toprule",
        "Method & " + " & ".join(f"$\\delta = {100 * d:g}\\%$" for d in deltas) + " \\\\",
        "\\midrule",
    ]
    for init, rows in table.groupby("init", sort=False):
        rows = rows.set_index("delta").loc[deltas]
        name = latex_name(rows.iloc[0]["method"], rows.iloc[0]["variant"])
        cells = []
        for delta, r in rows.iterrows():
            value = "--" if not math.isfinite(r["mean_pct"]) else f"{r['mean_pct']:.2f}"
            if best.get((init, delta)):
                value = f"\\textbf{{{value}}}"
            if math.isfinite(r["gain_pct"]):
                arrow = "\\uparrow" if r["gain_pct"] >= 0 else "\\downarrow"
                value += f" ($\\!{arrow}{abs(r['gain_pct']):.1f}$)"
            cells.append(value)
        lines.append(f"{name} & " + " & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def localization_table(run_dirs: list[Path], out_csv: Path, out_md: Path, out_tex: Path) -> None:
    """Write Table 5 as CSV (long, percent), Markdown (with the paper's values) and LaTeX, atomically."""
    runs = [read_localization_run(Path(d)) for d in run_dirs]
    table = build_table5(runs)
    write_text(out_csv, table.to_csv(index=False))
    write_text(out_md, render_markdown(table, runs))
    write_text(out_tex, render_latex(table))
