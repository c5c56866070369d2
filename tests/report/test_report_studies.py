from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dira.cli import main
from dira.errors import InputError
from dira.report.paper_values import paper_reference, read_paper_values
from dira.report.studies import STUDY_COLUMNS, TableSpec, build_study, compare, parse_table_spec, read_results
from dira.report.tables import COLUMNS, split_init


def task_table(path: Path, task: str, metric: str, rows: dict[str, tuple[float, float, int, float]],
               fraction: float = 1.0) -> Path:
    """A per-task table as `aggregate` writes it: {init: (mean, std, n, p_value)} in native units."""
    records = []
    for init, (mean, std, n, p_value) in rows.items():
        method, variant = split_init(init)
        baseline = f"{method}_base" if variant in ("dir", "dira") else ""
        records.append({"task": task, "metric": metric, "fraction": fraction, "init": init, "method": method,
                        "variant": variant, "mean": mean, "std": std, "n": n, "p_value": p_value,
                        "baseline": baseline, "seeds": ";".join(map(str, range(n))), "values": ""})
    pd.DataFrame(records, columns=COLUMNS).to_csv(path, index=False)
    return path


@pytest.fixture
def transfer_specs(tmp_path) -> list[TableSpec]:
    chexpert = task_table(tmp_path / "chexpert.csv", "chexpert", "auc", {
        "random": (0.8, 0.01, 3, math.nan), "mocov2_base": (0.86, 0.004, 3, math.nan),
        "mocov2_dir": (0.866, 0.003, 3, 0.08), "mocov2_dira": (0.88, 0.002, 3, 0.0004)})
    siim = task_table(tmp_path / "siim.csv", "siim", "dice", {
        "mocov2_dira": (0.70, 0.01, 3, 0.03), "random": (0.65, 0.02, 3, math.nan),
        "mocov2_base": (0.68, 0.01, 3, math.nan)})
    return [TableSpec("chexpert", 1.0, chexpert), TableSpec("siim", 1.0, siim)]


def row(study: pd.DataFrame, **where) -> pd.Series:
    mask = np.logical_and.reduce([study[key] == value for key, value in where.items()])
    assert mask.sum() == 1, where
    return study[mask].iloc[0]


def test_transfer_study_copies_our_values_and_sets_the_paper_beside_them(transfer_specs):
    study = build_study("transfer", read_results(transfer_specs))
    assert list(study.columns) == STUDY_COLUMNS
    dira = row(study, task="chexpert", init="mocov2_dira")
    assert (dira["mean_pct"], dira["std_pct"], dira["n"]) == pytest.approx((88.0, 0.2, 3))
    assert (dira["p_value"], dira["stars"], dira["baseline"]) == (0.0004, "***", "mocov2_base")
    assert (dira["paper_mean_pct"], dira["paper_std_pct"], dira["paper_mark"]) == (87.59, 0.28, ">***")
    assert dira["difference_pct"] == pytest.approx(88.0 - 87.59)
    random_siim = row(study, task="siim", init="random")
    assert random_siim["difference_pct"] == pytest.approx(65.0 - 67.54) and random_siim["stars"] == ""
    # Untrained supervised baselines come along as paper-only rows; ChestX-ray14 pre-training has no CXR14 value.
    supervised = study[study["init"].str.startswith("supervised_")]
    assert set(zip(supervised["task"], supervised["init"], strict=True)) == {
        ("chexpert", "supervised_imagenet"), ("chexpert", "supervised_chestxray14"),
        ("siim", "supervised_imagenet"), ("siim", "supervised_chestxray14")}
    assert (supervised["n"] == 0).all() and supervised["mean_pct"].isna().all()
    assert list(study.loc[study["task"] == "siim", "init"]) == [  # Table 2's order
        "random", "supervised_imagenet", "supervised_chestxray14", "mocov2_base", "mocov2_dira"]


@pytest.fixture
def supervised_specs(tmp_path) -> list[TableSpec]:
    """Both supervised baselines trained for CheXpert; for SIIM only ImageNet (as if the CXR14 model were absent)."""
    chexpert = task_table(tmp_path / "chexpert_sup.csv", "chexpert", "auc", {
        "random": (0.8, 0.01, 3, math.nan), "supervised_imagenet": (0.875, 0.003, 3, math.nan),
        "supervised_chestxray14": (0.87, 0.004, 2, math.nan), "mocov2_base": (0.86, 0.004, 3, math.nan),
        "mocov2_dira": (0.88, 0.002, 3, 0.0004)})
    siim = task_table(tmp_path / "siim_sup.csv", "siim", "dice", {
        "mocov2_dira": (0.70, 0.01, 3, 0.03), "supervised_imagenet": (0.66, 0.02, 3, math.nan),
        "random": (0.65, 0.02, 3, math.nan)})
    return [TableSpec("chexpert", 1.0, chexpert), TableSpec("siim", 1.0, siim)]


def test_trained_supervised_baselines_are_ordinary_rows_beside_the_paper(supervised_specs):
    study = build_study("transfer", read_results(supervised_specs))
    imagenet = row(study, task="chexpert", init="supervised_imagenet")
    assert (imagenet["mean_pct"], imagenet["std_pct"], imagenet["n"]) == pytest.approx((87.5, 0.3, 3))
    assert (imagenet["method"], imagenet["variant"], imagenet["baseline"], imagenet["stars"]) == (
        "supervised_imagenet", "", "", "")
    assert (imagenet["paper_mean_pct"], imagenet["paper_std_pct"]) == (87.17, 0.22)
    assert imagenet["difference_pct"] == pytest.approx(87.5 - 87.17)
    assert row(study, task="chexpert", init="supervised_chestxray14")["paper_mean_pct"] == 87.40
    # One row per (task, init): a trained baseline gets no paper-only twin; an untrained one keeps its paper value.
    assert not study.duplicated(["task", "init"]).any()
    untrained = row(study, task="siim", init="supervised_chestxray14")
    assert untrained["n"] == 0 and math.isnan(untrained["mean_pct"]) and untrained["paper_mean_pct"] == 68.92
    assert list(study.loc[study["task"] == "chexpert", "init"]) == [
        "random", "supervised_imagenet", "supervised_chestxray14", "mocov2_base", "mocov2_dira"]


def test_transfer_markdown_marks_only_untrained_baselines(supervised_specs, transfer_specs, tmp_path):
    compare("transfer", supervised_specs, tmp_path / "s.csv", tmp_path / "s.md")
    markdown = (tmp_path / "s.md").read_text()
    assert "| Supervised (ImageNet) | 87.50 ± 0.30 | 87.17 ± 0.22 | +0.33 | 66.00 ± 2.00 | 67.93 ± 1.45 | -1.93 |" \
        in markdown
    # Trained on CheXpert only: no †, and SIIM's cell says there is no run of ours.
    assert "| Supervised (ChestX-ray14) | 87.00 ± 0.40 | 87.40 ± 0.26 | -0.40 | – | 68.92 ± 0.98 |  |" in markdown
    assert "†" not in markdown
    compare("transfer", transfer_specs, tmp_path / "t.csv", tmp_path / "t.md")
    untrained = (tmp_path / "t.md").read_text()
    assert "| Supervised (ChestX-ray14) † | – | 87.40 ± 0.26 |" in untrained
    assert "† a supervised baseline this run did not train" in untrained


def test_ablation_study_holds_the_variants_with_their_gains(transfer_specs):
    study = build_study("ablation", read_results(transfer_specs))
    assert list(study.loc[study["task"] == "chexpert", "init"]) == ["mocov2_base", "mocov2_dir", "mocov2_dira"]
    dir_row = row(study, task="chexpert", init="mocov2_dir")
    assert dir_row["gain_pct"] == pytest.approx(86.6 - 86.0) and dir_row["stars"] == "n.s."
    assert (dir_row["paper_mean_pct"], dir_row["paper_std_pct"]) == (86.86, 0.37)
    assert dir_row["paper_gain_pct"] == pytest.approx(86.86 - 86.42)
    assert math.isnan(row(study, task="chexpert", init="mocov2_base")["gain_pct"])


def test_fraction_study_puts_each_fraction_beside_table_1(tmp_path, transfer_specs):
    quarter = task_table(tmp_path / "chexpert_25.csv", "chexpert", "auc", {
        "mocov2_base": (0.80, 0.01, 2, math.nan), "mocov2_dira": (0.83, 0.01, 2, 0.01)}, fraction=0.25)
    specs = [parse_table_spec(f"chexpert:25%={quarter}"), transfer_specs[0]]
    study = build_study("fraction", read_results(specs))
    assert sorted(set(study["fraction"])) == [0.25, 1.0]
    dira = row(study, task="chexpert", fraction=0.25, init="mocov2_dira")
    assert dira["gain_pct"] == pytest.approx(3.0) and dira["stars"] == "*"
    assert math.isnan(dira["paper_std_pct"]) and dira["paper_mean_pct"] == 87.12
    assert dira["paper_gain_pct"] == pytest.approx(87.12 - 81.70)
    assert dira["difference_pct"] == pytest.approx(83 - 87.12)
    assert row(study, task="chexpert", fraction=1.0, init="mocov2_dira")["paper_mean_pct"] == 87.59


def test_compare_writes_csv_and_markdown_with_provenance(transfer_specs, tmp_path):
    out_csv, out_md = tmp_path / "out" / "transfer.csv", tmp_path / "out" / "transfer.md"
    args = ["compare", "--kind", "transfer", "--out-csv", str(out_csv), "--out-md", str(out_md)]
    for spec in transfer_specs:
        args += ["--table", f"{spec.task}={spec.path}"]
    assert main(args) == 0
    assert sorted(p.name for p in out_csv.parent.iterdir()) == ["transfer.csv", "transfer.md"]  # no temporaries
    written = pd.read_csv(out_csv)
    assert list(written.columns) == STUDY_COLUMNS and len(written) == 11
    markdown = out_md.read_text()
    assert "| Initialisation | CheXpert AUC (%) | paper | Δ | SIIM-ACR Dice (%) | paper | Δ |" in markdown
    assert "| DiRA_MoCo-v2 | 88.00 ± 0.20 (***) | 87.59 ± 0.28 (>***) | +0.41 | 70.00 ± 1.00 (*) |" in markdown
    assert "| Supervised (ImageNet) † | – | 87.17 ± 0.22 |  | – | 67.93 ± 1.45 |  |" in markdown
    assert "Compiled by dira 0.1.0 (git " in markdown and str(transfer_specs[0].path) in markdown


def test_ablation_and_fraction_markdown_print_gains(transfer_specs, tmp_path):
    compare("ablation", transfer_specs, tmp_path / "a.csv", tmp_path / "a.md")
    ablation = (tmp_path / "a.md").read_text()
    assert "| MoCo-v2 | Di (base) | 86.00 ± 0.40 | 86.42 ± 0.42 | -0.42 | 68.00 ± 1.00 |" in ablation
    assert "|  | + L_res | 86.60 ± 0.30 (+0.60, n.s.) | 86.86 ± 0.37 (+0.44) | -0.26 |" in ablation
    assert "|  | + L_res + L_adv (DiRA) | 88.00 ± 0.20 (+2.00, ***) | 87.59 ± 0.28 (+1.17, >***) | +0.41 |" in ablation
    quarter = task_table(tmp_path / "q.csv", "chexpert", "auc", {"mocov2_base": (0.8, 0.01, 2, math.nan)}, 0.25)
    compare("fraction", [TableSpec("chexpert", 0.25, quarter), transfer_specs[0]], tmp_path / "f.csv",
            tmp_path / "f.md")
    fraction = (tmp_path / "f.md").read_text()
    assert "| Initialisation | 25 % | paper | Δ | 100 % | paper | Δ |" in fraction
    assert "| MoCo-v2 | 80.00 ± 1.00 | 81.70 | -1.70 | 86.00 ± 0.40 | 86.42 ± 0.42 | -0.42 |" in fraction
    assert "| Random |  |  |  | 80.00 ± 1.00 | 86.62 ± 0.15 | -6.62 |\n| MoCo-v2 |" in fraction  # paper's row order


@pytest.mark.parametrize(("spec", "kind", "problem"), [
    ("siim={chexpert}", "transfer", r"chexpert\.csv: holds task \['chexpert'\], but was given as 'siim'"),
    ("chexpert:0.5={chexpert}", "fraction", r"chexpert\.csv: holds label fraction \[1\.0\], but was given as 0\.5"),
    ("chexpert={chexpert}", "transfer", r"chexpert\.csv: chexpert at fraction 1 is already given"),
])
def test_inputs_that_contradict_their_table_are_rejected(transfer_specs, tmp_path, spec, kind, problem):
    specs = [*transfer_specs, parse_table_spec(spec.format(chexpert=transfer_specs[0].path))]
    with pytest.raises(InputError, match=problem):
        compare(kind, specs, tmp_path / "s.csv", tmp_path / "s.md")
    assert not (tmp_path / "s.csv").exists() and not (tmp_path / "s.md").exists()


def test_partial_label_tables_do_not_enter_a_transfer_table(tmp_path):
    quarter = task_table(tmp_path / "q.csv", "chexpert", "auc", {"random": (0.8, 0.01, 2, math.nan)}, 0.25)
    with pytest.raises(InputError, match=r"q\.csv: a transfer table compares fine-tuning on all labels"):
        build_study("transfer", read_results([TableSpec("chexpert", 0.25, quarter)]))


@pytest.mark.parametrize(("spec", "expected"), [
    ("chexpert=a.csv", ("chexpert", 1.0, "a.csv")), ("siim:0.01=x/b=c.csv", ("siim", 0.01, "x/b=c.csv")),
    ("montgomery:50%=m.csv", ("montgomery", 0.5, "m.csv")),
])
def test_table_specs_parse(spec, expected):
    parsed = parse_table_spec(spec)
    assert (parsed.task, parsed.fraction, str(parsed.path)) == expected


@pytest.mark.parametrize("spec", ["chexpert", "chexpert:=a.csv", "chexpert:0=a.csv", "chexpert:150%=a.csv",
                                  "chexpert:1.2.3=a.csv"])
def test_bad_table_specs_are_rejected(spec):
    with pytest.raises(InputError, match="--table"):
        parse_table_spec(spec)


def test_paper_values_hold_tables_1_2_and_4():
    values = read_paper_values()
    assert values.groupby("table").size().to_dict() == {"1": 54, "2": 23, "4": 36, "fig4": 24}
    reference = paper_reference(values)  # reprinted numbers agree
    assert reference[("mocov2_dira", "chexpert", 1.0)].tables == ("2", "fig4", "4")
    assert reference[("simsiam_dir", "chestxray14", 1.0)].mean == 79.41
    assert reference[("barlowtwins_dira", "montgomery", 0.01)].mean == 87.25
    assert reference[("random", "siim", 1.0)].std == 0.60
    assert ("supervised_chestxray14", "chestxray14", 1.0) not in reference


def test_contradicting_reprints_are_rejected():
    text = "table,init,task,fraction,mean,std,mark\n2,random,siim,1,67.54,0.60,\n4,random,siim,1,67.55,,\n"
    with pytest.raises(InputError, match="paper values disagree for random on siim"):
        paper_reference(read_paper_values(text))
