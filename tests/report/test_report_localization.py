"""Table 5 from localization runs, the Fig. 6 heatmap panels, and label-fraction curves."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import image
from test_report_studies import task_table

from dira.cli import main
from dira.errors import InputError
from dira.eval.localization import accuracy_from_boxes
from dira.io import write_json
from dira.report import style
from dira.report.curves import fraction_curves
from dira.report.heatmaps import heatmap_figure
from dira.report.localization_table import build_table5, read_localization_run, read_paper_localization
from dira.report.studies import parse_table_spec

DELTAS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]


def write_localization_run(root: Path, init: str, seed: int, ious: list[float]) -> Path:
    """A run whose boxes have the given IoUs (one Effusion box each, at threshold 60) and its accuracy.csv."""
    run_dir = root / init / f"seed{seed}"
    run_dir.mkdir(parents=True)
    boxes = pd.DataFrame({
        "box_id": range(len(ious)), "image": [f"{i}.png" for i in range(len(ious))], "label": "Effusion",
        "gt_x": 0.0, "gt_y": 0.0, "gt_w": 10.0, "gt_h": 10.0, "threshold": "60", "x": 0.0, "y": 0.0, "w": 10.0,
        "h": 10.0, "iou": ious,
    })
    boxes.to_csv(run_dir / "boxes.csv", index=False)
    accuracy_from_boxes(boxes, ["60"], DELTAS).to_csv(run_dir / "accuracy.csv", index=False)
    write_json(run_dir / "localization.json", {
        "init": init, "seed": seed,
        "provenance": {"code": {"git_commit": "abc"},
                       "config": {"localization": {"thresholds": [60], "deltas": DELTAS}}},
    })
    return run_dir


@pytest.fixture
def localization_runs(tmp_path) -> list[Path]:
    # accuracy at δ=0.1..0.6 is the share of the 4 boxes with IoU >= δ
    root = tmp_path / "localization"
    return [
        write_localization_run(root, "mocov2_base", 0, [0.15, 0.05, 0.0, 0.0]),  # 25% at δ=0.1, else 0
        write_localization_run(root, "mocov2_base", 1, [0.25, 0.05, 0.0, 0.0]),  # 25%, 25%, 0...
        write_localization_run(root, "mocov2_dira", 0, [0.55, 0.35, 0.15, 0.0]),  # 75, 50, 50, 25, 25, 0
        write_localization_run(root, "mocov2_dira", 1, [0.65, 0.45, 0.15, 0.0]),  # 75, 50, 50, 50, 25, 25
        write_localization_run(root, "random", 0, [0.0, 0.0, 0.0, 0.0]),
    ]


def test_table5_holds_means_gains_and_the_paper_beside_them(localization_runs):
    table = build_table5([read_localization_run(r) for r in localization_runs])
    assert list(table["init"].drop_duplicates()) == ["random", "mocov2_base", "mocov2_dira"]
    cell = table.set_index(["init", "delta"])
    assert cell.loc[("mocov2_base", 0.2), "mean_pct"] == pytest.approx(12.5)
    assert cell.loc[("mocov2_dira", 0.4), "mean_pct"] == pytest.approx(37.5)
    assert cell.loc[("mocov2_dira", 0.4), "std_pct"] == pytest.approx(np.std([25, 50], ddof=1))
    assert cell.loc[("mocov2_dira", 0.1), "gain_pct"] == pytest.approx(75 - 25)
    assert cell.loc[("mocov2_dira", 0.1), "baseline"] == "mocov2_base"
    assert cell.loc[("mocov2_base", 0.1), "baseline"] == ""
    assert cell.loc[("mocov2_dira", 0.1), "paper_pct"] == 58.13
    assert cell.loc[("mocov2_dira", 0.1), "paper_gain_pct"] == pytest.approx(58.13 - 54.89)
    assert cell.loc[("mocov2_dira", 0.1), "difference_pct"] == pytest.approx(75 - 58.13)
    assert math.isnan(cell.loc[("random", 0.1), "paper_pct"])


def test_cli_writes_csv_markdown_and_latex(localization_runs, tmp_path):
    out = tmp_path / "tables"
    code = main(["localization-table", "--runs", *map(str, localization_runs), "--out-csv", str(out / "t5.csv"),
                 "--out-md", str(out / "t5.md"), "--out-tex", str(out / "t5.tex")])
    assert code == 0
    md = (out / "t5.md").read_text()
    assert "| DiRA_MoCo-v2 | this run (n=2) | 75.00 ± 0.00 (↑50.0 ***) |" in md
    assert "|  | paper | 58.13 (↑3.2) |" in md and "Table 5" in md and "git" in md
    tex = (out / "t5.tex").read_text()
    assert "\\begin{tabular}" in tex and "DiRA\\textsubscript{MoCo-v2} & \\textbf{75.00} ($\\!\\uparrow50.0$)" in tex
    assert len(pd.read_csv(out / "t5.csv")) == 3 * len(DELTAS)


def test_an_accuracy_file_that_disagrees_with_its_boxes_is_rejected(localization_runs):
    run = localization_runs[2]
    accuracy = pd.read_csv(run / "accuracy.csv")
    accuracy.loc[accuracy["label"] == "Effusion", "accuracy"] += 0.01
    accuracy.to_csv(run / "accuracy.csv", index=False)
    with pytest.raises(InputError, match=r"accuracy\.csv: disagrees with boxes\.csv"):
        read_localization_run(run)


def test_a_folder_that_contradicts_its_summary_is_rejected(localization_runs, tmp_path):
    moved = localization_runs[0].rename(localization_runs[0].parent / "seed7")
    with pytest.raises(InputError, match="do not match the folder"):
        read_localization_run(moved)
    with pytest.raises(InputError, match="incomplete localization run"):
        read_localization_run(tmp_path / "nothing" / "seed0")


def test_paper_table5_is_complete():
    paper = read_paper_localization()
    assert len(paper) == 6 * len(DELTAS)
    assert paper[("simsiam_dira", 0.1)] == 51.07 and paper[("barlowtwins_base", 0.6)] == 4.69


def _examples(path: Path, ids: list[str], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, labels=np.array(["Atelectasis", "Effusion", "Nodule"]), ids=np.array(ids),
             images=rng.integers(0, 255, (3, 32, 32), dtype=np.uint8),
             heatmaps=rng.integers(0, 255, (3, 32, 32), dtype=np.uint8),
             boxes=np.array([[4, 4, 10, 8], [0, 0, 32, 32], [20, 20, 3, 3]], np.float32))
    return path


def test_heatmap_figure_has_one_panel_per_pathology_and_init(tmp_path):
    ids = ["a.png", "b.png", "c.png"]
    rows = [("mocov2_base", _examples(tmp_path / "base.npz", ids, 0)),
            ("mocov2_dira", _examples(tmp_path / "dira.npz", ids, 1))]
    heatmap_figure(rows, tmp_path / "fig.png")
    pixels = image.imread(tmp_path / "fig.png")
    from dira.report.heatmaps import PANEL_INCHES
    assert pixels.shape[1] == round((PANEL_INCHES * 3 + 0.4) * style.DPI)
    assert pixels.shape[0] == round((PANEL_INCHES * 2 + 0.5) * style.DPI)


def test_heatmap_rows_must_show_the_same_images(tmp_path):
    rows = [("mocov2_base", _examples(tmp_path / "base.npz", ["a", "b", "c"], 0)),
            ("mocov2_dira", _examples(tmp_path / "dira.npz", ["a", "b", "x"], 1))]
    with pytest.raises(InputError, match=r"dira\.npz: shows other images"):
        heatmap_figure(rows, tmp_path / "fig.png")
    assert not (tmp_path / "fig.png").exists()


def test_fraction_curves_plot_every_fraction_of_a_task(tmp_path):
    tables = {1.0: (0.80, 0.85), 0.5: (0.75, 0.80), 0.01: (0.60, 0.66)}
    specs = []
    for fraction, (base, dira) in tables.items():
        path = task_table(tmp_path / f"t{fraction}.csv", "chexpert", "auc", {
            "mocov2_base": (base, 0.01, 3, math.nan), "mocov2_dira": (dira, 0.01, 3, 0.01)}, fraction=fraction)
        specs.append(parse_table_spec(f"chexpert:{fraction}={path}"))
    fraction_curves(specs, tmp_path / "curves.png")
    pixels = image.imread(tmp_path / "curves.png")
    assert pixels.shape[:2] == tuple(round(i * style.DPI) for i in reversed(style.FIGURE_SIZE))
    with pytest.raises(InputError, match="single label fraction"):
        fraction_curves(specs[:1], tmp_path / "one.png")
    other = task_table(tmp_path / "siim.csv", "siim", "dice", {"random": (0.5, 0.1, 3, math.nan)})
    with pytest.raises(InputError, match="one task"):
        fraction_curves([*specs, parse_table_spec(f"siim={other}")], tmp_path / "two.png")


def test_a_summary_or_boxes_file_not_from_localize_is_named(localization_runs):
    run = localization_runs[0]
    (run / "localization.json").write_text('{"init": "mocov2_base", "seed": 0, "provenance": {}}')
    with pytest.raises(InputError, match=r"localization\.json: no localization thresholds"):
        read_localization_run(run)
    run = localization_runs[1]
    pd.read_csv(run / "boxes.csv").drop(columns="iou").to_csv(run / "boxes.csv", index=False)
    with pytest.raises(InputError, match=r"boxes\.csv: missing columns \['iou'\]"):
        read_localization_run(run)
