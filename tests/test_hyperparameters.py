"""docs/hyperparameters.md is true of the effective paper configuration, and complete.

The page's one table traces every hyper-parameter to its config key and its value in `config/paper.yaml` over the
schema's defaults (what `dira config --configfile config/paper.yaml` prints). These tests parse that table and
check (1) every row's key exists in the effective config with the table's value, (2) no key appears twice, (3)
every leaf of the effective config is in the table unless it is listed in EXCLUDED below as operational, and
(4) the checker really reports a value that drifted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
import yaml

from dira.config import run_config

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "docs" / "hyperparameters.md"
PAPER = REPO / "config" / "paper.yaml"
HEADER = ["hyper-parameter", "config key", "paper.yaml", "source"]
REL_TOL = 1e-12

# Leaves of the effective config that are not hyper-parameters (fnmatch patterns over dotted keys; `*` spans dots).
EXCLUDED: dict[str, str] = {
    "device": "where training runs (CPU or GPU), not how",
    "threads": "CPU threads per job, a resource request",
    "imported_weights": "paths of released checkpoints to import instead of pre-training (none in the paper run)",
    "datasets.*.source": "real data or the synthetic stand-in; the paper run reads the real sets",
    "datasets.*.root": "a filesystem path",
    "datasets.*.download": "whether to fetch public files when absent, not what is trained on",
    "datasets.*.synthetic.*": "size and seed of the synthetic stand-in, ignored for real data",
    "prepare.volume_shards": "how many jobs prepare a 3D set, not what they write (gathered caches are the same)",
    "datasets.brats.folds_dir": "a filesystem path (Models Genesis' fold files, where the user put them)",
    "datasets.pe.pe_cad.splits_dir": "a filesystem path (the private PE-CAD's split files)",
    "datasets.pe.pe_cad.candidates": "a filesystem path (the private PE-CAD's candidate table)",
    "datasets.pe.pe_cad.scans_dir": "a filesystem path (the private PE-CAD's scans)",
    "prepare.workers": "processes decoding images in parallel",
    "prepare.on_bad_sample": "error handling for unreadable files ('error' stops rather than dropping a sample)",
    "pretrain.gpus": "processes the global batch (pretrain.batch_size) is spread over, the paper's 4 V100",
    "pretrain.num_workers": "DataLoader worker processes",
    "pretrain.max_images": "cap for smoke runs (null = every image)",
    "finetune.num_workers": "DataLoader worker processes",
    "finetune3d.num_workers": "DataLoader worker processes",
    "localization.batch_size": "(image, class) pairs per Grad-CAM batch; results do not depend on it",
    "supervised.imagenet_weights": "a path to torchvision's ImageNet weights",
}


@dataclass(frozen=True)
class Row:
    line: int
    name: str
    key: str
    value: Any


_SEPARATOR = re.compile(r"^:?-{3,}:?$")
_CODE = re.compile(r"^`([^`]+)`$")
_MISSING = object()


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def parse_table(text: str) -> tuple[list[Row], list[str]]:
    """The table's data rows and the problems met parsing it (malformed rows, a wrong or repeated header)."""
    rows: list[Row] = []
    problems: list[str] = []
    headers = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.lstrip().startswith("|"):
            continue
        cells = _cells(line)
        if len(cells) != len(HEADER):
            problems.append(f"line {number}: {len(cells)} cells, expected {len(HEADER)}: {line!r}")
            continue
        if cells[0] == HEADER[0]:
            headers += 1
            if cells != HEADER:
                problems.append(f"line {number}: header {cells}, expected {HEADER}")
            continue
        if all(_SEPARATOR.match(cell) for cell in cells):
            continue
        if cells[0].startswith("**") and cells[0].endswith("**") and not any(cells[1:]):
            continue  # a group heading
        key, value = _CODE.match(cells[1]), _CODE.match(cells[2])
        if not key or not value:
            problems.append(f"line {number}: key and value must each be one `code` span: {line!r}")
            continue
        try:
            parsed = yaml.safe_load(value.group(1))
        except yaml.YAMLError as err:
            problems.append(f"{key.group(1)} (line {number}): value {value.group(1)!r} is not YAML: {err}")
            continue
        rows.append(Row(number, cells[0], key.group(1), parsed))
    if headers != 1:
        problems.append(f"expected one table with header {HEADER}, found {headers} header rows")
    return rows, problems


def values_equal(expected: Any, actual: Any) -> bool:
    """Equality with numbers compared to REL_TOL (relative), lists element-wise; booleans are not numbers."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return math.isclose(expected, actual, rel_tol=REL_TOL, abs_tol=0.0)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(map(values_equal, expected, actual))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(values_equal(expected[k], actual[k]) for k in expected)
    return type(expected) is type(actual) and expected == actual


def lookup(config: dict[str, Any], key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def leaves(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of every non-dict value (lists are leaves; so is an empty mapping)."""
    out: dict[str, Any] = {}
    for name, value in config.items():
        key = f"{prefix}.{name}" if prefix else name
        if isinstance(value, dict) and value:
            out.update(leaves(value, key))
        else:
            out[key] = value
    return out


def check_table(text: str, config: dict[str, Any]) -> list[str]:
    """Every problem of the table against ``config``, each naming its key where there is one."""
    rows, problems = parse_table(text)
    seen: dict[str, int] = {}
    for row in rows:
        if row.key in seen:
            problems.append(f"{row.key} (line {row.line}): appears twice (first on line {seen[row.key]})")
        seen.setdefault(row.key, row.line)
        actual = lookup(config, row.key)
        if actual is _MISSING:
            problems.append(f"{row.key} (line {row.line}): not a key of the effective paper config")
        elif isinstance(actual, dict) and actual:
            problems.append(f"{row.key} (line {row.line}): a section, not a leaf")
        elif not values_equal(row.value, actual):
            problems.append(f"{row.key} (line {row.line}): table says {row.value!r}, paper config has {actual!r}")
    return problems


def with_value(text: str, key: str, value: str) -> str:
    """``text`` with the paper.yaml cell of ``key``'s row replaced by ``value`` (YAML flow, without backticks)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        cells = _cells(line) if line.lstrip().startswith("|") else []
        if len(cells) == len(HEADER) and cells[1] == f"`{key}`":
            cells[2] = f"`{value}`"
            lines[i] = "| " + " | ".join(cells) + " |"
            return "\n".join(lines) + "\n"
    raise AssertionError(f"no row for {key} in {TABLE}")


@pytest.fixture(scope="module")
def text() -> str:
    return TABLE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return run_config([PAPER])


@pytest.fixture(scope="module")
def rows(text: str) -> list[Row]:
    parsed, problems = parse_table(text)
    assert not problems, "\n".join(problems)
    return parsed


def test_table_matches_effective_paper_config(text, config, rows):
    assert len(rows) > 100
    problems = check_table(text, config)
    assert not problems, "docs/hyperparameters.md disagrees with config/paper.yaml:\n" + "\n".join(problems)


def test_no_key_appears_twice(rows):
    keys = [row.key for row in rows]
    assert sorted({k for k in keys if keys.count(k) > 1}) == []


def test_every_hyperparameter_is_in_the_table(config, rows):
    documented = {row.key for row in rows}
    missing = [key for key in leaves(config)
               if key not in documented and not any(fnmatchcase(key, pattern) for pattern in EXCLUDED)]
    assert not missing, ("leaves of the effective paper config missing from docs/hyperparameters.md "
                         "(add a row, or list the key in EXCLUDED with a reason): " + ", ".join(missing))


def test_required_sections_are_covered(config, rows):
    # The sections the page must cover exist and have rows, so a renamed section cannot empty the check.
    documented = {row.key for row in rows}
    sections = ["model", "pretrain", "finetune", "localization", "supervised", "prepare",
                *(f"datasets.{name}" for name in config["datasets"])]
    for section in sections:
        assert any(key.startswith(section + ".") for key in documented), f"no row under {section}"


def test_exclusions_are_real_and_not_documented(config, rows):
    keys = leaves(config)
    documented = {row.key for row in rows}
    for pattern, reason in EXCLUDED.items():
        assert reason.strip(), pattern
        matched = [key for key in keys if fnmatchcase(key, pattern)]
        assert matched, f"EXCLUDED pattern {pattern!r} matches no leaf of the effective paper config"
        assert not documented.intersection(matched), f"{pattern!r} is excluded but has a row"


@pytest.mark.parametrize(("key", "drifted"), [
    ("pretrain.mocov2.optimizer.lr", "0.3"),                  # a number
    ("pretrain.barlowtwins.optimizer.weight_decay", "0.0000011"),  # a small number, beyond the tolerance
    ("pretrain.barlowtwins.views.blur_prob", "[1.0, 0.2]"),   # one element of a list
    ("pretrain.adversarial_loss", "bce"),                     # a string
    ("localization.relu", "1"),                               # a boolean is not the number 1
])
def test_checker_reports_a_drifted_value(text, config, key, drifted):
    problems = check_table(with_value(text, key, drifted), config)
    assert problems, f"changing {key} to {drifted} went unnoticed"
    assert all(problem.startswith(key + " ") for problem in problems), problems


def test_checker_reports_a_duplicate_and_an_unknown_key(text, config):
    row = next(line for line in text.splitlines() if "`pretrain.simsiam.pred_dim`" in line)
    problems = check_table(text + row + "\n" + row.replace("pred_dim", "pred_width") + "\n", config)
    assert any(p.startswith("pretrain.simsiam.pred_dim ") and "twice" in p for p in problems), problems
    assert any(p.startswith("pretrain.simsiam.pred_width ") and "not a key" in p for p in problems), problems


def test_values_equal_tolerance():
    assert values_equal(0.03, 0.03 * (1 + 1e-13))
    assert not values_equal(0.03, 0.03 * (1 + 1e-11))
    assert values_equal([0.2, 1], [0.2, 1.0])
    assert not values_equal([0.2, 1.0], [0.2, 1.0, 1.0])
    assert not values_equal(True, 1)
    assert values_equal(None, None)
    assert not values_equal("none", None)
