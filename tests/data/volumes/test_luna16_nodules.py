"""A nodule at a known world position is found at the voxel the geometry predicts, before and after resampling.

The scans go through the files (``.mhd`` + ``.raw``) and the reader, in flipped and unflipped geometries with
anisotropic voxels. A blob's centre is the intensity-weighted centroid of the connected voxels above -400 HU
that hold the predicted voxel, and its size must be that of the nodule (not of the body or a vessel).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dira.data.sources.luna16 import Scan, locate, read_luna16, read_scan
from dira.data.synthetic.luna16 import FLIPPED, IDENTITY, Anatomy, Nodule, draw, plan_anatomy, write_scan
from dira.data.volumes.geometry import Geometry, array_index, world_to_index
from dira.data.volumes.resample import resample

LUNG_HU, THRESHOLD_HU = -850.0, -400.0


def blob(volume: np.ndarray, geometry: Geometry, world: np.ndarray) -> tuple[np.ndarray, float]:
    """(centroid as a continuous (i, j, k) index, volume in mm³) of the blob at the voxel nearest ``world``."""
    seed = tuple(np.rint(array_index(world_to_index(geometry, world))).astype(int))
    labels, _ = ndimage.label(volume > THRESHOLD_HU)
    assert labels[seed] > 0, f"no blob at voxel {seed} (HU {volume[seed]})"
    component = labels == labels[seed]
    region = ndimage.binary_dilation(component, iterations=1)  # the partial-volume rim too
    weights = np.where(region, np.clip(volume.astype(np.float64) - LUNG_HU, 0, None), 0)
    kji = np.stack(np.nonzero(weights), axis=1)
    centroid = (kji * weights[weights > 0][:, None]).sum(axis=0) / weights.sum()
    return centroid[::-1], component.sum() * float(np.prod(geometry.spacing))


def assert_nodule_at(volume: np.ndarray, geometry: Geometry, nodule: Nodule) -> None:
    centre = np.asarray(nodule.centre)
    predicted = world_to_index(geometry, centre)
    found, size = blob(volume, geometry, centre)
    assert np.abs(found - predicted).max() < 0.5, (found, predicted)
    sphere = np.pi / 6 * nodule.diameter**3
    assert 0.3 * sphere < size < 1.6 * sphere  # the nodule (thin ones shrink by partial volume), not the body


@pytest.mark.parametrize(("direction", "spacing"), [(IDENTITY, (0.7, 0.7, 1.25)), (FLIPPED, (0.62, 0.62, 2.5)),
                                                    (FLIPPED, (0.9, 0.9, 1.0))])
def test_nodule_at_known_world_position(tmp_path, direction, spacing):
    size = (64, 64, 48)
    half = np.asarray(direction) @ (np.asarray(spacing) * (np.asarray(size) - 1) / 2)
    geometry = Geometry(tuple(np.array([3.0, -12.0, -160.0]) - half), spacing, direction, size)
    anatomy = plan_anatomy(np.random.default_rng(1), geometry, want_nodules=0)
    lung_centre, lung_axes = np.asarray(anatomy.lungs[0][0]), np.asarray(anatomy.lungs[0][1])
    world = lung_centre + np.array([0.23, -0.31, 0.17]) * lung_axes  # off-centre on every axis
    nodule = Nodule(tuple(world), diameter=max(5.0, 2.2 * spacing[2]), hu=20.0)
    anatomy = Anatomy(anatomy.centre, anatomy.body_axes, anatomy.lungs, anatomy.spine, (), (nodule,), None)
    header = tmp_path / "1.2.3.mhd"
    write_scan(header, draw(geometry, anatomy, np.random.default_rng(2)), geometry)

    volume, read_geometry = read_scan(Scan("1.2.3", 0, header))
    assert read_geometry == geometry
    assert_nodule_at(volume, geometry, nodule)
    if direction == FLIPPED:  # (world - origin) / spacing lands in the other lung or outside the volume
        naive = tuple(np.rint(((world - geometry.origin) / np.asarray(spacing))[::-1]).astype(int))
        assert min(naive) < 0 or volume[naive] < THRESHOLD_HU

    resampled, target = resample(volume, geometry, (1.0, 1.0, 1.0))
    assert target.direction == geometry.direction
    assert_nodule_at(resampled, target, nodule)


def test_every_annotated_nodule_of_the_synthetic_set(luna_root):
    index = read_luna16(luna_root)
    resampled_kinds = set()
    for uid, scan in index.scans.items():
        volume, geometry = read_scan(scan)
        annotations = index.scan_annotations(uid)
        locate(annotations, geometry, uid)  # inside the volume
        nodules = [Nodule(tuple(w), float(d), 0.0) for w, d in zip(annotations.world, annotations.value, strict=True)]
        for nodule in nodules:
            assert_nodule_at(volume, geometry, nodule)
        flipped = geometry.direction == FLIPPED
        if nodules and flipped not in resampled_kinds:  # one flipped and one unflipped scan, at 1 mm
            resampled_kinds.add(flipped)
            resampled, target = resample(volume, geometry, (1.0, 1.0, 1.0), threads=2)
            for nodule in nodules:
                assert_nodule_at(resampled, target, nodule)
    assert resampled_kinds == {True, False}
