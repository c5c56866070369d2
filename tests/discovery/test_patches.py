"""Cutting words from one scan: content at the coordinate, air beyond the scan, rescaled crops, twin orientations."""

from __future__ import annotations

import numpy as np
import pytest
from discovery_data import write_root

from dira.data.prepare.volume_crops import CropSettings
from dira.data.sources.luna16 import SERIES_PREFIX, read_luna16
from dira.discovery.frames import crop_start
from dira.discovery.patches import Cut, MultiResolution, PatientWords, cut_crop
from dira.discovery.resize import resize_volume
from dira.discovery.words import Placed

SETTINGS = CropSettings((4, 8, 8), (-1000.0, 1000.0), None, "float16")


def multi(enabled=True, seed=0) -> MultiResolution:
    return MultiResolution(enabled, (0.78125, 1.25), 0.15625, seed)


def test_a_native_crop_is_the_scan_at_its_coordinate_windowed():
    volume = np.random.default_rng(0).uniform(-1200, 1200, (10, 20, 20)).astype(np.float32)
    start = np.array([2, 5, 7])
    stored = cut_crop(volume, start, np.array([4, 8, 8]), SETTINGS)
    expected = np.clip(volume[2:6, 5:13, 7:15], -1000, 1000) / 2000 + 0.5
    assert stored.dtype == np.float16 and np.allclose(stored, expected, atol=1e-3)


def test_beyond_the_scan_is_air():
    volume = np.full((10, 20, 20), 1000.0, np.float32)
    stored = cut_crop(volume, np.array([-2, 16, 0]), np.array([4, 8, 8]), SETTINGS).astype(np.float32)
    assert (stored[:2] == 0).all() and (stored[:, 4:] == 0).all() and (stored[2:, :4] == 1).all()


def test_a_rescaled_crop_is_resized_after_windowing():
    volume = np.full((20, 40, 40), 3000.0, np.float32)  # far above the window: clipped to 1 before resizing
    volume[:, :, :20] = -3000.0
    stored = cut_crop(volume, np.array([0, 0, 10]), np.array([5, 10, 20]), SETTINGS).astype(np.float32)
    assert stored.shape == (4, 8, 8) and stored.min() == 0 and stored.max() == 1
    assert np.allclose(stored[..., :3], 0) and np.allclose(stored[..., -3:], 1)


def test_resize_keeps_the_range_and_averages_when_shrinking():
    checker = (np.indices((8, 32, 32)).sum(axis=0) % 2).astype(np.float32)
    small = resize_volume(checker, (4, 8, 8))
    assert small.shape == (4, 8, 8) and np.abs(small - 0.5).max() < 0.1  # low-passed, not every 4th voxel
    grown = resize_volume(np.random.default_rng(0).random((3, 5, 7)), (6, 10, 14))
    assert grown.shape == (6, 10, 14) and grown.min() >= 0 and grown.max() <= 1
    with pytest.raises(ValueError):
        resize_volume(checker, (4, 8))


@pytest.mark.parametrize(("crop", "sides", "shift"), [((32, 64, 64), (50, 80), 10), ((16, 32, 32), (25, 40), 5)])
def test_multi_resolution_draws_follow_the_reference_at_its_scale(crop, sides, shift):
    m = multi()
    assert m.sides(crop[2]) == sides
    draws = [d for uid in range(40) for d in m.draws(3, f"p{uid}", crop)]
    assert len(draws) == 80
    extents = np.array([e for e, _ in draws])
    shifts = np.array([s for _, s in draws])
    assert extents[:, 2].min() >= sides[0] and extents[:, 2].max() < sides[1]
    assert len(set(extents[:, 2])) > 5 and (extents[:, 1] == extents[:, 2]).all()
    assert np.allclose(extents[:, 0], np.rint(extents[:, 2] * crop[0] / crop[2]))
    assert (shifts[:, 0] == 0).all() and np.abs(shifts[:, 1:]).max() == shift
    again = [d for uid in range(40) for d in m.draws(3, f"p{uid}", crop)]
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(draws, again, strict=True))
    assert multi(enabled=False).draws(3, "p0", crop) == []


def _twins(tmp_path):
    """The same anatomy in world space, written once with LUNA's identity and once with its flipped direction."""
    volume = np.random.default_rng(1).integers(-1000, 1000, (12, 24, 24)).astype(np.int16)
    uids = (f"{SERIES_PREFIX}1", f"{SERIES_PREFIX}2")
    root = write_root(tmp_path / "raw", {uids[0]: (0, volume, False),
                                         uids[1]: (0, np.ascontiguousarray(volume[:, ::-1, ::-1]), True)})
    index = read_luna16(root)
    return [index.scans[uid] for uid in uids], volume


@pytest.mark.parametrize("mode", ["relative", "voxel"])
def test_twin_scans_give_the_same_words_only_in_the_common_orientation(tmp_path, mode):
    scans, _ = _twins(tmp_path)
    cuts = (Cut(0, 0, Placed((4.5, 6.5, 9.5), (12, 24, 24), 1), rescaled=False),
            Cut(1, 0, Placed((6.5, 12.0, 4.0), (12, 24, 24), 1), rescaled=False))
    rows = [list(PatientWords(scan, SETTINGS, cuts, multi(), mode).rows()) for scan in scans]
    same = [np.array_equal(a.image, b.image) for a, b in zip(*rows, strict=True)]
    assert len(same) == 2 and (all(same) if mode == "relative" else not any(same))
    if mode == "relative":  # the flipped twin's centre, as an index of its own array, is the mirrored one
        assert np.allclose(rows[1][0].fields["centres_zyx"], [4.5, 23 - 6.5, 23 - 9.5])


def test_rows_carry_label_rank_resolution_and_spacing(tmp_path):
    scans, volume = _twins(tmp_path)
    cuts = (Cut(2, 5, Placed((4.5, 6.5, 9.5), (12, 24, 24), 1), rescaled=False),
            Cut(7, 0, Placed((6.5, 12.5, 12.5), (12, 24, 24), 1), rescaled=True))
    rows = list(PatientWords(scans[0], SETTINGS, cuts, multi(), "relative").rows())
    assert [(r.fields["labels"], r.fields["rank"], r.fields["resolution"]) for r in rows] == \
        [(2, 5, 0), (7, 0, 0), (7, 0, 1), (7, 0, 2)]
    assert [r.id for r in rows] == [f"vw002/{scans[0].seriesuid}/r0",
                                    *(f"vw007/{scans[0].seriesuid}/r{k}" for k in range(3))]
    start = crop_start(np.array([4.5, 6.5, 9.5]), (4, 8, 8))
    expected = SETTINGS.store(volume[tuple(slice(a, a + n) for a, n in zip(start, (4, 8, 8), strict=True))])
    assert np.array_equal(rows[0].image, expected)
    assert np.allclose(rows[0].fields["spacing_zyx"], [2.0, 0.8, 0.8])
    extent = rows[2].fields["extent_zyx"]
    assert np.allclose(rows[2].fields["spacing_zyx"], np.array([2.0, 0.8, 0.8]) * extent / (4, 8, 8))
