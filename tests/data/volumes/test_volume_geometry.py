"""World mm ↔ voxel index against SimpleITK's own transforms, for identity, flipped, anisotropic and oblique scans."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from dira.data.volumes.geometry import Geometry, array_index, index_to_world, inside, world_to_index

IDENTITY = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
FLIPPED = ((-1, 0, 0), (0, -1, 0), (0, 0, 1))  # LUNA16's other TransformMatrix


def _rotation(ax: float, az: float) -> tuple:
    cx, sx, cz, sz = np.cos(ax), np.sin(ax), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return tuple(map(tuple, rz @ rx))


GEOMETRIES = {
    "identity": Geometry((-180.0, -175.5, -320.25), (0.7, 0.7, 0.7), IDENTITY, (40, 36, 30)),
    "flipped-anisotropic": Geometry((172.3, 160.8, -410.0), (0.62, 0.62, 2.5), FLIPPED, (40, 36, 30)),
    "anisotropic": Geometry((-201.0, -190.0, -88.5), (0.55, 0.8, 1.25), IDENTITY, (40, 36, 30)),
    "oblique": Geometry((12.0, -30.0, 5.0), (0.9, 0.7, 1.6), _rotation(0.3, -0.7), (40, 36, 30)),
}


def _image(geometry: Geometry, array: np.ndarray | None = None) -> sitk.Image:
    image = sitk.GetImageFromArray(np.zeros(geometry.array_shape, np.int16) if array is None else array)
    image.SetOrigin(geometry.origin)
    image.SetSpacing(geometry.spacing)
    image.SetDirection(geometry.flat_direction)
    return image


@pytest.mark.parametrize("name", GEOMETRIES)
def test_world_to_index_and_back_match_simpleitk(name):
    geometry = GEOMETRIES[name]
    image = _image(geometry)
    rng = np.random.default_rng(0)
    index = rng.uniform(-0.5, np.asarray(geometry.size) - 0.5, (50, 3))
    world = np.array([image.TransformContinuousIndexToPhysicalPoint(tuple(map(float, p))) for p in index])
    np.testing.assert_allclose(index_to_world(geometry, index), world, rtol=0, atol=1e-9)
    expected = np.array([image.TransformPhysicalPointToContinuousIndex(tuple(map(float, p))) for p in world])
    np.testing.assert_allclose(world_to_index(geometry, world), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(world_to_index(geometry, index_to_world(geometry, index)), index, atol=1e-9)
    assert Geometry.of(image) == geometry


def test_flipped_scan_puts_world_points_on_the_other_side():
    """Ignoring the matrix (``(world - origin) / spacing``) misplaces points of a flipped scan by the field of view."""
    geometry = GEOMETRIES["flipped-anisotropic"]
    world = index_to_world(geometry, np.array([5.0, 7.0, 3.0]))
    naive = (world - np.asarray(geometry.origin)) / np.asarray(geometry.spacing)
    np.testing.assert_allclose(world_to_index(geometry, world), [5, 7, 3], atol=1e-9)
    np.testing.assert_allclose(naive, [-5, -7, 3], atol=1e-9)
    assert world[0] < geometry.origin[0] and world[1] < geometry.origin[1]  # x and y fall as i and j grow


def test_array_axis_convention_is_z_y_x():
    geometry = GEOMETRIES["anisotropic"]
    array = np.arange(np.prod(geometry.array_shape), dtype=np.int16).reshape(geometry.array_shape)
    image = _image(geometry, array)
    assert geometry.array_shape == sitk.GetArrayFromImage(image).shape == (30, 36, 40)
    for ijk in ((0, 0, 0), (39, 1, 2), (3, 35, 29)):
        assert array[tuple(array_index(np.array(ijk)))] == image.GetPixel(*ijk)


def test_inside_covers_the_voxels_half_width():
    geometry = GEOMETRIES["identity"]
    last = np.asarray(geometry.size) - 1
    assert inside(geometry, np.array([[-0.5, -0.5, -0.5], last + 0.5, [10, 10, 10]])).all()
    assert not inside(geometry, np.array([[-0.51, 0, 0], [0, 36 - 0.49, 0], [0, 0, 40]])).any()


@pytest.mark.parametrize(("field", "value"), [("spacing", (0.7, 0.0, 1.0)), ("size", (10, 0, 3)),
                                              ("direction", ((1, 0, 0), (1, 0, 0), (0, 0, 1))),
                                              ("origin", (0.0, float("nan"), 0.0))])
def test_invalid_geometry_is_refused(field, value):
    fields = {"origin": (0.0, 0.0, 0.0), "spacing": (1.0, 1.0, 1.0), "direction": IDENTITY, "size": (4, 4, 4)}
    with pytest.raises(ValueError, match=field):
        Geometry(**{**fields, field: value})
