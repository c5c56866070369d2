"""The synthetic SIIM-ACR writer: the release's layout and quirks, and masks true to the pixels."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy.ndimage import binary_dilation

from dira.data.sources.rle import union_masks
from dira.data.synthetic.siim import write_siim
from dira.errors import InputError

UID = r"1\.2\.276\.0\.7230010\.3\.1"


def csv_rows(root: Path) -> list[tuple[str, str]]:
    """(ImageId, EncodedPixels) as written, each value still with its leading space."""
    lines = (root / "train-rle.csv").read_text().splitlines()
    return [tuple(line.split(",")) for line in lines[1:]]


def dicoms(root: Path) -> dict[str, Path]:
    return {p.stem: p for p in (root / "dicom-images-train").glob("*/*/*.dcm")}


def test_csv_has_the_space_padded_header_and_values(siim_root):
    raw = (siim_root / "train-rle.csv").read_bytes()
    assert raw.startswith(b"ImageId, EncodedPixels\n") and raw.endswith(b"\n") and b"\r" not in raw
    rows = csv_rows(siim_root)
    assert all(value.startswith(" ") and not value.startswith("  ") for _, value in rows)
    assert all(image_id == image_id.strip() for image_id, _ in rows)
    negatives = {image_id for image_id, value in rows if value == " -1"}
    positives = {image_id for image_id, value in rows if value != " -1"}
    assert not negatives & positives  # no image mixes -1 with mask rows, as in the release


def test_positive_share_and_rows_split_over_several_lines(siim_root, siim_spec):
    rows = csv_rows(siim_root)
    ids = [image_id for image_id, _ in rows]
    positives = {image_id for image_id, value in rows if value != " -1"}
    assert len(set(ids)) == siim_spec.images
    assert 0.25 <= len(positives) / siim_spec.images <= 0.4
    multi = {image_id for image_id in positives if ids.count(image_id) > 1}
    assert len(multi) >= 2  # both kinds: one region per lung, and one region cut in two


def test_dicoms_sit_in_the_uid_tree_named_by_their_sop_instance_uid(siim_root, siim_spec):
    found = dicoms(siim_root)
    assert set(found) == {image_id for image_id, _ in csv_rows(siim_root)}
    for stem, path in found.items():
        series, study = path.parent, path.parent.parent
        ds = pydicom.dcmread(path)
        assert ds.SOPInstanceUID == stem == ds.file_meta.MediaStorageSOPInstanceUID
        assert (ds.SeriesInstanceUID, ds.StudyInstanceUID) == (series.name, study.name)
        assert [p.name for p in series.iterdir()] == [path.name]  # one image per series
        for uid, level in ((stem, 4), (series.name, 3), (study.name, 2)):
            assert re.fullmatch(rf"{UID}\.{level}(\.\d+)+", uid) and len(uid) <= 64
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert (ds.Modality, ds.BodyPartExamined, ds.PhotometricInterpretation) == ("CR", "CHEST", "MONOCHROME2")
        assert ds.ViewPosition in {"PA", "AP"} and ds.PatientSex in {"M", "F"} and ds.PatientAge.endswith("Y")
        assert (ds.BitsAllocated, ds.BitsStored, ds.SamplesPerPixel) == (8, 8, 1)
        assert float(ds.PixelSpacing[0]) == pytest.approx(0.14 * 1024 / siim_spec.dicom_size, rel=0.25)
        pixels = ds.pixel_array
        assert pixels.dtype == np.uint8 and pixels.shape == (siim_spec.dicom_size,) * 2 and pixels.std() > 10


def test_each_pneumothorax_is_dark_and_featureless_exactly_where_its_mask_is(siim_root, siim_spec):
    rows = csv_rows(siim_root)
    found = dicoms(siim_root)
    size = siim_spec.dicom_size
    checked = 0
    for image_id in {i for i, value in rows if value != " -1"}:
        mask = union_masks([v for i, v in rows if i == image_id], size, size).astype(bool)
        pixels = pydicom.dcmread(found[image_id]).pixel_array.astype(float)
        ring = binary_dilation(mask, iterations=2) & ~mask
        assert mask.sum() > 20
        assert pixels[mask].mean() < pixels[ring].mean() - 20  # the edge of the dark region is the mask's edge
        assert pixels[mask].std() < 8  # air without lung markings: grain and shading only
        checked += 1
    assert checked >= 5


def test_same_arguments_give_identical_files_and_a_smaller_rewrite_drops_stale_images(tmp_path):
    write_siim(tmp_path / "a", count=8, image_size=48, seed=1)
    write_siim(tmp_path / "b", count=8, image_size=48, seed=1)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 8 + 2
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    write_siim(tmp_path / "a", count=5, image_size=48, seed=1)
    assert len(dicoms(tmp_path / "a")) == 5
    assert json.loads((tmp_path / "a" / "dira_synthetic.json").read_text())["images"] == 5


def test_refuses_to_overwrite_a_real_copy(tmp_path):
    (tmp_path / "train-rle.csv").write_text("ImageId, EncodedPixels\n")
    with pytest.raises(InputError, match="refusing to overwrite"):
        write_siim(tmp_path, count=5, image_size=48)
