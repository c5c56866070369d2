"""The downstream tasks: what each cache holds and how its test predictions are scored.

A new task of a known type is one entry in :data:`TASKS`; a new type is one class here and one runner
registered in :data:`dira.train.finetune.RUNNERS`.
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


TASKS: dict[str, ClassificationTask | SegmentationTask] = {
    "chestxray14": ClassificationTask("chestxray14", CHESTXRAY14_LABELS),
    "chexpert": ClassificationTask("chexpert", CHEXPERT_LABELS, evaluated_labels=COMPETITION_LABELS,
                                   uncertain_labels=True),
    "siim": SegmentationTask("siim"),
    "montgomery": SegmentationTask("montgomery"),
}
