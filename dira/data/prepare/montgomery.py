"""Montgomery lung segmentation: a seeded train/test split of the images, validation from train.

There is no official split (the paper holds out a random 20 %), so it is drawn here, over every PNG
in CXR_png/ before unusable ones are left out, and recorded in splits.json. The lung mask is the union
of the left and right masks. Image and mask are resized by nearest neighbour to a square, as the
segmentation benchmark does (cv2 INTER_NEAREST, aspect not kept), so each mask pixel stays on the
image pixel it labels. The 16-bit PNGs hold 12-bit levels: each image's own range is stretched
linearly to 8 bits (``common.to_uint8`` says why).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dira.data.prepare.common import (
    SPLITS,
    BadSamples,
    Decoded,
    SplitPlan,
    resize_nearest,
    split_images,
    to_uint8,
    write_split_dataset,
)
from dira.data.sources.montgomery import (
    IMAGES,
    MontgomeryImage,
    MontgomeryIndex,
    read_lung_mask,
    read_montgomery,
    read_radiograph,
)
from dira.errors import InputError
from dira.provenance import provenance

LABEL_NAMES = ("Tuberculosis",)


@dataclass(frozen=True)
class MontgomerySample:
    """One radiograph and the union of its lung masks, decoded in a worker."""

    record: MontgomeryImage

    @property
    def file(self) -> Path:
        return self.record.image

    def load(self, size: int) -> Decoded:
        pixels = read_radiograph(self.record.image)
        lungs = read_lung_mask(self.record)  # InputError naming both files if a mask is of another size
        return Decoded(resize_nearest(to_uint8(pixels), size), self.record.size, resize_nearest(lungs, size))


def _montgomery_plan(index: MontgomeryIndex, split: str, ids: list[str]) -> SplitPlan:
    records = [index.images[i] for i in ids]
    return SplitPlan(
        split=split, ids=ids, samples=[MontgomerySample(record) for record in records],
        patients=np.array([record.number for record in records], np.int64),
        labels=np.array([[record.tuberculosis] for record in records], np.uint8).reshape(-1, 1),
        label_names=LABEL_NAMES, has_masks=True,
    )


def prepare(root: Path, out_dir: Path, config: dict[str, Any]) -> None:
    settings, montgomery = config["prepare"], config["datasets"]["montgomery"]
    bad = BadSamples(settings["on_bad_sample"])
    index = read_montgomery(Path(root), bad.report)
    if len(index.listed) < len(SPLITS):
        raise InputError(f"{index.root / IMAGES}: {len(index.listed)} image(s); need at least 3 to split")
    split_ids = split_images(index.listed, montgomery["test_fraction"], settings["val_fraction"],
                             settings["split_seed"])
    plans = [_montgomery_plan(index, split, [i for i in split_ids[split] if i in index.images]) for split in SPLITS]
    attrs = {
        "dataset": "montgomery", "cache_size": montgomery["cache_size"], "source": index.source,
        "resampling": "nearest", "grey_levels": "per-image min-max to 8 bits",
        "manifest": {"root": str(index.root.resolve()), "listed_images": len(index.listed),
                     "synthetic": index.synthetic},
        "provenance": provenance({"prepare": settings, "datasets": {"montgomery": montgomery}}),
    }
    write_split_dataset("montgomery", plans, Path(out_dir), settings, montgomery["cache_size"],
                        montgomery["test_fraction"], attrs, bad, index.source, positives="TB")
