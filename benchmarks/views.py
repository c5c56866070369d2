"""Images/s of the batched device-side views beside the reference transform and today's per-image path.

Rows, all making DiRA-MoCo-v2's two views with restoration distortions (and the target) of one image:

- ``reference transform``: the official DiRA ``Transform`` in 'dira' mode, re-implemented in
  ``benchmarks/reference_views.py`` (PIL grey → RGB, two RandomResizedCrops, jitter / blur / flip, its numpy
  distortion loops, ToTensor), one image at a time on one CPU core: the named baseline;
- ``make_views``: this package's per-image recipe (``dira.data.views``, what the workers ran before), one core;
- ``batched views``: ``dira.data.batch_views.TwoViewBatch`` on whole batches, on one CPU thread (per core:
  one torch and one OpenCV thread), where it renders image by image (``dira.data.cpu_views``), and, with
  ``--device cuda``, on the GPU (its batched tensor ops; the draws stay on the CPU as in training);
- ``batched tensor ops``: the same draws through the batched tensor ops on the CPU, to show why the CPU
  renders image by image instead;
- ``batched draws only``: the part of the batched views that stays on a CPU core when a GPU renders them
  (every random number of a ``--gpu-batch`` batch), i.e. the CPU cost per image of device-side views.

Each on a 1024² source (ChestX-ray14's native size: the reference crops the originals, the paper's cache keeps
them) and a 224² source. Rounds alternate the rows so that a shared machine's load hits all of them alike; the
table gives medians over rounds. The process keeps its freed buffers, as a pre-training job does
(``dira.runtime.allocator``). Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from reference_views import ReferenceTransform
from step_harness import seconds

from dira.config import load_config
from dira.data.batch_views import TwoViewBatch
from dira.data.view_recipe import ViewRecipe
from dira.data.views import Restoration, make_views
from dira.runtime.allocator import keep_freed_buffers


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def set_threads(count: int) -> None:
    """torch's and OpenCV's threads (the CPU renderer calls both), so that a CPU row is one core's work."""
    torch.set_num_threads(count)
    cv2.setNumThreads(count)


def synthetic_grey(size: int, seed: int = 0) -> np.ndarray:
    """A smooth grey image with noise (transform cost does not depend on content)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = 128 + 80 * np.sin(6 * xx) * np.cos(4 * yy) + rng.normal(0, 12, (size, size))
    return np.clip(image, 0, 255).astype(np.uint8)


def rows_for_source(source: int, args: argparse.Namespace, views: TwoViewBatch, recipe: ViewRecipe,
                    restoration: Restoration) -> dict[str, Callable[[], Any]]:
    """Each row's unit of work for one source size, and how many images one call makes."""
    grey = synthetic_grey(source)
    pil = Image.fromarray(grey)
    reference = ReferenceTransform(args.size)
    cpu_batch = {"image": torch.from_numpy(np.stack([synthetic_grey(source, s) for s in range(args.batch)]))}
    rng = np.random.default_rng(0)
    generator = torch.Generator().manual_seed(0)
    work: dict[str, tuple[Callable[[], Any], int, torch.device]] = {
        "reference transform": (lambda: [reference(pil.convert("RGB")) for _ in range(args.images)], args.images,
                                torch.device("cpu")),
        "make_views": (lambda: [make_views(grey, rng, recipe, restoration, args.size) for _ in range(args.images)],
                       args.images, torch.device("cpu")),
        "batched views": (lambda: views(cpu_batch, generator, True), args.batch, torch.device("cpu")),
        # The same draws through the batched tensor ops a GPU runs, on the CPU: why the CPU renders per image.
        "batched tensor ops": (lambda: views.render(cpu_batch["image"], views.draw(
            generator, args.batch, source, source, True), per_image=False), args.batch, torch.device("cpu")),
        # What a CPU core still does per image when a GPU renders: draw the parameters of a whole batch.
        "batched draws only": (lambda: views.draw(generator, args.gpu_batch, source, source, True), args.gpu_batch,
                               torch.device("cpu")),
    }
    if args.device == "cuda":
        device = torch.device("cuda")
        gpu_batch = {"image": cpu_batch["image"].repeat(args.gpu_batch // args.batch + 1, 1, 1)[:args.gpu_batch]
                     .to(device)}
        work["batched views, GPU"] = (lambda: views(gpu_batch, generator, True), args.gpu_batch, device)
    return work


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    pretrain = load_config([])["pretrain"]
    recipe, restoration = ViewRecipe.from_config(pretrain["mocov2"]["views"]), Restoration.from_config(pretrain)
    views = TwoViewBatch(recipe, restoration, args.size)
    random.seed(0)
    torch.manual_seed(0)
    results: list[dict[str, Any]] = []
    for source in args.sources:
        work = rows_for_source(source, args, views, recipe, restoration)
        times: dict[str, list[float]] = {name: [] for name in work}
        for fn, _, device in work.values():  # warm-up: first calls, lazy inits, cuDNN/cuBLAS handles
            set_threads(args.gpu_threads if device.type == "cuda" else 1)
            fn()
        for round_ in range(args.rounds):
            log(f"[views] {source}² source, round {round_ + 1}/{args.rounds}")
            for name, (fn, count, device) in work.items():
                set_threads(args.gpu_threads if device.type == "cuda" else 1)
                times[name].append(seconds(fn, device) / count)
        for name, (_, count, device) in work.items():
            per_image = statistics.median(times[name])
            results.append({"path": name, "source": source, "device": device.type,
                            "threads": args.gpu_threads if device.type == "cuda" else 1,
                            "images_per_call": count, "img_s": 1.0 / per_image, "ms_per_image": 1000 * per_image,
                            "min_ms_per_image": 1000 * min(times[name]),
                            "rounds_ms_per_image": [1000 * t for t in times[name]]})
    return results


def round_ratio(results: list[dict[str, Any]], source: int, path: str) -> float:
    """The median over rounds of the reference's time / the row's in the same round: a load that drifts
    between rounds cancels within each."""
    rows = {r["path"]: r["rounds_ms_per_image"] for r in results if r["source"] == source}
    return statistics.median(ref / ours for ref, ours in zip(rows["reference transform"], rows[path], strict=True))


def headline(results: list[dict[str, Any]], source: int) -> dict[str, float]:
    rate = {r["path"]: r["img_s"] for r in results if r["source"] == source}
    out = {"ours_img_s_per_core": rate["batched views"], "reference_img_s_per_core": rate["reference transform"],
           "make_views_img_s_per_core": rate["make_views"], "draws_img_s_per_core": rate["batched draws only"],
           "ratio_vs_reference": rate["batched views"] / rate["reference transform"],
           "ratio_vs_make_views": rate["batched views"] / rate["make_views"],
           "ratio_vs_reference_by_round": round_ratio(results, source, "batched views")}
    if "batched views, GPU" in rate:
        out["gpu_img_s"] = rate["batched views, GPU"]
        out["gpu_ratio_vs_reference_core"] = rate["batched views, GPU"] / rate["reference transform"]
    return out


def report(args: argparse.Namespace, results: list[dict[str, Any]]) -> str:
    lines = [f"{platform.processor() or platform.machine()}, torch {torch.__version__}; DiRA-MoCo-v2 views with "
             f"distortions at {args.size} px; medians of {args.rounds} alternating rounds; CPU rows on 1 thread; "
             f"freed buffers kept: {args.kept_buffers}",
             "", f"{'path':<22} {'source':>7} {'device':>6} {'img/s':>9} {'ms/img':>8} {'min ms':>8} {'vs ref':>7}"]
    for source in args.sources:
        ref = next(r for r in results if r["source"] == source and r["path"] == "reference transform")
        for r in (r for r in results if r["source"] == source):
            lines.append(f"{r['path']:<22} {str(source) + '²':>7} {r['device']:>6} {r['img_s']:>9.1f} "
                         f"{r['ms_per_image']:>8.3f} {r['min_ms_per_image']:>8.3f} "
                         f"{r['img_s'] / ref['img_s']:>6.2f}×")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--sources", type=int, nargs="+", default=[1024, 224], help="source image sides")
    p.add_argument("--size", type=int, default=224, help="view size (model.input_size)")
    p.add_argument("--batch", type=int, default=64, help="images per batched call on the CPU")
    p.add_argument("--gpu-batch", type=int, default=256, help="images per batched call on the GPU")
    p.add_argument("--gpu-threads", type=int, default=1, help="CPU threads while the GPU row runs (draws)")
    p.add_argument("--images", type=int, default=32, help="images per call of the per-image rows")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--default-allocator", action="store_true",
                   help="leave glibc's malloc thresholds as they are, to see what keeping freed buffers gains")
    p.add_argument("--json", type=Path, help="write the rows and the headline ratios here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.kept_buffers = not args.default_allocator and keep_freed_buffers()  # as the pre-training stage does
    results = measure(args)
    print(report(args, results))
    summary = {f"{source}": headline(results, source) for source in args.sources}
    paper = summary[str(args.sources[0])]
    print(f"\nheadline ({args.sources[0]}² source): batched {paper['ours_img_s_per_core']:.0f} img/s per core = "
          f"{paper['ratio_vs_reference']:.2f}× the reference (median of per-round ratios "
          f"{paper['ratio_vs_reference_by_round']:.2f}×), {paper['ratio_vs_make_views']:.2f}× make_views")
    if args.json:
        args.json.write_text(json.dumps({**paper, "by_source": summary, "rows": results,
                                         "settings": vars(args) | {"json": str(args.json)}}, indent=2))


if __name__ == "__main__":
    main()
