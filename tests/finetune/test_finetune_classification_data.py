from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from dira.data.cache import CacheWriter
from dira.data.classification import ClassificationDataset, train_transform
from dira.errors import InputError


def test_evaluation_samples_are_the_cached_images_in_unit_range(tiny_chestxray14):
    dataset = ClassificationDataset(tiny_chestxray14 / "val.h5")
    with h5py.File(tiny_chestxray14 / "val.h5", "r") as f:
        raw, labels = f["images"][3], f["labels"][3]
    image, target = dataset[3]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    for channel in image:
        torch.testing.assert_close(channel, torch.from_numpy(raw).float() / 255, rtol=0, atol=0)
    assert target.dtype == torch.float32
    np.testing.assert_array_equal(target.numpy(), labels)
    assert len(dataset) == 16 and dataset.ids[0] == "val_000.png" and dataset.label_names[-1] == "Hernia"


def test_training_transform_keeps_size_and_changes_the_image(tiny_chestxray14):
    transform = train_transform(32, crop_scale=(0.3, 0.6), flip_prob=0.5, rotation=7)
    dataset = ClassificationDataset(tiny_chestxray14 / "train.h5", transform=transform)
    torch.manual_seed(0)
    augmented, _ = dataset[0]
    dataset.transform = None
    plain, _ = dataset[0]
    assert augmented.shape == plain.shape == (3, 32, 32)
    assert augmented.min() >= 0 and augmented.max() <= 1
    assert not torch.equal(augmented, plain)


def test_cache_without_labels_is_rejected(tmp_path):
    path = tmp_path / "unlabelled.h5"
    with CacheWriter(path, 2, 32, attrs={}) as writer:
        for i in range(2):
            writer.write_image(i, np.zeros((32, 32), np.uint8), (32, 32))
        writer.write_array("ids", ["a", "b"])
    with pytest.raises(InputError, match=r"unlabelled\.h5: no 'labels'"):
        ClassificationDataset(path)
