"""The whole DAG on config/test.yaml: raw synthetic data in, tables and figures out (a few minutes)."""

import base64
import json
import math
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, job_counts

from dira.eval.metrics import score_predictions

TASKS = {"chestxray14": "auc", "chexpert": "auc", "siim": "dice", "montgomery": "dice", "luna16": "auc", "lits": "iou"}
INITS = ["random", "mocov2_base", "mocov2_dira"]
INITS_3D = ["random", "transvw_base", "transvw_dira"]  # inits are matched to tasks by dimensionality
TASKS_3D = {"luna16", "lits"}


def _check_table(table_csv, run_root, metric, inits):
    """The table's numbers are the mean/std of the per-seed metrics files, each recomputable from predictions."""
    table = pd.read_csv(table_csv)
    assert list(table["init"]) == inits
    for row in table.itertuples():
        runs = [run_root / row.init / f"seed{seed}" for seed in (0, 1)]
        values = [json.loads((run / "metrics.json").read_text())["value"] for run in runs]
        assert row.n == 2
        assert row.mean == pytest.approx(np.mean(values), abs=1e-12)
        assert row.std == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        for run, value in zip(runs, values, strict=True):
            with np.load(run / "predictions.npz", allow_pickle=False) as predictions:
                assert score_predictions(metric, predictions) == pytest.approx(value, abs=1e-12)
    return table.set_index("init")


@pytest.fixture(scope="module")
def finished_run(snakemake_module, tmp_path_factory):
    """One run of the whole test DAG, shared by the tests below (they copy it before changing it)."""
    workdir = tmp_path_factory.mktemp("e2e")
    done = snakemake_module(workdir, "--cores", "2", "--configfile", str(REPO / "config/test.yaml"), timeout=1200)
    assert done.returncode == 0, done.stdout[-5000:]
    return workdir


@pytest.mark.slow
def test_test_config_runs_end_to_end_and_every_table_is_recomputable(snakemake, finished_run):
    tmp_path = finished_run

    for task, metric in TASKS.items():
        inits = INITS_3D if task in TASKS_3D else INITS
        table = _check_table(tmp_path / f"results/tables/{task}.csv", tmp_path / f"results/finetune/{task}",
                             metric, inits)
        assert table.loc[inits[2], "baseline"] == inits[1]
        assert not math.isnan(table.loc[inits[2], "p_value"]) and math.isnan(table.loc["random", "p_value"])
        png = (tmp_path / f"results/figures/{task}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    transfer = pd.read_csv(tmp_path / "results/tables/transfer.csv")
    assert set(transfer["task"]) == set(TASKS)
    transfer_md = (tmp_path / "results/tables/transfer.md").read_text()
    assert "DiRA_MoCo-v2" in transfer_md and "## 3D tasks" in transfer_md and "DiRA_TransVW" in transfer_md
    # the 3D chain: visual words, TransVW's exports in the Models Genesis layout, whole-volume LiTS predictions
    words = json.loads((tmp_path / "data/processed/visual_words/discovery.json").read_text())
    assert len(words["classes"]) == 3
    assert json.loads((tmp_path / "results/pretrain/transvw/dira/meta.json").read_text())["dims"] == 3
    lits = json.loads((tmp_path / "results/finetune/lits/transvw_dira/seed0/metrics.json").read_text())
    assert lits["weights_loaded"]["fresh"] == [] and lits["scored_on"].startswith("whole")

    # localization of every ChestX-ray14 classifier, Table 5 in three formats, the Fig. 6 panels; the
    # fine-tuned weights were temporary: gone once localized, and their absence reruns nothing
    table5 = pd.read_csv(tmp_path / "results/tables/table5_localization.csv")
    assert list(dict.fromkeys(table5["init"])) == INITS and len(table5) == len(INITS) * 6
    for init in INITS:
        for seed in (0, 1):
            run = tmp_path / f"results/localization/{init}/seed{seed}"
            assert {"boxes.csv", "accuracy.csv", "examples.npz", "localization.json"} <= {p.name for p in run.iterdir()}
    assert "\\begin{tabular}" in (tmp_path / "results/tables/table5_localization.tex").read_text()
    assert (tmp_path / "results/figures/localization_mocov2.png").stat().st_size > 10_000
    assert not list((tmp_path / "results/finetune").rglob("model.pt"))
    # the run ends by building the report (the test below checks what is inside one)
    assert (tmp_path / "results/report.html").stat().st_size > 100_000

    again = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config/test.yaml"))
    assert "Nothing to be done" in again.stdout


@pytest.mark.slow
def test_report_holds_every_figure_and_table(snakemake, finished_run, tmp_path):
    report = tmp_path / "report.html"
    done = snakemake(finished_run, "--configfile", str(REPO / "config/test.yaml"), "--report", str(report))
    assert done.returncode == 0, done.stdout[-3000:]
    html = report.read_text()
    # each figure is embedded as a data URI whose bytes are exactly the PNG on disk
    embedded = dict(re.findall(r'"data_uri": "data:image/png;charset=utf8;filename=([^;"]+);base64,([^"]+)"', html))
    figures = sorted(p.name for p in (finished_run / "results/figures").glob("*.png"))
    assert figures == sorted([*(f"{task}.png" for task in TASKS), "localization_mocov2.png"])
    for name in figures:
        assert base64.b64decode(embedded[name]) == (finished_run / "results/figures" / name).read_bytes()
    for table in ("transfer.csv", "table5_localization.csv", "chestxray14.csv"):
        assert f'"filename": "{table}"' in html


@pytest.mark.slow
def test_studies_reuse_the_runs_and_add_ablation_and_label_fraction_tables(snakemake, finished_run, tmp_path):
    shutil.copytree(finished_run, tmp_path, dirs_exist_ok=True)  # metadata and modification times included
    studies = ["--configfile", str(REPO / "config/test.yaml"), str(REPO / "tests/workflow/test_studies.yaml")]
    plan = job_counts(snakemake(tmp_path, "-n", *studies).stdout)
    # only what the studies add: the dir variant (1 pre-training, 4 tasks x 2 seeds) and 50 % of the labels on
    # two tasks for mocov2_base and mocov2_dira; none of the runs above is redone
    assert plan["pretrain"] == 1 and plan["finetune"] == 8 and plan["finetune_fraction"] == 2 * 2 * 2
    assert plan["localize"] == 2  # the dir variant's classifiers join Table 5

    done = snakemake(tmp_path, "--cores", "2", *studies, timeout=1500)
    assert done.returncode == 0, done.stdout[-5000:]
    _check_table(tmp_path / "results/tables/label_fraction/montgomery_50pct.csv",
                 tmp_path / "results/label_fraction/montgomery/50pct", "dice", ["mocov2_base", "mocov2_dira"])
    subset = json.loads((tmp_path / "results/label_fraction/montgomery/50pct/mocov2_dira/seed0/metrics.json")
                        .read_text())
    assert subset["fraction"] == 0.5 and subset["n_train"] < subset["n_train_available"]
    ablation = pd.read_csv(tmp_path / "results/tables/ablation.csv")
    assert {"mocov2_base", "mocov2_dir", "mocov2_dira"} <= set(ablation["init"])
    fractions = pd.read_csv(tmp_path / "results/tables/fraction.csv")
    assert set(fractions["fraction"]) == {0.5, 1.0}
    assert "mocov2_dir" in set(pd.read_csv(tmp_path / "results/tables/table5_localization.csv")["init"])
    for task in ("chestxray14", "montgomery"):
        assert (tmp_path / f"results/figures/label_fraction_{task}.png").stat().st_size > 10_000
