"""Resumable training state, kept outside Snakemake's declared outputs (which it deletes before a job).

A state file holds everything the next epoch depends on: weights, optimiser moments, the stage and
epoch reached, the best validation loss so far, the RNG state and the log. It carries a fingerprint of
the run's settings and inputs; a state written by a different configuration is set aside, never
resumed. Everything is plain tensors and containers, so it loads with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from dira.io import load_torch, save_torch

log = logging.getLogger(__name__)


def fingerprint(settings: dict[str, Any], inputs: list[Path]) -> str:
    """Hash of the settings and of the inputs' identity (path, size, modification time)."""
    identity = [[os.fspath(p), p.stat().st_size, p.stat().st_mtime_ns] for p in inputs]
    blob = json.dumps({"settings": settings, "inputs": identity}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: Path, state: dict[str, Any]) -> None:
    save_torch(path, state)


def load_state(path: Path, expected_fingerprint: str, move_stale: bool = True) -> dict[str, Any] | None:
    """The saved state if it belongs to this run; a foreign or unreadable one is moved aside."""
    if not path.is_file():
        return None
    try:
        state = load_torch(path)
    except ValueError as err:
        log.warning("%s is unreadable (%s); starting afresh", path, err)
        state = None
    if state is not None and state.get("fingerprint") == expected_fingerprint:
        return state
    if not move_stale:
        return None
    stale = path.with_suffix(".stale.pt")
    os.replace(path, stale)
    log.warning("%s was written by other settings or inputs; moved to %s and starting afresh", path, stale)
    return None
