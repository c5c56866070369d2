"""Cubes/s of TransVW's batched device-side views beside the reference per-sample path and today's ``transvw_view``.

Rows, all making TransVW's input (elastic deformation, then one of local shuffle / Bezier / in- / out-painting, at
the config's ``pretrain.transvw.views``) and its target for uint8 visual-word cubes:

- ``reference per-sample``: ``ReferenceSamples`` (``benchmarks/reference_views.py``: the reference loader's float64
  numpy/scipy path on (x, y, z) cubes, Python ``random``), one cube at a time on one CPU thread: the named baseline;
- ``transvw_view``: the package's per-sample path (``cube_in_unit_range`` + ``transforms3d.transvw_view``, what a
  loader worker runs per cube today), one CPU thread;
- ``batched views``: ``dira.data.batch_views3d.TransVWBatchViews`` on whole batches, on ``--device`` (on a CPU, one
  thread: the cost per core);
- ``batched draws only``: ``draw_transvw`` alone, one CPU thread: what stays on a CPU core per cube when a GPU renders.

The per-sample rows are timed with each choice forced in turn and mixed by ``choice_probs`` (medians per choice; a
sampled mix of a few cubes would let the count of slow shuffles decide); the batched rows draw their own mix, as in
training, so their ms/cube is the mean over all timed batches (total time / cubes) and "min" the fastest batch.
Rounds alternate the rows so that a shared machine's load hits all of them alike. Speed is measured here, never
asserted in tests.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import statistics
import sys

import numpy as np
import torch
from reference_views import ReferenceSamples
from scipy.ndimage import gaussian_filter
from step_harness import seconds

from dira.config import load_config
from dira.data import transforms3d
from dira.data.batch_views3d import TransVWBatchViews, draw_transvw
from dira.data.visual_word_views import cube_in_unit_range


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def synthetic_cubes(count: int, crop_zyx: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Smooth uint8 (z, y, x) cubes with noise: stand-in CT windows (the transforms' cost barely depends on content)."""
    rng = np.random.default_rng(seed)
    smooth = gaussian_filter(rng.normal(size=(count, *crop_zyx)), sigma=(0, 3, 3, 3))
    smooth = (smooth - smooth.min()) / (np.ptp(smooth) + 1e-12)
    return np.clip(255 * smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)


def measure_views3d(views: dict, crop_zyx: tuple[int, int, int], batch: int, cubes: int,
                    device: torch.device) -> list[dict]:
    """One row per path: ms and cubes/s per cube (one CPU thread for every CPU row), with what was timed."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        return _measure(views, crop_zyx, batch, cubes, device)
    finally:
        torch.set_num_threads(threads)


def _measure(views: dict, crop_zyx: tuple[int, int, int], batch: int, cubes: int, device: torch.device) -> list[dict]:
    random.seed(0)
    np.random.seed(0)
    pool = synthetic_cubes(max(batch, 8), crop_zyx)
    pool_xyz = np.ascontiguousarray(pool.transpose(0, 3, 2, 1)).astype(np.float64) / 255.0  # the reference's RAM copy
    labels = np.zeros(len(pool), dtype=np.int64)
    probs = views["choice_probs"]
    forced = [{**copy.deepcopy(views), "choice_probs": [float(i == c) for i in range(4)]} for c in range(4)]
    references = [ReferenceSamples(pool_xyz, labels, views, choice=c) for c in range(4)]
    batched, on_device = TransVWBatchViews(views), torch.from_numpy(pool[:batch]).to(device)
    generator = torch.Generator().manual_seed(0)
    rounds = max(3, math.ceil(cubes / batch))
    times: dict[str, list[float]] = {}

    def per_sample(round_: int) -> None:
        for c in range(4):
            index = (4 * round_ + c) % len(pool)
            times.setdefault(f"reference/{c}", []).append(
                seconds(lambda c=c, index=index: references[c][index], torch.device("cpu")))
            rng = np.random.default_rng(round_ * 4 + c)
            times.setdefault(f"transvw_view/{c}", []).append(seconds(
                lambda c=c, index=index, rng=rng: transforms3d.transvw_view(cube_in_unit_range(pool[index]), rng,
                                                                          **forced[c]), torch.device("cpu")))

    def whole_batch(_: int) -> None:
        times.setdefault("batched", []).append(seconds(lambda: batched(on_device, generator), device) / batch)
        times.setdefault("draws", []).append(
            seconds(lambda: draw_transvw(generator, batch, crop_zyx, views), torch.device("cpu")) / batch)

    whole_batch(-1)  # warm-up: caches, allocator, CUDA kernels
    times.clear()
    for r in range(rounds):
        log(f"[views3d] batch {batch}: round {r + 1}/{rounds}")
        for step in ((per_sample, whole_batch) if r % 2 == 0 else (whole_batch, per_sample)):
            step(r)

    def mixed(name: str) -> tuple[float, float]:
        return (sum(p * statistics.median(times[f"{name}/{c}"]) for c, p in enumerate(probs)),
                sum(p * min(times[f"{name}/{c}"]) for c, p in enumerate(probs)))

    base = {"crop_zyx": list(crop_zyx), "batch": batch}
    rows = []
    for path, (typical, fastest), where, count, used in [
        ("reference per-sample", mixed("reference"), "cpu", 4 * rounds, 1),
        ("transvw_view", mixed("transvw_view"), "cpu", 4 * rounds, 1),
        ("batched views", (statistics.fmean(times["batched"]), min(times["batched"])), device.type,
         rounds * batch, 1),  # on CUDA: the draws on one CPU thread
        ("batched draws only", (statistics.fmean(times["draws"]), min(times["draws"])), "cpu", rounds * batch, 1),
    ]:
        rows.append({**base, "path": path, "device": where, "threads": used, "cubes": count,
                     "ms_per_cube": 1000 * typical, "min_ms_per_cube": 1000 * fastest, "cubes_per_s": 1 / typical})
    reference = rows[0]["ms_per_cube"]
    for row in rows:
        row["speedup_vs_reference"] = reference / row["ms_per_cube"]
    return rows


def report(rows: list[dict]) -> str:
    head = f"{'path':<22} {'device':>6} {'threads':>7} {'batch':>5} {'cubes':>5} {'ms/cube':>8} {'min ms':>7} " \
           f"{'cubes/s':>8} {'x ref':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['path']:<22} {r['device']:>6} {r['threads']:>7} {r['batch']:>5} {r['cubes']:>5} "
                     f"{r['ms_per_cube']:>8.2f} {r['min_ms_per_cube']:>7.2f} {r['cubes_per_s']:>8.1f} "
                     f"{r['speedup_vs_reference']:>6.1f}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--device", default="cpu", help="where the batched views render (cpu, cuda)")
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 64], help="cubes per batch (one table each)")
    parser.add_argument("--cubes", type=int, default=512, help="cubes timed per batched row (at least 3 batches)")
    parser.add_argument("--crop", type=int, nargs=3, default=[32, 64, 64], metavar=("Z", "Y", "X"))
    parser.add_argument("--json", help="write every row and the settings here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    views = load_config([])["pretrain"]["transvw"]["views"]
    rows = []
    for batch in args.batch:
        rows += measure_views3d(views, tuple(args.crop), batch, args.cubes, device)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"torch {torch.__version__}, device {args.device}, crop {tuple(args.crop)}, load average {load}")
    for batch in args.batch:
        print(f"\nbatch {batch} (x ref = reference ms/cube / this row's; per-sample rows mix the forced choices)")
        print(report([r for r in rows if r["batch"] == batch]))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"torch": torch.__version__, "load_average": load, "views": views, "rows": rows}, out, indent=1)


if __name__ == "__main__":
    main()
