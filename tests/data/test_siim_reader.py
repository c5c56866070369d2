"""Reader of SIIM-ACR: UID tree, space-padded CSV, rows united per image, pixels through pydicom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from dira.data.sources.rle import decode_rle
from dira.data.sources.siim import load_mask, locate_dicoms, read_dicom_pixels, read_rle_csv, read_siim
from dira.errors import InputError


def test_index_finds_every_listed_image_in_the_uid_tree(siim_root, siim_spec):
    index = read_siim(siim_root)
    assert index.source == "synthetic" and len(index.listed) == len(index.images) == siim_spec.images
    for image_id, image in index.images.items():
        assert image.dicom.stem == image_id and image.dicom.relative_to(siim_root).parts[0] == "dicom-images-train"
        assert len(image.dicom.relative_to(siim_root).parts) == 4  # folder / study / series / instance
        assert (image.height, image.width) == (siim_spec.dicom_size,) * 2
    assert locate_dicoms(siim_root) == {i: im.dicom for i, im in index.images.items()}


def test_spaces_are_stripped_from_names_and_values(siim_root, tmp_path):
    padded = read_rle_csv(siim_root / "train-rle.csv")
    text = (siim_root / "train-rle.csv").read_text()
    (tmp_path / "bare.csv").write_text(text.replace(", ", ","))  # the torchxrayvision copy has no spaces
    assert read_rle_csv(tmp_path / "bare.csv") == padded
    listed, rows = padded
    assert all(value == value.strip() for image_rows in rows.values() for _, value in image_rows)
    assert {value for image_rows in rows.values() for _, value in image_rows if not value[0].isdigit()} == {"-1"}
    line_of = {line.split(",")[0]: no for no, line in enumerate(text.splitlines(), start=1)}
    assert all(rows[i][-1][0] == line_of[i] for i in listed)  # line numbers as a text editor counts


def test_the_mask_is_the_union_of_all_rows_of_an_image(siim_root):
    index = read_siim(siim_root)
    multi = [im for im in index.images.values() if len(im.encoded) > 1]
    assert multi
    for image in multi:
        parts = [decode_rle(e, image.height, image.width) for e in image.encoded]
        mask = load_mask(image, index.rle_csv)
        assert np.array_equal(mask, np.bitwise_or.reduce(parts)) and all(mask.sum() > p.sum() for p in parts)
        assert image.positive
    negatives = [im for im in index.images.values() if im.encoded == ("-1",)]
    assert negatives and all(not load_mask(im, index.rle_csv).any() and not im.positive for im in negatives)


def write_dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2") -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SecondaryCaptureImageStorage, "1.2.3.4"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, "1.2.3.4"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_pixels_round_trip_and_monochrome1_is_inverted(tmp_path):
    pixels = np.arange(12 * 7, dtype=np.uint8).reshape(12, 7) * 3
    read = read_dicom_pixels(write_dicom(tmp_path / "a.dcm", pixels))
    assert read.dtype == np.uint8 and np.array_equal(read, pixels)  # rows are rows: no transposition here
    inverted = read_dicom_pixels(write_dicom(tmp_path / "b.dcm", pixels, "MONOCHROME1"))
    assert np.array_equal(inverted, 255 - pixels)


def test_unreadable_dicom_is_named(tmp_path):
    (tmp_path / "x.dcm").write_bytes(b"not a dicom" * 20)
    with pytest.raises(InputError, match=r"x\.dcm: unreadable DICOM"):
        read_dicom_pixels(tmp_path / "x.dcm")


def test_problem_rows_are_reported_and_the_others_indexed(siim_copy):
    csv_path = siim_copy / "train-rle.csv"
    lines = csv_path.read_text().splitlines()
    lines[1] = lines[1] + ", extra"
    lines[2] = lines[2].split(",")[0] + ", 3 x"
    csv_path.write_text("\n".join(lines) + "\n")
    reported = []
    index = read_siim(siim_copy, lambda image_id, file, error: reported.append((image_id, file, str(error))))
    bad_ids = {lines[1].split(",")[0], lines[2].split(",")[0]}
    assert {r[0] for r in reported} == bad_ids and all(r[1] == csv_path for r in reported)
    assert f"{csv_path}, line 2: image" in reported[0][2] and "expected 2 fields" in reported[0][2]
    assert f"{csv_path}, line 3: image" in reported[1][2] and "not an integer" in reported[1][2]
    assert set(index.listed) - set(index.images) == bad_ids  # still listed: the split is drawn over them
    with pytest.raises(InputError, match=r"line 2: image .* expected 2 fields"):
        read_siim(siim_copy)  # by default the first problem stops the reader


@pytest.mark.parametrize("header", ["ImageId,EncodedPixels,Extra", "Image,EncodedPixels", ""])
def test_wrong_header_is_fatal(siim_copy, header):
    csv_path = siim_copy / "train-rle.csv"
    csv_path.write_text(header + "\n" + "\n".join(csv_path.read_text().splitlines()[1:]) + "\n")
    with pytest.raises(InputError, match=r"train-rle\.csv, line 1: expected the columns ImageId, EncodedPixels"):
        read_siim(siim_copy, lambda *args: None)
