"""Synthetic BraTS 2018 in the released layout (``<HGG|LGG>/<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz``).

Each case is a skull-stripped head at 1 mm isotropic on BraTS' grid scaled down (``image_size`` square,
``round(image_size x 155 / 240)`` slices), with BraTS' affine (RAS ``diag(-1, -1, 1)``): a brain ellipsoid
(grey/white texture) on a background of exactly 0, and a tumour of three nested regions: a necrotic core
(label 1), an enhancing rim (4, absent in most LGG cases) and oedema around them (2), clipped to the brain.
The four modalities show the regions as MR does (FLAIR and T2 bright in oedema, T1ce bright on the rim,
T1 dark in the tumour), each in its own arbitrary intensity scale, int16, every brain voxel > 0. Case
names follow the release (``Brats18_2013_2_1``, ``Brats18_CBICA_AAB_1``, ``Brats18_TCIA10_330_1``), about
three in four HGG. The same arguments give byte-identical files; ``dira_synthetic.json`` is written last.
"""

from __future__ import annotations

import shutil
import string
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dira import __version__
from dira.data.sources.brats import GRADES, MODALITIES, SYNTHETIC_MARKER
from dira.data.synthetic.claim import begin_writing, finish_writing, holds_synthetic
from dira.data.volumes.geometry import Geometry, index_to_world
from dira.data.volumes.nifti import write_nifti
from dira.errors import InputError

INSTITUTIONS = ("2013", "CBICA", "TCIA01", "TCIA02", "TCIA08", "TCIA10")
# mean intensity of brain, necrotic core (1), oedema (2) and enhancing rim (4) per modality, arbitrary units
CONTRAST = {"t1": (520, 260, 430, 480), "t1ce": (540, 280, 470, 1100), "t2": (420, 900, 760, 640),
            "flair": (380, 420, 880, 560)}
NOISE = 0.04  # relative to the brain's mean
_PLAN, _CASE, _NOISE = range(3)


def case_names(rng: np.random.Generator, count: int) -> list[str]:
    """Unique release-style case ids."""
    names: list[str] = []
    while len(names) < count:
        institution = INSTITUTIONS[int(rng.integers(len(INSTITUTIONS)))]
        if institution == "CBICA":
            code = "".join(rng.choice(list(string.ascii_uppercase), 3))
        else:
            code = str(int(rng.integers(1, 500)))
        name = f"Brats18_{institution}_{code}_1"
        if name not in names:
            names.append(name)
    return names


def brats_geometry(image_size: int) -> Geometry:
    """BraTS' grid scaled to ``image_size``: 1 mm voxels, the release's affine (LPS identity, y origin shifted)."""
    size = (image_size, image_size, max(8, round(image_size * 155 / 240)))
    return Geometry((0.0, -(size[1] - 1.0), 0.0), (1.0, 1.0, 1.0), ((1, 0, 0), (0, 1, 0), (0, 0, 1)), size)


def draw_case(geometry: Geometry, rng: np.random.Generator,
              enhancing: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Noise-free modalities (float32) and labels (uint8), (z, y, x); the background is 0 everywhere."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in geometry.array_shape), indexing="ij")
    world = index_to_world(geometry, np.stack([i, j, k], axis=-1))
    size = np.asarray(geometry.size, float)
    centre = index_to_world(geometry, (size - 1) / 2 + rng.uniform(-0.03, 0.03, 3) * size)
    axes = size * np.array([0.36, 0.43, 0.42]) * rng.uniform(0.93, 1.0, 3)
    brain = np.linalg.norm((world - centre) / axes, axis=-1) <= 1
    texture = 0.08 * np.sin(world[..., 0] * rng.uniform(0.3, 0.5)) * np.cos(world[..., 1] * rng.uniform(0.3, 0.5))
    r_oedema = float(np.mean(axes) * rng.uniform(0.3, 0.42))  # may reach past the brain in z: clipped
    r_rim, r_core = r_oedema * rng.uniform(0.55, 0.7), r_oedema * rng.uniform(0.25, 0.4)
    spot = centre + rng.uniform(-0.35, 0.35, 3) * np.maximum(axes - r_oedema, 0)
    distance = np.linalg.norm((world - spot) * rng.uniform(0.85, 1.15, 3), axis=-1)
    labels = np.zeros(brain.shape, np.uint8)
    labels[brain & (distance <= r_oedema)] = 2
    labels[brain & (distance <= r_rim)] = 4 if enhancing else 1
    labels[brain & (distance <= r_core)] = 1
    region = np.select([labels == 1, labels == 2, labels == 4], [1, 2, 3], 0)
    images = {}
    for modality in MODALITIES:
        means = np.asarray(CONTRAST[modality], np.float32)
        image = means[region] * (1 + texture.astype(np.float32))
        image[~brain] = 0
        images[modality] = image
    return images, labels


def _clear(root: Path) -> None:
    """Drop an earlier synthetic set; refuse to touch what looks like a real copy."""
    ours = [root / grade for grade in GRADES]
    if holds_synthetic(root):
        for path in ours:
            if path.is_dir():
                shutil.rmtree(path)
    elif any(path.exists() for path in ours):
        raise InputError(f"{root}: holds HGG/ or LGG/ without {SYNTHETIC_MARKER}; refusing to overwrite what "
                         "looks like a real BraTS copy")


def write_brats(out: Path, count: int, image_size: int, seed: int) -> Path:
    """Write ``count`` cases on an ``image_size``² grid under ``out`` (the BraTS root); return it."""
    root = Path(out)
    if count < 1 or not 24 <= image_size <= 240:
        raise InputError(f"synthetic BraTS needs count >= 1 and 24 <= image_size <= 240, got {count} and {image_size}")
    _clear(root)
    begin_writing(root)
    plan = np.random.default_rng([seed, _PLAN])
    names = case_names(plan, count)
    grades = np.where(plan.uniform(size=count) < 0.75, "HGG", "LGG")
    grades[0] = "HGG"
    geometry = brats_geometry(image_size)
    for i, name in enumerate(tqdm(names, desc="synth brats", unit="case")):
        rng = np.random.default_rng([seed, _CASE, i])
        enhancing = grades[i] == "HGG" or rng.uniform() < 0.3
        images, labels = draw_case(geometry, rng, bool(enhancing))
        folder = root / str(grades[i]) / name
        folder.mkdir(parents=True, exist_ok=True)
        noise = np.random.default_rng([seed, _NOISE, i])
        for modality in MODALITIES:
            image = images[modality]
            brain = image > 0
            scale = float(rng.uniform(0.5, 2.0))  # MR units are arbitrary, and differ between scanners
            noisy = image + NOISE * float(image[brain].mean()) * noise.standard_normal(image.shape, dtype=np.float32)
            stored = np.where(brain, np.maximum(np.rint(noisy * scale), 1), 0).astype(np.int16)
            write_nifti(folder / f"{name}_{modality}.nii.gz", stored, geometry)
        write_nifti(folder / f"{name}_seg.nii.gz", labels, geometry)
    finish_writing(root, {  # last: its presence means the set is complete
        "generator": __name__, "dira_version": __version__, "cases": count, "image_size": image_size, "seed": seed,
        "grades": {g: int((grades == g).sum()) for g in GRADES}})
    return root


def write(out: Path, count: int, image_size: int, seed: int) -> None:
    """The interface every synthetic writer shares (``dira synth brats``); count = cases (patients)."""
    write_brats(out, count=count, image_size=image_size, seed=seed)
