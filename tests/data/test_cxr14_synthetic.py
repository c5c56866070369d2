"""The synthetic writer's files have the released ChestX-ray14 format, quirks included."""

from __future__ import annotations

import csv
import json
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dira.data.synthetic.chestxray14 import write_chestxray14
from dira.errors import InputError

HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
          "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]")
BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,"
LABELS = {"Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
          "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"}
BOX_LABELS = {"Atelectasis", "Cardiomegaly", "Effusion", "Infiltrate", "Mass", "Nodule", "Pneumonia",
              "Pneumothorax"}


def data_rows(root: Path) -> list[list[str]]:
    return list(csv.reader((root / "Data_Entry_2017_v2020.csv").read_text().splitlines()))[1:]


def box_rows(root: Path) -> list[list[str]]:
    return list(csv.reader((root / "BBox_List_2017.csv").read_text().splitlines()))[1:]


def split_list(root: Path, name: str) -> list[str]:
    return (root / name).read_text().splitlines()


def png_header(path: Path) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from the IHDR chunk."""
    data = path.read_bytes()[:26]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height, data[24], data[25]


def test_data_entry_has_the_release_format(cxr14_root, cxr14_spec):
    raw = (cxr14_root / "Data_Entry_2017_v2020.csv").read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw and raw.endswith(b"\n")
    lines = raw.decode().splitlines()
    assert lines[0] == HEADER
    assert len(next(csv.reader([HEADER]))) == 11
    rows = data_rows(cxr14_root)
    assert all(len(row) == 11 and not line.endswith(",") for row, line in zip(rows, lines[1:], strict=True))
    names = [row[0] for row in rows]
    assert names == sorted(names) and len(set(names)) == len(names)
    for name, findings, follow_up, patient, age, gender, view, width, height, sx, sy in rows:
        assert name == f"{int(patient):08d}_{int(follow_up):03d}.png"
        assert findings == "No Finding" or set(findings.split("|")) <= LABELS
        assert 0 <= int(age) <= 95 and gender in {"M", "F"} and view in {"PA", "AP"}
        assert (int(width), int(height)) == (cxr14_spec.png_size,) * 2 and sx == sy and float(sx) > 0
    assert "0.14300000000000002" in {row[9] for row in rows}  # the release's float artefact
    per_patient = Counter(row[3] for row in rows)
    assert len(per_patient) == cxr14_spec.patients and set(per_patient.values()) <= {1, 2, 3}


def test_findings_mix_no_finding_and_all_fourteen_labels(cxr14_root):
    rows = data_rows(cxr14_root)
    no_finding = sum(row[1] == "No Finding" for row in rows) / len(rows)
    assert 0.25 < no_finding < 0.55
    counts = Counter(label for row in rows if row[1] != "No Finding" for label in row[1].split("|"))
    assert set(counts) == LABELS
    assert max(counts.values()) <= 2 * min(counts.values())  # roughly uniform
    assert max(len(row[1].split("|")) for row in rows) > 1  # multi-label rows exist
    test_ids = set(split_list(cxr14_root, "test_list.txt"))
    test_labels = {label for row in rows if row[0] in test_ids and row[1] != "No Finding"
                   for label in row[1].split("|")}
    assert test_labels == LABELS


def test_images_are_8bit_grey_pngs_with_an_rgba_one(cxr14_root, cxr14_spec):
    rows = data_rows(cxr14_root)
    headers = {row[0]: png_header(cxr14_root / "images" / row[0]) for row in rows}
    assert {h[:3] for h in headers.values()} == {(cxr14_spec.png_size, cxr14_spec.png_size, 8)}
    colour_types = Counter(h[3] for h in headers.values())
    assert set(colour_types) == {0, 6} and colour_types[0] > colour_types[6]
    rgba = next(name for name, h in headers.items() if h[3] == 6)
    with Image.open(cxr14_root / "images" / rgba) as image:
        assert image.mode == "RGBA"
        assert np.all(np.asarray(image.getchannel("A")) == 255)
        red, green, blue = (np.asarray(image.getchannel(c)) for c in "RGB")
        assert np.array_equal(red, green) and np.array_equal(green, blue) and red.std() > 10


def test_split_lists_are_at_patient_level(cxr14_root, cxr14_spec):
    train_val, test = split_list(cxr14_root, "train_val_list.txt"), split_list(cxr14_root, "test_list.txt")
    assert sorted(train_val + test) == sorted(row[0] for row in data_rows(cxr14_root))
    patient = {row[0]: row[3] for row in data_rows(cxr14_root)}
    test_patients = {patient[i] for i in test}
    assert not test_patients & {patient[i] for i in train_val}
    assert len(test_patients) == round(0.2 * cxr14_spec.patients)


def test_bbox_list_has_the_release_format(cxr14_root, cxr14_spec):
    raw = (cxr14_root / "BBox_List_2017.csv").read_text()
    assert raw.splitlines()[0] == BBOX_HEADER
    findings = {row[0]: set(row[1].split("|")) for row in data_rows(cxr14_root)}
    test_ids = set(split_list(cxr14_root, "test_list.txt"))
    rows = box_rows(cxr14_root)
    assert rows and all(len(row) == 6 for row in rows)
    for name, label, *coords in rows:
        assert name in test_ids and label in BOX_LABELS
        assert ("Infiltration" if label == "Infiltrate" else label) in findings[name]
        x, y, w, h = map(float, coords)
        assert min(x, y) >= 0 and min(w, h) > 0 and max(x + w, y + h) <= cxr14_spec.png_size
        assert all(len(c.split(".")[1]) >= 6 for c in coords)  # floats with many decimals
    boxable = {i for i in test_ids if findings[i] & (BOX_LABELS | {"Infiltration"})}
    boxed = {row[0] for row in rows}
    assert boxed < boxable  # some, not all


def test_boxes_mark_where_the_image_departs_from_normal_anatomy(cxr14_root):
    def load(name):
        with Image.open(cxr14_root / "images" / name) as image:
            return np.asarray(image.convert("L"), np.float32)

    normal = np.mean([load(row[0]) for row in data_rows(cxr14_root) if row[1] == "No Finding"], axis=0)
    ratios = []
    for name, _, *coords in box_rows(cxr14_root):
        x, y, w, h = map(float, coords)
        inside = np.zeros(normal.shape, bool)
        inside[int(y):int(np.ceil(y + h)), int(x):int(np.ceil(x + w))] = True
        deviation = np.abs(load(name) - normal)
        ratios.append(deviation[inside].mean() / deviation[~inside].mean())
    assert min(ratios) > 1.0 and np.median(ratios) > 2.0


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    def files(root):
        return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        write_chestxray14(tmp_path / name, patients=6, image_size=64, seed=seed)
    a, b, c = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert a == b
    assert a[Path("Data_Entry_2017_v2020.csv")] != c[Path("Data_Entry_2017_v2020.csv")]
    assert any(a[p] != c[p] for p in a.keys() & c.keys() if p.suffix == ".png")
    marker = json.loads(a[Path("dira_synthetic.json")])
    assert (marker["patients"], marker["image_size"], marker["seed"]) == (6, 64, 5)


def test_image_size_changes_pixels_not_patients(tmp_path, cxr14_root, cxr14_spec):
    write_chestxray14(tmp_path, patients=cxr14_spec.patients, image_size=64, seed=cxr14_spec.seed)
    small, large = data_rows(tmp_path), data_rows(cxr14_root)
    assert [r[:7] for r in small] == [r[:7] for r in large]
    assert split_list(tmp_path, "test_list.txt") == split_list(cxr14_root, "test_list.txt")


def test_rewrite_drops_stale_images_and_never_overwrites_a_real_copy(tmp_path):
    write_chestxray14(tmp_path / "synth", patients=12, image_size=64)
    write_chestxray14(tmp_path / "synth", patients=4, image_size=64)
    listed = {row[0] for row in data_rows(tmp_path / "synth")}
    assert {p.name for p in (tmp_path / "synth" / "images").iterdir()} == listed

    real = tmp_path / "real"
    real.mkdir()
    (real / "Data_Entry_2017_v2020.csv").write_text(HEADER + "\n")
    with pytest.raises(InputError, match="refusing to overwrite"):
        write_chestxray14(real, patients=4, image_size=64)
    assert (real / "Data_Entry_2017_v2020.csv").read_text() == HEADER + "\n"
