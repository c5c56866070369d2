"""Resampling on SimpleITK's grid: against a float64 reference and SimpleITK ``Resample``; HU windowing."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter, map_coordinates

from dira.data.volumes.geometry import Geometry, index_to_world
from dira.data.volumes.intensity import window
from dira.data.volumes.resample import resample, resampled_geometry

FLIPPED = ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0))
IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
CASES = {  # (geometry, target spacing)
    "ct-to-1mm": (Geometry((-180.0, -170.0, -300.0), (0.7, 0.7, 1.25), IDENTITY, (45, 40, 24)), (1.0, 1.0, 1.0)),
    "flipped-thick-slices": (Geometry((175.0, 168.0, -80.0), (0.62, 0.62, 2.5), FLIPPED, (45, 40, 16)),
                             (1.0, 1.0, 1.0)),
    "thin-slices": (Geometry((-150.0, -160.0, -200.0), (0.8, 0.8, 0.625), IDENTITY, (30, 28, 41)), (1.0, 1.0, 1.0)),
    "upsample-and-mixed": (Geometry((10.0, 20.0, 30.0), (1.3, 0.8, 0.9), IDENTITY, (30, 33, 28)), (0.5, 1.1, 0.9)),
}


def _ct(shape: tuple[int, int, int], seed: int, dtype: type = np.int16) -> np.ndarray:
    """A CT-like volume: smooth structure from -1000 to ~+1000 HU with sharp edges and noise."""
    rng = np.random.default_rng(seed)
    smooth = gaussian_filter(rng.normal(0, 1, shape), 2.0)
    volume = np.where(smooth > 0, 40.0, -850.0) + 400 * smooth / smooth.std() + rng.normal(0, 20, shape)
    return np.clip(volume, -1024, 3071).astype(dtype)


def _reference(volume: np.ndarray, geometry: Geometry, target: Geometry) -> np.ndarray:
    """float64 trilinear samples at input index n·new/old per axis (scipy, not the separable code under test)."""
    axes = [np.arange(n) * new / old for n, old, new in zip(target.size, geometry.spacing, target.spacing, strict=True)]
    k, j, i = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return map_coordinates(volume.astype(np.float64), [k, j, i], order=1, mode="nearest")


def _simpleitk(volume: np.ndarray, geometry: Geometry, target: Geometry) -> np.ndarray:
    image = sitk.GetImageFromArray(volume)
    image.SetOrigin(geometry.origin)
    image.SetSpacing(geometry.spacing)
    image.SetDirection(geometry.flat_direction)
    resampled = sitk.Resample(image, target.size, sitk.Transform(), sitk.sitkLinear, target.origin, target.spacing,
                              target.flat_direction, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampled)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_matches_float64_reference_and_simpleitk(case, dtype):
    geometry, spacing = CASES[case]
    volume = _ct(geometry.array_shape, seed=len(case), dtype=dtype)
    out, target = resample(volume, geometry, spacing)
    assert out.dtype == np.float32 and out.shape == target.array_shape
    assert np.abs(out - _reference(volume, geometry, target)).max() <= 0.05  # HU
    float32_rounding = 8 * np.spacing(np.float32(np.abs(volume).max()))  # a few ulps at the largest value
    np.testing.assert_allclose(out, _simpleitk(volume, geometry, target), rtol=0, atol=float32_rounding)


@pytest.mark.parametrize("case", CASES)
def test_output_geometry_keeps_world_positions(case):
    geometry, spacing = CASES[case]
    target = resampled_geometry(geometry, spacing)
    assert (target.origin, target.direction, target.spacing) == (geometry.origin, geometry.direction, spacing)
    for n, (size, old, new) in enumerate(zip(geometry.size, geometry.spacing, spacing, strict=True)):
        last = (target.size[n] - 1) * new / old
        assert last <= size - 1 + 1e-9 < last + new / old  # every sample inside, none left out
    index = np.array([[0, 0, 0], [3, 5, 7], np.asarray(target.size) - 1], dtype=float)
    source = index * np.asarray(spacing) / np.asarray(geometry.spacing)
    np.testing.assert_allclose(index_to_world(target, index), index_to_world(geometry, source), atol=1e-9)


def test_integer_ratio_keeps_the_samples_it_lands_on():
    geometry = Geometry((0.0, 0.0, 0.0), (0.5, 0.5, 0.5), IDENTITY, (9, 7, 5))
    volume = _ct(geometry.array_shape, seed=1)
    out, target = resample(volume, geometry, (1.0, 1.0, 1.0))
    assert target.size == (5, 4, 3)
    np.testing.assert_array_equal(out, volume[::2, ::2, ::2].astype(np.float32))


def test_threads_give_identical_output():
    geometry, spacing = CASES["ct-to-1mm"]
    volume = _ct(geometry.array_shape, seed=3)
    np.testing.assert_array_equal(resample(volume, geometry, spacing, threads=3)[0],
                                  resample(volume, geometry, spacing, threads=1)[0])


def test_bad_arguments_are_refused():
    geometry, spacing = CASES["ct-to-1mm"]
    volume = _ct(geometry.array_shape, seed=3)
    with pytest.raises(ValueError, match="int16 or float32"):
        resample(volume.astype(np.float64), geometry, spacing)
    with pytest.raises(ValueError, match="disagrees with geometry"):
        resample(volume.transpose(2, 1, 0), geometry, spacing)
    with pytest.raises(ValueError, match="target spacing"):
        resample(volume, geometry, (1.0, 0.0, 1.0))


def test_window_clips_and_scales_to_unit_range():
    hu = np.array([-3024, -1000, -500, 0, 999, 1000, 3071], np.int16)
    out = window(hu, -1000, 1000)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([0, 0, 0.25, 0.5, 0.9995, 1, 1], np.float32))
    np.testing.assert_array_equal(window(hu, 0, 500), np.clip(hu / 500, 0, 1).astype(np.float32))
    with pytest.raises(ValueError, match="lower < upper"):
        window(hu, 1000, -1000)
