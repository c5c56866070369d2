"""Label vocabularies of the datasets, in the canonical order the reference code and benchmarks use."""

from __future__ import annotations

# ChestX-ray14: the order of CheXNet, BenchmarkTransferLearning and DiRA's split files.
CHESTXRAY14_LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)

CHESTXRAY14_NO_FINDING = "No Finding"

# The eight pathologies that BBox_List_2017.csv annotates, with the spelling that file uses.
CHESTXRAY14_BOX_LABELS: dict[str, str] = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Effusion": "Effusion",
    "Infiltrate": "Infiltration",
    "Mass": "Mass",
    "Nodule": "Nodule",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
}
