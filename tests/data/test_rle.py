"""SIIM-ACR RLE: relative offsets, column-major pixels, several rows united, overflow refused."""

from __future__ import annotations

import numpy as np
import pytest

from dira.data.sources.rle import check_rle_fits, decode_rle, encode_rle, rle_runs, union_masks


def test_a_single_run_counts_from_pixel_zero_down_the_first_column():
    mask = decode_rle("2 3", height=6, width=4)
    expected = np.zeros((6, 4), np.uint8)
    expected[2:5, 0] = 1
    assert mask.dtype == np.uint8 and np.array_equal(mask, expected)


def test_later_offsets_count_from_the_end_of_the_previous_run():
    # runs at flat pixels [1, 3) and [3 + 4, 3 + 4 + 2) = [7, 9): column 1 of a 6-high image starts at 6
    mask = decode_rle("1 2 4 2", height=6, width=4)
    expected = np.zeros((6, 4), np.uint8)
    expected[1:3, 0] = 1
    expected[1:3, 1] = 1
    assert np.array_equal(mask, expected)


def test_a_run_in_the_flat_buffer_is_a_column_of_the_image_not_a_row():
    height, width = 5, 3
    mask = decode_rle(f"{2 * height} {height}", height, width)  # the whole third column
    assert mask[:, 2].all() and mask.sum() == height
    assert not mask[0, :2].any()  # a row-major decoder would have filled row 2 instead
    wrapped = decode_rle("4 2", height, width)  # pixels 4 and 5: the bottom of column 0, the top of column 1
    assert wrapped[4, 0] == 1 and wrapped[0, 1] == 1 and wrapped.sum() == 2


@pytest.mark.parametrize("negative", ["-1", " -1", "", "   "])
def test_minus_one_and_empty_are_empty_masks(negative):
    mask = decode_rle(negative, 8, 8)
    assert mask.shape == (8, 8) and not mask.any()


def test_union_of_several_rows_of_one_image():
    upper, lower = encode_rle(_box((10, 10), 1, 4, 2, 6)), encode_rle(_box((10, 10), 3, 8, 5, 9))
    union = union_masks([upper, lower, "-1"], 10, 10)
    assert np.array_equal(union, _box((10, 10), 1, 4, 2, 6) | _box((10, 10), 3, 8, 5, 9))
    assert np.array_equal(union_masks(["-1"], 10, 10), np.zeros((10, 10), np.uint8))


def test_runs_beyond_the_image_are_refused_with_the_pixel_they_reach():
    with pytest.raises(ValueError, match=r"end at pixel 18, beyond the 16 pixels of a 4x4 image"):
        decode_rle("10 2 4 2", 4, 4)
    with pytest.raises(ValueError, match="beyond"):
        check_rle_fits("557374 2 1015 8", 512, 512)
    check_rle_fits("557374 2 1015 8 1009 14", 1024, 1024)  # the release's example row fits 1024²
    assert decode_rle("12 4", 4, 4)[:, 3].all()  # ending exactly at the last pixel is fine


@pytest.mark.parametrize("encoded, match", [("1 2 3", "odd number"), ("1 x", "not an integer"),
                                            ("4 -2", "negative"), ("1.5 2", "not an integer")])
def test_malformed_rle_is_refused(encoded, match):
    with pytest.raises(ValueError, match=match):
        rle_runs(encoded)


def test_encode_then_decode_gives_the_mask_back():
    rng = np.random.default_rng(0)
    for _ in range(50):
        height, width = rng.integers(1, 40, size=2)
        mask = (rng.uniform(size=(height, width)) < rng.uniform()).astype(np.uint8)
        assert np.array_equal(decode_rle(encode_rle(mask), height, width), mask)
    assert encode_rle(np.zeros((3, 3), np.uint8)) == "-1"
    assert encode_rle(np.full((2, 2), 255, np.uint8)) == "0 4"  # the organisers' 255 masks encode too


def test_encoding_is_relative_and_column_major():
    mask = np.zeros((4, 3), np.uint8)
    mask[1:3, 0] = 1  # flat pixels 1, 2
    mask[0, 2] = 1  # flat pixel 8: 8 - 3 = offset 5 after the first run
    assert encode_rle(mask) == "1 2 5 1"


def _box(shape, top, bottom, left, right) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[top:bottom, left:right] = 1
    return mask
