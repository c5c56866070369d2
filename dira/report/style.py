"""How initialisations look in every table and figure: one colour per method, one shade per variant.

Keeping names and colours here means a method is recognisable at a glance across all figures, and
its DiRA variant always reads as the saturated version of the same colour. Names, titles and variants
come from :mod:`dira.registry`; a baseline initialisation (random, the supervised ones) is a "method"
without a variant.
"""

from __future__ import annotations

import zlib

from matplotlib import colors

from dira import registry

FIGURE_SIZE = (6.4, 4.0)  # inches; at DPI this is 1920×1200 px
DPI = 300

# Baselines first, in the registry's order (Table 2's rows: random, supervised ImageNet, supervised CXR14).
METHOD_NAMES = {**{i.name: i.title for i in registry.BASELINE_INITS.values()},
                **{m.name: m.title for m in registry.METHODS.values()}}
TASK_NAMES = {t.name: registry.DATASETS[t.dataset].title for t in registry.TASKS.values()}
METRIC_NAMES = {"auc": "AUC", "dice": "Dice", "iou": "IoU"}
# Initialisations the paper compares with that a run may leave untrained (then Table 2 prints the paper's value).
REFERENCE_INITS = {name: init.title for name, init in registry.BASELINE_INITS.items() if name != "random"}
METHOD_COLOURS = {"random": "#8c8c8c", "supervised_imagenet": "#5b4a3f", "supervised_chestxray14": "#b8860b",
                  "mocov2": "#1f5fa8", "barlowtwins": "#c0392b", "simsiam": "#2e8b57", "transvw": "#6a3d9a"}
_FALLBACK_COLOURS = ("#7b3294", "#e08214", "#008b8b", "#8c510a")

VARIANTS = tuple(registry.VARIANTS)
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


def init_order(init: str) -> tuple[int, int, str, int]:
    """Table 2's row order: the baselines in the registry's order, then each method's base, dir, dira
    (methods in the registry's order, unknown ones last)."""
    if init in registry.BASELINE_INITS:
        return (0, list(registry.BASELINE_INITS).index(init), "", 0)
    method, _, variant = init.rpartition("_")
    methods = list(registry.METHODS)
    rank = methods.index(method) if method in methods else len(methods)
    return (1, rank, method, VARIANTS.index(variant) if variant in VARIANTS else len(VARIANTS))


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
