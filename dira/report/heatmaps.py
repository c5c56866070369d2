"""Fig. 6 of the appendix: Grad-CAM heatmaps of a base method (top row) and its DiRA variant (bottom row),
one column per boxed pathology, the ground-truth box drawn in black.

The panels come from each initialisation's ``examples.npz`` (written by ``dira localize``): the same test
image per pathology for every initialisation, so the rows compare like with like.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from dira.errors import InputError
from dira.io import atomic_path
from dira.report import style
from dira.report.tables import split_init

PANEL_INCHES = 1.35
HEATMAP_ALPHA = 0.45


def read_examples(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            examples = {key: data[key] for key in ("labels", "ids", "images", "heatmaps", "boxes")}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"{path}: not an examples.npz of `dira localize` ({err})") from err
    if not len(examples["labels"]):
        raise InputError(f"{path}: holds no example panels")
    return examples


def heatmap_figure(rows: list[tuple[str, Path]], out_png: Path, title: str = "") -> None:
    """One row per (init, examples.npz), one column per pathology, heatmap over the image, box in black."""
    if not rows:
        raise InputError("no initialisations given for the heatmap figure")
    examples = [(init, path, read_examples(path)) for init, path in rows]
    _, first_path, first = examples[0]
    for _, path, other in examples[1:]:
        if list(other["labels"]) != list(first["labels"]) or list(other["ids"]) != list(first["ids"]):
            raise InputError(f"{path}: shows other images than {first_path} (localized on other test sets?)")
    n_rows, n_cols = len(examples), len(first["labels"])
    fig = Figure(figsize=(PANEL_INCHES * n_cols + 0.4, PANEL_INCHES * n_rows + 0.5), layout="constrained")
    axes = np.asarray(fig.subplots(n_rows, n_cols, squeeze=False))
    for r, (init, _, panels) in enumerate(examples):
        method, variant = split_init(init)
        for c in range(n_cols):
            ax = axes[r, c]
            ax.imshow(panels["images"][c], cmap="gray", vmin=0, vmax=255, interpolation="bilinear")
            ax.imshow(panels["heatmaps"][c], cmap="jet", vmin=0, vmax=255, alpha=HEATMAP_ALPHA,
                      interpolation="bilinear")
            x, y, w, h = panels["boxes"][c]
            # pixel (i, j) is centred on (j, i) in imshow's axes: a box covering pixels x..x+w-1 starts at x - 0.5
            ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor="black", linewidth=1.2))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(str(first["labels"][c]).replace("_", " "), fontsize=8)
            if c == 0:
                ax.set_ylabel(style.init_label(method, variant), fontsize=8, color=style.method_colour(method))
    fig.suptitle(title or "Grad-CAM heatmaps, ground-truth boxes in black", fontsize=10)
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=style.DPI, format="png")
