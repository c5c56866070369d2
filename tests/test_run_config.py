"""A run's configuration is exactly its config files over the schema's defaults; the demo applies only by default.

Snakemake extends a Snakefile's own `configfile:` with `--configfile`, so demo values used to leak into the paper
run. These tests build the effective configuration the way `dira config` does and the way the Snakefile does
(.snakemake/dira/effective_config.yaml after a dry run), and check both against the files.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dira.cli import main
from dira.config import deep_merge, load_schema, run_config, validate

REPO = Path(__file__).resolve().parents[1]
PAPER, TEST, DEMO = REPO / "config/paper.yaml", REPO / "config/test.yaml", REPO / "config/demo.yaml"


def schema_default(path: str):
    node = load_schema()
    for part in path.split("."):
        node = node["properties"][part]
    return node["default"]


def get(config: dict, path: str):
    for part in path.split("."):
        config = config[part]
    return config


def over_defaults(path: Path) -> dict:
    return validate(yaml.safe_load(path.read_text()))


def demo_only_values() -> dict[str, object]:
    """Every leaf the demo sets to something other than the schema default (what must never leak)."""
    demo, defaults = yaml.safe_load(DEMO.read_text()), validate({})
    leaks = {}

    def walk(node, prefix):
        for key, value in node.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{path}.")
            else:
                try:
                    default = get(defaults, path)
                except KeyError:
                    continue
                if value != default:
                    leaks[path] = value
    walk(demo, "")
    return leaks


def snakemake_config(tmp_path: Path, *configfiles: Path) -> dict:
    """The configuration the Snakefile ends up with (after validation), from a dry run."""
    args = ["--configfile", *map(str, configfiles)] if configfiles else []
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                           str(tmp_path), "-n", "--quiet", "rules", *args], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return yaml.safe_load((tmp_path / ".snakemake/dira/effective_config.yaml").read_text())


@pytest.mark.parametrize("path", [PAPER, TEST], ids=["paper", "test"])
def test_a_config_file_is_the_whole_story_over_the_schema_defaults(path):
    assert run_config([path]) == over_defaults(path)


def test_no_demo_value_reaches_the_paper_run():
    paper = run_config([PAPER])
    leaks = demo_only_values()
    assert leaks, "the demo should differ from the paper somewhere"
    for key, demo_value in leaks.items():
        assert get(paper, key) != demo_value or get(yaml.safe_load(PAPER.read_text()), key) == demo_value, key
    assert paper["localization"]["relu"] is True  # Grad-CAM as published
    for key in ("max_epochs", "patience", "lr_patience", "lr"):
        assert paper["finetune"][key] == schema_default(f"finetune.{key}"), key
    for key in ("max_epochs", "patience", "lr", "batch_size"):
        assert paper["finetune"]["segmentation"][key] == schema_default(f"finetune.segmentation.{key}"), key
    assert (paper["finetune"]["max_epochs"], paper["finetune"]["patience"]) == (1000, 10)
    assert (paper["finetune"]["segmentation"]["max_epochs"], paper["finetune"]["segmentation"]["patience"]) == (200, 20)


def test_no_config_file_means_the_demo():
    assert run_config([]) == over_defaults(DEMO)
    assert run_config([], {"runs": [3]})["runs"] == [3]


def test_several_files_merge_in_order():
    studies = REPO / "config/studies.yaml"
    expected = validate(deep_merge(yaml.safe_load(DEMO.read_text()), yaml.safe_load(studies.read_text())))
    assert run_config([DEMO, studies]) == expected


def test_dira_config_prints_the_effective_configuration(capsys):
    assert main(["config", "--configfile", str(PAPER)]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == run_config([PAPER])


@pytest.mark.parametrize("files", [[PAPER], [TEST], []], ids=["paper", "test", "demo"])
def test_the_snakefile_runs_with_exactly_the_effective_configuration(tmp_path, files):
    assert snakemake_config(tmp_path, *files) == run_config(files)


def test_the_schema_exists_once_as_a_plain_file_in_the_package():
    copies = [p for p in REPO.rglob("*.schema.yaml") if ".venv" not in p.parts]
    assert copies == [REPO / "dira/schema/config.schema.yaml"]
    assert not copies[0].is_symlink()
    import importlib.resources

    packaged = importlib.resources.files("dira") / "schema" / "config.schema.yaml"
    assert packaged.read_text() == copies[0].read_text()
