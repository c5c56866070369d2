"""The workflow loads, validates its config and schedules the expected jobs (dry runs, seconds)."""

import json
import re

from conftest import REPO, job_counts

from dira import registry
from dira.config import load_schema


def test_demo_config_schedules_the_whole_chain(snakemake, tmp_path):
    done = snakemake(tmp_path, "-n")
    assert done.returncode == 0, done.stdout
    counts = job_counts(done.stdout)
    # 4 2D tasks x 3 inits (random, mocov2_base, mocov2_dira) and 5 3D tasks x 3 inits (random, transvw_base,
    # transvw_dira), x 3 seeds; base and DiRA pre-training of MoCo-v2 and of TransVW (on the visual words of one
    # discovery); every dataset (the four 2D and the five 3D ones) synthesised and prepared; per-task tables and
    # figures, the transfer table; localization of the 3 x 3 ChestX-ray14 classifiers, Table 5 and the heatmaps
    datasets = ("chestxray14", "chexpert", "siim", "montgomery", "luna16", "lidc", "lits", "brats", "pe")
    # LUNA16 in prepare.volume_shards = 2 jobs and a gather, as the paper's 10
    assert counts == {**{f"synth_{d}": 1 for d in datasets},
                      **{f"prepare_{d}": 1 for d in datasets if d != "luna16"},
                      "prepare_luna16_shard": 2, "gather_luna16": 1,
                      "discover": 1, "pretrain": 4, "finetune": 36 + 45, "aggregate": 9, "figure": 9, "compare": 1,
                      "localize": 9, "localization_table": 1, "figure_heatmaps": 1, "all": 1, "total": 137}
    assert "results/figures/localization_mocov2.png" in done.stdout


def test_studies_config_adds_the_ablation_and_label_fraction_runs(snakemake, tmp_path):
    done = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config/demo.yaml"), str(REPO / "config/studies.yaml"))
    assert done.returncode == 0, done.stdout
    counts = job_counts(done.stdout)
    # + Barlow Twins and SimSiam, + the dir variant: 3 2D methods x 3 variants and TransVW's base and DiRA
    # pre-trained, 4 2D tasks x 10 inits x 3 seeds and the demo's 45 3D runs; fractions: 3 tasks x 3 fractions x 6
    # inits (each 2D method's base and DiRA, the rows of Table 1) x 3 seeds
    assert counts["pretrain"] == 11 and counts["finetune"] == 120 + 45 and counts["finetune_fraction"] == 162
    assert counts["aggregate_fraction"] == 9 and counts["compare"] == 3
    # Table 5 gains the other methods' and the Di+R rows (10 inits x 3 seeds), and each fraction task a curve
    assert counts["localize"] == 30 and counts["figure_fractions"] == 3 and counts["figure_heatmaps"] == 3
    assert "results/label_fraction/montgomery/1pct/simsiam_dira/seed1/metrics.json" in done.stdout
    assert "results/tables/ablation.md" in done.stdout and "results/tables/fraction.md" in done.stdout


def test_a_missing_real_dataset_stops_with_the_steps_to_obtain_it(snakemake, tmp_path):
    for name, needed, step in (("chestxray14", "Data_Entry_2017_v2020.csv", "nihcc.app.box.com"),
                               ("siim", "train-rle.csv", "kaggle")):
        real = ["--config", f"datasets={{'{name}': {{'source': 'real', 'root': 'raw/{name}'}}}}"]
        plan = snakemake(tmp_path, "-n", *real)
        # the real data are looked for, never written: no synthetic writer, no rule outputs a file under the root
        assert plan.returncode == 0 and f"locate_{name}" in plan.stdout and f"synth_{name}" not in plan.stdout
        assert f"raw/{name}/" not in plan.stdout.split("Job stats:")[1].split("rule all")[0].replace("--root", "")
        done = snakemake(tmp_path, f"data/located/{name}.json", "--cores", "1", *real)
        assert done.returncode != 0
        assert needed in done.stdout and "To obtain it" in done.stdout and step in done.stdout.lower()
        assert not (tmp_path / f"data/located/{name}.json").exists()


def test_a_located_real_dataset_is_recorded_and_prepared(snakemake, tmp_path):
    from dira.data.synthetic.montgomery import write

    write(tmp_path / "raw", count=12, image_size=64, seed=0)  # the real layout, written by hand here
    (tmp_path / "real.yaml").write_text("datasets: {montgomery: {source: real, root: raw/MontgomerySet,"
                                        " cache_size: 32}}\nprepare: {workers: 1}\n")
    done = snakemake(tmp_path, "data/processed/montgomery/test.h5", "--cores", "1",
                     "--configfile", str(tmp_path / "real.yaml"))
    assert done.returncode == 0, done.stdout[-3000:]
    marker = json.loads((tmp_path / "data/located/montgomery.json").read_text())
    assert marker["root"] == str((tmp_path / "raw/MontgomerySet").resolve()) and "CXR_png" in marker["layout"]


def test_a_synthetic_set_is_recorded_outside_it_so_a_forced_rerun_rewrites_it(snakemake, tmp_path):
    # Snakemake deletes a job's declared output before it reruns the job (forced, or after a kill it did not see
    # end): that output is the stamp in data/located/, never the set's own marker, so the rerun finds its own set
    (tmp_path / "tiny.yaml").write_text("datasets: {montgomery: {source: synthetic, root: data/raw/montgomery/"
                                        "MontgomerySet, synthetic: {images: 10, image_size: 64}}}\n")
    args = ["data/located/montgomery.json", "--cores", "1", "--configfile", str(tmp_path / "tiny.yaml")]
    done = snakemake(tmp_path, *args)
    assert done.returncode == 0, done.stdout[-3000:]
    root = tmp_path / "data/raw/montgomery/MontgomerySet"
    stamp = json.loads((tmp_path / "data/located/montgomery.json").read_text())
    assert stamp["root"] == "data/raw/montgomery/MontgomerySet"
    assert stamp["synthetic"] == json.loads((root / "dira_synthetic.json").read_text())
    before = {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    again = snakemake(tmp_path, *args, "--forcerun", "synth_montgomery")
    assert again.returncode == 0 and "rule synth_montgomery:" in again.stdout, again.stdout[-3000:]
    assert {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} == before


def test_wrong_type_and_unknown_key_stop_with_the_key_named(snakemake, tmp_path):
    done = snakemake(tmp_path, "-n", "--config", "runs=abc")
    assert done.returncode != 0 and "runs: 'abc' is not of type 'array'" in done.stdout
    done = snakemake(tmp_path, "-n", "--config", "learning_rate=1")
    assert done.returncode != 0 and "'learning_rate' was unexpected" in done.stdout


def test_every_schema_key_has_a_description_and_a_default():
    schema = load_schema()

    def walk(node, path):
        for name, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{path}{name} has no description"
            assert "default" in sub, f"{path}{name} has no default"
            walk(sub, f"{path}{name}.")

    walk(schema, "")


PAPER_JOBS = {
    # every dataset but PE (neither PE-CAD nor CAD-PE is under data/raw/pe: skipped with a message)
    **{f"locate_{d}": 1 for d in ("chestxray14", "chexpert", "siim", "montgomery", "luna16", "lidc", "lits", "brats")},
    **{f"prepare_{d}": 1 for d in ("chestxray14", "chexpert", "siim", "montgomery", "lidc", "lits", "brats")},
    "prepare_luna16_shard": 10, "gather_luna16": 1,  # prepare.volume_shards
    "pretrain": 9 + 2,          # 3 2D methods x base / dir / dira; TransVW and DiRA_TransVW
    "discover": 1,              # TransVW's visual words on LUNA16
    "pretrain_supervised": 1,   # Table 2's supervised ChestX-ray14 model
    # ChestX-ray14: (random + 9) x 10 runs; the three other tasks also from supervised ChestX-ray14: 3 x 11 x 10;
    # the 3D tasks but PE: 4 x (random, transvw_base, transvw_dira) x 10
    "finetune": 100 + 330 + 120,
    "finetune_fraction": 3 * 3 * 6 * 10,  # Table 1: 3 tasks x 3 fractions x (base, dira) of 3 methods x 10 runs
    "localize": 100, "localization_table": 1, "figure_heatmaps": 3,  # Table 5, Fig. 6
    "aggregate": 4 + 4, "aggregate_fraction": 9, "compare": 3, "figure": 4 + 4, "figure_fractions": 3, "all": 1,
}


def test_paper_config_schedules_every_table(snakemake, tmp_path):
    done = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config/paper.yaml"))
    assert done.returncode == 0, done.stdout[-3000:]
    assert job_counts(done.stdout) == {**PAPER_JOBS, "total": sum(PAPER_JOBS.values())}
    assert "supervised_imagenet: skipped, its weights file" in done.stdout
    assert "pe: skipped" in done.stdout and "ieee-dataport.org/open-access/cad-pe" in done.stdout
    for table in ("transfer", "ablation", "fraction", "table5_localization"):
        assert f"results/tables/{table}.csv" in done.stdout, table
    assert "results/finetune/siim/supervised_chestxray14/seed9/metrics.json" in done.stdout
    # 3D tasks get the 3D inits only, and TransVW has no Di + R ablation run
    assert "results/finetune/lits/transvw_dira/seed9/metrics.json" in done.stdout
    assert "results/finetune/lits/mocov2" not in done.stdout and "results/finetune/siim/transvw" not in done.stdout
    assert "results/pretrain/transvw/dir/" not in done.stdout and "results/tables/brats.md" in done.stdout
    assert "results/finetune/chestxray14/supervised_chestxray14" not in done.stdout  # not on its own task
    assert "results/label_fraction/chexpert/1pct/barlowtwins_dira/seed9/metrics.json" in done.stdout


def test_paper_config_trains_the_imagenet_baseline_when_its_weights_are_there(snakemake, tmp_path):
    (tmp_path / "data/weights").mkdir(parents=True)
    (tmp_path / "data/weights/resnet50-0676ba61.pth").write_bytes(b"a dry run reads no weights")
    done = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config/paper.yaml"))
    assert done.returncode == 0, done.stdout[-3000:]
    counts = job_counts(done.stdout)
    assert counts["finetune"] == PAPER_JOBS["finetune"] + 4 * 10 and counts["localize"] == 110
    assert "results/finetune/montgomery/supervised_imagenet/seed0/metrics.json" in done.stdout
    assert "supervised_imagenet: skipped" not in done.stdout


def test_test_config_is_valid(snakemake, tmp_path):
    done = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config/test.yaml"))
    assert done.returncode == 0 and "invalid configuration" not in done.stdout, done.stdout


def test_imported_release_weights_replace_that_pretraining(snakemake, tmp_path):
    release = tmp_path / "unet.pth"
    release.write_bytes(b"placeholder: a dry run reads no weights")
    done = snakemake(tmp_path, "-n", "--config", f"imported_weights={{'mocov2_dira': '{release}'}}")
    assert done.returncode == 0, done.stdout
    counts = job_counts(done.stdout)
    # mocov2_dira comes from the release, so only mocov2/base is pre-trained (and TransVW's two); the fine-tunings
    # are unchanged
    assert counts["import_official"] == 1 and counts["pretrain"] == 3 and counts["finetune"] == 81
    assert "results/imported/mocov2_dira/encoder.pt" in done.stdout


# The stage (workflow/rules/<stage>.smk) of every rule; a new rule must be placed here.
RULE_STAGES = {"synth": "data", "locate": "data", "prepare": "data", "discover": "discover", "pretrain": "pretrain",
               "pretrain_supervised": "pretrain", "import_official": "pretrain", "finetune": "finetune",
               "finetune_fraction": "finetune", "localize": "evaluate", "aggregate": "report",
               "aggregate_fraction": "report", "compare": "report", "figure": "report", "figure_fractions": "report",
               "figure_heatmaps": "report", "localization_table": "report", "all": "all",
               "prepare_shard": "data", "gather": "data"}
# What the demo leaves to config/studies.yaml (Table 1) and config/paper.yaml (Table 2's trained baselines).
NOT_IN_DEMO = {"finetune_fraction", "aggregate_fraction", "figure_fractions", "pretrain_supervised"}


def _rules(counts):
    datasets = "|".join(registry.DATASETS)
    return {re.sub(rf"_({datasets})(?=_|$)", "", rule) for rule in counts if rule != "total"}


def test_the_demo_schedules_every_stage_of_the_paper_dag(snakemake, tmp_path):
    def planned(folder, *configfiles):
        args = ["--configfile", *(str(REPO / "config" / name) for name in configfiles)] if configfiles else []
        return _rules(job_counts(snakemake(tmp_path / folder, "-n", *args).stdout))

    demo, paper = planned("demo"), planned("paper", "paper.yaml")
    assert demo <= set(RULE_STAGES) and paper <= set(RULE_STAGES), (demo | paper) - set(RULE_STAGES)
    assert {RULE_STAGES[r] for r in demo} == {RULE_STAGES[r] for r in paper}
    # the demo synthesises what the paper locates; every other rule of the paper DAG runs in the demo, except
    # the study and baseline rules named above
    assert paper - demo == {"locate"} | NOT_IN_DEMO and demo - paper == {"synth"}
    studies = planned("studies", "demo.yaml", "studies.yaml")
    assert paper - studies == {"locate", "pretrain_supervised"}


def test_pe_cad_holders_prepare_pe_from_its_split_files(snakemake, tmp_path):
    # PE-CAD is private and has no fixed layout: with its split files configured nothing is located or skipped
    (tmp_path / "pecad.yaml").write_text("datasets: {pe: {source: real, pe_cad: {splits_dir: ecc}}}\n")
    done = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config/paper.yaml"), str(tmp_path / "pecad.yaml"))
    assert done.returncode == 0, done.stdout[-3000:]
    counts = job_counts(done.stdout)
    assert counts["prepare_pe"] == 1 and "locate_pe" not in counts and "pe: skipped" not in done.stdout
