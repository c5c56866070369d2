"""What to cache ChestX-ray14 at: size on disk and per-core read rates of HDF5 caches of 1024² and 224² images.

Writes a sample of ChestX-ray14-like 1024² PNGs with the synthetic writer (``dira.data.synthetic``), decodes
them once as ``dira prepare`` does, and stores them in HDF5 caches laid out as ``dira.data.cache`` lays them
out (uint8, one chunk per image), at 1024² uncompressed, with lzf and with gzip level 1, at 512² and at
224². For each it measures, on one core with the file kept open (as a training loader's worker does):

- bytes per image on disk, and the write rate;
- random-access reads (img/s and the MB/s they draw from the disk or the page cache);
- a random read + the fine-tuning transform (RandomResizedCrop to 224, scale 0.08-1, flip, rotation);
- a random read + the test view: a batch of 32 resized to 256 and cut into ten 224-px crops.

The baseline is the PNG path: PIL open + convert('L') + resize to 224 (what a loader reading the originals
pays per image), and PNG + the same RandomResizedCrop (the reference's training path on the 1024² PNGs).
Sizes and rates are extrapolated to the 112,120 images of the release. Synthetic phantoms compress
differently from real radiographs (smooth fields plus grain, no detector noise texture), so the compressed
sizes say little about the real set; the real PNGs average ~400 KB (45.1 GB of tarballs).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image

from dira.data.classification import train_transform
from dira.data.eval_crops import eval_crops
from dira.data.prepare.common import load_image
from dira.data.synthetic.chestxray14 import write_chestxray14

RELEASE_IMAGES = 112_120
TRAIN_IMAGES = 75_312
VARIANTS = (  # (name, side, h5py compression, compression_opts)
    ("1024 none", 1024, None, None),
    ("1024 lzf", 1024, "lzf", None),
    ("1024 gzip-1", 1024, "gzip", 1),
    ("512 none", 512, None, None),
    ("224 none", 224, None, None),
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=150, help="sample size (synthetic 1024² PNGs)")
    parser.add_argument("--reads", type=int, default=600, help="random reads timed per cache")
    parser.add_argument("--crops", type=int, default=200, help="read + RandomResizedCrop draws timed per cache")
    parser.add_argument("--eval-batches", type=int, default=3, help="batches of 32 timed through the ten crops")
    parser.add_argument("--png", type=int, default=60, help="PNG decodes timed per baseline row")
    parser.add_argument("--repeats", type=int, default=3, help="each timing is the median of this many runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="where the sample is written (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="write every number and setting here")
    return parser.parse_args()


def rate(work: Callable[[], int], repeats: int) -> float:
    """Items per second of ``work`` (which returns how many items it did): median over ``repeats`` runs."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = work()
        rates.append(done / (time.perf_counter() - start))
    return statistics.median(rates)


def write_sample(root: Path, images: int, seed: int) -> list[Path]:
    """About ``images`` synthetic 1024² PNGs (1-3 per patient) in the release layout; their paths."""
    write_chestxray14(root, patients=max(1, images // 2), image_size=1024, seed=seed)
    return sorted((root / "images").glob("*.png"))[:images]


def write_cache(path: Path, pixels: np.ndarray, compression: str | None, opts: int | None) -> float:
    """The cache layout of ``dira.data.cache.CacheWriter`` (one chunk per image), optionally compressed; img/s."""
    n, side = len(pixels), pixels.shape[-1]
    start = time.perf_counter()
    with h5py.File(path, "w") as f:
        images = f.create_dataset("images", shape=(n, side, side), dtype=np.uint8, chunks=(1, side, side),
                                  compression=compression, compression_opts=opts)
        for i in range(n):
            images[i] = pixels[i]
    return n / (time.perf_counter() - start)


def cache_rates(path: Path, args: argparse.Namespace) -> dict[str, float]:
    rng = np.random.default_rng(args.seed)
    transform = train_transform(224, (0.08, 1.0), 0.5, 7)
    with h5py.File(path, "r") as f:
        images = f["images"]
        n = len(images)

        def reads() -> int:
            for i in rng.integers(0, n, args.reads):
                images[int(i)]
            return args.reads

        def reads_and_crops() -> int:
            for i in rng.integers(0, n, args.crops):
                transform(torch.from_numpy(images[int(i)]).unsqueeze(0))
            return args.crops

        def reads_and_ten_crops() -> int:
            for _ in range(args.eval_batches):
                batch = np.stack([images[int(i)] for i in rng.integers(0, n, 32)])
                eval_crops(torch.from_numpy(batch).unsqueeze(1), 256, 224, "ten")
            return 32 * args.eval_batches

        return {"read": rate(reads, args.repeats), "read_rrc": rate(reads_and_crops, args.repeats),
                "read_tencrop": rate(reads_and_ten_crops, args.repeats)}


def png_rates(paths: list[Path], args: argparse.Namespace) -> dict[str, float]:
    rng = np.random.default_rng(args.seed)
    transform = train_transform(224, (0.08, 1.0), 0.5, 7)

    def decode_resize() -> int:
        for i in rng.integers(0, len(paths), args.png):
            with Image.open(paths[int(i)]) as png:
                np.asarray(png.convert("L").resize((224, 224), Image.Resampling.BILINEAR))
        return args.png

    def decode_crop() -> int:
        for i in rng.integers(0, len(paths), args.png):
            with Image.open(paths[int(i)]) as png:
                transform(torch.from_numpy(np.array(png.convert("L"))).unsqueeze(0))
        return args.png

    return {"decode_resize": rate(decode_resize, args.repeats), "decode_rrc": rate(decode_crop, args.repeats)}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)  # per core: a DataLoader worker runs one such loop
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cache_resolution_"))
    try:
        print(f"writing ~{args.images} synthetic 1024² PNGs to {workdir} ...", flush=True)
        paths = write_sample(workdir / "raw", args.images, args.seed)
        png_bytes = statistics.mean(p.stat().st_size for p in paths)
        decoded = {side: np.stack([load_image(p, side)[0] for p in paths]) for side in {v[1] for v in VARIANTS}}
        rows = []
        for name, side, compression, opts in VARIANTS:
            path = workdir / f"{name.replace(' ', '_')}.h5"
            write_rate = write_cache(path, decoded[side], compression, opts)
            bytes_per_image = path.stat().st_size / len(paths)
            measured = cache_rates(path, args)
            rows.append({"cache": name, "side": side, "compression": compression, "compression_opts": opts,
                         "bytes_per_image": bytes_per_image, "release_gb": bytes_per_image * RELEASE_IMAGES / 1e9,
                         "write_img_s": write_rate, **{f"{k}_img_s": v for k, v in measured.items()},
                         "read_mb_s": measured["read"] * bytes_per_image / 1e6})
            print(f"  {name}: done", flush=True)
        png = png_rates(paths, args)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n{len(paths)} synthetic ChestX-ray14-like images, 1024² 8-bit; one core; torch {torch.__version__}, "
          f"h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version}); medians of {args.repeats} runs")
    header = ("| cache | KB/img | 112,120 images | write img/s | read img/s | read MB/s | read + RRC 224 img/s "
              "| read + ten crops img/s | epoch of 75,312 (read + RRC, 1 core) |")
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    for r in rows:
        print(f"| {r['cache']} | {r['bytes_per_image'] / 1e3:.0f} | {r['release_gb']:.1f} GB | "
              f"{r['write_img_s']:.0f} | {r['read_img_s']:.0f} | {r['read_mb_s']:.0f} | {r['read_rrc_img_s']:.0f} | "
              f"{r['read_tencrop_img_s']:.0f} | {TRAIN_IMAGES / r['read_rrc_img_s'] / 60:.1f} min |")
    print(f"| PNG (baseline) | {png_bytes / 1e3:.0f} | {png_bytes * RELEASE_IMAGES / 1e9:.1f} GB | — | "
          f"{png['decode_resize']:.0f} (decode + resize 224) | — | {png['decode_rrc']:.0f} | — | "
          f"{TRAIN_IMAGES / png['decode_rrc'] / 60:.1f} min |")
    print("\nRead rates are from the page cache (the sample fits in memory); a full 1024² cache does not, so "
          "there the disk's random-read bandwidth bounds 'read MB/s'. Compressed sizes of synthetic phantoms "
          "do not carry over to real radiographs.")
    if args.json:
        args.json.write_text(json.dumps({
            "images": len(paths), "png_bytes_per_image": png_bytes, "png": png, "caches": rows,
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "torch": torch.__version__, "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version,
            "python": platform.python_version(), "machine": platform.machine(), "threads": 1,
        }, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
