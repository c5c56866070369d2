"""A `dira synth` cut short (pre-empted, killed) is recognised as its own and completed by a rerun, never refused
as a real dataset and never left looking complete."""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import pytest

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
