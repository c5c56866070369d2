"""The downstream tasks: what each cache holds and how its test predictions are scored.

A new task of a known type is one entry in :data:`TASKS`; a new type is one class here and one runner
registered in :data:`dira.train.finetune.RUNNERS`. The five 3D tasks (Models Genesis / TransVW's NCC, ECC,
NCS, LCS, BMS) name their cache files, since their preparers write several kinds of cache per dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

from dira.data.labels import CHESTXRAY14_LABELS
from dira.data.sources.chexpert import CHEXPERT_LABELS, COMPETITION_LABELS


@dataclass(frozen=True)
class ClassificationTask:
    """Multi-label classification of a cache with ``labels``, scored by the mean per-class ROC AUC.

    The model is trained on all ``label_names``; the AUC is taken over ``evaluated_labels`` (all when
    empty). With ``uncertain_labels`` the cache holds CheXpert's report codes and training applies the
    uncertainty policy ``datasets.<name>.uncertainty``.
    """

    name: str
    label_names: tuple[str, ...]
    evaluated_labels: tuple[str, ...] = ()
    uncertain_labels: bool = False
    metric: str = "auc"

    @property
    def scored_labels(self) -> tuple[str, ...]:
        return self.evaluated_labels or self.label_names

    @property
    def scored_columns(self) -> list[int]:
        return [self.label_names.index(name) for name in self.scored_labels]


@dataclass(frozen=True)
class SegmentationTask:
    """Binary segmentation of a cache with ``masks``, scored by the mean per-image Dice."""

    name: str
    metric: str = "dice"


@dataclass(frozen=True)
class VolumeClassificationTask:
    """False-positive reduction of 3D candidate crops (``labels`` 0/1 per row), scored by the ROC AUC.

    ``positive`` names the one class (what ``predictions.npz`` calls its column).
    """

    name: str
    positive: str
    files: tuple[str, str, str] = ("fpr_train.h5", "fpr_val.h5", "fpr_test.h5")  # train, val, test
    metric: str = "auc"


@dataclass(frozen=True)
class VolumeSegmentationTask(SegmentationTask):
    """Binary 3D segmentation of crops or patches with ``masks``, scored by the IoU pooled over all test voxels.

    With ``test_volumes`` the test file holds whole volumes (``test_volumes.h5``), segmented by a sliding
    window; otherwise it holds crops like the training file. ``multichannel`` rows (BraTS' four MR
    modalities, named by the cache's ``intensity.channels``) are fine-tuned on one channel,
    ``finetune3d.<task>.modality``.
    """

    metric: str = "iou"
    files: tuple[str, str, str] = ("train.h5", "val.h5", "test_volumes.h5")  # train, val, test
    test_volumes: bool = True
    multichannel: bool = False


TASKS: dict[str, ClassificationTask | SegmentationTask | VolumeClassificationTask] = {
    "chestxray14": ClassificationTask("chestxray14", CHESTXRAY14_LABELS),
    "chexpert": ClassificationTask("chexpert", CHEXPERT_LABELS, evaluated_labels=COMPETITION_LABELS,
                                   uncertain_labels=True),
    "siim": SegmentationTask("siim"),
    "montgomery": SegmentationTask("montgomery"),
    "luna16": VolumeClassificationTask("luna16", "nodule"),
    "pe": VolumeClassificationTask("pe", "embolus"),
    "lidc": VolumeSegmentationTask("lidc", files=("ncs_train.h5", "ncs_val.h5", "ncs_test.h5"), test_volumes=False),
    "lits": VolumeSegmentationTask("lits"),
    "brats": VolumeSegmentationTask("brats", multichannel=True),
}
