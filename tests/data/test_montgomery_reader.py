"""The synthetic Montgomery set and its reader: layout, 16-bit frames both ways round, united masks, readings."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation

from dira.data.sources.montgomery import parse_reading, read_lung_mask, read_montgomery, read_radiograph
from dira.data.synthetic.montgomery import write_montgomery
from dira.errors import InputError


def png_header(path: Path) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from the IHDR chunk."""
    data = path.read_bytes()[:26]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height, data[24], data[25]


def test_layout_names_and_png_formats(montgomery_root, montgomery_spec):
    assert montgomery_root.name == "MontgomerySet"
    names = sorted(p.name for p in (montgomery_root / "CXR_png").iterdir())
    assert len(names) == montgomery_spec.images and all(re.fullmatch(r"MCUCXR_\d{4}_[01]\.png", n) for n in names)
    assert round(montgomery_spec.images * 58 / 138) == sum(n.endswith("_1.png") for n in names)
    for folder in ("ManualMask/leftMask", "ManualMask/rightMask"):
        assert sorted(p.name for p in (montgomery_root / folder).iterdir()) == names
    assert sorted(p.name for p in (montgomery_root / "ClinicalReadings").iterdir()) == [
        n.replace(".png", ".txt") for n in names]
    shapes = set()
    for name in names:
        width, height, depth, colour = png_header(montgomery_root / "CXR_png" / name)
        assert (depth, colour) == (16, 0) and max(width, height) == montgomery_spec.long_side  # 16-bit grey
        assert min(width, height) == round(montgomery_spec.long_side * 4020 / 4892)
        for folder in ("leftMask", "rightMask"):
            assert png_header(montgomery_root / "ManualMask" / folder / name) == (width, height, 8, 0)
        shapes.add("landscape" if width > height else "portrait")
    assert shapes == {"landscape", "portrait"}


def test_readings_have_the_release_format(montgomery_root):
    for path in (montgomery_root / "ClinicalReadings").iterdir():
        lines = path.read_text().splitlines()
        assert re.fullmatch(r"Patient's Sex: [MF]", lines[0]) and lines[0][15] in "MF"
        assert re.fullmatch(r"Patient's Age: \d{3}Y", lines[1]) and lines[1][15:18].isdigit()
        assert (lines[2] == "normal") == path.stem.endswith("_0")


def test_reader_unites_the_two_lungs_of_16_bit_images(montgomery_root, montgomery_spec):
    index = read_montgomery(montgomery_root)
    assert index.source == "synthetic" and len(index.images) == montgomery_spec.images
    for record in index.images.values():
        pixels = read_radiograph(record.image)
        assert pixels.dtype == np.uint16 and 255 < pixels.max() < 4096  # 12 bits used of 16
        assert pixels.shape[::-1] == record.size
        left, right = (np.asarray(Image.open(p)) for p in (record.left_mask, record.right_mask))
        assert set(np.unique(left)) == {0, 255} and not (left & right).any()
        lungs = read_lung_mask(record)
        assert lungs.dtype == np.uint8 and np.array_equal(lungs, ((left > 0) | (right > 0)).astype(np.uint8))
        assert record.tuberculosis == record.image_id.endswith("_1") and record.number == int(record.image_id[7:11])
        on_the_image_right = np.flatnonzero(left.any(axis=0)).mean() > pixels.shape[1] / 2
        assert on_the_image_right  # leftMask: the patient's left lung, the image's right on a PA view


def test_lungs_are_darker_than_the_body_around_them(montgomery_root):
    for record in read_montgomery(montgomery_root).images.values():
        pixels, lungs = read_radiograph(record.image).astype(float), read_lung_mask(record).astype(bool)
        ring = binary_dilation(lungs, iterations=2) & ~lungs
        assert pixels[lungs].mean() < pixels[ring].mean() - 200  # of 4095: the mask's edge is the lung's edge


def test_readings_are_parsed(montgomery_root):
    for record in read_montgomery(montgomery_root).images.values():
        text = (montgomery_root / "ClinicalReadings" / f"{record.image_id}.txt").read_text().splitlines()
        assert record.reading.sex == text[0][15] and record.reading.age == int(text[1][15:18])
        assert record.reading.findings == text[2]
    crlf = parse_reading("Patient's Sex: F\r\nPatient's Age: 009Y\r\nright upper lobe\r\ncavity\r\n")
    assert (crlf.sex, crlf.age, crlf.findings) == ("F", 9, "right upper lobe\ncavity")
    odd = parse_reading("Sex F\nno age here\n")
    assert (odd.sex, odd.age) == (None, None)


def test_same_arguments_give_identical_files(tmp_path):
    a = write_montgomery(tmp_path / "a", count=4, image_size=48, seed=3)
    b = write_montgomery(tmp_path / "b", count=4, image_size=48, seed=3)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 4 * 4 + 1 and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def test_refuses_to_overwrite_a_real_copy(tmp_path):
    (tmp_path / "MontgomerySet" / "CXR_png").mkdir(parents=True)
    with pytest.raises(InputError, match="refusing to overwrite"):
        write_montgomery(tmp_path, count=4, image_size=48)
