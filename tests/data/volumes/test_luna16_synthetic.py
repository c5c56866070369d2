"""The synthetic LUNA16 writer: the release's layout and header, anatomy in HU, determinism, overwrite rules."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dira.data.sources.luna16 import ANNOTATIONS, CANDIDATES, SERIES_PREFIX, SYNTHETIC_MARKER, read_luna16, read_scan
from dira.data.synthetic.luna16 import HU, plan_scans, write, write_luna16, write_scan
from dira.data.volumes.geometry import Geometry, index_to_world
from dira.errors import InputError

LUNA_KEYS = ["ObjectType", "NDims", "BinaryData", "BinaryDataByteOrderMSB", "CompressedData", "TransformMatrix",
             "Offset", "CenterOfRotation", "AnatomicalOrientation", "ElementSpacing", "DimSize", "ElementType",
             "ElementDataFile"]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_header(luna_root, luna_spec):
    assert sorted(p.name for p in luna_root.iterdir()) == sorted(
        [ANNOTATIONS, "candidates_V2", SYNTHETIC_MARKER, *(f"subset{k}" for k in range(10))])
    headers = sorted(luna_root.glob("subset*/*.mhd"))
    assert len(headers) == luna_spec.scans
    for header in headers:
        assert header.stem.startswith(SERIES_PREFIX) and re.fullmatch(r"[\d.]+", header.stem)
        fields = dict(line.split(" = ") for line in header.read_text().splitlines())
        assert list(fields) == LUNA_KEYS
        assert fields["TransformMatrix"] in ("1 0 0 0 1 0 0 0 1", "-1 0 0 0 -1 0 0 0 1")
        assert fields["ElementDataFile"] == f"{header.stem}.raw" and fields["ElementType"] == "MET_SHORT"
        nx, ny, nz = map(int, fields["DimSize"].split())
        assert nx == ny == luna_spec.image_size and 30 <= nz <= 60
        assert header.with_suffix(".raw").stat().st_size == 2 * nx * ny * nz
        sx, sy, sz = map(float, fields["ElementSpacing"].split())
        assert sx == sy and 0.55 <= sx <= 0.95 and 1.0 <= sz <= 2.5


def test_geometry_and_anatomy_as_planned(luna_root, luna_spec):
    plans = {p.seriesuid: p for p in plan_scans(luna_spec.scans, luna_spec.image_size, luna_spec.seed)}
    index = read_luna16(luna_root)
    assert set(plans) == set(index.scans)
    assert 1 <= sum(p.flipped for p in plans.values()) < luna_spec.scans
    for uid, scan in index.scans.items():
        volume, geometry = read_scan(scan)
        assert geometry == plans[uid].geometry
        middle = index_to_world(geometry, (np.asarray(geometry.size) - 1) / 2)  # the scanner's isocentre region
        assert np.abs(middle[:2]).max() < 25 and -400 < middle[2] < 0
        assert (np.sign(geometry.origin[:2]) == (1 if plans[uid].flipped else -1)).all()  # as in LUNA16's headers
        share = {name: np.mean((volume >= low) & (volume < high)) for name, (low, high) in
                 {"air": (-3100, -950), "lung": (-900, -800), "tissue": (-150, 150)}.items()}
        assert min(share.values()) > 0.05, share
        assert volume.min() >= -3024 and (volume > 300).any()  # bone


def test_direction_matrix_round_trips_through_simpleitk(tmp_path):
    """``TransformMatrix`` holds the direction column by column: checked with an oblique, non-symmetric matrix."""
    c, s = np.cos(0.4), np.sin(0.4)
    direction = ((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0))
    geometry = Geometry((1.5, -2.0, 3.25), (0.6, 0.7, 2.0), direction, (5, 4, 3))
    write_scan(tmp_path / "x.mhd", np.zeros(geometry.array_shape, np.int16), geometry)
    assert Geometry.of(sitk.ReadImage(str(tmp_path / "x.mhd"))) == geometry


def test_same_arguments_same_bytes(tmp_path):
    first = write_luna16(tmp_path / "a", count=3, image_size=32, seed=11)
    write(tmp_path / "b", count=3, image_size=32, seed=11)  # the CLI's entry point
    write_luna16(tmp_path / "c", count=3, image_size=32, seed=12)
    assert _files(first) == _files(tmp_path / "b")
    assert _files(first) != _files(tmp_path / "c")
    assert _files(first)[ANNOTATIONS] != _files(tmp_path / "c")[ANNOTATIONS]


def test_rewrites_its_own_set_and_refuses_a_real_one(tmp_path):
    root = write_luna16(tmp_path / "luna", count=12, image_size=32, seed=1)
    write_luna16(root, count=2, image_size=32, seed=1)  # a smaller set replaces the earlier one whole
    assert len(list(root.glob("subset*/*.mhd"))) == 2
    assert len((root / CANDIDATES).read_text().splitlines()) - 1 == sum(len(p) for p in read_luna16(root)
                                                                         .candidates.values())
    (root / SYNTHETIC_MARKER).unlink()
    with pytest.raises(InputError, match="refusing to overwrite"):
        write_luna16(root, count=2, image_size=32, seed=1)


@pytest.mark.parametrize(("count", "image_size"), [(0, 64), (3, 16), (3, 1024)])
def test_bad_arguments(tmp_path, count, image_size):
    with pytest.raises(InputError, match="synthetic LUNA16 needs"):
        write_luna16(tmp_path, count=count, image_size=image_size, seed=0)


def test_lungs_are_air_filled(luna_root):
    """Lung voxels (inside a lung ellipsoid, away from vessels and nodules) sit near -850 HU."""
    index = read_luna16(luna_root)
    scan = next(iter(index.scans.values()))
    volume, _ = read_scan(scan)
    lungish = volume[(volume > -950) & (volume < -700)]
    assert lungish.size > 0.05 * volume.size and abs(np.median(lungish) - HU["lung"]) < 10
