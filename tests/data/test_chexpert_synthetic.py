"""The synthetic CheXpert writer's files have the released format, and its images show the reported findings."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dira.data.synthetic.chexpert import write_chexpert
from dira.data.synthetic.chexpert_findings import DRAWN, UNCERTAIN_STRENGTH, draw_view
from dira.errors import InputError

HEADER = ("Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,"
          "Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,"
          "Fracture,Support Devices")
TEST_HEADER = "Path," + HEADER.split(",", 5)[5]


def rows(path: Path) -> list[list[str]]:
    return list(csv.reader(path.read_text().splitlines()))[1:]


def patient(path_cell: str) -> int:
    return int(path_cell.split("/patient")[1].split("/")[0])


def test_csvs_have_the_release_header_prefix_and_field_formats(chexpert_root):
    assert chexpert_root.name == "CheXpert-v1.0-small"
    for name in ("train.csv", "valid.csv"):
        raw = (chexpert_root / name).read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw and raw.endswith(b"\n")
        assert raw.decode().splitlines()[0] == HEADER
        split = name.removesuffix(".csv")
        for path, sex, age, view, projection, *cells in rows(chexpert_root / name):
            assert path.startswith(f"CheXpert-v1.0-small/{split}/patient")
            assert path.endswith(f"_{view.lower()}.jpg") and view in ("Frontal", "Lateral")
            assert projection in (("AP", "PA") if view == "Frontal" else ("", "LL", "RL"))
            assert sex in ("Male", "Female", "Unknown") and 18 <= int(age) <= 90 and len(cells) == 14
    train = rows(chexpert_root / "train.csv")
    assert Counter(row[1] for row in train)["Unknown"] >= 1
    assert "" in {row[4] for row in train if row[3] == "Lateral"}


def test_train_cells_take_four_states_and_valid_only_consensus(chexpert_root):
    train_cells = Counter(cell for row in rows(chexpert_root / "train.csv") for cell in row[5:])
    assert set(train_cells) == {"1.0", "0.0", "-1.0", ""}
    assert train_cells[""] > train_cells["1.0"] > train_cells["-1.0"] > 0  # mostly not mentioned, as in the release
    for row in rows(chexpert_root / "train.csv"):
        pathology = [cell for cell in row[6:-1]]  # without No Finding and Support Devices
        assert row[5] in ("1.0", "")
        assert (row[5] == "1.0") == all(cell in ("", "0.0") for cell in pathology)
    valid = rows(chexpert_root / "valid.csv")
    assert {cell for row in valid for cell in row[5:]} == {"0.0", "1.0"}


def test_held_out_patients_are_numbered_after_the_training_ones(chexpert_root, chexpert_spec):
    train = {patient(row[0]) for row in rows(chexpert_root / "train.csv")}
    valid = {patient(row[0]) for row in rows(chexpert_root / "valid.csv")}
    test = {patient(row[0]) for row in rows(chexpert_root / "test_labels.csv")}
    assert train == set(range(1, chexpert_spec.patients + 1))
    assert min(valid) == max(train) + 1 and min(test) == max(valid) + 1
    studies = Counter(row[0].rsplit("/", 1)[0] for row in rows(chexpert_root / "train.csv"))
    assert max(studies.values()) == 2  # a frontal and a lateral of the same study


def test_test_labels_csv_is_in_chexlocalize_layout(chexpert_root):
    lines = (chexpert_root / "test_labels.csv").read_text().splitlines()
    assert lines[0] == TEST_HEADER
    for path, *cells in rows(chexpert_root / "test_labels.csv"):
        assert path.startswith("test/patient") and (chexpert_root / path).is_file()
        assert set(cells) <= {"0.0", "1.0"} and len(cells) == 14


def test_images_are_8bit_grey_jpegs_with_the_short_side_requested(chexpert_root, chexpert_spec):
    listed = [row[0].split("/", 1)[1] for name in ("train.csv", "valid.csv") for row in rows(chexpert_root / name)]
    listed += [row[0] for row in rows(chexpert_root / "test_labels.csv")]
    assert sorted(listed) == sorted(str(p.relative_to(chexpert_root)) for p in chexpert_root.rglob("*.jpg"))
    shapes = Counter()
    for path in listed:
        with Image.open(chexpert_root / path) as image:
            assert image.format == "JPEG" and image.mode == "L"
            width, height = image.size
            pixels = np.asarray(image)
        assert min(width, height) == chexpert_spec.jpeg_size and 1.1 < max(width, height) / min(width, height) < 1.35
        assert pixels.std() > 10
        shapes["portrait" if height > width else "landscape"] += 1
    assert shapes["portrait"] > shapes["landscape"] > 0


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    def files(root):
        return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    a, b, c = (files(write_chexpert(tmp_path / name, patients=4, image_size=48, seed=seed))
               for name, seed in (("a", 5), ("b", 5), ("c", 6)))
    assert a == b
    assert a[Path("train.csv")] != c[Path("train.csv")]
    assert any(a[p] != c[p] for p in a.keys() & c.keys() if p.suffix == ".jpg")
    marker = json.loads(a[Path("dira_synthetic.json")])
    assert (marker["patients"], marker["image_size"], marker["seed"]) == (4, 48, 5)


def test_image_size_changes_pixels_not_tables(tmp_path, chexpert_root, chexpert_spec):
    small = write_chexpert(tmp_path, patients=chexpert_spec.patients, image_size=48, seed=chexpert_spec.seed)
    for name in ("train.csv", "valid.csv", "test_labels.csv"):
        assert (small / name).read_bytes() == (chexpert_root / name).read_bytes()


def test_rewrite_drops_stale_images_and_never_overwrites_a_real_copy(tmp_path):
    root = write_chexpert(tmp_path / "synth", patients=8, image_size=40)
    write_chexpert(tmp_path / "synth", patients=3, image_size=40)
    listed = {row[0].split("/", 1)[1] for name in ("train.csv", "valid.csv") for row in rows(root / name)}
    listed |= {row[0] for row in rows(root / "test_labels.csv")}
    assert {str(p.relative_to(root)) for p in root.rglob("*.jpg")} == listed
    assert all(any(folder.iterdir()) for folder in root.rglob("*") if folder.is_dir())

    for real in (tmp_path / "real" / "CheXpert-v1.0-small", tmp_path / "real"):  # --out above or at a real copy
        real.mkdir(parents=True, exist_ok=True)
        (real / "train.csv").write_text(HEADER + "\n")
        with pytest.raises(InputError, match="refusing to overwrite"):
            write_chexpert(tmp_path / "real", patients=3, image_size=40)
        assert (real / "train.csv").read_text() == HEADER + "\n"


# ---- the drawings ------------------------------------------------------------------------------------------

def drawn(strengths: dict[str, float], frontal: bool = True) -> np.ndarray:
    """Same patient, same grain: only the findings differ."""
    pixels = draw_view(strengths, frontal, 96, 112, np.random.default_rng(9), np.random.default_rng(10))
    return pixels.astype(np.float32)


@pytest.mark.parametrize("frontal", [True, False])
def test_every_finding_is_drawn_and_an_uncertain_one_faintly(frontal):
    normal = drawn({}, frontal)
    assert normal.shape == (112, 96)
    for name in sorted(DRAWN):
        definite = np.abs(drawn({name: 1.0}, frontal) - normal)
        faint = np.abs(drawn({name: UNCERTAIN_STRENGTH}, frontal) - normal)
        assert definite.max() >= 20, name
        assert 0.25 < faint.sum() / definite.sum() < 0.65, name


def test_frontal_and_lateral_views_differ_and_no_finding_draws_nothing():
    assert np.array_equal(drawn({"No Finding": 1.0}), drawn({}))
    assert np.abs(drawn({}, frontal=False) - drawn({})).mean() > 5
    with pytest.raises(ValueError, match="Effusion"):
        drawn({"Effusion": 1.0})  # ChestX-ray14's name, not CheXpert's
