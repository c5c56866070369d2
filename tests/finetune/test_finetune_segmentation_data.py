from __future__ import annotations

import albumentations as A
import h5py
import numpy as np
import pytest
import torch

from dira.data.segmentation import SegmentationDataset, distortions, segmentation_train_transform
from dira.errors import InputError
from dira.losses import soft_dice_loss


def disk(size: int = 64, centre: tuple[float, float] = (28, 36), radius: float = 14) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2).astype(np.uint8)


def test_items_are_the_cached_image_in_unit_range_and_its_mask(tiny_siim):
    dataset = SegmentationDataset(tiny_siim / "val.h5", 32)
    with h5py.File(tiny_siim / "val.h5", "r") as f:
        raw, mask = f["images"][2], f["masks"][2]
    image, target = dataset[2]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32
    torch.testing.assert_close(image[0], torch.from_numpy(raw).float() / 255, rtol=0, atol=0)
    assert target.dtype == torch.uint8
    np.testing.assert_array_equal(target.numpy(), mask)
    assert dataset.cache_size == dataset.image_size == 32


def test_a_cache_larger_than_the_input_is_resized_with_binary_masks_on_the_image(tmp_path, write_segmentation):
    write_segmentation(tmp_path / "val.h5", 8, seed=3, size=64)
    with h5py.File(tmp_path / "val.h5", "r") as f:
        raw_images, raw_masks = f["images"][()], f["masks"][()]
    dataset = SegmentationDataset(tmp_path / "val.h5", 32)
    assert (dataset.cache_size, dataset.image_size) == (64, 32)
    assert dataset.images.shape == dataset.masks.shape == (8, 32, 32) and dataset.masks.dtype == np.uint8
    assert set(np.unique(dataset.masks)) == {0, 1}
    # Bilinear image and nearest mask stay aligned: the bright disk (170-230 on noise below 70) is the mask.
    agree = ((dataset.images > 120) == dataset.masks).mean(axis=(1, 2))
    assert agree.min() > 0.97
    # Each kept mask pixel is the cached one under its centre (2x: source pixel 2i + 1).
    np.testing.assert_array_equal(dataset.masks, raw_masks[:, 1::2, 1::2])
    image, mask = dataset[0]
    assert image.shape == (1, 32, 32) and mask.shape == (32, 32)
    unchanged = SegmentationDataset(tmp_path / "val.h5", 64)
    np.testing.assert_array_equal(unchanged.images, raw_images)
    np.testing.assert_array_equal(unchanged.masks, raw_masks)


def test_training_augmentation_keeps_masks_binary_and_on_the_image():
    mask = disk()
    transform = segmentation_train_transform(64)
    changed = 0
    for seed in range(40):
        transform.set_random_seed(seed)
        out = transform(image=mask * 255, mask=mask)
        assert out["image"].shape == out["mask"].shape == (64, 64)
        assert out["mask"].dtype == np.uint8 and set(np.unique(out["mask"])) <= {0, 1}
        # The image is the mask drawn bright: thresholding it must give back the moved mask.
        assert np.mean((out["image"] > 127) == out["mask"]) > 0.97
        changed += not np.array_equal(out["mask"], mask)
    assert changed >= 10  # the geometric groups (p 0.3, 0.25) did act


def test_distortions_move_image_and_mask_by_the_same_field():
    mask = disk()
    transform = A.Compose([distortions(64, p=1.0)])
    for seed in range(12):
        transform.set_random_seed(seed)
        out = transform(image=mask * 255, mask=mask)
        assert not np.array_equal(out["mask"], mask)
        # Wherever the linearly resampled image is saturated, all its neighbours agreed: so must the mask.
        settled = (out["image"] == 0) | (out["image"] == 255)
        assert settled.mean() > 0.9
        np.testing.assert_array_equal(out["mask"][settled] * 255, out["image"][settled])


def test_dataset_augmentation_follows_torch_seed(tiny_siim):
    dataset = SegmentationDataset(tiny_siim / "train.h5", 32, transform=segmentation_train_transform(32))
    draws = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        draws.append(torch.stack([dataset[i][0] for i in range(len(dataset))]))
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


def test_cache_without_masks_is_rejected(tiny_chestxray14):
    with pytest.raises(InputError, match=r"train\.h5: no 'masks'"):
        SegmentationDataset(tiny_chestxray14 / "train.h5", 32)


def test_soft_dice_loss_matches_a_hand_computation():
    probabilities = torch.tensor([[[1.0, 0.0], [0.5, 0.0]], [[0.25, 0.0], [0.0, 0.0]]])
    targets = torch.tensor([[[1, 0], [1, 0]], [[1, 0], [0, 0]]], dtype=torch.uint8)
    # Pooled over the batch: |P·T| = 1 + 0.5 + 0.25, |P| = 1.75, |T| = 3.
    expected = 1 - (2 * 1.75 + 1) / (1.75 + 3 + 1)
    assert soft_dice_loss(probabilities, targets).item() == pytest.approx(expected)
    assert soft_dice_loss(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4)).item() == 0.0  # nothing to find, none found
    assert soft_dice_loss(torch.ones(1, 2, 2), torch.zeros(1, 2, 2)).item() == pytest.approx(1 - 1 / 5)


def test_soft_dice_loss_has_gradients_towards_the_mask():
    logits = torch.zeros(1, 4, 4, requires_grad=True)
    target = torch.zeros(1, 4, 4)
    target[0, :2] = 1
    soft_dice_loss(torch.sigmoid(logits), target).backward()
    assert (logits.grad[0, :2] < 0).all() and (logits.grad[0, 2:] > 0).all()
