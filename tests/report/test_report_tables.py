from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dira import registry
from dira.errors import InputError
from dira.eval.metrics import mean_dice
from dira.io import write_json
from dira.report import style
from dira.report.tables import aggregate, read_table, split_init


def metric_values(runs, init):
    return [json.loads((r / "metrics.json").read_text())["value"] for r in runs if r.parent.name == init]


def test_table_means_and_p_values_come_from_the_runs(experiment, tmp_path):
    aggregate("chestxray14", experiment, tmp_path / "t.csv", tmp_path / "t.md")
    table = read_table(tmp_path / "t.csv").set_index("init")

    assert list(table.index) == ["random", "mocov2_base", "mocov2_dir", "mocov2_dira"]
    for init in table.index:
        values = metric_values(experiment, init)
        assert table.loc[init, "mean"] == pytest.approx(np.mean(values), abs=1e-15)
        assert table.loc[init, "std"] == pytest.approx(np.std(values, ddof=1), abs=1e-15)
        assert table.loc[init, "n"] == len(values)
        assert [float(v) for v in table.loc[init, "values"].split(";")] == values
    base = metric_values(experiment, "mocov2_base")
    for variant in ("dir", "dira"):
        row = table.loc[f"mocov2_{variant}"]
        values = metric_values(experiment, f"mocov2_{variant}")
        expected = stats.ttest_ind(values, base, equal_var=True).pvalue
        assert row["p_value"] == pytest.approx(expected, rel=1e-12)
        assert (row["method"], row["variant"], row["baseline"]) == ("mocov2", variant, "mocov2_base")
    assert table["p_value"][["random", "mocov2_base"]].isna().all()
    assert table.loc["random", "baseline"] == "" and table.loc["random", "seeds"] == "0;1;2"


def test_supervised_runs_are_rows_of_their_own_after_random(experiment, run_writer, tmp_path):
    runs = experiment + [run_writer(tmp_path / "runs", init, seed, 1.1)
                         for init in ("supervised_chestxray14", "supervised_imagenet") for seed in range(2)]
    aggregate("chestxray14", runs, tmp_path / "t.csv", tmp_path / "t.md")
    table = read_table(tmp_path / "t.csv").set_index("init")
    assert list(table.index) == ["random", "supervised_imagenet", "supervised_chestxray14", "mocov2_base",
                                 "mocov2_dir", "mocov2_dira"]
    imagenet = table.loc["supervised_imagenet"]
    assert (imagenet["method"], imagenet["variant"], imagenet["baseline"], imagenet["n"]) == (
        "supervised_imagenet", "", "", 2)
    assert imagenet["mean"] == pytest.approx(np.mean(metric_values(runs, "supervised_imagenet")), abs=1e-15)
    assert np.isnan(imagenet["p_value"])
    markdown = (tmp_path / "t.md").read_text()
    assert re.search(r"\| Supervised \(ImageNet\) \| \d+\.\d\d ± \d+\.\d\d \|  \|  \| 2 \|", markdown)
    assert "| Supervised (ChestX-ray14) |" in markdown


def test_markdown_prints_percent_with_stars_and_provenance(experiment, tmp_path):
    aggregate("chestxray14", experiment, tmp_path / "t.csv", tmp_path / "t.md")
    table = pd.read_csv(tmp_path / "t.csv").set_index("init")
    markdown = (tmp_path / "t.md").read_text()
    dira = table.loc["mocov2_dira"]
    assert f"| DiRA_MoCo-v2 | {100 * dira['mean']:.2f} ± {100 * dira['std']:.2f} (" in markdown
    assert re.search(r"\| Random \| \d+\.\d\d ± \d+\.\d\d \|  \|  \| 3 \|", markdown)
    assert "from 14 runs" in markdown and "git abc123" in markdown and "dira 0.1.0" in markdown


def test_tampered_predictions_are_named(experiment, tmp_path):
    tampered = experiment[5] / "predictions.npz"
    with np.load(tampered) as npz:
        arrays = dict(npz)
    arrays["y_score"] = arrays["y_score"][::-1].copy()
    np.savez(tampered, **arrays)
    with pytest.raises(InputError, match=re.escape(str(tampered))):
        aggregate("chestxray14", experiment, tmp_path / "t.csv", tmp_path / "t.md")
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "t.md").exists()


def test_runs_must_belong_to_the_task_and_their_folder(experiment, tmp_path):
    with pytest.raises(InputError, match="task is 'chestxray14'"):
        aggregate("chexpert", experiment, tmp_path / "t.csv", tmp_path / "t.md")
    moved = experiment[0].parent.parent / "seed9"
    experiment[0].rename(moved)
    with pytest.raises(InputError, match=re.escape(f"{moved / 'metrics.json'}: init is 'mocov2_dira'")):
        aggregate("chestxray14", [moved], tmp_path / "t.csv", tmp_path / "t.md")


@pytest.mark.parametrize(("init", "parts"), [("random", ("random", "")), ("mocov2_dira", ("mocov2", "dira")),
                                             ("supervised_imagenet", ("supervised_imagenet", "")),
                                             ("supervised_chestxray14", ("supervised_chestxray14", "")),
                                             ("barlow_twins_base", ("barlow_twins", "base"))])
def test_split_init(init, parts):
    assert split_init(init) == parts


def test_every_registry_init_splits_into_a_labelled_method():
    pretrained = [registry.pretrained_init(m, v) for m in registry.METHODS for v in registry.VARIANTS]
    for init in [*registry.BASELINE_INITS, *pretrained]:
        method, variant = split_init(init)
        assert style.init_label(method, variant) != method  # a title, never the bare name
        assert method in style.METHOD_COLOURS


@pytest.mark.parametrize("init", ["mocov2", "mocov2_full", "_dira", "supervised_cifar"])
def test_split_init_rejects_unknown_names(init):
    with pytest.raises(ValueError, match=init):
        split_init(init)


def write_segmentation_run(root, init: str, seed: int, hit_rate: float, fraction: float = 1.0):
    """A run folder with saved masks (every third truth empty) and the Dice that matches them."""
    rng = np.random.default_rng([seed, len(init)])
    y_true = (rng.random((12, 16, 16)) < 0.3).astype(np.uint8)
    y_true[::3] = 0
    y_pred = (y_true & (rng.random(y_true.shape) < hit_rate)).astype(np.uint8)
    predictions = {"ids": np.array([f"{i}.dcm" for i in range(12)]), "y_true": y_true, "y_pred": y_pred}
    run_dir = root / init / f"seed{seed}"
    run_dir.mkdir(parents=True)
    np.savez(run_dir / "predictions.npz", **predictions)
    write_json(run_dir / "metrics.json", {"task": "siim", "init": init, "seed": seed, "metric": "dice",
                                          "value": mean_dice(y_true, y_pred), "fraction": fraction})
    return run_dir


def test_segmentation_runs_are_recomputed_from_their_masks(tmp_path):
    runs = [write_segmentation_run(tmp_path / "runs", init, seed, rate)
            for init, rate in [("random", 0.5), ("simsiam_base", 0.6), ("simsiam_dira", 0.9)] for seed in range(3)]
    aggregate("siim", runs, tmp_path / "t.csv", tmp_path / "t.md")
    table = read_table(tmp_path / "t.csv").set_index("init")
    dira = metric_values(runs, "simsiam_dira")
    assert table.loc["simsiam_dira", "mean"] == pytest.approx(np.mean(dira), abs=1e-15)
    assert (table["metric"] == "dice").all() and (table["fraction"] == 1.0).all()
    assert "| DiRA_SimSiam |" in (tmp_path / "t.md").read_text()

    with np.load(runs[4] / "predictions.npz") as npz:
        arrays = dict(npz)
    arrays["y_pred"][0] = 1 - arrays["y_pred"][0]
    np.savez(runs[4] / "predictions.npz", **arrays)
    with pytest.raises(InputError, match=re.escape(str(runs[4] / "predictions.npz"))):
        aggregate("siim", runs, tmp_path / "t2.csv", tmp_path / "t2.md")


def test_label_fraction_is_a_column_and_never_mixed(tmp_path):
    quarter = [write_segmentation_run(tmp_path / "q", "random", seed, 0.5, fraction=0.25) for seed in range(2)]
    aggregate("siim", quarter, tmp_path / "q.csv", tmp_path / "q.md")
    assert (read_table(tmp_path / "q.csv")["fraction"] == 0.25).all()
    assert "test Dice (%), 25 % of the training labels" in (tmp_path / "q.md").read_text()
    full = write_segmentation_run(tmp_path / "f", "random", 5, 0.5)
    with pytest.raises(InputError, match=r"mix label fractions \[0.25, 1.0\]"):
        aggregate("siim", [*quarter, full], tmp_path / "m.csv", tmp_path / "m.md")


def test_tables_written_before_label_fractions_still_read(experiment, tmp_path):
    aggregate("chestxray14", experiment, tmp_path / "t.csv", tmp_path / "t.md")
    pd.read_csv(tmp_path / "t.csv").drop(columns="fraction").to_csv(tmp_path / "old.csv", index=False)
    assert (read_table(tmp_path / "old.csv")["fraction"] == 1.0).all()
