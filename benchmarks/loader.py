"""Pre-training's CPU loader against a raw h5py loop: samples/s reading stored rows in one random order.

For each row kind (2D uint8 1024², as the paper's ChestX-ray14 cache; 2D uint8 224²; 3D uint8 cubes
(32, 64, 64)) one split file is written by the package's own writers (``CacheWriter`` for 2D,
``AppendingCacheWriter`` with a ``VoxelGrid`` for 3D), read once so that it sits in the page cache (the rates
are CPU and memory costs, not the disk's), and then read to the end in the same random order by:

- ``h5py`` (the baseline): the file opened once in the main process, ``dset[i]`` per index,
  ``torch.from_numpy``, ``torch.stack`` per batch;
- ``ours``: ``row_loader(StoredRows(SplitCache(path)), order, batch, num_workers=W)`` iterated to the end;
- ``stock``: ``DataLoader(StoredRows(...), batch_size, sampler=order, num_workers=W)``, the construction
  ``Pretrainer._loader`` used before ``row_loader`` (one h5py read per row, default collate), to show what
  the batch read buys.

Passes alternate variant by variant in each repeat (robust to a shared CPU); each rate is the median of
``--repeats``. A pass with workers includes starting them, as every epoch of a non-persistent loader does.
The headline (``ours_samples_s``, ``h5py_samples_s``, ``ratio_vs_h5py`` in ``--json``) is 2D 1024² with 0
workers: both sides then read in one process on one core, the apples-to-apples comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader

from dira.data.cache import AppendingCacheWriter, CacheWriter, SplitCache, VoxelGrid
from dira.data.loader import row_loader
from dira.data.samples import StoredRows

# row kind -> (row shape, rows per pass by default: about 512 MiB each)
KINDS = {"2d1024": ((1024, 1024), 512), "2d224": ((224, 224), 8192), "3d": ((32, 64, 64), 4096)}
GRID = VoxelGrid("zyx", (1.0, 1.0, 1.0), {"unit": "HU", "window": [-1000.0, 400.0], "scaled_to": "dtype range"})
HEADLINE = ("2d1024", "ours", 0)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kinds", nargs="+", choices=sorted(KINDS), default=list(KINDS), help="row kinds to run")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="num_workers of the loaders")
    parser.add_argument("--batch", type=int, default=32, help="batch size")
    parser.add_argument("--samples", type=int, default=None,
                        help="rows per pass (= rows in the file); default 512 (1024²), 8192 (224²), 4096 (3D)")
    parser.add_argument("--repeats", type=int, default=3, help="each rate is the median of this many passes")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the main process (workers always use 1); 1 avoids OpenMP stalls "
                             "in torch.stack on a shared CPU")
    parser.add_argument("--no-stock", action="store_true", help="skip the stock DataLoader rows")
    parser.add_argument("--pin-memory", action="store_true",
                        help="loaders pin their batches (only where CUDA is available; the h5py loop never does)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="where the files go (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="write the headline, every row and the settings")
    return parser.parse_args()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_cache(path: Path, shape: tuple[int, ...], rows: int, seed: int) -> None:
    """``rows`` distinct uint8 rows (noise plus the row number: content does not matter uncompressed)."""
    base = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    attrs = {"dataset": "bench", "split": "train", "manifest": {}, "provenance": {}}
    if len(shape) == 2:
        with CacheWriter(path, rows, shape, attrs) as writer:
            for i in range(rows):
                writer.write_image(i, base + np.uint8(i % 256), shape)
            writer.write_array("ids", [f"img{i}.png" for i in range(rows)])
        return
    with AppendingCacheWriter(path, shape, attrs, dtype=np.uint8, grid=GRID) as writer:
        for first in range(0, rows, 256):
            count = min(256, rows - first)
            writer.append(np.stack([base + np.uint8(i % 256) for i in range(first, first + count)]),
                          [f"scan{first // 256}/{i}" for i in range(count)])


def warm_page_cache(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(64 << 20):
            pass


def h5py_pass(path: Path, order: list[int], batch: int) -> int:
    with h5py.File(path, "r") as f:
        images = f["images"]
        for start in range(0, len(order), batch):
            torch.stack([torch.from_numpy(images[i]) for i in order[start:start + batch]])
    return len(order)


def loader_pass(loader: DataLoader) -> int:
    return sum(len(batch["image"]) for batch in loader)


def variants(path: Path, order: list[int], args: argparse.Namespace) -> dict[tuple[str, int], Callable[[], int]]:
    runs: dict[tuple[str, int], Callable[[], int]] = {("h5py", 0): lambda: h5py_pass(path, order, args.batch)}
    for workers in args.workers:
        runs[("ours", workers)] = lambda w=workers: loader_pass(row_loader(
            StoredRows(SplitCache(path)), order, args.batch, num_workers=w, pin_memory=args.pin_memory, seed=args.seed))
        if not args.no_stock:
            runs[("stock", workers)] = lambda w=workers: loader_pass(DataLoader(
                StoredRows(SplitCache(path)), batch_size=args.batch, sampler=order, num_workers=w,
                pin_memory=args.pin_memory and torch.cuda.is_available(),
                generator=torch.Generator().manual_seed(args.seed)))
    return runs


def check_same_batches(path: Path, order: list[int], batch: int) -> None:
    """The first and last batch of ``ours`` are the baseline's (outside the timing)."""
    with h5py.File(path, "r") as f:
        images = f["images"]
        expected = [np.stack([images[i] for i in order[s:s + batch]]) for s in (0, (len(order) - 1) // batch * batch)]
    got = list(row_loader(StoredRows(SplitCache(path)), order, batch, num_workers=0, pin_memory=False, seed=0))
    if not (np.array_equal(got[0]["image"].numpy(), expected[0]) and np.array_equal(got[-1]["image"].numpy(),
                                                                                     expected[1])):
        raise AssertionError(f"{path}: row_loader's batches differ from the h5py loop's")


def measure(kind: str, args: argparse.Namespace, workdir: Path) -> list[dict]:
    shape, default_rows = KINDS[kind]
    rows = args.samples or default_rows
    path = workdir / f"{kind}.h5"
    log(f"{kind}: writing {rows} rows of {'x'.join(map(str, shape))} uint8 ...")
    write_cache(path, shape, rows, args.seed)
    warm_page_cache(path)
    order = np.random.default_rng(args.seed).permutation(rows).tolist()
    check_same_batches(path, order, args.batch)
    runs = variants(path, order, args)
    rates: dict[tuple[str, int], list[float]] = {key: [] for key in runs}
    for repeat in range(args.repeats):
        for key, run in runs.items():
            start = time.perf_counter()
            count = run()
            rates[key].append(count / (time.perf_counter() - start))
        log(f"{kind}: repeat {repeat + 1}/{args.repeats}: "
            + ", ".join(f"{name} w{w} {r[-1]:.0f}/s" for (name, w), r in rates.items()))
    path.unlink()
    baseline = statistics.median(rates[("h5py", 0)])
    return [{"kind": kind, "row_shape": list(shape), "row_bytes": int(np.prod(shape)), "rows": rows,
             "variant": name, "workers": w, "samples_s": statistics.median(r), "runs_samples_s": r,
             "ratio_vs_h5py": statistics.median(r) / baseline} for (name, w), r in rates.items()]


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="loader_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = uptime()
    log(f"uptime: {load_before}")
    started = time.perf_counter()
    try:
        rows = [row for kind in args.kinds for row in measure(kind, args, workdir)]
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    load_after = uptime()

    print(f"\nbatch {args.batch}; uint8 rows from the page cache; main process torch threads {args.threads}; "
          f"medians of {args.repeats} passes; torch {torch.__version__}, h5py {h5py.__version__} "
          f"(HDF5 {h5py.version.hdf5_version}), {os.cpu_count()} CPUs")
    print(f"uptime before: {load_before}\nuptime after:  {load_after}\n")
    header = "| rows | shape | variant | workers | samples/s | MB/s | passes (samples/s) | × h5py |"
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    for r in rows:
        print(f"| {r['rows']} | {'×'.join(map(str, r['row_shape']))} | {r['variant']} | {r['workers']} | "
              f"{r['samples_s']:.0f} | {r['samples_s'] * r['row_bytes'] / 1e6:.0f} | "
              f"{' / '.join(f'{x:.0f}' for x in r['runs_samples_s'])} | {r['ratio_vs_h5py']:.2f} |")
    headline = next((r for r in rows if (r["kind"], r["variant"], r["workers"]) == HEADLINE),
                    next(r for r in rows if r["variant"] == "ours"))
    h5py_rate = next(r["samples_s"] for r in rows if r["kind"] == headline["kind"] and r["variant"] == "h5py")
    print(f"\nheadline ({headline['kind']}, ours with {headline['workers']} workers vs h5py): "
          f"{headline['samples_s']:.0f} / {h5py_rate:.0f} samples/s = {headline['ratio_vs_h5py']:.2f}× "
          f"(done when ≥ 0.5×); {time.perf_counter() - started:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps({
            "ours_samples_s": headline["samples_s"], "h5py_samples_s": h5py_rate,
            "ratio_vs_h5py": headline["ratio_vs_h5py"],
            "headline": {"kind": headline["kind"], "workers": headline["workers"]}, "rows": rows,
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "uptime_before": load_before, "uptime_after": load_after, "torch": torch.__version__,
            "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version, "python": platform.python_version(),
            "cpus": os.cpu_count(), "machine": platform.machine(),
        }, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
