"""Chest radiograph phantom: a thorax plus one distinct, visible lesion per ChestX-ray14 finding.

The synthetic set must be learnable at 64 px, so each finding changes the image in its own place, shape
and density, and is large or contrasted enough to survive that downsampling. Geometry lives in unit
coordinates (0..1, y down, image left = patient right) and is drawn from ``scene_rng`` with a number of
draws that does not depend on the image size: one seed renders the same patient at every resolution,
and only the pixel grain comes from ``grain_rng``. Each lesion reports the pixels it changed, which is
where its bounding box comes from. Drawing works on whole arrays, or on the lesion's window only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np

from dira.data.labels import CHESTXRAY14_LABELS

Rng = np.random.Generator
PixelBox = tuple[int, int, int, int]  # (x, y, w, h): top-left pixel and extent, in pixels

# Densities before exposure (0 = air, 1 = bone/metal).
AIR, SOFT_TISSUE, LUNG, EMPHYSEMA_LUNG, MEDIASTINUM, HEART = 0.05, 0.55, 0.24, 0.12, 0.68, 0.72
FLUID, CONSOLIDATED, GAS = 0.64, 0.62, 0.10


@dataclass(frozen=True)
class Ellipse:
    cy: float
    cx: float
    ay: float  # semi-axis along y
    ax: float  # semi-axis along x


@dataclass(frozen=True)
class Thorax:
    lungs: tuple[Ellipse, Ellipse]  # image-left (patient's right) lung first
    heart: Ellipse
    lung_level: float
    gain: float
    offset: float


@dataclass(frozen=True)
class Window:
    """A rectangle of the canvas with the unit coordinates of its pixel centres, ready to broadcast."""

    rows: slice
    cols: slice
    y: np.ndarray  # (h, 1)
    x: np.ndarray  # (1, w)


def fourth_power(a: np.ndarray) -> np.ndarray:
    """``a ** 4`` as two squares: ``**`` with an exponent other than 2 calls np.power, whose AVX-512 kernel rounds
    differently from its AVX2 one, and the demo's data must be the same bytes on every x86 host (data.dvc)."""
    return np.square(np.square(a))


def _unit_coords(start: int, stop: int, size: int) -> np.ndarray:
    return ((np.arange(start, stop, dtype=np.float32) + 0.5) / size).astype(np.float32)


def _r2(y: np.ndarray, x: np.ndarray, e: Ellipse) -> np.ndarray:
    return ((x - e.cx) / e.ax) ** 2 + ((y - e.cy) / e.ay) ** 2


def _lung_r2(lung: Ellipse, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    # Narrow apex, wide flat base: x semi-axis grows down the lung, the lower half is squarer.
    # Everything that depends on y alone is one column, so this costs little more than an ellipse.
    dy = (y - lung.cy) / lung.ay
    taper = np.clip(0.85 + 0.25 * dy, 0.55, 1.05)
    return ((x - lung.cx) / (lung.ax * taper)) ** 2 + np.where(dy > 0, fourth_power(dy), dy**2)


def _soft(r2: np.ndarray, edge: float) -> np.ndarray:
    """1 deep inside, ramping to 0 at the boundary (r2 = 1); edge = 1 gives a fuzzy parabolic profile."""
    return np.clip((1.0 - r2) / edge, 0.0, 1.0)


def _lateral(lung: Ellipse) -> float:
    return float(np.sign(lung.cx - 0.5))


def cosine_field(rng: Rng, k: int, size: int) -> np.ndarray:
    """Smooth zero-mean random field of unit variance from k×k low cosine frequencies (size-independent)."""
    freq = np.arange(k)
    coef = rng.standard_normal((k, k)) / (1.0 + np.add.outer(freq, freq))
    coef[0, 0] = 0.0
    weight = np.where(freq == 0, 1.0, 0.5)
    coef /= np.sqrt((coef**2 * np.outer(weight, weight)).sum())
    basis = np.cos(np.pi * np.outer(_unit_coords(0, size, size), freq))
    return separable_sum(basis, coef, basis).astype(np.float32)


def separable_sum(left: np.ndarray, coef: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left @ coef @ right.T`` in float64, summed term by term in a fixed order rather than by BLAS.

    BLAS kernels differ from one CPU to the next in how they split and order their sums (measured: OpenBLAS's
    Sandybridge kernel changes 23 of the 791 demo ChestX-ray14 images against its Haswell one), and the synthetic
    data must be the same bytes on every machine for ``data.dvc`` to vouch for them; element-wise products and
    additions are exact IEEE operations whatever the vector width.
    """
    half = np.zeros((left.shape[0], coef.shape[1]))
    for i in range(coef.shape[0]):
        half += left[:, i, None] * coef[i]
    out = np.zeros((left.shape[0], right.shape[0]))
    for j in range(coef.shape[1]):
        out += half[:, j, None] * right[None, :, j]
    return out


class Canvas:
    """The thorax drawn at one size, with what the lesions need to know about it."""

    def __init__(self, thorax: Thorax, size: int, rng: Rng):
        self.thorax, self.size = thorax, size
        y, x = _unit_coords(0, size, size)[:, None], _unit_coords(0, size, size)[None, :]
        image = np.full((size, size), AIR, np.float32)
        image += (SOFT_TISSUE - AIR) * _soft(_r2(y, x, Ellipse(0.6, 0.5, 0.66, 0.47)), 0.08)
        left, right = thorax.lungs
        self.lung_alpha = np.maximum(_soft(_lung_r2(left, y, x), 0.12), _soft(_lung_r2(right, y, x), 0.12))
        # Posterior ribs: arcs that sag laterally, repeating down the chest.
        period, phase = rng.uniform(0.07, 0.08), rng.uniform(0, 1)
        self.ribs = fourth_power(0.5 + 0.5 * np.cos(2 * np.pi * ((y + 0.9 * (x - 0.5) ** 2) / period + phase)))
        lung = thorax.lung_level + 0.04 * cosine_field(rng, 16, size) + 0.07 * self.ribs
        image += self.lung_alpha * (lung - image)
        band = np.clip((0.055 - np.abs(x - 0.5)) / 0.015, 0, 1) * np.clip((y - 0.02) / 0.05, 0, 1)
        image += band * (MEDIASTINUM - image)
        image += _soft(_r2(y, x, thorax.heart), 0.1) * (HEART - image)
        self.image = image
        self.shading = 0.025 * cosine_field(rng, 4, size)  # drawn now: lesions then change nothing else

    def window(self, y0: float, y1: float, x0: float, x1: float) -> Window:
        s = self.size
        r0, r1 = max(0, int(np.floor(y0 * s))), min(s, int(np.ceil(y1 * s)))
        c0, c1 = max(0, int(np.floor(x0 * s))), min(s, int(np.ceil(x1 * s)))
        r1, c1 = max(r0, r1), max(c0, c1)
        return Window(slice(r0, r1), slice(c0, c1), _unit_coords(r0, r1, s)[:, None],
                      _unit_coords(c0, c1, s)[None, :])

    def lung_window(self, lung: Ellipse, top: float = -1.0, bottom: float = 1.0) -> Window:
        """The lung's bounding window, cut to rows between cy + top·ay and cy + bottom·ay."""
        return self.window(lung.cy + top * lung.ay, lung.cy + bottom * lung.ay,
                           lung.cx - 1.05 * lung.ax, lung.cx + 1.05 * lung.ax)

    def both_lungs_window(self, top: float = -1.0) -> Window:
        left, right = self.thorax.lungs
        return self.window(min(left.cy + top * left.ay, right.cy + top * right.ay),
                           max(left.cy + left.ay, right.cy + right.ay),
                           left.cx - 1.05 * left.ax, right.cx + 1.05 * right.ax)

    def view(self, w: Window) -> np.ndarray:
        return self.image[w.rows, w.cols]

    def expose(self, grain_rng: Rng) -> np.ndarray:
        """Detector response: exposure, a slow shading field and pixel grain, windowed to 8 bits."""
        t = self.thorax
        image = self.image * t.gain + t.offset + self.shading
        image += 0.012 * grain_rng.standard_normal(image.shape, dtype=np.float32)
        return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def sample_thorax(rng: Rng, labels: Iterable[str]) -> Thorax:
    """Patient anatomy; Cardiomegaly and Emphysema are changes of the anatomy itself."""
    labels = set(labels)
    habitus, cy = rng.uniform(0.93, 1.05), 0.44 + rng.normal(0, 0.01)
    lungs = tuple(
        Ellipse(cy + rng.normal(0, 0.006), 0.5 + side * 0.19 * habitus + rng.normal(0, 0.005),
                rng.uniform(0.28, 0.32), 0.14 * habitus * rng.uniform(0.95, 1.05))
        for side in (-1, 1)
    )
    heart = Ellipse(0.63 + rng.normal(0, 0.01), 0.54 + rng.normal(0, 0.008),
                    0.11 * rng.uniform(0.92, 1.08), 0.14 * rng.uniform(0.92, 1.08))
    lung_level, gain, offset = LUNG + rng.normal(0, 0.015), rng.uniform(0.9, 1.1), rng.normal(0, 0.03)
    if "Cardiomegaly" in labels:
        heart = replace(heart, cx=heart.cx + 0.02, ay=heart.ay * 1.2, ax=heart.ax * 1.45)
    if "Emphysema" in labels:  # hyperinflated: taller lungs, flat low diaphragm, hyperlucent
        lungs = tuple(replace(lung, cy=lung.cy + 0.03, ay=lung.ay * 1.1) for lung in lungs)
        lung_level += EMPHYSEMA_LUNG - LUNG
    return Thorax(lungs, heart, lung_level, gain, offset)


# ---- lesions: each paints the canvas and returns its window and the pixels it changed -------------

def _pick_lung(c: Canvas, rng: Rng) -> Ellipse:
    return c.thorax.lungs[int(rng.integers(2))]


def _point_in(lung: Ellipse, rng: Rng, reach: float, dy: float = 0.0) -> tuple[float, float]:
    rho, theta = reach * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
    return lung.cy + (dy + rho * np.sin(theta)) * lung.ay, lung.cx + rho * np.cos(theta) * lung.ax


def _add_disk(c: Canvas, e: Ellipse, edge: float, density: float) -> tuple[Window, np.ndarray]:
    w = c.window(e.cy - e.ay, e.cy + e.ay, e.cx - e.ax, e.cx + e.ax)
    alpha = _soft(_r2(w.y, w.x, e), edge)
    c.view(w)[...] += density * alpha
    return w, alpha > 0


def nodule(c: Canvas, rng: Rng) -> tuple[Window, np.ndarray]:
    """Small, sharp, bright round opacity anywhere in a lung."""
    cy, cx = _point_in(_pick_lung(c, rng), rng, 0.6)
    r = rng.uniform(0.024, 0.032)
    return _add_disk(c, Ellipse(cy, cx, r, r), edge=0.3, density=0.34)


def mass(c: Canvas, rng: Rng) -> tuple[Window, np.ndarray]:
    """Large, sharp, bright round opacity."""
    cy, cx = _point_in(_pick_lung(c, rng), rng, 0.4)
    r = rng.uniform(0.06, 0.085)
    return _add_disk(c, Ellipse(cy, cx, r * rng.uniform(0.9, 1.1), r), edge=0.2, density=0.3)


def atelectasis(c: Canvas, rng: Rng) -> tuple[Window, np.ndarray]:
    """Plate-like collapse: a thin, tilted, dense band in a lower zone."""
    lung = _pick_lung(c, rng)
    cy, cx = lung.cy + 0.45 * lung.ay, lung.cx + rng.uniform(-0.25, 0.25) * lung.ax
    half_len, half_thick, angle = rng.uniform(0.07, 0.1), rng.uniform(0.018, 0.026), rng.uniform(-0.35, 0.35)
    w = c.window(cy - half_len, cy + half_len, cx - half_len, cx + half_len)
    dy, dx = w.y - cy, w.x - cx
    u, v = dx * np.cos(angle) + dy * np.sin(angle), -dx * np.sin(angle) + dy * np.cos(angle)
    alpha = _soft((u / half_len) ** 2 + (v / half_thick) ** 2, 0.3)
    c.view(w)[...] += 0.3 * alpha
    return w, alpha > 0


def effusion(c: Canvas, rng: Rng) -> tuple[Window, np.ndarray]:
    """Fluid filling a lung base, its surface rising laterally (meniscus)."""
    lung = _pick_lung(c, rng)
    bottom, height, rise = lung.cy + lung.ay, rng.uniform(0.22, 0.35) * 2 * lung.ay, rng.uniform(0.04, 0.06)
    w = c.lung_window(lung, top=1.0 - (height + rise + 0.02) / lung.ay)
    lateral = np.clip(_lateral(lung) * (w.x - lung.cx) / lung.ax, 0, 1)
    surface = bottom - height - rise * lateral
    alpha = np.clip((w.y - surface) / 0.012, 0, 1) * _soft(_lung_r2(lung, w.y, w.x), 0.12)
    view = c.view(w)
    change = alpha * np.maximum(FLUID - view, 0)  # fluid shows where it is denser than what lies there
    view += change
    return w, change > 0


def pneumothorax(c: Canvas, rng: Rng) -> tuple[Window, np.ndarray]:
    """Air between a collapsed lung and the chest wall: dark, no lung markings, a thin pleural line."""
    lung = _pick_lung(c, rng)
    side, k = _lateral(lung), rng.uniform(0.62, 0.75)
    collapsed = Ellipse(lung.cy + lung.ay * (1 - k) * 0.8, lung.cx - side * lung.ax * (1 - k) * 0.8,
                        lung.ay * k, lung.ax * k)
    w = c.lung_window(lung, bottom=0.35)
    inside = _soft(_lung_r2(lung, w.y, w.x), 0.12) * np.clip((lung.cy + 0.35 * lung.ay - w.y) / 0.03, 0, 1)
    r2 = _lung_r2(collapsed, w.y, w.x)
    air = inside * np.clip((r2 - 1) / 0.08, 0, 1)
    line = inside * np.clip(1 - np.abs(r2 - 1) / 0.04, 0, 1)
    view = c.view(w)
    view += air * (GAS + 0.05 * c.ribs[w.rows, w.cols] - view)
    view += 0.25 * line
    return w, (air > 0) | (line > 0)


def infiltration(c: Canvas, rng: Rng) -> tuple[Window, np.ndarray]:
    """A cluster of small, ill-defined patches in a mid or upper zone."""
    lung = _pick_lung(c, rng)
    cy, cx = lung.cy - rng.uniform(0, 0.35) * lung.ay, lung.cx + rng.uniform(-0.3, 0.3) * lung.ax
    patches = [(cy + rng.uniform(-0.07, 0.07), cx + rng.uniform(-0.05, 0.05), rng.uniform(0.03, 0.045))
               for _ in range(int(rng.integers(3, 6)))]
    w = c.window(cy - 0.12, cy + 0.12, cx - 0.1, cx + 0.1)
    alpha = np.zeros((w.y.size, w.x.size), np.float32)
    for py, px, r in patches:
        alpha = np.maximum(alpha, _soft(_r2(w.y, w.x, Ellipse(py, px, r, r)), 1.0))
    c.view(w)[...] += 0.18 * alpha
    return w, alpha > 0


def pneumonia(c: Canvas, rng: Rng) -> tuple[Window, np.ndarray]:
    """One large, fuzzy, mottled opacity in a lower or mid zone."""
    lung = _pick_lung(c, rng)
    cy, cx = lung.cy + rng.uniform(0.05, 0.35) * lung.ay, lung.cx + rng.uniform(-0.3, 0.3) * lung.ax
    r = rng.uniform(0.07, 0.1)
    w = c.window(cy - r, cy + r, cx - r, cx + r)
    mottle = 0.75 + 0.25 * np.cos(2 * np.pi * w.x / 0.025) * np.cos(2 * np.pi * w.y / 0.025)
    alpha = _soft(_r2(w.y, w.x, Ellipse(cy, cx, r, r)), 1.0) * mottle
    c.view(w)[...] += 0.32 * alpha
    return w, alpha > 0


def consolidation(c: Canvas, rng: Rng) -> tuple[Window, np.ndarray]:
    """Dense, homogeneous upper-lobe opacity, cut off sharply below by the fissure."""
    lung = _pick_lung(c, rng)
    e = Ellipse(lung.cy - 0.3 * lung.ay, lung.cx + rng.uniform(-0.1, 0.1) * lung.ax,
                lung.ay * rng.uniform(0.3, 0.4), lung.ax * rng.uniform(0.6, 0.75))
    fissure = e.cy + rng.uniform(0.3, 0.6) * e.ay
    w = c.window(e.cy - e.ay, fissure, e.cx - e.ax, e.cx + e.ax)
    alpha = _soft(_r2(w.y, w.x, e), 0.4) * _soft(_lung_r2(lung, w.y, w.x), 0.12)
    view = c.view(w)
    view += 0.9 * alpha * (CONSOLIDATED - view)
    return w, alpha > 0


def edema(c: Canvas, rng: Rng) -> tuple[Window, np.ndarray]:
    """Bilateral perihilar haze (bat wings)."""
    w = c.both_lungs_window(top=-0.6)
    alpha = np.zeros((w.y.size, w.x.size), np.float32)
    for lung in c.thorax.lungs:
        e = Ellipse(lung.cy - 0.1 * lung.ay, lung.cx - _lateral(lung) * 0.35 * lung.ax,
                    0.45 * lung.ay * rng.uniform(0.9, 1.1), 0.6 * lung.ax * rng.uniform(0.9, 1.1))
        alpha = np.maximum(alpha, _soft(_r2(w.y, w.x, e), 1.0))
    c.view(w)[...] += 0.26 * alpha
    return w, alpha > 0


def fibrosis(c: Canvas, rng: Rng) -> tuple[Window, np.ndarray]:
    """Reticular net of fine streaks in both lower zones."""
    w = c.both_lungs_window(top=-0.1)
    period, phase_a, phase_b = rng.uniform(0.035, 0.045), rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)
    net = np.maximum(np.cos(2 * np.pi * (w.x + w.y) / period + phase_a),
                     np.cos(2 * np.pi * (w.x - w.y) / period + phase_b))
    top = min(lung.cy for lung in c.thorax.lungs) - 0.1 * c.thorax.lungs[0].ay
    outside_heart = 1 - _soft(_r2(w.y, w.x, c.thorax.heart), 0.1)
    weight = np.clip((w.y - top) / (0.4 * c.thorax.lungs[0].ay), 0, 1) * c.lung_alpha[w.rows, w.cols]
    weight *= outside_heart
    alpha = np.clip((net - 0.55) / 0.45, 0, 1) * weight
    c.view(w)[...] += 0.3 * alpha
    return w, alpha > 0


def pleural_thickening(c: Canvas, rng: Rng) -> tuple[Window, np.ndarray]:
    """A dense rim along the lateral chest wall of one lung, upper two thirds."""
    lung = _pick_lung(c, rng)
    limit = lung.cy + rng.uniform(0.2, 0.5) * lung.ay
    w = c.lung_window(lung, bottom=(limit - lung.cy) / lung.ay + 0.05)
    r2 = _lung_r2(lung, w.y, w.x)
    rim = np.clip((r2 - rng.uniform(0.66, 0.74)) / 0.08, 0, 1) * (r2 < 1)
    lateral = np.clip((_lateral(lung) * (w.x - lung.cx) / lung.ax + 0.2) / 0.2, 0, 1)
    alpha = rim * lateral * np.clip((limit - w.y) / 0.03, 0, 1)
    view = c.view(w)
    view += alpha * (0.66 - view)
    return w, alpha > 0


def hernia(c: Canvas, rng: Rng) -> tuple[Window, np.ndarray]:
    """Hiatal hernia: a round retrocardiac opacity holding a gas cap above an air-fluid level."""
    heart = c.thorax.heart
    e = Ellipse(heart.cy + 0.35 * heart.ay, 0.5 + rng.uniform(-0.02, 0.02),
                rng.uniform(0.05, 0.065), rng.uniform(0.06, 0.08))
    level = e.cy - rng.uniform(0.1, 0.3) * e.ay
    w = c.window(e.cy - e.ay, e.cy + e.ay, e.cx - e.ax, e.cx + e.ax)
    alpha = _soft(_r2(w.y, w.x, e), 0.25)
    view = c.view(w)
    view += alpha * (np.where(w.y < level, GAS, 0.86) - view)
    return w, alpha > 0


def cardiomegaly(c: Canvas, rng: Rng) -> tuple[Window, np.ndarray]:
    """The enlarged heart itself (drawn with the anatomy by ``sample_thorax``)."""
    h = c.thorax.heart
    w = c.window(h.cy - h.ay, h.cy + h.ay, h.cx - h.ax, h.cx + h.ax)
    return w, _r2(w.y, w.x, h) < 1


def emphysema(c: Canvas, rng: Rng) -> tuple[Window, np.ndarray]:
    """The hyperinflated, hyperlucent lungs themselves (drawn with the anatomy by ``sample_thorax``)."""
    w = c.both_lungs_window()
    return w, c.lung_alpha[w.rows, w.cols] > 0


Lesion = Callable[[Canvas, Rng], tuple[Window, np.ndarray]]
LESIONS: dict[str, Lesion] = {
    "Atelectasis": atelectasis,
    "Cardiomegaly": cardiomegaly,
    "Effusion": effusion,
    "Infiltration": infiltration,
    "Mass": mass,
    "Nodule": nodule,
    "Pneumonia": pneumonia,
    "Pneumothorax": pneumothorax,
    "Consolidation": consolidation,
    "Edema": edema,
    "Emphysema": emphysema,
    "Fibrosis": fibrosis,
    "Pleural_Thickening": pleural_thickening,
    "Hernia": hernia,
}
assert tuple(LESIONS) == CHESTXRAY14_LABELS


def _bounding_box(w: Window, changed: np.ndarray) -> PixelBox | None:
    changed = np.broadcast_to(changed, (w.y.size, w.x.size))
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    if rows.size == 0:
        return None
    y0, x0 = w.rows.start + int(rows[0]), w.cols.start + int(cols[0])
    return x0, y0, int(cols[-1] - cols[0]) + 1, int(rows[-1] - rows[0]) + 1


def draw_chest(labels: Iterable[str], size: int, scene_rng: Rng,
               grain_rng: Rng) -> tuple[np.ndarray, dict[str, PixelBox]]:
    """A uint8 size×size radiograph showing ``labels`` and the pixel box of each lesion drawn."""
    wanted = set(labels)
    unknown = wanted - set(LESIONS)
    if unknown:
        raise ValueError(f"no lesion for label(s) {sorted(unknown)}")
    ordered = [label for label in LESIONS if label in wanted]
    canvas = Canvas(sample_thorax(scene_rng, ordered), size, scene_rng)
    boxes = {}
    for label in ordered:
        box = _bounding_box(*LESIONS[label](canvas, scene_rng))
        if box is not None:
            boxes[label] = box
    return canvas.expose(grain_rng), boxes
