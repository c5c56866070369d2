"""Chest radiographs whose segmentation masks are exact: each mask pixel is drawn as what it labels.

The ChestX-ray14 phantom blends its lungs into the body with soft edges and paints the heart over
them, so its lung ellipses are not the lungs one sees. Here the anatomy still comes from the phantom
(``sample_thorax``: lung and heart geometry, lung density, exposure), but every labelled region is a
set of pixels painted last with a hard edge: the visible lungs (lung field less heart and mediastinum)
and a pneumothorax (air between a collapsed lung and the chest wall, with the pleural line just inside).
Frames may be portrait or landscape: unit coordinates are those of the centred square on the short side,
so the same seed gives the same patient at every size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dira.data.synthetic.phantom import (
    AIR,
    GAS,
    HEART,
    MEDIASTINUM,
    SOFT_TISSUE,
    Ellipse,
    Thorax,
    cosine_field,
    fourth_power,
    sample_thorax,
)

Rng = np.random.Generator

PLEURAL_LINE = 0.5  # density of the visceral pleura, a thin bright line on the collapsed lung's edge
TUBERCULOSIS_OPACITY = 0.14  # added to the upper lung zones: still darker than soft tissue


@dataclass
class ChestScene:
    """Densities before exposure, the exact visible lungs, and what exposure needs."""

    thorax: Thorax
    y: np.ndarray  # (H, 1) unit coordinates of the pixel centres
    x: np.ndarray  # (1, W)
    density: np.ndarray  # float32 (H, W), 0 = air .. 1 = bone
    lungs: tuple[np.ndarray, np.ndarray]  # bool (H, W): image-left (patient's right) lung first
    shading: np.ndarray  # float32 (H, W): slow detector non-uniformity

    @property
    def shape(self) -> tuple[int, int]:
        return self.density.shape


def _frame_coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    side = min(height, width)
    y = (np.arange(height, dtype=np.float32) + 0.5 - (height - side) / 2) / side
    x = (np.arange(width, dtype=np.float32) + 0.5 - (width - side) / 2) / side
    return y[:, None], x[None, :]


def _field(rng: Rng, k: int, height: int, width: int) -> np.ndarray:
    """A smooth random field over the frame (the phantom's cosine field, cut to the frame's shape)."""
    return cosine_field(rng, k, max(height, width))[:height, :width]


def lung_r2(lung: Ellipse, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Squared radius in a lung-shaped field (< 1 inside): a narrow round apex, widening to a flat base."""
    dy = (y - lung.cy) / lung.ay
    widening = np.clip(0.85 + 0.25 * dy, 0.6, 1.1)
    return ((x - lung.cx) / (lung.ax * widening)) ** 2 + np.where(dy > 0, fourth_power(dy), dy**2)


def _ellipse_r2(e: Ellipse, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return ((x - e.cx) / e.ax) ** 2 + ((y - e.cy) / e.ay) ** 2


def draw_thorax(height: int, width: int, rng: Rng) -> ChestScene:
    """A thorax in a height×width frame; the lungs are drawn exactly where ``ChestScene.lungs`` says."""
    thorax = sample_thorax(rng, ())
    y, x = _frame_coords(height, width)
    body = np.clip((1 - _ellipse_r2(Ellipse(0.6, 0.5, 0.66, 0.47), y, x)) / 0.08, 0, 1)
    density = (AIR + (SOFT_TISSUE - AIR) * body).astype(np.float32)
    mediastinum = (np.abs(x - 0.5) < 0.055) & (y > 0.02)
    heart = _ellipse_r2(thorax.heart, y, x) < 1
    density[np.broadcast_to(mediastinum, density.shape)] = MEDIASTINUM
    density[heart] = HEART
    hidden = mediastinum | heart
    lungs = tuple((lung_r2(lung, y, x) < 1) & ~hidden for lung in thorax.lungs)
    # Lung markings and posterior ribs, arcs sagging laterally, only where lung is seen.
    period, phase = rng.uniform(0.07, 0.08), rng.uniform(0, 1)
    ribs = fourth_power(0.5 + 0.5 * np.cos(2 * np.pi * ((y + 0.8 * (x - 0.5) ** 2) / period + phase)))
    texture = thorax.lung_level + 0.04 * _field(rng, 16, height, width) + 0.07 * ribs
    seen = lungs[0] | lungs[1]
    density[seen] = texture[seen]
    shading = 0.025 * _field(rng, 4, height, width)
    return ChestScene(thorax, y, x, density, lungs, shading)


def add_pneumothorax(scene: ChestScene, side: int, rng: Rng) -> np.ndarray:
    """Collapse lung ``side`` from its apex and lateral wall; returns the air's bool mask.

    The air is dark and texture-free (no lung markings, no ribs), exactly the returned pixels; the
    pleural line is drawn on the lung side of its edge, outside the mask, as annotators trace it.
    """
    lung, seen = scene.thorax.lungs[side], scene.lungs[side]
    # The lung shrinks towards its medial base, where the hilum and ligament hold it: the gap is
    # widest at the apex and along the lateral wall and closes towards the base.
    k, medial = rng.uniform(0.6, 0.8), -float(np.sign(lung.cx - 0.5))
    anchor_y, anchor_x = lung.cy + lung.ay, lung.cx + medial * 0.5 * lung.ax
    collapsed = Ellipse(anchor_y + k * (lung.cy - anchor_y), anchor_x + k * (lung.cx - anchor_x),
                        lung.ay * k, lung.ax * k)
    # The air reaches further down along the lateral wall than medially: an oblique lower edge.
    reach = lung.cy + rng.uniform(0.0, 0.4) * lung.ay - 0.6 * medial * (scene.x - lung.cx)
    r2 = lung_r2(collapsed, scene.y, scene.x)
    above = scene.y < reach
    air = seen & (r2 >= 1) & above
    line_r2 = 2 * max(0.004, 1.5 / min(scene.shape)) / (lung.ax * k)  # at least ~1.5 px thick
    pleura = seen & ~air & (r2 >= 1 - line_r2) & above
    scene.density[air] = GAS
    scene.density[pleura] = PLEURAL_LINE
    return air


def add_tuberculosis(scene: ChestScene, rng: Rng) -> None:
    """Patchy upper-zone opacities, inside the lungs only (the lungs stay where their masks are)."""
    patches = np.zeros(scene.shape, np.float32)
    for lung in scene.thorax.lungs:
        for _ in range(int(rng.integers(2, 5))):
            cy = lung.cy - rng.uniform(0.3, 0.7) * lung.ay
            cx = lung.cx + rng.uniform(-0.4, 0.4) * lung.ax
            r = rng.uniform(0.03, 0.06)
            patches = np.maximum(patches, np.clip(1 - _ellipse_r2(Ellipse(cy, cx, r, r), scene.y, scene.x), 0, 1))
    seen = scene.lungs[0] | scene.lungs[1]
    scene.density[seen] += TUBERCULOSIS_OPACITY * patches[seen]


def expose(scene: ChestScene, grain_rng: Rng, bits: int = 8) -> np.ndarray:
    """Detector response (exposure, shading, grain) as unsigned integers of ``bits`` significant bits."""
    t = scene.thorax
    signal = scene.density * t.gain + t.offset + scene.shading
    signal += 0.012 * grain_rng.standard_normal(signal.shape, dtype=np.float32)
    top = (1 << bits) - 1
    return (np.clip(signal, 0.0, 1.0) * top + 0.5).astype(np.uint8 if bits <= 8 else np.uint16)
