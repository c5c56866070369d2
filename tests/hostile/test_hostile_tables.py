"""Hostile label tables: wrong field counts, wrong types, duplicate ids, BOMs and CRLF, overflowing RLEs and
points outside the volume. Each is refused with the file and line named (or, for SIIM's RLEs, skipped and
reported with that line), and a BOM or CRLF file reads exactly as the plain one does.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dira.data.sources import chestxray14, chexpert, luna16, siim
from dira.data.sources.rle import encode_rle
from dira.data.volumes.geometry import Geometry
from dira.errors import InputError

HOSTILE = settings.get_profile("hostile")
CELL = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters='",\r\n'), max_size=8)


def _write(path: Path, lines: list[str], *, bom: bool = False, crlf: bool = False) -> Path:
    path.write_bytes(("\ufeff" if bom else "").encode() + ("\r\n" if crlf else "\n").join(lines).encode() + b"\n")
    return path


def _line(n: int) -> str:
    return f", line {n}:"


# ---- ChestX-ray14: Data_Entry_2017_v2020.csv --------------------------------------------------------------

def _entry(image: str, patient: str = "1", findings: str = "No Finding") -> str:
    return f"{image},{findings},0,{patient},50,M,PA,1024,1024,0.14,0.14"


def _entries(*rows: str) -> list[str]:
    return [chestxray14.DATA_ENTRY_HEADER_LINE, *rows]


@settings(HOSTILE, max_examples=60)
@given(fields=st.lists(CELL, min_size=2, max_size=16))  # one empty field is a blank line, skipped
def test_cxr14_row_with_missing_or_extra_fields_names_the_line(fields, tmp_path):
    if len(fields) >= 11 and not any(f.strip() for f in fields[11:]):
        fields = fields[:5]  # 11 fields (plus empty trailing ones) is a well-formed row; make it short
    path = _write(tmp_path / "Data_Entry_2017_v2020.csv", _entries(_entry("a.png"), ",".join(fields)))
    with pytest.raises(InputError, match=re.escape(f"{path}, line 3: expected 11 fields")):
        chestxray14.read_data_entry(path)


@settings(HOSTILE, max_examples=40)
@given(patient=CELL, findings=st.sampled_from(["No Finding", "Mass|Nodule", "Hernia"]))
def test_cxr14_patient_id_that_is_not_an_integer_names_the_line(patient, findings, tmp_path):
    try:
        int(patient)
        return  # an integer (" 7", "٣" too): a valid Patient ID
    except ValueError:
        pass
    path = _write(tmp_path / "Data_Entry_2017_v2020.csv", _entries(_entry("a.png"), _entry("b.png", patient, findings)))
    with pytest.raises(InputError, match=re.escape(f"{path}, line 3: Patient ID")):
        chestxray14.read_data_entry(path)


def test_cxr14_duplicate_image_and_unknown_finding_name_the_line(tmp_path):
    path = _write(tmp_path / "Data_Entry_2017_v2020.csv", _entries(_entry("a.png"), _entry("a.png")))
    with pytest.raises(InputError, match=re.escape(f"{path}, line 3: image a.png appears twice")):
        chestxray14.read_data_entry(path)
    _write(path, _entries(_entry("a.png", findings="Mass|Cancer")))
    with pytest.raises(InputError, match=re.escape(f"{path}, line 2: unknown finding 'Cancer'")):
        chestxray14.read_data_entry(path)


@pytest.mark.parametrize(("bom", "crlf"), [(True, False), (False, True), (True, True)])
def test_cxr14_bom_and_crlf_read_as_the_plain_file(bom, crlf, tmp_path):
    rows = _entries(_entry("a.png", "1", "Mass|Nodule"), _entry("b.png", "2"))
    plain = chestxray14.read_data_entry(_write(tmp_path / "plain.csv", rows))
    other = chestxray14.read_data_entry(_write(tmp_path / "other.csv", rows, bom=bom, crlf=crlf))
    assert plain.keys() == other.keys() and all(
        plain[k][0] == other[k][0] and np.array_equal(plain[k][1], other[k][1]) for k in plain)


# ---- CheXpert: train.csv / valid.csv ---------------------------------------------------------------------

def _chexpert_row(patient: int, cells: list[str] | None = None) -> str:
    cells = cells if cells is not None else ["1.0", "0.0", "-1.0", ""] + [""] * 10
    return ",".join([f"CheXpert-v1.0-small/train/patient{patient:05d}/study1/view1_frontal.jpg", "Male", "60",
                     "Frontal", "PA", *cells])


@settings(HOSTILE, max_examples=60)
@given(cells=st.lists(st.one_of(st.sampled_from(["1.0", "0.0", "-1.0", ""]), CELL), min_size=10, max_size=18))
def test_chexpert_bad_label_cells_or_field_count_name_the_line(cells, tmp_path):
    path = _write(tmp_path / "train.csv", [chexpert.HEADER_LINE, _chexpert_row(1), _chexpert_row(2, cells)])
    valid = len(cells) == 14 and all(c in ("1.0", "0.0", "-1.0", "") for c in cells)
    if valid:
        assert len(chexpert.read_label_csv(path, tmp_path)) == 2
        return
    with pytest.raises(InputError, match=re.escape(f"{path}, line 3")):
        chexpert.read_label_csv(path, tmp_path)


def test_chexpert_duplicate_path_and_bom_crlf(tmp_path):
    path = _write(tmp_path / "train.csv", [chexpert.HEADER_LINE, _chexpert_row(1), _chexpert_row(1)])
    with pytest.raises(InputError, match=re.escape(f"{path}, line 3: ") + ".*also listed on line 2"):
        chexpert.read_label_csv(path, tmp_path)
    rows = [chexpert.HEADER_LINE, _chexpert_row(1), _chexpert_row(2)]
    plain = chexpert.read_label_csv(_write(tmp_path / "a.csv", rows), tmp_path)
    other = chexpert.read_label_csv(_write(tmp_path / "b.csv", rows, bom=True, crlf=True), tmp_path)
    assert [(i.id, i.codes.tolist()) for i in plain] == [(i.id, i.codes.tolist()) for i in other]


# ---- SIIM-ACR: train-rle.csv, skip-and-report -----------------------------------------------------------

RLE_TOKEN = st.one_of(st.integers(-3, 400).map(str), CELL)


@settings(HOSTILE, max_examples=80)
@given(tokens=st.lists(RLE_TOKEN, max_size=8), extra=st.booleans())
def test_siim_malformed_rle_row_is_skipped_and_reported_with_its_line(tokens, extra, tmp_path):
    encoded = " ".join(tokens)
    row = f"img2, {encoded}" + (", extra" if extra else "")
    path = _write(tmp_path / "train-rle.csv", ["ImageId, EncodedPixels", "img1, -1", row, "img3, 1 2"],
                  bom=True, crlf=True)
    reported: list[tuple[str, Path, InputError]] = []
    listed, rows = siim.read_rle_csv(path, lambda *bad: reported.append(bad))
    assert listed == ["img1", "img2", "img3"] and {"img1", "img3"} <= rows.keys()
    try:
        if extra:
            raise ValueError
        siim.rle_runs(encoded.strip())
    except ValueError:
        assert "img2" not in rows and len(reported) == 1, reported
        image_id, file, error = reported[0]
        assert (image_id, file) == ("img2", path) and str(error).startswith(f"{path}, line 3: image img2")
    else:
        assert rows["img2"] == [(3, encoded.strip())] and not reported


@settings(HOSTILE, max_examples=60)
@given(offset=st.integers(0, 300), length=st.integers(1, 300))
def test_siim_rle_that_overflows_the_frame_names_the_row(offset, length, tmp_path):
    height, width = 12, 16
    encoded = f"{encode_rle(np.eye(height, width, dtype=np.uint8))} {offset} {length}"
    ends = siim.rle_runs(encoded)[1]
    image = siim.SiimImage("img", tmp_path / "img.dcm", ("1 2", encoded), (2, 5), height, width)
    if ends[-1] <= height * width:
        assert siim.load_mask(image, tmp_path / "train-rle.csv").sum() > 0
        return
    with pytest.raises(InputError, match=re.escape("train-rle.csv, line 5: image img: RLE runs end at pixel")):
        siim.load_mask(image, tmp_path / "train-rle.csv")


# ---- LUNA16: annotations.csv / candidates.csv, and points outside the scan ------------------------------

UID = luna16.SERIES_PREFIX + "1"
SCANS = {UID: luna16.Scan(UID, 0, Path("subset0") / f"{UID}.mhd")}


def _points(path: Path, strict: bool = True):
    return luna16._read_points(path, luna16.ANNOTATION_COLUMNS, SCANS, strict)


@settings(HOSTILE, max_examples=60)
@given(value=CELL, column=st.integers(1, 4))
def test_luna16_cell_that_is_not_a_positive_number_names_the_line(value, column, tmp_path):
    fields = [UID, "1.0", "2.0", "3.0", "5.0"]
    fields[column] = value
    header = ",".join(luna16.ANNOTATION_COLUMNS)
    path = _write(tmp_path / "annotations.csv", [header, f"{UID},0,0,0,4", ",".join(fields)])
    try:
        number = float(value)
        ok = np.isfinite(number) and (column < 4 or number > 0)
    except ValueError:
        ok = False
    if ok:
        assert _points(path)[0][UID].line.tolist() == [2, 3]
        return
    with pytest.raises(InputError, match=re.escape(f"{path}: line 3: ")):
        _points(path)


def test_luna16_missing_column_unknown_scan_and_bom_crlf(tmp_path):
    header = ",".join(luna16.ANNOTATION_COLUMNS)
    path = _write(tmp_path / "annotations.csv", [header.replace(",diameter_mm", ""), f"{UID},0,0,0"])
    with pytest.raises(InputError, match=re.escape(f"{path}: missing column(s) diameter_mm")):
        _points(path)
    _write(path, [header, f"{UID},0,0,0,4", f"{UID}9,0,0,0,4"])
    with pytest.raises(InputError, match=re.escape(f"{path}: line 3: seriesuid {UID}9 has no scan")):
        _points(path)
    rows = [header, f"{UID},1.5,-2,3,4"]
    plain = _points(_write(tmp_path / "plain.csv", rows))[0][UID]
    other = _points(_write(tmp_path / "other.csv", rows, bom=True, crlf=True))[0][UID]
    assert np.array_equal(plain.world, other.world) and plain.line.tolist() == other.line.tolist() == [2]


GEOMETRY = Geometry((-10.0, -20.0, -30.0), (0.7, 0.7, 2.5), np.eye(3), (32, 32, 12))


@settings(HOSTILE, max_examples=80)
@given(world=st.tuples(*[st.floats(-60, 60, allow_nan=False)] * 3))
def test_luna16_point_outside_the_scan_names_its_line(world, tmp_path):
    file = tmp_path / "annotations.csv"
    points = luna16.Points(file, np.array([[-5.0, -15.0, -25.0], world]), np.array([4.0, 4.0]), np.array([2, 7]))
    index = (np.asarray(world) - np.asarray(GEOMETRY.origin)) / np.asarray(GEOMETRY.spacing)
    inside = bool(np.all((index >= -0.5) & (index <= np.asarray(GEOMETRY.size) - 0.5)))
    if inside:
        assert np.allclose(luna16.locate(points, GEOMETRY, UID)[1], index)
        return
    with pytest.raises(InputError, match=re.escape(f"{file}: line 7: point (") + ".*lies outside scan " + UID):
        luna16.locate(points, GEOMETRY, UID)
