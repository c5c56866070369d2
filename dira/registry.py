"""The pipeline's vocabularies, each written once: datasets, tasks, methods, variants and initialisations.

The CLI's choices, the workflow's wildcards and targets, the report's row order and the schema's enums all
come from here (tests/test_registry.py fails when the schema disagrees), so adding a dataset or a method
starts with one entry below. This module is the bottom layer: it imports nothing of the package, and the
classes that implement an entry are named by dotted path, not imported.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    dims: int
    """2 for radiographs, 3 for CT / MRI volumes."""
    prepared: bool
    """True when this package has a reader, a synthetic writer and a preparer."""
    synthetic_subfolder: str = ""
    """Folder the release unpacks into, and so the synthetic writer too (e.g. ``MontgomerySet``)."""
    synthetic_count: str = "images"
    """What the synthetic writer's count means: ``patients``, ``images`` or ``scans``."""
    cache_files: tuple[str, ...] = ("train.h5", "val.h5", "test.h5")
    """What ``dira prepare`` writes into ``data/processed/<name>/`` (the workflow's outputs of that job)."""
    shardable: bool = False
    """``dira prepare --shard K/N`` and ``dira gather`` split its preparation into jobs (many-volume 3D sets)."""


@dataclass(frozen=True)
class Task:
    name: str
    dataset: str
    kind: str
    """``classification`` (fine-tunes a classifier from the encoder) or ``segmentation`` (the whole U-Net)."""
    metric: str

    @property
    def dims(self) -> int:
        """2 or 3, the dataset's: a task is fine-tuned only from initialisations of the same dimensionality."""
        return DATASETS[self.dataset].dims

    @property
    def init_file(self) -> str:
        """The pre-training output a task starts from: segmentation transfers the decoder too (DiRA's g_θ)."""
        return "unet.pt" if self.kind == "segmentation" else "encoder.pt"


@dataclass(frozen=True)
class Method:
    name: str
    title: str
    dims: int
    implementation: str
    """``module:Class`` of its :class:`dira.methods.base.DiscriminativeMethod`."""
    variants: tuple[str, ...] = ("base", "dir", "dira")
    """The variants it is pre-trained in (of the configured ``variants``)."""


@dataclass(frozen=True)
class Variant:
    name: str
    stages: tuple[str, ...]
    """Training stages after the ``base`` model: ``di`` (discrimination), ``dir`` (+ restoration), ``dira``
    (+ adversary). ``dir`` and ``dira`` continue from the ``base`` weights (appendix C.1's staged training)."""
    description: str


@dataclass(frozen=True)
class Initialisation:
    """A starting point for fine-tuning that is not a self-supervised pre-training of this pipeline."""

    name: str
    title: str
    dims: int
    """2 or 3; 0 for one that fits both (random)."""
    description: str


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("chestxray14", "ChestX-ray14", 2, True, synthetic_count="patients"),
    Dataset("chexpert", "CheXpert", 2, True, synthetic_subfolder="CheXpert-v1.0-small", synthetic_count="patients"),
    Dataset("siim", "SIIM-ACR", 2, True),
    Dataset("montgomery", "Montgomery", 2, True, synthetic_subfolder="MontgomerySet"),
    Dataset("luna16", "LUNA16", 3, True, synthetic_count="scans",
            cache_files=("pretrain_train.h5", "pretrain_val.h5", "fpr_train.h5", "fpr_val.h5", "fpr_test.h5",
                         "splits.json"), shardable=True),
    Dataset("lidc", "LIDC-IDRI", 3, True, synthetic_count="patients",
            cache_files=("ncs_train.h5", "ncs_val.h5", "ncs_test.h5", "splits.json")),
    Dataset("lits", "LiTS", 3, True, synthetic_count="scans",
            cache_files=("train.h5", "val.h5", "test_volumes.h5", "splits.json")),
    Dataset("brats", "BraTS 2018", 3, True, synthetic_count="patients",
            cache_files=("train.h5", "val.h5", "test_volumes.h5", "splits.json")),
    Dataset("pe", "PE-CAD / CAD-PE", 3, True, synthetic_count="scans",
            cache_files=("fpr_train.h5", "fpr_val.h5", "fpr_test.h5", "splits.json")),
)}

TASKS: dict[str, Task] = {t.name: t for t in (
    Task("chestxray14", "chestxray14", "classification", "auc"),
    Task("chexpert", "chexpert", "classification", "auc"),
    Task("siim", "siim", "segmentation", "dice"),
    Task("montgomery", "montgomery", "segmentation", "dice"),
    # 3D (Models Genesis / TransVW names): NCC, ECC, NCS, LCS, BMS
    Task("luna16", "luna16", "classification", "auc"),
    Task("pe", "pe", "classification", "auc"),
    Task("lidc", "lidc", "segmentation", "iou"),
    Task("lits", "lits", "segmentation", "iou"),
    Task("brats", "brats", "segmentation", "iou"),
)}

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("mocov2", "MoCo-v2", 2, "dira.methods.mocov2:MoCoV2"),
    Method("barlowtwins", "Barlow Twins", 2, "dira.methods.barlow_twins:BarlowTwins"),
    Method("simsiam", "SimSiam", 2, "dira.methods.simsiam:SimSiam"),
    # TransVW restores on its own: the paper's Di + R ablation has no TransVW row (its 'dir' would be TransVW trained
    # on at DiRA's λ), so it is pre-trained alone and as DiRA_TransVW.
    Method("transvw", "TransVW", 3, "dira.methods.transvw:TransVW", variants=("base", "dira")),
)}

VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("base", ("di",), "discrimination only (Di): the method alone"),
    Variant("dir", ("dir",), "Di + restoration (Table 4's + L_res)"),
    Variant("dira", ("dir", "dira"), "Di + restoration warm-up, then + adversary (DiRA)"),
)}

# Initialisations besides the '<method>_<variant>' pre-trainings (Table 2's baselines).
BASELINE_INITS: dict[str, Initialisation] = {i.name: i for i in (
    Initialisation("random", "Random", 0, "random initialisation (any dimensionality)"),
    Initialisation("supervised_imagenet", "Supervised (ImageNet)", 2,
                   "torchvision ResNet trained on ImageNet; its weights file is named in the config"),
    Initialisation("supervised_chestxray14", "Supervised (ChestX-ray14)", 2,
                   "the encoder of a classifier trained on ChestX-ray14's 14 labels (for the other tasks)"),
)}

# ChestX-ray14's supervised model is trained on the task it would then be evaluated on: the paper leaves that
# cell of Table 2 empty, and so does the workflow.
SUPERVISED_SOURCE_TASK = {"supervised_chestxray14": "chestxray14"}


def pretrained_init(method: str, variant: str) -> str:
    return f"{method}_{variant}"


def split_pretrained_init(init: str) -> tuple[str, str] | None:
    """``'barlowtwins_dira'`` → ``('barlowtwins', 'dira')``; None for a baseline or unknown name."""
    method, _, variant = init.rpartition("_")
    if method in METHODS and variant in VARIANTS:
        return method, variant
    return None


def is_known_init(init: str) -> bool:
    return init in BASELINE_INITS or split_pretrained_init(init) is not None


def imported_init_pattern() -> str:
    """The names an imported checkpoint may take (the init it stands in for), as a schema pattern."""
    return f"^({'|'.join(METHODS)})_({'|'.join(VARIANTS)})$"


def init_dims(init: str) -> int:
    """Dimensionality of an initialisation (0 = any); an unknown name raises KeyError."""
    if init in BASELINE_INITS:
        return BASELINE_INITS[init].dims
    split = split_pretrained_init(init)
    if split is None:
        raise KeyError(init)
    return METHODS[split[0]].dims


def init_fits_task(init: str, task: str) -> bool:
    """Initialisations are matched to tasks by dimensionality: no 2D weights on a 3D task, nor the reverse."""
    dims = init_dims(init)
    return dims in (0, TASKS[task].dims)


def methods(dims: int | None = None) -> list[str]:
    return [m.name for m in METHODS.values() if dims is None or m.dims == dims]


def tasks(dims: int | None = None) -> list[str]:
    return [t.name for t in TASKS.values() if dims is None or t.dims == dims]


def datasets(dims: int | None = None, prepared: bool | None = None, shardable: bool | None = None) -> list[str]:
    return [d.name for d in DATASETS.values()
            if (dims is None or d.dims == dims) and (prepared is None or d.prepared == prepared)
            and (shardable is None or d.shardable == shardable)]
