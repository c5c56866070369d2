"""Fine-tuning one initialisation on one downstream task with one seed (appendix C.2).

Tasks are looked up in :data:`TASKS` (``tasks``) and run by the runner registered for their type in
:data:`RUNNERS`: classification (``classification``: ChestX-ray14, CheXpert), segmentation
(``segmentation``: SIIM-ACR, Montgomery), and in 3D candidate classification (``volume_classification``:
LUNA16, PE) and segmentation (``volume_segmentation``: LIDC, LiTS, BraTS), which share ``volumes``. All
share the loop of ``loop`` and write their outputs through ``outputs``; ``fractions`` draws the nested
label-fraction subsets of the training split.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from dira.errors import InputError
from dira.registry import BASELINE_INITS, METHODS, VARIANTS, init_dims, init_fits_task, is_known_init
from dira.registry import TASKS as REGISTERED_TASKS
from dira.runtime.allocator import keep_freed_buffers
from dira.runtime.device import configure_threads, resolve_device
from dira.runtime.rng import seed_everything
from dira.train.finetune.loop import EarlyStopping, FitResult, evaluate, fit, make_loader, train_one_epoch
from dira.train.finetune.tasks import (
    TASKS,
    ClassificationTask,
    SegmentationTask,
    VolumeClassificationTask,
    VolumeSegmentationTask,
)

__all__ = [
    "RUNNERS", "TASKS", "ClassificationTask", "EarlyStopping", "FitResult", "SegmentationTask",
    "VolumeClassificationTask", "VolumeSegmentationTask", "check_init", "check_init_fits_task", "evaluate", "finetune",
    "fit", "make_loader", "train_one_epoch",
]

# Runner of each task type, as "module:function": imported on use, so a classification job never pays for
# importing the segmentation augmentations (albumentations, OpenCV) and vice versa.
RUNNERS: dict[type, str] = {
    ClassificationTask: "dira.train.finetune.classification:finetune_classification",
    SegmentationTask: "dira.train.finetune.segmentation:finetune_segmentation",
    VolumeClassificationTask: "dira.train.finetune.volume_classification:finetune_volume_classification",
    VolumeSegmentationTask: "dira.train.finetune.volume_segmentation:finetune_volume_segmentation",
}


def finetune(task: str, data_dir: Path, init: str, weights: Path | None, seed: int, out_dir: Path,
             config: dict, fraction: float = 1.0) -> None:
    """Fine-tune on ``fraction`` of the training labels, then write ``predictions.npz`` and ``metrics.json``."""
    if task not in TASKS:
        raise InputError(f"unknown task '{task}' (known: {', '.join(TASKS)})")
    if not 0 < fraction <= 1:
        raise InputError(f"label fraction {fraction} is not in (0, 1]")
    check_init(init, weights)
    check_init_fits_task(init, task)
    spec = TASKS[task]
    device = resolve_device(config["device"])
    configure_threads(config["threads"])
    keep_freed_buffers()  # each step's batch buffers reuse the last step's pages
    seed_everything(seed)
    module, function = RUNNERS[type(spec)].split(":")
    runner = getattr(importlib.import_module(module), function)
    runner(spec, Path(data_dir), init, weights, seed, Path(out_dir), config, device, fraction)


# What each baseline other than 'random' starts from, for the error that asks for it.
BASELINE_WEIGHTS = {
    "supervised_imagenet": "torchvision's ImageNet file, e.g. resnet50-0676ba61.pth (supervised.imagenet_weights)",
    "supervised_chestxray14": "the encoder.pt exported from the supervised ChestX-ray14 classifier",
}


def check_init(init: str, weights: Path | None) -> None:
    """The init is one the registry knows, and it has weights exactly when it is not 'random'."""
    if not is_known_init(init):
        raise InputError(f"unknown init '{init}' (choose from {', '.join(BASELINE_INITS)} or <method>_<variant> "
                         f"with methods {', '.join(METHODS)} and variants {', '.join(VARIANTS)})")
    if init == "random" and weights is not None:
        raise InputError(f"{weights}: init 'random' takes no weights")
    if init != "random" and weights is None:
        wanted = BASELINE_WEIGHTS.get(init, "the pre-training's encoder.pt, or unet.pt for segmentation")
        raise InputError(f"init '{init}' needs weights (--weights: {wanted})")


def check_init_fits_task(init: str, task: str) -> None:
    """Initialisations are matched to tasks by dimensionality: 2D weights never start a 3D task, nor the reverse."""
    if not init_fits_task(init, task):
        raise InputError(f"init '{init}' is {init_dims(init)}D and task '{task}' is {REGISTERED_TASKS[task].dims}D: "
                         "fine-tune a task from an initialisation of its own dimensionality (or 'random')")
