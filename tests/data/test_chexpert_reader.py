"""The CheXpert reader: Path prefixes, label codes, views and patients, and errors that name the file and line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dira.data.prepare.common import BadSamples
from dira.data.sources.chexpert import CHEXPERT_LABELS, encode_cell, read_chexpert, relative_image_path
from dira.errors import InputError

CODE = {"1.0": 1, "0.0": 0, "-1.0": -1, "": -2}


def table(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def edit(path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, count))


def test_index_matches_the_csvs_as_pandas_reads_them(chexpert_root):
    index = read_chexpert(chexpert_root)
    for images, name in ((index.train, "train.csv"), (index.test, "valid.csv")):
        rows = table(chexpert_root / name)
        assert list(rows.columns[5:]) == list(CHEXPERT_LABELS)
        assert [i.id for i in images] == [p.removeprefix("CheXpert-v1.0-small/") for p in rows["Path"]]
        for image, (_, row) in zip(images, rows.iterrows(), strict=True):
            assert image.path == chexpert_root / image.id and image.path.is_file()
            assert image.codes.dtype == np.int8
            assert image.codes.tolist() == [CODE[row[name]] for name in CHEXPERT_LABELS]
            assert image.patient == int(row["Path"].split("/")[2].removeprefix("patient"))
            assert image.frontal == (row["Frontal/Lateral"] == "Frontal")
    assert {int(c) for i in index.train for c in i.codes} == {1, 0, -1, -2}
    assert {int(c) for i in index.test for c in i.codes} == {1, 0}
    assert index.test_csv == "valid.csv" and index.source == "synthetic"
    assert index.train[0].line == 2 and index.train[-1].line == len(index.train) + 1


def test_both_release_prefixes_and_none_are_stripped(chexpert_copy):
    expected = [i.id for i in read_chexpert(chexpert_copy).train]
    edit(chexpert_copy / "train.csv", "\nCheXpert-v1.0-small/", "\nCheXpert-v1.0/", count=-1)
    edit(chexpert_copy / "train.csv", "\nCheXpert-v1.0/", "\n")  # one row already without a prefix
    index = read_chexpert(chexpert_copy)
    assert [i.id for i in index.train] == expected
    assert all(i.path == chexpert_copy / i.id for i in index.train)
    assert relative_image_path("CheXpert-v1.0/valid/patient64541/study1/view1_frontal.jpg", "x") == \
        "valid/patient64541/study1/view1_frontal.jpg"
    for bad in ("/data/train/patient00001/study1/view1_frontal.jpg", "CheXpert-v1.0-small/../x.jpg", ""):
        with pytest.raises(InputError, match=r"x: Path .* is not a relative image path"):
            relative_image_path(bad, "x")


def test_frontal_filter_keeps_frontal_views_of_every_set(chexpert_root):
    everything, frontal = read_chexpert(chexpert_root), read_chexpert(chexpert_root, frontal_only=True)
    assert 0 < len(frontal.train) < len(everything.train)
    assert [i.id for i in frontal.train] == [i.id for i in everything.train if i.frontal]
    assert all(i.id.endswith("_frontal.jpg") for i in frontal.train + frontal.test)


def test_test_labels_csv_is_read_for_evaluation_test(chexpert_copy):
    index = read_chexpert(chexpert_copy, evaluation="test")
    assert index.test_csv == "test_labels.csv"
    assert [i.id for i in index.test] == list(table(chexpert_copy / "test_labels.csv")["Path"])
    assert {i.frontal for i in index.test} == {True, False}  # told apart by the file name
    # Its exact columns are unverified: extra columns and integer cells are accepted.
    lines = (chexpert_copy / "test_labels.csv").read_text().splitlines()
    lines = [f"Study,{lines[0]}"] + [f"s{n},{line.replace('1.0', '1').replace('0.0', '0')}"
                                     for n, line in enumerate(lines[1:])]
    (chexpert_copy / "test_labels.csv").write_text("\n".join(lines) + "\n")
    again = read_chexpert(chexpert_copy, evaluation="test")
    assert all(np.array_equal(a.codes, b.codes) for a, b in zip(index.test, again.test, strict=True))

    (chexpert_copy / "test_labels.csv").unlink()
    with pytest.raises(InputError, match=r"test_labels\.csv: not found; evaluation 'test' needs CheXlocalize"):
        read_chexpert(chexpert_copy, evaluation="test")


def test_label_cells_encode_to_codes():
    assert [encode_cell(c, "x") for c in ("1.0", "0.0", "-1.0", "", "1", "0", "-1")] == [1, 0, -1, -2, 1, 0, -1]
    for bad in ("2.0", "yes", " 1.0", "nan"):
        with pytest.raises(InputError, match="where: unknown label cell"):
            encode_cell(bad, "where")


# ---- bad input ---------------------------------------------------------------------------------------------

def test_wrong_header_shows_expected_and_found(chexpert_copy):
    edit(chexpert_copy / "train.csv", "Pleural Effusion", "Effusion")
    with pytest.raises(InputError) as caught:
        read_chexpert(chexpert_copy)
    message = str(caught.value)
    assert message.startswith(f"{chexpert_copy / 'train.csv'}: unexpected header")
    assert "expected: Path,Sex,Age" in message and ",Pleural Effusion," in message and "found:    Path," in message


def test_unknown_label_cell_names_file_line_and_column(chexpert_copy):
    path = chexpert_copy / "train.csv"
    lines = path.read_text().splitlines()
    fields = lines[3].split(",")
    fields[5 + CHEXPERT_LABELS.index("Edema")] = "2.0"
    lines[3] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=rf"{path}, line 4, Edema: unknown label cell '2\.0'"):
        read_chexpert(chexpert_copy)


def test_valid_csv_must_be_certain(chexpert_copy):
    path = chexpert_copy / "valid.csv"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][: lines[2].rindex(",") + 1] + "-1.0"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=rf"{path}, line 3: Support Devices is uncertain; valid\.csv must hold only"):
        read_chexpert(chexpert_copy)


def test_missing_image_is_named_with_its_csv_line_or_skipped(chexpert_copy):
    index = read_chexpert(chexpert_copy)
    victim = index.train[4]
    victim.path.unlink()
    message = rf"{victim.path}: listed image not found \({chexpert_copy / 'train.csv'}, line 6\)"
    with pytest.raises(InputError, match=message):
        read_chexpert(chexpert_copy)
    with pytest.raises(InputError, match=message):
        read_chexpert(chexpert_copy, bad_samples=BadSamples("error"))
    bad = BadSamples("skip")
    kept = read_chexpert(chexpert_copy, bad_samples=bad)
    assert [i.id for i in kept.train] == [i.id for i in index.train if i is not victim]
    assert [(b.file, b.id) for b in bad.samples] == [(victim.path, victim.id)]


def test_a_missing_lateral_does_not_matter_to_the_frontal_only_reader(chexpert_copy):
    lateral = next(i for i in read_chexpert(chexpert_copy).train if not i.frontal)
    lateral.path.unlink()
    assert len(read_chexpert(chexpert_copy, frontal_only=True).train) > 0


@pytest.mark.parametrize("damage, message", [
    (lambda rows: [*rows, rows[1]], r"line \d+: train/patient00001/study1/view1_frontal\.jpg is also listed on line 2"),
    (lambda rows: rows[:1], r"train\.csv: no data rows"),
    (lambda rows: [rows[0], rows[1].replace("Frontal,", "Front,", 1)], r"line 2: Frontal/Lateral is 'Front'"),
    (lambda rows: [rows[0], rows[1] + ","], r"line 2: expected 19 fields, found 20"),
    (lambda rows: [rows[0], rows[1].replace("patient00001", "p1", 1)], r"line 2: no patientNNNNN folder"),
])
def test_malformed_train_rows_are_rejected(chexpert_copy, damage, message):
    path = chexpert_copy / "train.csv"
    path.write_text("\n".join(damage(path.read_text().splitlines())) + "\n")
    with pytest.raises(InputError, match=message):
        read_chexpert(chexpert_copy)


def test_a_patient_in_both_train_and_test_is_a_leak(chexpert_copy):
    first_valid = read_chexpert(chexpert_copy).test[0].id.split("/")[1]
    edit(chexpert_copy / "valid.csv", f"/{first_valid}/", "/patient00001/", count=-1)
    with pytest.raises(InputError, match=r"valid\.csv: 1 patient\(s\) also in train\.csv, e\.g\. patient00001"):
        read_chexpert(chexpert_copy)


def test_root_must_hold_train_csv_and_the_error_points_there(chexpert_root):
    with pytest.raises(InputError, match=rf"train\.csv: CheXpert file not found \(found {chexpert_root / 'train.csv'}"):
        read_chexpert(chexpert_root.parent)
