"""What produced a result: package version, git commit and the configuration it ran with.

``provenance`` is the full block of a result (when, which commit, which Python and torch). ``portable_provenance``
is what a shared data file keeps of it: files whose bytes are published under ``data.dvc`` must come out
identical on every machine and at every commit that does not change how they are made, so they record the
package version and the configuration, not the time, the commit or the interpreter.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import subprocess
from collections.abc import Mapping
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


def portable_provenance(block: Mapping[str, Any]) -> dict[str, Any]:
    """``block`` without what differs between machines or runs: the creation time is kept as null (deliberately
    not recorded) and the code as the package version alone (a commit would change with every commit, the
    pointer to the data included). Other keys are kept as they are."""
    out = dict(block)
    if "created" in out:
        out["created"] = None
    code = out.get("code")
    if isinstance(code, Mapping):
        out["code"] = {key: code[key] for key in ("dira",) if key in code}
    return out


def project_relative(path: str | os.PathLike) -> str:
    """``path`` relative to the working directory (the project, where the workflow runs) when it lies inside it,
    so that two clones in different folders write the same text; a path outside is returned unchanged."""
    cwd = Path.cwd().resolve()
    resolved = Path(path).resolve()
    if resolved.is_relative_to(cwd):
        return resolved.relative_to(cwd).as_posix() or "."
    return os.fspath(path)
