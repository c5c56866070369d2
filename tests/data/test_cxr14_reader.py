"""The ChestX-ray14 reader: labels, splits, boxes and image paths, and errors that name the file."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from dira.data.labels import CHESTXRAY14_LABELS
from dira.data.sources.chestxray14 import Box, encode_findings, read_chestxray14
from dira.errors import InputError


def test_findings_encode_in_canonical_order():
    assert encode_findings("No Finding", "x").tolist() == [0] * 14
    vector = encode_findings("Cardiomegaly|Effusion|Hernia", "x")
    assert vector.dtype == np.uint8
    assert [CHESTXRAY14_LABELS[i] for i in np.flatnonzero(vector)] == ["Cardiomegaly", "Effusion", "Hernia"]
    with pytest.raises(InputError, match=r"data\.csv, line 7: unknown finding 'Infiltrate'"):
        encode_findings("Mass|Infiltrate", "data.csv, line 7")


def test_index_matches_the_csv_as_pandas_reads_it(cxr14_root):
    index = read_chestxray14(cxr14_root)
    # pandas splits the header by commas too: 11 columns, the bracketed names in halves.
    table = pd.read_csv(cxr14_root / "Data_Entry_2017_v2020.csv")
    assert list(table.columns[-4:]) == ["OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]"]
    assert set(index.records) == set(table["Image Index"])
    multi = 0
    for image_id, findings, patient in table[["Image Index", "Finding Labels", "Patient ID"]].itertuples(
            index=False):
        record = index.records[image_id]
        expected = set() if findings == "No Finding" else set(findings.split("|"))
        assert {CHESTXRAY14_LABELS[i] for i in np.flatnonzero(record.labels)} == expected
        assert record.patient_id == patient and record.path == cxr14_root / "images" / image_id
        multi += len(expected) > 1
    assert multi > 0
    assert index.train_val == (cxr14_root / "train_val_list.txt").read_text().split()
    assert index.test == (cxr14_root / "test_list.txt").read_text().split()
    assert index.source == "synthetic" and index.synthetic["patients"] == 40


def test_boxes_map_infiltrate_and_keep_float_coordinates(cxr14_copy):
    first = (cxr14_copy / "test_list.txt").read_text().split()[0]
    (cxr14_copy / "BBox_List_2017.csv").write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
        f"{first},Infiltrate,10.5084745762712,20.25,30.7796610169491,40.125\n"
        f"{first},Nodule,1,2,3,4,,,\n"  # also accept the trailing empty fields of the header
    )
    boxes = read_chestxray14(cxr14_copy).boxes
    assert boxes == {first: [Box("Infiltration", 10.5084745762712, 20.25, 30.7796610169491, 40.125),
                             Box("Nodule", 1.0, 2.0, 3.0, 4.0)]}


def test_boxes_of_the_synthetic_set_are_read(cxr14_root):
    index = read_chestxray14(cxr14_root)
    rows = (cxr14_root / "BBox_List_2017.csv").read_text().splitlines()[1:]
    assert sum(len(b) for b in index.boxes.values()) == len(rows)
    assert all(box.label in CHESTXRAY14_LABELS for boxes in index.boxes.values() for box in boxes)


def test_kaggle_layout_is_found(cxr14_copy):
    names = sorted(p.name for p in (cxr14_copy / "images").iterdir())
    for part, chunk in enumerate((names[: len(names) // 2], names[len(names) // 2:]), start=1):
        folder = cxr14_copy / f"images_{part:03d}" / "images"
        folder.mkdir(parents=True)
        for name in chunk:
            shutil.move(cxr14_copy / "images" / name, folder / name)
    (cxr14_copy / "images").rmdir()
    index = read_chestxray14(cxr14_copy)
    assert {r.path.parent.parent.name for r in index.records.values()} == {"images_001", "images_002"}
    assert all(r.path.is_file() for r in index.records.values())


def replace_line(path, old, new):
    path.write_text(path.read_text().replace(old, new, 1))


def test_missing_csv_is_named_with_a_hint_for_the_old_release(cxr14_copy):
    (cxr14_copy / "Data_Entry_2017_v2020.csv").rename(cxr14_copy / "Data_Entry_2017.csv")
    with pytest.raises(InputError, match=r"Data_Entry_2017_v2020\.csv: .*not found .*older Data_Entry_2017"):
        read_chestxray14(cxr14_copy)


def test_wrong_header_shows_expected_and_found(cxr14_copy):
    replace_line(cxr14_copy / "Data_Entry_2017_v2020.csv", "Patient Gender", "Patient Sex")
    with pytest.raises(InputError) as err:
        read_chestxray14(cxr14_copy)
    message = str(err.value)
    assert "Data_Entry_2017_v2020.csv: unexpected header" in message
    assert "expected: Image Index" in message and "Patient Gender" in message and "Patient Sex" in message


@pytest.mark.parametrize("old, new, match", [
    ("No Finding", "No Findings", r"v2020\.csv, line \d+: unknown finding 'No Findings'"),
    (",M,", ",M,extra,", r"v2020\.csv, line \d+: expected 11 fields, found 12"),
    (",0,1,", ",0,P1,", r"v2020\.csv, line 2: Patient ID 'P1' is not an integer"),
])
def test_malformed_data_entry_rows_name_file_and_line(cxr14_copy, old, new, match):
    replace_line(cxr14_copy / "Data_Entry_2017_v2020.csv", old, new)
    with pytest.raises(InputError, match=match):
        read_chestxray14(cxr14_copy)


def test_box_label_outside_the_eight_boxable_classes_is_named(cxr14_copy):
    first = (cxr14_copy / "test_list.txt").read_text().split()[0]
    (cxr14_copy / "BBox_List_2017.csv").write_text(
        f"Image Index,Finding Label,Bbox [x,y,w,h],,,\n{first},Hernia,1.5,2.5,3.5,4.5\n")
    with pytest.raises(InputError, match=r"BBox_List_2017\.csv, line 2: unknown box label 'Hernia'"):
        read_chestxray14(cxr14_copy)


def test_listed_image_absent_from_csv_is_named(cxr14_copy):
    with (cxr14_copy / "test_list.txt").open("a") as f:
        f.write("99999999_000.png\n")
    with pytest.raises(InputError, match=r"test_list\.txt, line \d+: 99999999_000\.png is not in Data_Entry"):
        read_chestxray14(cxr14_copy)


def test_missing_image_file_is_named(cxr14_copy):
    victim = (cxr14_copy / "train_val_list.txt").read_text().split()[3]
    (cxr14_copy / "images" / victim).unlink()
    with pytest.raises(InputError, match=rf"images/{victim}: listed image not found"):
        read_chestxray14(cxr14_copy)


def test_missing_split_list_is_named(cxr14_copy):
    (cxr14_copy / "test_list.txt").unlink()
    with pytest.raises(InputError, match=r"test_list\.txt: ChestX-ray14 file not found"):
        read_chestxray14(cxr14_copy)


def test_patient_in_both_splits_is_rejected(cxr14_copy):
    train_val = (cxr14_copy / "train_val_list.txt").read_text().split()
    patients = Counter(name[:8] for name in train_val)
    leaked = next(name for name in train_val if patients[name[:8]] > 1)  # one of several of its patient's
    with (cxr14_copy / "test_list.txt").open("a") as f:
        f.write(leaked + "\n")
    (cxr14_copy / "train_val_list.txt").write_text("\n".join(i for i in train_val if i != leaked) + "\n")
    with pytest.raises(InputError, match=r"test_list\.txt: 1 patient\(s\) also in train_val_list\.txt"):
        read_chestxray14(cxr14_copy)
