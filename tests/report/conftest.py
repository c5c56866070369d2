"""Fake fine-tuning runs: predictions of a chosen signal strength, scored as `dira finetune` scores them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dira.eval.metrics import score_predictions
from dira.io import write_json

CLASSES = ("A", "B", "C")


def write_run(root: Path, init: str, seed: int, signal: float, task: str = "chestxray14") -> Path:
    """``root/<init>/seed<n>`` with predictions.npz and the metrics.json that matches it."""
    rng = np.random.default_rng([seed, len(init), int(signal * 1000)])
    y_true = (rng.random((60, len(CLASSES))) < 0.4).astype(np.uint8)
    logits = signal * (2.0 * y_true - 1) + rng.normal(size=y_true.shape)
    y_score = (1 / (1 + np.exp(-logits))).astype(np.float32)
    predictions = {"ids": np.array([f"{i}.png" for i in range(60)]), "y_true": y_true, "y_score": y_score,
                   "class_names": np.array(CLASSES)}
    run_dir = root / init / f"seed{seed}"
    run_dir.mkdir(parents=True)
    np.savez(run_dir / "predictions.npz", **predictions)
    write_json(run_dir / "metrics.json", {
        "task": task, "init": init, "seed": seed, "metric": "auc",
        "value": score_predictions("auc", predictions),
        "provenance": {"code": {"git_commit": "abc123"}},
    })
    return run_dir


@pytest.fixture
def experiment(tmp_path) -> list[Path]:
    """random (3 seeds), mocov2 base (4), dir (3) and dira (4), dira clearly the strongest."""
    runs = []
    for init, seeds, signal in [("mocov2_dira", range(4), 1.4), ("random", range(3), 0.8),
                                ("mocov2_base", range(4), 0.9), ("mocov2_dir", range(3), 1.0)]:
        runs += [write_run(tmp_path / "runs", init, seed, signal) for seed in seeds]
    return runs


@pytest.fixture
def run_writer():
    """:func:`write_run`, for tests that add runs of their own (a bare conftest import may pick another conftest)."""
    return write_run
