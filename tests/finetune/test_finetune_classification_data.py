from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import v2

from dira.data.cache import CacheWriter
from dira.data.classification import ClassificationDataset, EvaluationBatch, network_input, train_transform
from dira.data.eval_crops import eval_crops
from dira.errors import InputError


def random_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 1, size, size), dtype=np.uint8))


def test_items_are_the_cached_images_as_uint8_with_float_targets(tiny_chestxray14):
    dataset = ClassificationDataset(tiny_chestxray14 / "val.h5")
    with h5py.File(tiny_chestxray14 / "val.h5", "r") as f:
        raw, labels = f["images"][3], f["labels"][3]
    image, target = dataset[3]
    assert image.shape == (1, 32, 32) and image.dtype == torch.uint8
    np.testing.assert_array_equal(image[0].numpy(), raw)
    assert target.dtype == torch.float32
    np.testing.assert_array_equal(target.numpy(), labels)
    assert len(dataset) == 16 and dataset.ids[0] == "val_000.png" and dataset.label_names[-1] == "Hernia"
    assert dataset.cache_size == 32


def test_network_input_is_the_grey_image_in_unit_range_on_three_channels():
    images = random_images(2, 8)
    batch = network_input(images)
    assert batch.shape == (2, 3, 8, 8) and batch.dtype == torch.float32
    for channel in range(3):
        torch.testing.assert_close(batch[:, channel], images[:, 0].float() / 255, rtol=0, atol=0)


def test_training_transform_changes_the_image(tiny_chestxray14):
    transform = train_transform(32, crop_scale=(0.3, 0.6), flip_prob=0.5, rotation=7)
    dataset = ClassificationDataset(tiny_chestxray14 / "train.h5", transform=transform)
    torch.manual_seed(0)
    augmented, _ = dataset[0]
    dataset.transform = None
    plain, _ = dataset[0]
    assert augmented.shape == plain.shape == (1, 32, 32) and augmented.dtype == torch.uint8
    assert not torch.equal(augmented, plain)


def test_training_crops_of_a_larger_cache_come_out_at_input_size(tmp_path):
    path = tmp_path / "train.h5"
    images = random_images(2, 128)
    with CacheWriter(path, 2, 128, attrs={}) as writer:
        for i in range(2):
            writer.write_image(i, images[i, 0].numpy(), (1024, 1024))
        writer.write_array("ids", ["a", "b"])
        writer.write_array("labels", np.zeros((2, 3), np.uint8), label_names=["x", "y", "z"])
    dataset = ClassificationDataset(path, transform=train_transform(32, (0.08, 1.0), flip_prob=0.5, rotation=7))
    assert dataset.cache_size == 128
    torch.manual_seed(1)
    crops = [dataset[0][0] for _ in range(4)]
    assert all(crop.shape == (1, 32, 32) and crop.dtype == torch.uint8 for crop in crops)
    assert len({crop.numpy().tobytes() for crop in crops}) == 4
    # The whole area, no flip, no rotation: the crop is the cached image resized once, 128 -> 32.
    whole = ClassificationDataset(path, transform=train_transform(32, (1.0, 1.0), flip_prob=0.0, rotation=0))
    expected = TF.resize(images[1], [32, 32], antialias=True)
    torch.testing.assert_close(whole[1][0], expected, rtol=0, atol=0)


def test_ten_crops_are_torchvisions_ten_crop_of_the_resized_image():
    images = random_images(3, 40, seed=2)
    views = eval_crops(images, 36, 32, "ten")
    assert views.shape == (3, 10, 1, 32, 32) and views.dtype == torch.uint8
    reference = v2.Compose([v2.Resize((36, 36), antialias=True), v2.TenCrop(32)])
    for image, crops in zip(images, views, strict=True):
        for view, expected in zip(crops, reference(image), strict=True):
            torch.testing.assert_close(view, expected, rtol=0, atol=0)
    # Spelled out: the four corners and the centre of the resized image, then the same regions mirrored.
    resized = TF.resize(images, [36, 36], antialias=True)
    regions = [resized[..., :32, :32], resized[..., :32, 4:], resized[..., 4:, :32], resized[..., 4:, 4:],
               resized[..., 2:34, 2:34]]
    for k, region in enumerate(regions):
        torch.testing.assert_close(views[:, k], region, rtol=0, atol=0)
    mirrored = {tuple(TF.horizontal_flip(region).flatten().tolist()) for region in regions}
    assert {tuple(views[:, k].flatten().tolist()) for k in range(5, 10)} == mirrored


def test_validation_batches_are_the_centre_crop_of_the_resized_images(tiny_chestxray14):
    dataset = ClassificationDataset(tiny_chestxray14 / "val.h5")
    items = [dataset[i] for i in range(4)]
    images, targets = EvaluationBatch(36, 32, "center")(items)
    assert images.shape == (4, 1, 32, 32) and images.dtype == torch.uint8
    cached = torch.stack([image for image, _ in items])
    torch.testing.assert_close(images, TF.center_crop(TF.resize(cached, [36, 36], antialias=True), [32, 32]),
                               rtol=0, atol=0)
    torch.testing.assert_close(targets, torch.stack([target for _, target in items]))


def test_test_batches_hold_the_ten_views_of_each_image_consecutively(tiny_chestxray14):
    dataset = ClassificationDataset(tiny_chestxray14 / "test.h5")
    items = [dataset[i] for i in range(3)]
    images, targets = EvaluationBatch(36, 32, "ten")(items)
    assert images.shape == (30, 1, 32, 32) and targets.shape == (3, 14)
    for i, (image, _) in enumerate(items):
        torch.testing.assert_close(images[10 * i:10 * (i + 1)], eval_crops(image[None], 36, 32, "ten")[0],
                                   rtol=0, atol=0)


def test_crops_that_do_not_fit_the_resize_are_rejected():
    with pytest.raises(ValueError, match="do not fit"):
        eval_crops(random_images(1, 40), 30, 32, "center")
    with pytest.raises(ValueError, match="crops must be one of"):
        eval_crops(random_images(1, 40), 36, 32, "five")


def test_cache_without_labels_is_rejected(tmp_path):
    path = tmp_path / "unlabelled.h5"
    with CacheWriter(path, 2, 32, attrs={}) as writer:
        for i in range(2):
            writer.write_image(i, np.zeros((32, 32), np.uint8), (32, 32))
        writer.write_array("ids", ["a", "b"])
    with pytest.raises(InputError, match=r"unlabelled\.h5: no 'labels'"):
        ClassificationDataset(path)
