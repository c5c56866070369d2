"""The LUNA16 reader: index, points per scan, and each bad input's error naming the file (and CSV line)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dira.data.sources.luna16 import (
    ANNOTATIONS,
    CANDIDATES,
    locate,
    read_luna16,
    read_scan,
    read_scan_geometry,
)
from dira.data.volumes.geometry import Geometry
from dira.data.volumes.metaimage import read_volume
from dira.errors import InputError


def _first_scan(root: Path):
    index = read_luna16(root)
    uid = next(uid for uid in index.scans if len(index.scan_annotations(uid)))
    return index, uid, index.scans[uid]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_index_matches_the_files(luna_root, luna_spec):
    index = read_luna16(luna_root)
    assert index.source == "synthetic" and index.synthetic["scans"] == luna_spec.scans == len(index.scans)
    assert index.subsets == tuple(range(10)) and index.dropped_rows == 0
    assert {scan.header.parent.name for scan in index.scans.values()} == {f"subset{k}" for k in range(luna_spec.scans)}
    lines = {name: (luna_root / name).read_text().splitlines() for name in (ANNOTATIONS, CANDIDATES)}
    assert sum(len(p) for p in index.annotations.values()) == len(lines[ANNOTATIONS]) - 1
    assert sum(len(p) for p in index.candidates.values()) == len(lines[CANDIDATES]) - 1
    for uid in index.scans:
        for name, points in ((ANNOTATIONS, index.scan_annotations(uid)), (CANDIDATES, index.scan_candidates(uid))):
            for world, value, line in zip(points.world, points.value, points.line, strict=True):
                fields = lines[name][line - 1].split(",")  # the row the line number names
                assert fields[0] == uid and np.allclose([float(v) for v in fields[1:4]], world)
                assert float(fields[4]) == value
        positives = index.scan_candidates(uid).world[index.scan_candidates(uid).value == 1]
        np.testing.assert_array_equal(np.sort(positives, axis=0), np.sort(index.scan_annotations(uid).world, axis=0))
        assert (index.scan_candidates(uid).value == 0).sum() >= 40


def test_scan_reads_as_int16_hu_with_its_geometry(luna_root):
    scan = _first_scan(luna_root)[2]
    volume, geometry = read_scan(scan)
    image = sitk.ReadImage(str(scan.header))
    assert volume.dtype == np.int16 and volume.shape == sitk.GetArrayFromImage(image).shape
    assert geometry == Geometry.of(image) == read_scan_geometry(scan)
    assert -1100 < np.median(volume) < 100 and volume.max() > 0  # air, lungs, tissue and bone


def test_partial_download_drops_rows_of_absent_subsets(luna_root):
    index = read_luna16(luna_root, subsets=[0, 1])
    assert {scan.subset for scan in index.scans.values()} == {0, 1}
    assert set(index.annotations) <= set(index.scans) and set(index.candidates) <= set(index.scans)
    assert index.dropped_rows > 0


def test_truncated_raw(luna_copy):
    _, _, scan = _first_scan(luna_copy)
    raw = scan.header.with_suffix(".raw")
    raw.write_bytes(raw.read_bytes()[:-1000])
    with pytest.raises(InputError, match=rf"{re.escape(str(raw))}: \d+ data bytes, but .*truncated data file"):
        read_scan(scan)
    with pytest.raises(InputError, match="truncated"):
        read_scan_geometry(scan)  # checked before any header-only read too


@pytest.mark.parametrize("delta", [+1, -1])
def test_dimsize_disagrees_with_file_size(luna_copy, delta):
    _, _, scan = _first_scan(luna_copy)
    dims = re.search(r"DimSize = (\d+) (\d+) (\d+)", scan.header.read_text())
    _edit(scan.header, dims.group(0), f"DimSize = {dims.group(1)} {dims.group(2)} {int(dims.group(3)) + delta}")
    problem = "truncated data file" if delta > 0 else "data file longer than declared"
    with pytest.raises(InputError, match=rf"but {re.escape(str(scan.header))} declares DimSize .*{problem}"):
        read_scan(scan)


def test_missing_raw(luna_copy):
    _, _, scan = _first_scan(luna_copy)
    scan.header.with_suffix(".raw").unlink()
    with pytest.raises(InputError, match=rf"{re.escape(str(scan.header.with_suffix('.raw')))}: data file .* not found"):
        read_scan(scan)


def test_header_that_is_not_metaimage(luna_copy):
    _, _, scan = _first_scan(luna_copy)
    _edit(scan.header, "ElementType = MET_SHORT", "ElementType = MET_FLOAT")
    with pytest.raises(InputError, match=rf"{re.escape(str(scan.header))}: ElementType MET_FLOAT .* int16 is expected"):
        read_scan(scan)  # LUNA16 scans are int16 HU
    with pytest.raises(InputError, match=r"truncated"):
        read_scan_geometry(scan)  # and 4-byte voxels would need twice the file
    scan.header.write_text("just some text\n")
    with pytest.raises(InputError, match=rf"{re.escape(str(scan.header))}: not a MetaImage header"):
        read_scan(scan)


@pytest.mark.parametrize(("name", "column"), [(ANNOTATIONS, "diameter_mm"), (CANDIDATES, "class"),
                                              (CANDIDATES, "coordY")])
def test_csv_with_a_missing_column(luna_copy, name, column):
    path = luna_copy / name
    header, *rows = path.read_text().splitlines()
    drop = header.split(",").index(column)
    path.write_text("\n".join(",".join(f for n, f in enumerate(line.split(",")) if n != drop)
                              for line in [header, *rows]) + "\n")
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}: missing column\(s\) {column}"):
        read_luna16(luna_copy)


@pytest.mark.parametrize(("name", "field", "bad", "message"), [
    (ANNOTATIONS, 2, "n/a", "coordY 'n/a' is not a number"), (ANNOTATIONS, 4, "-3", "diameter_mm must be positive"),
    (CANDIDATES, 4, "2", "class must be 0 or 1"), (CANDIDATES, 3, "", "coordZ '' is not a number")])
def test_csv_bad_value_names_its_line(luna_copy, name, field, bad, message):
    path = luna_copy / name
    lines = path.read_text().splitlines()
    fields = lines[3].split(",")
    fields[field] = bad
    lines[3] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}: line 4: {re.escape(message)}"):
        read_luna16(luna_copy)


def test_seriesuid_without_a_scan(luna_copy):
    path = luna_copy / CANDIDATES
    with path.open("a") as f:
        f.write("1.3.6.1.4.1.14519.5.2.1.6279.6001.999,0,0,0,0\n")
    line = len(path.read_text().splitlines())
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}: line {line}: seriesuid .*\.999 has no scan"):
        read_luna16(luna_copy)


def test_candidate_outside_its_volume(luna_copy):
    _, uid, scan = _first_scan(luna_copy)
    path = luna_copy / CANDIDATES
    with path.open("a") as f:
        f.write(f"{uid},0,0,5000,0\n")
    line = len(path.read_text().splitlines())
    index = read_luna16(luna_copy)
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}: line {line}: point \(0, 0, 5000\) mm lies outside "
                                         rf"scan {re.escape(uid)}"):
        locate(index.scan_candidates(uid), read_scan_geometry(scan), uid)
    locate(index.scan_annotations(uid), read_scan_geometry(scan), uid)  # the scan's other points are fine


def test_missing_subset_folder_and_csv(luna_copy):
    (luna_copy / "subset9").rename(luna_copy / "elsewhere")
    with pytest.raises(InputError, match=rf"{re.escape(str(luna_copy / 'subset9'))}: LUNA16 subset folder not found"):
        read_luna16(luna_copy)
    (luna_copy / "elsewhere").rename(luna_copy / "subset9")
    (luna_copy / ANNOTATIONS).unlink()
    with pytest.raises(InputError, match=rf"{re.escape(str(luna_copy / ANNOTATIONS))}: LUNA16 CSV not found"):
        read_luna16(luna_copy)


def test_local_data_in_the_header_file(tmp_path):
    """``ElementDataFile = LOCAL`` (data after the header, one file) is checked and read too."""
    volume = np.arange(4 * 3 * 2, dtype=np.int16).reshape(2, 3, 4) - 12
    header = ("ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
              "ElementSpacing = 0.5 0.5 2\nDimSize = 4 3 2\nElementType = MET_SHORT\nElementDataFile = LOCAL\n")
    path = tmp_path / "local.mhd"
    path.write_bytes(header.encode() + volume.astype("<i2").tobytes())
    array, geometry = read_volume(path, np.int16)
    np.testing.assert_array_equal(array, volume)
    assert geometry.spacing == (0.5, 0.5, 2.0)
    path.write_bytes(header.encode() + volume.astype("<i2").tobytes()[:-2])
    with pytest.raises(InputError, match="truncated"):
        read_volume(path, np.int16)


def test_blank_line_keeps_line_numbers_true(luna_copy):
    path = luna_copy / ANNOTATIONS
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:2], "", *lines[2:]]) + "\n")
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}: line 3: coordX '' is not a number"):
        read_luna16(luna_copy)
