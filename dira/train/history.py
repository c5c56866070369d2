"""Per-epoch training log: kept in the resumable state and mirrored to a CSV readable during training."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from dira.io import write_text

# Fixed column order so that logs of different stages and methods line up; absent terms stay blank.
COLUMNS = (
    "stage", "epoch", "lr",
    "train_total", "train_dis", "train_res", "train_adv", "train_d",
    "val_total", "val_dis", "val_res", "val_adv",
    "images_per_s", "seconds",
)


class History:
    def __init__(self, live_csv: Path):
        self.live_csv = live_csv
        self.rows: list[dict[str, Any]] = []

    def replace(self, rows: list[dict[str, Any]]) -> None:
        self.rows = [dict(r) for r in rows]

    def append(self, row: dict[str, Any]) -> None:
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ValueError(f"history has no column for {sorted(unknown)}")
        self.rows.append(dict(row))
        self.write(self.live_csv)

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return buffer.getvalue()

    def write(self, path: Path) -> None:
        write_text(path, self.to_csv())

    @staticmethod
    def summary(row: dict[str, Any]) -> str:
        """One readable line per epoch for the log: every loss term, learning rate and throughput."""
        terms = " ".join(f"{k.removeprefix('train_')}={row[k]:.4g}" for k in COLUMNS
                         if k.startswith("train_") and k in row)
        val = " ".join(f"{k.removeprefix('val_')}={row[k]:.4g}" for k in COLUMNS if k.startswith("val_") and k in row)
        return (f"[{row['stage']}] epoch {row['epoch']}: lr={row['lr']:.4g} train {terms} | val {val} | "
                f"{row['images_per_s']:.1f} img/s, {row['seconds']:.1f} s")
