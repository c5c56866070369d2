"""What produced a result: package version, git commit and the configuration it ran with."""

from __future__ import annotations

import datetime as _dt
import functools
import platform
import subprocess
from pathlib import Path
from typing import Any

from dira import __version__


@functools.cache
def git_state() -> dict[str, Any]:
    """Commit and dirty flag of the checkout the package runs from (None outside a git checkout)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root, capture_output=True, text=True, check=True, timeout=10,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def code_version() -> dict[str, Any]:
    import torch

    return {
        "dira": __version__,
        **{f"git_{k}": v for k, v in git_state().items()},
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def provenance(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The block every result file carries: when, with which code, from which configuration."""
    return {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "code": code_version(),
        "config": config or {},
    }
