"""Volumetric HDF5 caches: crops/s written through ``AppendingCacheWriter`` and read through ``SplitCache``.

Windows a synthetic 1-mm CT volume (int16 HU) once to uint8 or to float16 in [0, 1] (as a preparer windows
a scan before cutting it), cuts 64×64×32 (x, y, z) crops at random centres and writes them as
``dira.data.prepare.rows`` does: one batch per scan (``--crops-per-scan``) appended with its per-row fields
(labels, centres, source index). The baseline is plain h5py with the layout of ``shared/reference/baselines.md``
(a fixed-size dataset, one chunk per crop, one ``ds[i] = crop`` per crop), cutting the same crops, alternating
with ours in each repeat. Reads
are random single crops from the file kept open (as a loader worker reads): ``SplitCache.image(i)`` against
``h5py`` ``ds[i]`` on the same file. One process, medians of ``--repeats``; the files sit in the page cache,
so the rates are CPU and memory costs, not the disk's. Under a minute on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from dira.data.cache import AppendingCacheWriter, SplitCache, VoxelGrid

CROP_ZYX = (32, 64, 64)
VOLUME_ZYX = (160, 320, 320)  # a 1-mm chest CT, smaller than a real one (~300×350×350) to keep memory low
WINDOW_HU = (-1000.0, 400.0)
GRID = VoxelGrid("zyx", (1.0, 1.0, 1.0), {"unit": "HU", "window": list(WINDOW_HU), "scaled_to": "dtype range"})
FIELDS = {"labels": (np.uint8, ()), "centres_zyx": (np.int32, (3,)), "source_index": (np.int64, ())}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crops", type=int, default=2000, help="crops written per cache")
    parser.add_argument("--crops-per-scan", type=int, default=64, help="crops appended per batch (one scan)")
    parser.add_argument("--reads", type=int, default=4000, help="random crop reads timed per cache")
    parser.add_argument("--repeats", type=int, default=3, help="each rate is the median of this many runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="where the caches go (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="write every number and setting here")
    return parser.parse_args()


def windowed(volume: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """HU -> [0, 1] in the window, stored as float16, or as uint8 0..255."""
    low, high = WINDOW_HU
    unit = np.clip((volume.astype(np.float32) - low) / (high - low), 0.0, 1.0)
    return unit.astype(np.float16) if dtype == np.float16 else (unit * 255.0 + 0.5).astype(np.uint8)


def cut(volume: np.ndarray, centre: np.ndarray) -> np.ndarray:
    z, y, x = (int(c) - s // 2 for c, s in zip(centre, CROP_ZYX, strict=True))
    dz, dy, dx = CROP_ZYX
    return volume[z:z + dz, y:y + dy, x:x + dx]


def write_ours(path: Path, volume: np.ndarray, centres: np.ndarray, dtype: np.dtype, per_scan: int) -> float:
    start = time.perf_counter()
    attrs = {"dataset": "bench", "split": "train", "manifest": {}, "provenance": {}}
    with AppendingCacheWriter(path, CROP_ZYX, attrs, dtype=dtype, fields=FIELDS, grid=GRID) as writer:
        for scan, first in enumerate(range(0, len(centres), per_scan)):
            batch = centres[first:first + per_scan]
            writer.append(np.stack([cut(volume, c) for c in batch]),
                          [f"scan{scan}/{i}" for i in range(len(batch))], labels=np.zeros(len(batch), np.uint8),
                          centres_zyx=batch, source_index=np.full(len(batch), scan))
        writer.write_array("source_ids", [f"scan{s}" for s in range(scan + 1)])
    return len(centres) / (time.perf_counter() - start)


def write_raw(path: Path, volume: np.ndarray, centres: np.ndarray, dtype: np.dtype) -> float:
    start = time.perf_counter()
    with h5py.File(path, "w") as f:
        images = f.create_dataset("images", shape=(len(centres), *CROP_ZYX), dtype=dtype, chunks=(1, *CROP_ZYX))
        for i, centre in enumerate(centres):
            images[i] = cut(volume, centre)
    return len(centres) / (time.perf_counter() - start)


def read_ours(path: Path, order: np.ndarray) -> float:
    cache = SplitCache(path)
    cache.image(0)  # opens the file, as a loader worker's first read does
    start = time.perf_counter()
    for i in order:
        cache.image(int(i))
    elapsed = time.perf_counter() - start
    cache.close()
    return len(order) / elapsed


def read_raw(path: Path, order: np.ndarray) -> float:
    with h5py.File(path, "r") as f:
        images = f["images"]
        images[0]
        start = time.perf_counter()
        for i in order:
            images[int(i)]
        return len(order) / (time.perf_counter() - start)


def measure(dtype: np.dtype, volume: np.ndarray, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    rng = np.random.default_rng(args.seed)
    half = np.array(CROP_ZYX) // 2
    centres = rng.integers(half, np.array(VOLUME_ZYX) - half, (args.crops, 3)).astype(np.int32)
    runs: dict[str, list[float]] = {k: [] for k in ("write_ours", "write_raw", "read_ours", "read_raw")}
    ours, raw = workdir / f"ours_{dtype.name}.h5", workdir / f"raw_{dtype.name}.h5"
    for _ in range(args.repeats):
        runs["write_ours"].append(write_ours(ours, volume, centres, dtype, args.crops_per_scan))
        runs["write_raw"].append(write_raw(raw, volume, centres, dtype))
        order = rng.integers(0, args.crops, args.reads)
        runs["read_ours"].append(read_ours(ours, order))
        runs["read_raw"].append(read_raw(raw, order))
    result = {k: statistics.median(v) for k, v in runs.items()}
    result["bytes_per_crop"] = float(np.prod(CROP_ZYX) * dtype.itemsize)
    result["file_bytes_ours"] = ours.stat().st_size
    result["runs"] = runs
    for path in (ours, raw):
        path.unlink()
    return result


def main() -> None:
    args = parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cache_crops_"))
    workdir.mkdir(parents=True, exist_ok=True)
    volume = np.random.default_rng(args.seed).integers(-1100, 600, VOLUME_ZYX, dtype=np.int16)
    try:
        results = {}
        for dtype in (np.dtype(np.uint8), np.dtype(np.float16)):
            print(f"measuring {dtype} ...", flush=True)
            results[dtype.name] = measure(dtype, windowed(volume, dtype), args, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n{args.crops} crops of 64×64×32 per cache, {args.crops_per_scan} per scan; one process; "
          f"h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version}); medians of {args.repeats} runs")
    header = ("| dtype | KiB/crop | write crops/s (AppendingCacheWriter) | write crops/s (h5py baseline) | ratio "
              "| random read crops/s (SplitCache) | random read crops/s (h5py) | ratio |")
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    for name, r in results.items():
        print(f"| {name} | {r['bytes_per_crop'] / 1024:.0f} | {r['write_ours']:.0f} | {r['write_raw']:.0f} | "
              f"{r['write_ours'] / r['write_raw']:.2f} | {r['read_ours']:.0f} | {r['read_raw']:.0f} | "
              f"{r['read_ours'] / r['read_raw']:.2f} |")
    print("\nTargets (issue 12): uint8 writes >= 4k crops/s; SplitCache reads >= 0.5x the raw h5py read. "
          "Writes include cutting each crop from the windowed volume, on both sides.")
    if args.json:
        args.json.write_text(json.dumps({
            "crop_zyx": CROP_ZYX, "volume_zyx": VOLUME_ZYX, "window_hu": WINDOW_HU, "results": results,
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version, "numpy": np.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
        }, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
