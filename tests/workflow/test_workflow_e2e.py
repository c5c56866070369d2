"""The whole DAG on config/test.yaml: raw synthetic data in, table and figure out (about 2 minutes)."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from dira.eval.metrics import mean_auc


@pytest.mark.slow
def test_test_config_runs_end_to_end_and_the_table_is_recomputable(snakemake, tmp_path):
    done = snakemake(tmp_path, "--cores", "2", "--configfile", str(REPO / "config/test.yaml"), timeout=900)
    assert done.returncode == 0, done.stdout[-5000:]

    table = pd.read_csv(tmp_path / "results/tables/chestxray14.csv")
    methods = ("barlowtwins", "mocov2", "simsiam")
    assert list(table["init"]) == ["random", *(f"{m}_{v}" for m in methods for v in ("base", "dira"))]
    for row in table.itertuples():
        runs = [tmp_path / f"results/finetune/chestxray14/{row.init}/seed{seed}" for seed in (0, 1)]
        values = [json.loads((run / "metrics.json").read_text())["value"] for run in runs]
        assert row.n == 2
        assert row.mean == pytest.approx(np.mean(values), abs=1e-12)
        assert row.std == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        for run, value in zip(runs, values, strict=True):  # every number recomputable from predictions
            with np.load(run / "predictions.npz", allow_pickle=False) as p:
                assert mean_auc(p["y_true"], p["y_score"]) == pytest.approx(value, abs=1e-12)
    for method in methods:
        dira = table.set_index("init").loc[f"{method}_dira"]
        assert dira["baseline"] == f"{method}_base" and not math.isnan(dira["p_value"])
    assert math.isnan(table.set_index("init").loc["random"]["p_value"])

    png = (tmp_path / "results/figures/chestxray14.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    for method in methods:
        for variant in ("base", "dira"):
            assert (tmp_path / f"results/pretrain/{method}/{variant}/encoder.pt").is_file()

    again = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config/test.yaml"))
    assert "Nothing to be done" in again.stdout
