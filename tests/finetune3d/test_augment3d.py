"""The 3D fine-tuning augmentation: rates of each operation, what each keeps, and that it is a pure function."""

from __future__ import annotations

import numpy as np
import pytest

from dira.data.augment3d import Augmentation3D, GeometricDraw, apply_geometry, augment, draw_geometry

NONE = dict(flip_prob=0.0, transpose_prob=0.0, rotate_prob=0.0, noise_prob=0.0, noise_std=0.0)
DRAWS = 4000


def params(**changes) -> Augmentation3D:
    return Augmentation3D(**{**NONE, **changes})


def test_each_axis_flips_independently_at_its_rate():
    rng = np.random.default_rng(0)
    flips = np.array([draw_geometry(rng, (8, 16, 16), params(flip_prob=0.3)).flips for _ in range(DRAWS)])
    assert np.allclose(flips.mean(axis=0), 0.3, atol=0.03)
    assert abs(np.corrcoef(flips.T)[0, 1]) < 0.06 and abs(np.corrcoef(flips.T)[1, 2]) < 0.06


def test_transpose_and_quarter_turns_only_where_the_crop_is_square_in_plane():
    rng = np.random.default_rng(1)
    p = params(transpose_prob=0.5, rotate_prob=0.6)
    square = [draw_geometry(rng, (8, 16, 16), p) for _ in range(DRAWS)]
    assert np.mean([d.transpose for d in square]) == pytest.approx(0.5, abs=0.03)
    turns = np.bincount([d.quarter_turns for d in square], minlength=4) / DRAWS
    assert turns[0] == pytest.approx(0.4, abs=0.03)
    assert np.allclose(turns[1:], 0.2, atol=0.03)  # 1, 2 or 3 quarter turns alike
    oblong = [draw_geometry(rng, (8, 16, 24), p) for _ in range(DRAWS)]
    assert not any(d.transpose for d in oblong)
    assert {d.quarter_turns for d in oblong} == {0, 2}


def test_the_in_plane_draws_reach_exactly_the_eight_symmetries_of_the_square():
    plane = np.arange(4).reshape(1, 2, 2)  # z = 1
    rng = np.random.default_rng(2)
    p = params(flip_prob=0.5, transpose_prob=0.5, rotate_prob=0.5)
    seen = {apply_geometry(plane, draw_geometry(rng, plane.shape, p)).tobytes() for _ in range(500)}
    dihedral = set()
    for k in range(4):
        rotated = np.rot90(plane, k, axes=(1, 2))
        dihedral |= {rotated.tobytes(), np.swapaxes(rotated, 1, 2).tobytes()}
    assert seen == dihedral and len(dihedral) == 8


def test_geometry_moves_image_and_mask_together_and_keeps_every_value():
    rng = np.random.default_rng(3)
    image = rng.random((2, 6, 8, 8)).astype(np.float32)  # (C, z, y, x)
    mask = (image[1] > 0.7).astype(np.uint8)
    p = params(flip_prob=0.5, transpose_prob=0.5, rotate_prob=0.5)
    for _ in range(20):
        out_image, out_mask = augment(image, mask, rng, p)
        assert out_image.shape == image.shape and out_mask.shape == mask.shape and out_mask.dtype == np.uint8
        assert np.array_equal(out_mask, (out_image[1] > 0.7).astype(np.uint8))  # labels follow their voxels
        assert np.array_equal(np.sort(out_image, axis=None), np.sort(image, axis=None))


def test_each_operation_is_the_transform_it_names():
    cube = np.arange(2 * 3 * 3).reshape(2, 3, 3)
    assert np.array_equal(apply_geometry(cube, GeometricDraw((True, False, False), False, 0)), cube[::-1])
    assert np.array_equal(apply_geometry(cube, GeometricDraw((False, False, True), False, 0)), cube[:, :, ::-1])
    assert np.array_equal(apply_geometry(cube, GeometricDraw((False, False, False), True, 0)), cube.transpose(0, 2, 1))
    turned = apply_geometry(cube, GeometricDraw((False, False, False), False, 1))
    assert turned[0, 0, 0] == cube[0, 0, 2]  # counter-clockwise in (y, x): the last column becomes the first row


def test_noise_has_the_configured_spread_and_spares_the_mask():
    rng = np.random.default_rng(4)
    image = np.full((8, 16, 16), 0.5, np.float32)
    mask = np.zeros((8, 16, 16), np.uint8)
    mask[2:5, 3:9, 4:7] = 1
    noisy, same_mask = augment(image, mask, rng, params(noise_prob=1.0, noise_std=0.05))
    assert np.array_equal(same_mask, mask)
    assert abs((noisy - image).mean()) < 0.005 and (noisy - image).std() == pytest.approx(0.05, rel=0.05)
    applied = [not np.array_equal(augment(image, None, rng, params(noise_prob=0.25, noise_std=0.05))[0], image)
               for _ in range(2000)]
    assert np.mean(applied) == pytest.approx(0.25, abs=0.03)


def test_augment_is_a_pure_function_of_its_generator():
    image = np.random.default_rng(5).random((8, 16, 16)).astype(np.float32)
    before = image.copy()
    p = params(flip_prob=0.5, transpose_prob=0.5, rotate_prob=0.5, noise_prob=0.5, noise_std=0.1)
    first = augment(image, None, np.random.default_rng(9), p)[0]
    again = augment(image, None, np.random.default_rng(9), p)[0]
    assert np.array_equal(first, again) and np.array_equal(image, before)
    assert not all(np.array_equal(first, augment(image, None, np.random.default_rng(s), p)[0]) for s in range(10, 14))


def test_bad_parameters_and_shapes_are_refused():
    with pytest.raises(ValueError, match="flip_prob"):
        params(flip_prob=1.5)
    with pytest.raises(ValueError, match="noise_std"):
        params(noise_std=-0.1)
    with pytest.raises(ValueError, match="mask shape"):
        augment(np.zeros((8, 16, 16)), np.zeros((8, 16, 8)), np.random.default_rng(0), params())
