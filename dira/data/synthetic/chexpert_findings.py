"""CheXpert's observations drawn on the thorax phantom, in frontal or lateral view, definite or faint.

Most observations are ChestX-ray14 findings under another name and reuse the phantom's lesions: Lung Opacity
is drawn as Infiltration, Lung Lesion as a Nodule or a Mass, Pleural Effusion as Effusion, Pleural Other as
Pleural_Thickening. Three have no phantom counterpart and are drawn here: a widened upper mediastinum
(Enlarged Cardiomediastinum), a catheter (Support Devices) and a stepped rib (Fracture). An uncertain report
('-1.0' in train.csv) is drawn at partial strength, so the image is as ambiguous as the report. No Finding is
the absence of the others. As in the phantom, the scene's random draws do not depend on the image size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from dira.data.sources.chexpert import CHEXPERT_LABELS
from dira.data.synthetic import phantom
from dira.data.synthetic.phantom import MEDIASTINUM, Canvas, Lesion, Rng, Thorax, Window, sample_thorax

UNCERTAIN_STRENGTH = 0.45  # how much of a lesion an uncertain report shows
SPINE = 0.8
DEVICE = 0.32  # radiopaque catheter, added to whatever lies beneath


def widened_mediastinum(c: Canvas, rng: Rng) -> tuple[Window, np.ndarray]:
    """The upper mediastinum bulging out on both sides above the heart (Enlarged Cardiomediastinum)."""
    top, bottom = 0.06, c.thorax.heart.cy - 0.3 * c.thorax.heart.ay
    widest = rng.uniform(0.085, 0.105)
    w = c.window(top, bottom, 0.5 - widest - 0.02, 0.5 + widest + 0.02)
    bulge = np.sqrt(np.clip(np.sin(np.pi * (w.y - top) / (bottom - top)), 0, 1))  # clip: sin(π) < 0 in float32
    half = 0.055 + (widest - 0.055) * bulge  # from the normal band's half-width out to ``widest``
    alpha = np.clip((half - np.abs(w.x - 0.5)) / 0.015, 0, 1) * np.clip((w.y - top) / 0.05, 0, 1)
    view = c.view(w)
    change = alpha * np.maximum(MEDIASTINUM - view, 0)
    view += change
    return w, change > 0


def catheter(c: Canvas, rng: Rng) -> tuple[Window, np.ndarray]:
    """A central venous line: a thin bright curve from the subclavian region to the superior vena cava."""
    side = 1.0 if rng.uniform() < 0.5 else -1.0
    start = np.array([rng.uniform(0.1, 0.16), 0.5 + side * rng.uniform(0.22, 0.32)])
    bend = np.array([rng.uniform(0.17, 0.22), 0.5 + side * rng.uniform(0.06, 0.12)])
    tip = np.array([rng.uniform(0.3, 0.4), 0.5 + rng.uniform(-0.02, 0.04)])
    t = np.linspace(0, 1, 96)[:, None]
    points = ((1 - t) ** 2 * start + 2 * t * (1 - t) * bend + t**2 * tip).astype(np.float32)  # Bézier (y, x)
    half_width = 0.007
    (y0, x0), (y1, x1) = points.min(axis=0) - 2 * half_width, points.max(axis=0) + 2 * half_width
    w = c.window(y0, y1, x0, x1)
    distance = np.full((w.y.size, w.x.size), np.inf, np.float32)
    for py, px in points:
        distance = np.minimum(distance, np.hypot(w.y - py, w.x - px))
    alpha = np.clip(1 - distance / half_width, 0, 1)
    c.view(w)[...] += DEVICE * alpha
    return w, alpha > 0


def rib_fracture(c: Canvas, rng: Rng) -> tuple[Window, np.ndarray]:
    """A lateral rib broken and displaced: beyond a dark cleft, the rib pattern steps down."""
    lung = c.thorax.lungs[int(rng.integers(2))]
    side = float(np.sign(lung.cx - 0.5))
    cy, cx = lung.cy + rng.uniform(-0.5, 0.1) * lung.ay, lung.cx + side * rng.uniform(0.4, 0.65) * lung.ax
    step, half = rng.uniform(0.02, 0.03), 0.05
    w = c.window(cy - half, cy + half, cx - half, cx + half)
    rows = np.arange(w.rows.start, w.rows.stop)
    source_rows = np.clip(rows - max(1, round(step * c.size)), 0, c.size - 1)
    ribs = c.ribs[w.rows, w.cols]
    displaced = c.ribs[source_rows][:, w.cols] - ribs
    fade = np.clip(1 - np.maximum(np.abs(w.y - cy), np.abs(w.x - cx)) / half, 0, 1) ** 0.5
    beyond = np.clip(side * (w.x - cx) / 0.004, 0, 1)
    cleft = np.clip(1 - np.abs(w.x - cx) / 0.004, 0, 1) * ribs  # the break shows where the bone is
    change = c.lung_alpha[w.rows, w.cols] * fade * (0.2 * beyond * displaced - 0.15 * cleft)
    c.view(w)[...] += change
    return w, change != 0


def lung_lesion(c: Canvas, rng: Rng) -> tuple[Window, np.ndarray]:
    """CheXpert's Lung Lesion covers both nodules and masses."""
    return (phantom.mass if rng.uniform() < 0.35 else phantom.nodule)(c, rng)


# Observations drawn as lesions on the canvas, in CheXpert's column order. Cardiomegaly changes the anatomy
# instead (see enlarged_heart); No Finding is drawn by drawing nothing.
LESIONS: dict[str, Lesion] = {
    "Enlarged Cardiomediastinum": widened_mediastinum,
    "Lung Opacity": phantom.infiltration,
    "Lung Lesion": lung_lesion,
    "Edema": phantom.edema,
    "Consolidation": phantom.consolidation,
    "Pneumonia": phantom.pneumonia,
    "Atelectasis": phantom.atelectasis,
    "Pneumothorax": phantom.pneumothorax,
    "Pleural Effusion": phantom.effusion,
    "Pleural Other": phantom.pleural_thickening,
    "Fracture": rib_fracture,
    "Support Devices": catheter,
}
DRAWN = frozenset({*LESIONS, "Cardiomegaly"})
assert DRAWN | {"No Finding"} == set(CHEXPERT_LABELS)


def enlarged_heart(thorax: Thorax, strength: float) -> Thorax:
    """The phantom's cardiomegaly (wider, taller, shifted to the patient's left), scaled by ``strength``."""
    h = thorax.heart
    return replace(thorax, heart=replace(h, cx=h.cx + 0.02 * strength, ay=h.ay * (1 + 0.2 * strength),
                                         ax=h.ax * (1 + 0.45 * strength)))


def lateral_thorax(frontal: Thorax) -> Thorax:
    """The same patient seen from the side: one lung field (two overlapping halves), the heart in front.

    The phantom's mediastinal band (x = 0.5) then runs down the back of the lung field, like the aorta.
    """
    left, right = frontal.lungs
    lungs = (replace(left, cx=0.40, ax=0.15), replace(right, cx=0.52, ax=0.15))
    return replace(frontal, lungs=lungs, heart=replace(frontal.heart, cx=0.36, ax=0.8 * frontal.heart.ax))


def _add_spine(c: Canvas) -> None:
    centres = ((np.arange(c.size) + 0.5) / c.size).astype(np.float32)
    y, x = centres[:, None], centres[None, :]
    alpha = np.clip((0.045 - np.abs(x - 0.74)) / 0.015, 0, 1) * np.clip((y - 0.15) / 0.05, 0, 1)
    c.image += alpha * (SPINE - c.image)


def _draw_faint(c: Canvas, lesion: Lesion, strength: float, rng: Rng) -> None:
    """Draw ``lesion`` and keep ``strength`` of the change it made."""
    before = c.image.copy() if strength < 1 else None
    lesion(c, rng)
    if before is not None:
        c.image[...] = before + strength * (c.image - before)


def draw_view(strengths: Mapping[str, float], frontal: bool, width: int, height: int, scene_rng: Rng,
              grain_rng: Rng) -> np.ndarray:
    """A uint8 (height, width) radiograph showing each observation at its strength (0 absent, 1 definite).

    The square phantom is drawn at the long side and cropped to the short one around its centre, which cuts
    only body wall and air.
    """
    unknown = set(strengths) - DRAWN - {"No Finding"}
    if unknown:
        raise ValueError(f"not CheXpert observations: {sorted(unknown)}")
    thorax = enlarged_heart(sample_thorax(scene_rng, ()), strengths.get("Cardiomegaly", 0.0))
    if not frontal:
        thorax = lateral_thorax(thorax)
    size = max(width, height)
    canvas = Canvas(thorax, size, scene_rng)
    if not frontal:
        _add_spine(canvas)
    for name, lesion in LESIONS.items():
        if strengths.get(name, 0.0) > 0:
            _draw_faint(canvas, lesion, strengths[name], scene_rng)
    pixels = canvas.expose(grain_rng)
    top, left = (size - height) // 2, (size - width) // 2
    return np.ascontiguousarray(pixels[top:top + height, left:left + width])

