"""Synthetic NIH Montgomery County CXR set in the released layout, read by the same code as the real set.

``write(out, ...)`` creates ``out/MontgomerySet/`` with 16-bit grey PNGs holding 12-bit levels, in
portrait and landscape frames of the release's aspect (4020×4892), one uint8 mask per lung (0/255)
under the same name, and a clinical reading per image. The lungs in each image are exactly the union
of its two masks (``segmentation_scenes``); tuberculosis cases (L = 1, 58 of the release's 138) carry
upper-zone opacities inside them. The same arguments give byte-identical files.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from dira import __version__
from dira.data.sources.montgomery import (
    AGE_PREFIX,
    IMAGES,
    LEFT_MASKS,
    READINGS,
    RIGHT_MASKS,
    SET_FOLDER,
    SEX_PREFIX,
    SYNTHETIC_MARKER,
)
from dira.data.synthetic.claim import begin_writing, finish_writing, holds_synthetic
from dira.data.synthetic.segmentation_scenes import add_tuberculosis, draw_thorax, expose
from dira.errors import InputError
from dira.io import write_text

TUBERCULOSIS_FRACTION = 58 / 138
LANDSCAPE_FRACTION = 0.3
SHORT_TO_LONG = 4020 / 4892
BITS = 12  # grey levels used in the 16-bit PNGs
TB_FINDINGS = (
    "PTB in the right upper lobe",
    "left upper lobe infiltrate, consistent with active TB",
    "bilateral upper lobe fibrocavitary changes",
    "right apical pleural thickening and scarring, old TB",
)

_PLAN, _SCENE, _GRAIN, _DISEASE = range(4)  # independent random streams


@dataclass(frozen=True)
class PlannedImage:
    number: int
    tuberculosis: bool
    landscape: bool
    sex: str
    age: int
    findings: str

    @property
    def name(self) -> str:
        return f"MCUCXR_{self.number:04d}_{int(self.tuberculosis)}"


def plan_images(count: int, seed: int) -> list[PlannedImage]:
    """Ids with gaps, a fixed share of TB cases and of landscape frames, dealt at random."""
    rng = np.random.default_rng([seed, _PLAN])
    numbers = np.sort(rng.choice(np.arange(1, min(9999, 3 * count) + 1), count, replace=False))
    n_tb = min(count - 1, max(1, round(TUBERCULOSIS_FRACTION * count)))
    tuberculosis = set(rng.permutation(count)[:n_tb].tolist())
    landscape = set(rng.permutation(count)[:max(1, round(LANDSCAPE_FRACTION * count))].tolist())
    plan = []
    for i, number in enumerate(numbers.tolist()):
        tb = i in tuberculosis
        plan.append(PlannedImage(
            number=number, tuberculosis=tb, landscape=i in landscape, sex="M" if rng.uniform() < 0.5 else "F",
            age=int(rng.integers(18, 90)), findings=str(rng.choice(TB_FINDINGS)) if tb else "normal",
        ))
    return plan


def frame_size(landscape: bool, long_side: int) -> tuple[int, int]:
    """(width, height) of a frame with the release's aspect."""
    short = round(long_side * SHORT_TO_LONG)
    return (long_side, short) if landscape else (short, long_side)


def _reading(im: PlannedImage) -> str:
    return f"{SEX_PREFIX} {im.sex}\n{AGE_PREFIX} {im.age:03d}Y\n{im.findings}\n"


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="PNG", compress_level=1)  # uint16 -> 16-bit grey, uint8 -> 8-bit


def write_montgomery(out: Path, count: int, image_size: int = 512, seed: int = 0) -> Path:
    """Write ``count`` images with long side ``image_size`` into ``out/MontgomerySet``; return that folder."""
    root = Path(out) / SET_FOLDER
    if count < 3 or image_size < 32:
        raise InputError(f"synthetic Montgomery needs count >= 3 and image_size >= 32, got {count} and {image_size}")
    folders = [root / name for name in (IMAGES, LEFT_MASKS, RIGHT_MASKS, READINGS)]
    if holds_synthetic(root):  # ours: drop the files of an earlier set
        for folder in (root / IMAGES, root / "ManualMask", root / READINGS):
            shutil.rmtree(folder, ignore_errors=True)
    elif (root / IMAGES).exists():
        raise InputError(f"{root / IMAGES}: exists without {SYNTHETIC_MARKER}; refusing to overwrite "
                         "what looks like a real Montgomery copy")
    begin_writing(root)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    plan = plan_images(count, seed)
    for im in tqdm(plan, desc="synth montgomery", unit="img"):
        width, height = frame_size(im.landscape, image_size)
        scene = draw_thorax(height, width, np.random.default_rng([seed, _SCENE, im.number]))
        if im.tuberculosis:
            add_tuberculosis(scene, np.random.default_rng([seed, _DISEASE, im.number]))
        _save_png(expose(scene, np.random.default_rng([seed, _GRAIN, im.number]), bits=BITS),
                  root / IMAGES / f"{im.name}.png")
        right_lung, left_lung = scene.lungs  # image left = patient's right on a PA view
        _save_png(left_lung.astype(np.uint8) * 255, root / LEFT_MASKS / f"{im.name}.png")
        _save_png(right_lung.astype(np.uint8) * 255, root / RIGHT_MASKS / f"{im.name}.png")
        write_text(root / READINGS / f"{im.name}.txt", _reading(im))
    finish_writing(root, {  # last: its presence means the set is complete
        "generator": __name__, "dira_version": __version__, "images": count, "image_size": image_size,
        "seed": seed, "tuberculosis": sum(im.tuberculosis for im in plan),
        "landscape": sum(im.landscape for im in plan), "bits": BITS,
    })
    return root


def write(out: Path, count: int, image_size: int = 512, seed: int = 0) -> None:
    """The interface every synthetic writer shares (``dira synth montgomery``); count = images."""
    write_montgomery(out, count=count, image_size=image_size, seed=seed)
