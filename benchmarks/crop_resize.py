"""Milliseconds per crop of the CPU crop resize of the batched views, beside torch's own kernels, in one run.

RandomResizedCrop boxes (scale 0.2-1, ``dira.data.batch_views.draw_crops``) of a ``--source``² uint8 image are
resized to ``--size`` px, antialiased bilinear, on one thread. Rows:

- ``float F.interpolate`` (the named baseline): the crop as float32 through ``F.interpolate(antialias=True)``,
  what the CPU path ran before;
- ``uint8 F.interpolate``: the one-channel uint8 crop through the same call (torch's scalar uint8 kernel);
- ``resize_crop_uint8``: :func:`dira.data.crop_resample.resize_crop_uint8` on the image and the box, as the
  views call it: four grey columns read as one RGBA pixel so that torch's vectorised uint8 kernel serves each
  pass, written into a channels-last buffer, an OpenCV transpose between the passes; a crop enlarged on both
  sides (none of a 1024² source at 224 px) goes through OpenCV's bilinear resize.

Rounds alternate the rows so that a shared machine's load hits them alike; medians over rounds. Speed is
measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import cv2
import torch
import torch.nn.functional as F
from step_harness import seconds

from dira.data.batch_views import draw_crops
from dira.data.crop_resample import resize_crop_uint8


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", type=int, default=1024)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--crops", type=int, default=64, help="crops per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", type=Path, help="write the rows here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (args.source, args.source), dtype=torch.uint8, generator=generator)
    boxes = draw_crops(generator, args.crops, args.source, args.source, (0.2, 1.0)).tolist()
    crops = [image[top:top + h, left:left + w] for top, left, h, w in boxes]
    size = (args.size, args.size)
    rows = {
        "float F.interpolate": lambda c: F.interpolate(c.to(torch.float32)[None, None], size=size, mode="bilinear",
                                                       antialias=True),
        "uint8 F.interpolate": lambda c: F.interpolate(c.contiguous()[None, None], size=size, mode="bilinear",
                                                       antialias=True),
    }
    cpu = torch.device("cpu")
    times: dict[str, list[float]] = {name: [] for name in [*rows, "resize_crop_uint8"]}
    for fn in rows.values():  # warm-up
        fn(crops[0])
    resize_crop_uint8(image, boxes[0], args.size, "bilinear")
    for round_ in range(args.rounds):
        print(f"[crop_resize] round {round_ + 1}/{args.rounds}", file=sys.stderr, flush=True)
        for name, fn in rows.items():
            times[name].append(seconds(lambda fn=fn: [fn(c) for c in crops], cpu) / len(crops))
        times["resize_crop_uint8"].append(seconds(lambda: [resize_crop_uint8(image, box, args.size, "bilinear")
                                                           for box in boxes], cpu) / len(boxes))
    baseline = statistics.median(times["float F.interpolate"])
    print(f"{args.source}² source, {args.size}-px crops, bilinear, 1 thread, medians of {args.rounds} rounds\n")
    print(f"{'path':<22} {'ms/crop':>8} {'vs float':>9}")
    results = []
    for name, samples in times.items():
        ms = 1000 * statistics.median(samples)
        results.append({"path": name, "ms_per_crop": ms, "ratio_vs_float": baseline * 1000 / ms})
        print(f"{name:<22} {ms:>8.3f} {baseline * 1000 / ms:>8.2f}×")
    if args.json:
        args.json.write_text(json.dumps({"rows": results, "settings": vars(args) | {"json": str(args.json)}},
                                        indent=2))


if __name__ == "__main__":
    main()
