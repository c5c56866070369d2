"""A `dira synth` cut short (pre-empted, killed) is recognised as its own and completed by a rerun, never refused
as a real dataset and never left looking complete; a rerun over its own complete set rewrites the same bytes."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import pytest

from dira.cli import main
from dira.data.sources.markers import SYNTHETIC_MARKER, WRITING_MARKER
from dira.registry import DATASETS

# the smallest set each writer accepts: (count, image_size)
SMALL = {"chestxray14": (2, 32), "chexpert": (2, 32), "siim": (3, 32), "montgomery": (3, 32), "luna16": (2, 32),
         "lidc": (2, 32), "lits": (3, 32), "pe": (2, 32), "brats": (2, 24)}


class Killed(BaseException):
    """Stands for the signal: not an Exception, so no writer's error handling catches it."""


def _first_then_killed(items, *args, **kwargs):
    for index, item in enumerate(items):
        if index == 1:
            raise Killed
        yield item


def _write(name: str, out: Path) -> None:
    count, size = SMALL[name]
    importlib.import_module(f"dira.data.synthetic.{name}").write(out, count=count, image_size=size, seed=5)


def _interrupted(name: str, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(importlib.import_module(f"dira.data.synthetic.{name}"), "tqdm", _first_then_killed)
        with pytest.raises(Killed):
            _write(name, out)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _marker_folder(out: Path, marker: str) -> Path:
    found = sorted(out.rglob(marker))
    assert len(found) == 1, f"{marker} under {out}: {found}"
    return found[0].parent


def test_every_dataset_is_covered():
    assert set(SMALL) == {d.name for d in DATASETS.values() if d.prepared}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_killed_synth_is_completed_by_its_rerun(name, tmp_path, monkeypatch):
    _write(name, tmp_path / "whole")
    _interrupted(name, tmp_path / "cut", monkeypatch)
    root = _marker_folder(tmp_path / "cut", WRITING_MARKER)
    assert not (root / SYNTHETIC_MARKER).exists(), "a set cut short must not look complete"

    _write(name, tmp_path / "cut")  # the rerun: no "refusing to overwrite what looks like a real copy"
    assert not list((tmp_path / "cut").rglob(WRITING_MARKER))
    assert _digest(tmp_path / "cut") == _digest(tmp_path / "whole")


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_rewrite_cut_short_drops_the_old_completion_marker(name, tmp_path, monkeypatch):
    _write(name, tmp_path / "set")
    root = _marker_folder(tmp_path / "set", SYNTHETIC_MARKER)
    _interrupted(name, tmp_path / "set", monkeypatch)
    assert not (root / SYNTHETIC_MARKER).exists(), "the earlier set's marker would vouch for a half-rewritten one"
    assert (root / WRITING_MARKER).is_file()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_rerun_over_its_own_complete_set_rewrites_the_same_bytes(name, tmp_path):
    # what the workflow's rerun does after a kill between the writer's last file and Snakemake's record of the job
    _write(name, tmp_path / "set")
    before = _digest(tmp_path / "set")
    _write(name, tmp_path / "set")
    assert _digest(tmp_path / "set") == before


def test_the_stamp_records_the_complete_set_outside_it_and_is_rewritten_alike(tmp_path):
    out, stamp = tmp_path / "raw", tmp_path / "located/montgomery.json"
    command = ["synth", "montgomery", "--out", str(out), "--count", "3", "--image-size", "32", "--stamp", str(stamp)]
    assert main(command) == 0
    root = out / DATASETS["montgomery"].synthetic_subfolder
    recorded = json.loads(stamp.read_text())
    assert recorded == {"dataset": "montgomery", "root": str(root),
                        "synthetic": json.loads((root / SYNTHETIC_MARKER).read_text())}
    first = stamp.read_bytes()
    assert main(command) == 0  # the workflow's rerun of a job it did not see finish
    assert stamp.read_bytes() == first and not list(stamp.parent.glob(".*.tmp"))
