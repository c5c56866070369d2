"""The workflow loads, validates its config and schedules the expected jobs (dry runs, seconds)."""

import re

from conftest import REPO


def _job_counts(stdout: str) -> dict[str, int]:
    table = stdout.split("Job stats:")[1].split("Reasons:")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_demo_config_schedules_the_whole_chain(snakemake, tmp_path):
    done = snakemake(tmp_path, "-n")
    assert done.returncode == 0, done.stdout
    counts = _job_counts(done.stdout)
    # 7 inits (random + 3 methods x {base, dira}) x 3 seeds; base and dira pre-training of each method
    assert counts == {"synth_chestxray14": 1, "prepare_chestxray14": 1, "pretrain": 6, "finetune": 21,
                      "aggregate": 1, "figure": 1, "all": 1, "total": 32}


def test_real_source_has_no_rule_that_writes_the_raw_data(snakemake, tmp_path):
    done = snakemake(tmp_path, "-n", "--config", "datasets={'chestxray14': {'source': 'real'}}")
    assert done.returncode != 0
    assert "Data_Entry_2017_v2020.csv" in done.stdout and "synth_chestxray14" not in done.stdout


def test_wrong_type_and_unknown_key_stop_with_the_key_named(snakemake, tmp_path):
    done = snakemake(tmp_path, "-n", "--config", "runs=abc")
    assert done.returncode != 0 and "runs: 'abc' is not of type 'array'" in done.stdout
    done = snakemake(tmp_path, "-n", "--config", "learning_rate=1")
    assert done.returncode != 0 and "'learning_rate' was unexpected" in done.stdout


def test_every_schema_key_has_a_description_and_a_default():
    import yaml

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())

    def walk(node, path):
        for name, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{path}{name} has no description"
            assert "default" in sub, f"{path}{name} has no default"
            walk(sub, f"{path}{name}.")

    walk(schema, "")


def test_paper_and_test_configs_are_valid(snakemake, tmp_path):
    for name in ("paper.yaml", "test.yaml"):
        done = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / name))
        # paper.yaml points at real data that is absent here: only the missing raw files may stop it
        assert "invalid configuration" not in done.stdout, (name, done.stdout)


def test_imported_release_weights_replace_that_pretraining(snakemake, tmp_path):
    release = tmp_path / "unet.pth"
    release.write_bytes(b"placeholder: a dry run reads no weights")
    done = snakemake(tmp_path, "-n", "--config", f"imported_weights={{'mocov2_dira': '{release}'}}")
    assert done.returncode == 0, done.stdout
    counts = _job_counts(done.stdout)
    assert counts["import_official"] == 1 and counts["pretrain"] == 5 and counts["finetune"] == 21
    assert "results/imported/mocov2_dira/encoder.pt" in done.stdout
