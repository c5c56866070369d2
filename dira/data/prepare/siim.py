"""SIIM-ACR pneumothorax segmentation: a seeded train/test split of the images, validation from train.

There is no official split (the paper holds out a random 20 %), so it is drawn here and recorded in
splits.json. The split is drawn over every image train-rle.csv lists, before unusable ones are left
out, so a copy with a few broken files gets the same split for all the others. Images and masks are
resized by nearest neighbour, as the segmentation benchmark does (cv2 INTER_NEAREST), which keeps each
mask pixel on the very image pixel it labels; the 8-bit grey levels are kept as stored.
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
    sha256,
    split_images,
    to_uint8,
    write_split_dataset,
)
from dira.data.sources.siim import RLE_CSV, SiimImage, SiimIndex, load_mask, read_dicom_pixels, read_siim
from dira.errors import InputError
from dira.provenance import provenance

LABEL_NAMES = ("Pneumothorax",)


@dataclass(frozen=True)
class SiimSample:
    """One DICOM and its united mask, decoded in a worker."""

    image: SiimImage
    rle_csv: Path

    @property
    def file(self) -> Path:
        return self.image.dicom

    def load(self, size: int) -> Decoded:
        pixels = read_dicom_pixels(self.image.dicom)  # Rows x Columns, as indexed
        mask = load_mask(self.image, self.rle_csv)
        return Decoded(resize_nearest(to_uint8(pixels), size), (self.image.width, self.image.height),
                       resize_nearest(mask, size))


def _siim_plan(index: SiimIndex, split: str, ids: list[str]) -> SplitPlan:
    images = [index.images[i] for i in ids]
    return SplitPlan(
        split=split, ids=ids, samples=[SiimSample(image, index.rle_csv) for image in images],
        labels=np.array([[image.positive] for image in images], np.uint8).reshape(-1, 1),
        label_names=LABEL_NAMES, has_masks=True,
    )


def _siim_manifest(index: SiimIndex) -> dict[str, Any]:
    return {
        "root": str(index.root.resolve()),
        "files": {RLE_CSV: {"sha256": sha256(index.rle_csv), "bytes": index.rle_csv.stat().st_size}},
        "listed_images": len(index.listed),
        "synthetic": index.synthetic,
    }


def prepare(root: Path, out_dir: Path, config: dict[str, Any]) -> None:
    settings, siim = config["prepare"], config["datasets"]["siim"]
    bad = BadSamples(settings["on_bad_sample"])
    index = read_siim(Path(root), bad.report)
    if len(index.listed) < len(SPLITS):
        raise InputError(f"{index.rle_csv}: lists {len(index.listed)} image(s); need at least 3 to split")
    split_ids = split_images(index.listed, siim["test_fraction"], settings["val_fraction"], settings["split_seed"])
    plans = [_siim_plan(index, split, [i for i in split_ids[split] if i in index.images]) for split in SPLITS]
    attrs = {
        "dataset": "siim", "cache_size": siim["cache_size"], "source": index.source,
        "resampling": "nearest", "grey_levels": "as stored (8-bit); deeper DICOMs per-image min-max to 8 bits",
        "manifest": _siim_manifest(index),
        "provenance": provenance({"prepare": settings, "datasets": {"siim": siim}}),
    }
    write_split_dataset("siim", plans, Path(out_dir), settings, siim["cache_size"], siim["test_fraction"], attrs, bad,
                        index.source, positives="positive")
