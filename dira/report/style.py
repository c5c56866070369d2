"""How initialisations look in every table and figure: one colour per method, one shade per variant.

Keeping names and colours here means a method is recognisable at a glance across all figures, and
its DiRA variant always reads as the saturated version of the same colour.
"""

from __future__ import annotations

import zlib

from matplotlib import colors

FIGURE_SIZE = (6.4, 4.0)  # inches; at DPI this is 1920×1200 px
DPI = 300

METHOD_NAMES = {"random": "Random", "mocov2": "MoCo-v2", "barlowtwins": "Barlow Twins", "simsiam": "SimSiam"}
TASK_NAMES = {"chestxray14": "ChestX-ray14", "chexpert": "CheXpert", "siim": "SIIM-ACR", "montgomery": "Montgomery"}
METRIC_NAMES = {"auc": "AUC", "dice": "Dice"}
# Initialisations the paper compares with that are not '<method>_<variant>' runs of this pipeline.
REFERENCE_INITS = {"supervised_imagenet": "Supervised (ImageNet)",
                   "supervised_chestxray14": "Supervised (ChestX-ray14)"}
METHOD_COLOURS = {"random": "#8c8c8c", "mocov2": "#1f5fa8", "barlowtwins": "#c0392b", "simsiam": "#2e8b57"}
_FALLBACK_COLOURS = ("#7b3294", "#e08214", "#008b8b", "#8c510a")

VARIANTS = ("base", "dir", "dira")
# How far each variant's colour is mixed towards white, and its hatch: the full method is the
# strongest colour, so "more DiRA" reads as "darker" in every chart.
VARIANT_LIGHTEN = {"": 0.0, "base": 0.6, "dir": 0.3, "dira": 0.0}
VARIANT_HATCH = {"": "", "base": "", "dir": "///", "dira": ""}


def method_name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def task_name(task: str) -> str:
    return TASK_NAMES.get(task, task)


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric.upper())


def fraction_label(fraction: float) -> str:
    """'1 %', '25 %', '100 %': label fractions the way Table 1 prints them."""
    return f"{100 * fraction:g} %"


def init_label(method: str, variant: str) -> str:
    """The paper's names: 'MoCo-v2', 'MoCo-v2 + L_res' (Table 4's Di+R ablation), 'DiRA_MoCo-v2'."""
    name = method_name(method)
    if variant == "dir":
        return f"{name} + L_res"
    if variant == "dira":
        return f"DiRA_{name}"
    return name


def method_colour(method: str) -> str:
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    # Unknown methods still get a stable colour, the same in every figure.
    return _FALLBACK_COLOURS[zlib.crc32(method.encode()) % len(_FALLBACK_COLOURS)]


def bar_colour(method: str, variant: str) -> tuple[float, float, float]:
    rgb = colors.to_rgb(method_colour(method))
    mix = VARIANT_LIGHTEN.get(variant, 0.0)
    return tuple(c + (1.0 - c) * mix for c in rgb)


def bar_hatch(variant: str) -> str:
    return VARIANT_HATCH.get(variant, "")
