"""Hostile annotation files: LIDC-IDRI XML reads, ChestX-ray14's BBox_List_2017.csv and split lists, BraTS folds.

Truncated or garbage XML, missing or empty tags, coordinates that are not finite numbers, rois at no slice or
off the image, boxes outside their PNG, unknown / repeated / leaked names and bytes that are not UTF-8: each
is an InputError naming the file (and the line, or the reader, nodule and roi), never a library's exception
nor a silently different result; a BOM or CRLF file reads as the plain one.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dira.data.sources import brats, chestxray14, lidc
from dira.data.synthetic.lidc import plan_patients, read_xml
from dira.data.volumes.dicom_series import Series
from dira.data.volumes.geometry import Geometry
from dira.errors import InputError

HOSTILE = settings.get_profile("hostile")
BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines splits on
TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters=BREAKS + "\ufeff"), max_size=8)
CELL = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters=BREAKS + '",\ufeff'), max_size=8)
XML_TEXT = st.text(st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="\ufffe\uffff"), max_size=8)
NUMBERISH = st.sampled_from(["nan", "-inf", "Infinity", "1e999", "", "  ", "0x10", "12abc", "1.5.2", " 7 ", "3e2"])


def _write(path: Path, lines: list[str], *, bom: bool = False, crlf: bool = False) -> Path:
    path.write_bytes(("\ufeff" if bom else "").encode() + ("\r\n" if crlf else "\n").join(lines).encode() + b"\n")
    return path


# ---- LIDC-IDRI XML reads (lidc.parse_read) ---------------------------------------------------------------

# (servicingRadiologistID, ((noduleID, ((imageZposition, imageSOP_UID, inclusion, ((x, y), ...)), ...)), ...))
SESSIONS = (
    ("1001", (("Nodule 001", ((-10.0, "1.2.3.4", True, ((3, 3), (6, 3), (6, 6))),
                              (-7.5, "1.2.3.5", False, ((4, 4), (5, 4), (5, 5))))),
              ("small-1", ((-5.0, "1.2.3.6", True, ((2, 7),)),)))),
    ("1002", (("Nodule 001", ((-10.0, "1.2.3.4", True, ((2, 2), (7, 2), (7, 7), (2, 7))),)),)),
)


def _lidc_xml() -> str:
    sessions = []
    for radiologist, nodules in SESSIONS:
        body = []
        for label, rois in nodules:
            parts = [f"<unblindedReadNodule>\n<noduleID>{label}</noduleID>\n"]
            for z, sop, inclusion, points in rois:
                edges = "".join(f"<edgeMap><xCoord>{x}</xCoord><yCoord>{y}</yCoord></edgeMap>\n" for x, y in points)
                parts.append(f"<roi>\n<imageZposition>{z}</imageZposition>\n<imageSOP_UID>{sop}</imageSOP_UID>\n"
                             f"<inclusion>{'TRUE' if inclusion else 'FALSE'}</inclusion>\n{edges}</roi>\n")
            body.append("".join(parts) + "</unblindedReadNodule>\n")
        sessions.append(f"<readingSession>\n<servicingRadiologistID>{radiologist}</servicingRadiologistID>\n"
                        f"{''.join(body)}</readingSession>\n")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<LidcReadMessage xmlns="http://www.nih.gov">\n<ResponseHeader>\n'
            "<SeriesInstanceUid>1.2.9</SeriesInstanceUid>\n<StudyInstanceUID>1.2.8</StudyInstanceUID>\n"
            f"</ResponseHeader>\n{''.join(sessions)}</LidcReadMessage>\n")


def _where(xml: Path, tag: str) -> list[str]:
    """The message prefix the reader gives for each occurrence of ``tag``, in document order."""
    if tag in ("ResponseHeader", "SeriesInstanceUid"):
        return [str(xml)]
    out = []
    for number, (radiologist, nodules) in enumerate(SESSIONS):
        reader = f"{xml}: {xml.stem}/{number}/{radiologist}"
        for label, rois in nodules:
            if tag == "noduleID":
                out.append(reader)
                continue
            for n, (*_, points) in enumerate(rois, start=1):
                out += [f"{reader} nodule {label} roi {n}"] * (len(points) if tag in ("xCoord", "yCoord") else 1)
    return out


def _summary(read: lidc.Read | None):
    return None if read is None else (read.series_uid, read.study_uid, read.readers, [
        (n.reader, n.nodule_id, [(r.z, r.sop_uid, r.inclusion, r.xy.tolist()) for r in n.rois]) for n in read.nodules])


@cache
def _synthetic_xml() -> bytes:
    return read_xml(plan_patients(1, 32, 0)[0]).encode()


@settings(HOSTILE, max_examples=60)
@given(data=st.data())
def test_lidc_truncated_xml_is_refused_naming_the_file(data, tmp_path):
    full = _synthetic_xml()
    cut = data.draw(st.integers(0, len(full) - 1))
    path = tmp_path / "069.xml"
    path.write_bytes(full[:cut])
    if full[:cut].rstrip() == full.rstrip():  # only the final newline lost: the same read
        path.write_bytes(full)
        expected = _summary(lidc.parse_read(path))
        path.write_bytes(full[:cut])
        assert _summary(lidc.parse_read(path)) == expected
        return
    with pytest.raises(InputError, match=re.escape(f"{path}: unreadable XML (ParseError: ")):
        lidc.parse_read(path)


# read as ASCII, refused by expat, unknown (LookupError), multi-byte (ValueError), failing codecs (UnicodeError)
ENCODINGS = ["latin-1", "ascii", "utf-16", "cp500", "big5", "shift_jis", "base64", "idna", "punycode", "no-such"]


@settings(HOSTILE, max_examples=80)
@given(garbage=st.one_of(
    st.binary(max_size=400),
    st.binary(min_size=1, max_size=40).map(lambda junk: _lidc_xml().encode() + junk),  # junk after the document
    st.one_of(TEXT, st.sampled_from(ENCODINGS)).map(
        lambda name: _lidc_xml().replace('encoding="UTF-8"', f'encoding="{escape(name)}"').encode())))
def test_lidc_garbage_or_an_unknown_encoding_is_refused_naming_the_file(garbage, tmp_path):
    path = tmp_path / "070.xml"
    path.write_text(_lidc_xml())
    plain = _summary(lidc.parse_read(path))
    path.write_bytes(garbage)
    try:
        read = lidc.parse_read(path)
    except InputError as err:
        assert str(err).startswith(f"{path}: "), err
    else:  # trailing whitespace, or an encoding that reads these ASCII bytes as ASCII: the same read
        assert _summary(read) == plain


BOTH = ("removed", "emptied")
DAMAGE = [("ResponseHeader", "removed", "no <ResponseHeader>"),
          ("ResponseHeader", "emptied", "<ResponseHeader> has no <SeriesInstanceUid>"),
          *[("SeriesInstanceUid", mode, "<ResponseHeader> has no <SeriesInstanceUid>") for mode in BOTH],
          *[("noduleID", mode, "<unblindedReadNodule> has no <noduleID>") for mode in BOTH],
          *[(tag, mode, f"<roi> has no <{tag}>") for tag in ("inclusion", "imageSOP_UID", "imageZposition")
            for mode in BOTH],
          ("edgeMap", "removed", "<roi> has no <edgeMap>"), ("edgeMap", "emptied", "<edgeMap> has no <xCoord>"),
          *[(tag, mode, f"<edgeMap> has no <{tag}>") for tag in ("xCoord", "yCoord") for mode in BOTH]]


@pytest.mark.parametrize(("tag", "mode", "problem"), DAMAGE, ids=[f"{t}-{m}" for t, m, _ in DAMAGE])
@settings(HOSTILE, max_examples=12)  # every occurrence: 1 to 11 of each tag
@given(data=st.data())
def test_lidc_missing_or_empty_required_tag_names_the_file_reader_and_nodule(tag, mode, problem, data, tmp_path):
    text = _lidc_xml()
    whole = r"(?:<edgeMap>.*?</edgeMap>\n)+" if (tag, mode) == ("edgeMap", "removed") else rf"<{tag}>.*?</{tag}>\n?"
    matches = list(re.finditer(whole, text, re.DOTALL))
    path = tmp_path / "071.xml"
    wheres = _where(path, "xCoord" if tag == "edgeMap" and mode == "emptied" else tag)
    assert len(matches) == len(wheres)
    k = data.draw(st.integers(0, len(matches) - 1), label="occurrence")
    hit = matches[k]
    path.write_text(text[:hit.start()] + ("" if mode == "removed" else f"<{tag}> </{tag}>") + text[hit.end():])
    with pytest.raises(InputError, match=re.escape(f"{wheres[k]}: {problem}")):
        lidc.parse_read(path)


@pytest.mark.parametrize("tag", ["xCoord", "yCoord", "imageZposition"])
@settings(HOSTILE, max_examples=40)
@given(value=st.one_of(NUMBERISH, XML_TEXT, st.floats(allow_nan=False).map(repr)), data=st.data())
def test_lidc_coordinate_or_z_that_is_not_a_finite_number_names_the_roi(tag, value, data, tmp_path):
    text = _lidc_xml()
    matches = list(re.finditer(rf"<{tag}>.*?</{tag}>", text))
    k = data.draw(st.integers(0, len(matches) - 1), label="occurrence")
    path = tmp_path / "072.xml"
    path.write_text(text[:matches[k].start()] + f"<{tag}>{escape(value)}</{tag}>" + text[matches[k].end():])
    where, stripped = _where(path, tag)[k], value.strip()
    try:
        number = float(stripped)
    except ValueError:
        number = None
    if number is not None and np.isfinite(number):
        read = lidc.parse_read(path)
        values = [v for n in read.nodules for r in n.rois for v in
                  ([r.z] if tag == "imageZposition" else r.xy[:, 0 if tag == "xCoord" else 1].tolist())]
        assert values[k] == number and len(values) == len(matches)
        return
    problem = (f"<roi> has no <{tag}>" if tag == "imageZposition" else f"<edgeMap> has no <{tag}>") if not stripped \
        else f"<{tag}> {stripped!r} is not a {'number' if number is None else 'finite number'}"
    with pytest.raises(InputError, match=re.escape(f"{where}: {problem}")):
        lidc.parse_read(path)


def _series(flip: bool) -> Series:
    """A blank 16 x 12 pixel, 6 slice series (2.5 mm apart, z falling when ``flip``), SOP UIDs 1.2.<k>."""
    geometry = Geometry((-8.0, -6.0, -20.0), (0.7, 0.7, 2.5), ((1, 0, 0), (0, 1, 0), (0, 0, -1 if flip else 1)),
                        (16, 12, 6))
    return Series(Path("series"), np.zeros((6, 12, 16), np.int16), geometry, {f"1.2.{k}": k for k in range(6)}, (), ())


def _nodule(*rois: lidc.Roi) -> lidc.ReadNodule:
    return lidc.ReadNodule(Path("073.xml"), "073/0/1001", "Nodule 001", rois)


SQUARE = np.array([[3.0, 3.0], [6.0, 3.0], [6.0, 6.0], [3.0, 6.0]])


@pytest.mark.parametrize("flip", [False, True])
@settings(HOSTILE, max_examples=60)
@given(z=st.one_of(st.floats(-40, 10), st.sampled_from([float("nan"), float("inf")])), known=st.booleans())
def test_lidc_roi_z_that_matches_no_slice_names_the_nodule(flip, z, known, tmp_path):
    series = _series(flip)
    distance = np.abs(series.slice_z - z)
    nearest = bool(distance.min() <= 1.25) if np.isfinite(z) else False
    sop = "1.2.2" if known else "9.9.9"
    nodule = _nodule(lidc.Roi(z, sop, True, SQUARE))
    if not known and not nearest:
        with pytest.raises(InputError, match=re.escape("073.xml: 073/0/1001 nodule Nodule 001: roi imageSOP_UID "
                                                       "9.9.9 is not in series 1.2.9 (series) and no slice lies at "
                                                       f"imageZposition {z:g}")):
            lidc.rasterise(nodule, series, "1.2.9")
        return
    mask = lidc.rasterise(nodule, series, "1.2.9")
    if known:  # placed by its SOP UID; a z more than half a slice away from that slice is reported
        assert mask.start[0] == 2
        assert len(mask.notes) == (0 if distance[2] <= 1.25 else 1)
        assert all("imageZposition" in note and "placed by the SOP UID" in note for note in mask.notes)
    else:  # placed by z on the nearest slice, and reported
        assert distance[mask.start[0]] == distance.min() and len(mask.notes) == 1 and "9.9.9" in mask.notes[0]
    assert mask.start[1:] == (3, 3) and mask.mask.sum() == 16


COORDINATE = st.one_of(st.integers(-3, 18), st.floats(-1, 16.5), st.floats(-1e9, 1e9, allow_nan=False))


@settings(HOSTILE, max_examples=80)
@given(points=st.lists(st.tuples(COORDINATE, COORDINATE), min_size=1, max_size=6))
def test_lidc_edge_map_outside_the_image_names_the_nodule(points, tmp_path):
    series, xy = _series(False), np.asarray(points, float)
    pixels = np.rint(xy)
    outside = ~((pixels >= 0) & (pixels < [16, 12])).all(axis=1)
    nodule = _nodule(lidc.Roi(float(series.slice_z[4]), "1.2.4", True, xy))
    if not outside.any():
        voxels = {tuple(v) for v in lidc.rasterise(nodule, series, "1.2.9").voxels().tolist()}
        assert {(4, int(y), int(x)) for x, y in pixels} <= voxels  # every point marked, on its slice
        return
    x, y = xy[np.argmax(outside)]  # the first point outside is named
    with pytest.raises(InputError, match=re.escape(f"073.xml: 073/0/1001 nodule Nodule 001: roi at imageZposition -10 "
                                                   f"has edgeMap point ({x:g}, {y:g}) outside the 16x12 image")):
        lidc.rasterise(nodule, series, "1.2.9")


# ---- ChestX-ray14: BBox_List_2017.csv and the split lists -------------------------------------------------

SIZE = (20, 24)  # conftest's PNG, width x height


def _boxes(path: Path, known: set[str] = frozenset({"a.png", "b.png"})):
    return chestxray14.read_bbox_list(path, set(known), lambda image: SIZE if image in known else None)


@settings(HOSTILE, max_examples=40)
@given(fields=st.lists(CELL, min_size=2, max_size=12))
def test_cxr14_bbox_row_with_missing_or_extra_fields_names_the_line(fields, tmp_path):
    if len(fields) >= 6 and not any(f.strip() for f in fields[6:]):
        fields = fields[:4]  # 6 fields (plus empty trailing ones) is a well-formed row; make it short
    path = _write(tmp_path / "BBox_List_2017.csv",
                  [chestxray14.BBOX_HEADER_LINE, "a.png,Mass,1,2,3,4", ",".join(fields)])
    with pytest.raises(InputError, match=re.escape(f"{path}, line 3: expected 6 fields, found {len(fields)}")):
        _boxes(path)


@settings(HOSTILE, max_examples=100)
@given(numbers=st.tuples(*[st.floats(-1, 20)] * 2, *[st.one_of(st.floats(0.1, 10), st.floats(-2, 25))] * 2),
       junk=st.one_of(st.none(), st.none(), st.sampled_from(["nan", "-inf", "1e999"]), NUMBERISH, CELL),
       at=st.integers(0, 3))
def test_cxr14_box_not_finite_numbers_or_outside_its_image_names_the_line(numbers, junk, at, tmp_path):
    cells = [f"{v:.6g}" for v in numbers]  # x, y, w, h; one of them replaced by ``junk`` unless it is None
    cells[at] = cells[at] if junk is None else junk
    path = _write(tmp_path / "BBox_List_2017.csv", [chestxray14.BBOX_HEADER_LINE, "b.png,Mass,1,2,3,4",
                                                    f"a.png,Infiltrate,{','.join(cells)}"])
    where, slack = re.escape(f"{path}, line 3: "), chestxray14.BOX_SLACK
    try:
        x, y, w, h = (float(c) for c in cells)
    except ValueError:
        problem = "box coordinates .* are not numbers"
    else:
        if not np.isfinite([x, y, w, h]).all():
            problem = "box coordinates .* are not finite numbers"
        elif not (w > 0 and h > 0):
            problem = "box width and height must be positive"
        elif min(x, y) < -slack or x + w > SIZE[0] + slack or y + h > SIZE[1] + slack:
            problem = r"box \(.*\) of image a\.png lies outside its 20x24 pixels"
        else:
            assert _boxes(path)["a.png"] == [chestxray14.Box("Infiltration", x, y, w, h)]
            return
    with pytest.raises(InputError, match=where + problem):
        _boxes(path)


def test_cxr14_bbox_of_an_unknown_image_and_bom_crlf(tmp_path):
    path = _write(tmp_path / "BBox_List_2017.csv", [chestxray14.BBOX_HEADER_LINE, "a.png,Mass,1,2,3,4",
                                                    "z.png,Mass,1,2,3,4"])
    with pytest.raises(InputError, match=re.escape(f"{path}, line 3: image z.png is not in Data_Entry")):
        _boxes(path)
    rows = [chestxray14.BBOX_HEADER_LINE, "a.png,Mass,1.5,2,3,4", "", "a.png,Nodule,0,0,20,24,,,",
            "b.png,Atelectasis,1,1,1,1"]
    plain = _boxes(_write(tmp_path / "plain.csv", rows))
    assert plain == _boxes(_write(tmp_path / "other.csv", rows, bom=True, crlf=True)) and len(plain["a.png"]) == 2


KNOWN_IMAGES = {f"0000000{n}_000.png": None for n in range(1, 7)}
LIST_LINE = st.one_of(st.sampled_from(sorted(KNOWN_IMAGES)), st.sampled_from(["", "   ", "\t"]),
                      st.sampled_from(sorted(KNOWN_IMAGES)).map(lambda name: f"  {name} "), TEXT)
UNIQUE_LINES = st.lists(st.sampled_from(sorted(KNOWN_IMAGES)), unique=True, max_size=6)  # mostly valid files


@settings(HOSTILE, max_examples=100)
@given(lines=st.one_of(st.lists(LIST_LINE, max_size=8), UNIQUE_LINES), bom=st.booleans(), crlf=st.booleans())
def test_cxr14_split_list_with_unknown_repeated_or_blank_lines_names_the_line(lines, bom, crlf, tmp_path):
    path = _write(tmp_path / "test_list.txt", lines, bom=bom, crlf=crlf)
    expected, problem = [], None
    for number, name in ((n, line.strip()) for n, line in enumerate(lines, start=1) if line.strip()):
        if name not in KNOWN_IMAGES or name in expected:
            problem = f"{path}, line {number}: {name} is " + ("listed twice" if name in expected else "not in Data_E")
            break
        expected.append(name)
    problem = problem or (None if expected else f"{path}: lists no images")
    if problem is None:
        assert chestxray14.read_split_list(path, KNOWN_IMAGES) == expected
        return
    with pytest.raises(InputError, match=re.escape(problem)):
        chestxray14.read_split_list(path, KNOWN_IMAGES)


def _cxr14_root(root: Path, png: bytes, boxes: list[str], test: list[str]) -> Path:
    """Patients 1 and 2 in train_val, patient 3 in test (its image t.png); conftest's 20 x 24 PNG for each."""
    images = {"a.png": 1, "b.png": 2, "t.png": 3}
    (root / "images").mkdir(parents=True)
    for name in images:
        (root / "images" / name).write_bytes(png)
    _write(root / chestxray14.DATA_ENTRY, [chestxray14.DATA_ENTRY_HEADER_LINE, *[
        f"{name},No Finding,0,{patient},50,M,PA,2500,2048,0.14,0.14" for name, patient in images.items()]])
    _write(root / chestxray14.TRAIN_VAL_LIST, ["a.png", "b.png"])
    _write(root / chestxray14.TEST_LIST, test)
    _write(root / chestxray14.BBOX_LIST, [chestxray14.BBOX_HEADER_LINE, *boxes])
    return root


def test_cxr14_index_bounds_boxes_by_their_png_and_refuses_an_image_in_both_lists(valid_files, tmp_path):
    root = _cxr14_root(tmp_path / "ok", valid_files["png"], ["t.png,Mass,0,0,20,24"], ["t.png"])
    assert chestxray14.read_chestxray14(root).boxes == {"t.png": [chestxray14.Box("Mass", 0, 0, 20, 24)]}
    root = _cxr14_root(tmp_path / "wide", valid_files["png"], ["t.png,Mass,0,0,20,24", "t.png,Mass,10,2,11,3"],
                       ["t.png"])  # the Data_Entry size (2500 x 2048) is the original's, not the PNG's
    with pytest.raises(InputError, match=re.escape(f"{root / chestxray14.BBOX_LIST}, line 3: box (x 10, y 2, w 11, "
                                                   "h 3) of image t.png lies outside its 20x24 pixels")):
        chestxray14.read_chestxray14(root)
    (root / "images" / "t.png").write_bytes(b"not a png")  # unreadable: left to the decoder to report
    assert len(chestxray14.read_chestxray14(root).boxes["t.png"]) == 2
    root = _cxr14_root(tmp_path / "leak", valid_files["png"], [], ["t.png", "b.png"])
    with pytest.raises(InputError, match=re.escape(f"{root / chestxray14.TEST_LIST}: 1 image(s) also in "
                                                   "train_val_list.txt, e.g. b.png")):
        chestxray14.read_chestxray14(root)


@pytest.mark.parametrize("name", [chestxray14.BBOX_LIST, chestxray14.TEST_LIST, chestxray14.DATA_ENTRY])
def test_cxr14_file_that_is_not_utf8_names_the_line(name, valid_files, tmp_path):
    root = _cxr14_root(tmp_path, valid_files["png"], ["t.png,Mass,0,0,20,24"], ["t.png"])
    path = root / name
    lines = path.read_bytes().split(b"\n")  # the last is the empty string after the final newline
    lines[-2] += b"\xff"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(InputError, match=re.escape(f"{path}, line {len(lines) - 1}: not UTF-8 text (invalid start")):
        chestxray14.read_chestxray14(root)


# ---- BraTS: Models Genesis' fold_{1,2,3}.csv -------------------------------------------------------------

CASES = [f"Brats18_CBICA_A{c}_1" for c in "ABCDEFG"]
FOLD_LINE = st.one_of(st.sampled_from(CASES), st.sampled_from(CASES).map(lambda c: f"{c},"),
                      st.sampled_from(["", " ", ","]), TEXT)


@settings(HOSTILE, max_examples=80)
@given(folds=st.one_of(st.lists(st.lists(FOLD_LINE, min_size=1, max_size=4), min_size=3, max_size=3),  # mostly refused
                       st.permutations(CASES).map(lambda c: [c[:2], [f"{c[2]},", "", c[3]], c[4:]])),  # valid
       bom=st.booleans(), crlf=st.booleans())
def test_brats_fold_with_unknown_repeated_or_no_cases_names_the_file_and_line(folds, bom, crlf, tmp_path):
    paths = [_write(tmp_path / name, lines, bom=bom, crlf=crlf) for name, lines in zip(brats.FOLDS, folds, strict=True)]
    expected, seen, problem = [], set(), None
    for path, lines in zip(paths, folds, strict=True):
        ids = []
        for number, case in ((n, line.strip().strip(",").strip()) for n, line in enumerate(lines, start=1)):
            if case and (case in seen or case not in CASES):
                problem = f"{path}: line {number}: case {case} " + ("is listed twice" if case in seen else "has no")
                break
            if case:
                seen.add(case)
                ids.append(case)
        problem = problem or (None if ids else f"{path}: lists no cases")
        if problem:
            break
        expected.append(ids)
    if problem is None:
        assert brats.read_folds(tmp_path, set(CASES)) == expected
        return
    with pytest.raises(InputError, match=re.escape(problem)):
        brats.read_folds(tmp_path, set(CASES))


def test_brats_fold_that_is_not_utf8_names_the_file(tmp_path):
    for name in brats.FOLDS:
        _write(tmp_path / name, [CASES[brats.FOLDS.index(name)]])
    (tmp_path / "fold_2.csv").write_bytes(b"Brats18_CBICA_AB\xe9_1\n")
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / 'fold_2.csv'}: not UTF-8 text")):
        brats.read_folds(tmp_path, set(CASES))
