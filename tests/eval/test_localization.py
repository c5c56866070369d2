"""Heatmap -> boxes -> IoU -> accuracy at δ, on hand-made heatmaps and boxes with known answers."""

import math

import numpy as np
import pandas as pd
import pytest

from dira.eval.localization import box_iou, heatmap_to_boxes, localization_accuracy, scale_box, scale_to_255


def test_two_blobs_give_two_boxes_in_pixel_coordinates():
    heatmap = np.zeros((20, 30))
    heatmap[2:6, 3:10] = 200  # rows 2-5, columns 3-9
    heatmap[12:19, 20:25] = 100  # below 180: only at 60
    assert heatmap_to_boxes(heatmap, 60) == [(3, 2, 7, 4), (20, 12, 5, 7)]
    assert heatmap_to_boxes(heatmap, 180) == [(3, 2, 7, 4)]


def test_diagonal_neighbours_form_one_region():
    heatmap = np.zeros((5, 5))
    heatmap[1, 1] = heatmap[2, 2] = heatmap[3, 3] = 255
    assert heatmap_to_boxes(heatmap, 60) == [(1, 1, 3, 3)]


def test_a_blob_touching_the_border_keeps_its_edge():
    heatmap = np.zeros((16, 16))
    heatmap[0:5, 11:16] = 255  # top-right corner, touching two borders
    heatmap[10:16, 0:1] = 255  # a one-pixel-wide strip on the left border
    assert heatmap_to_boxes(heatmap, 60) == [(11, 0, 5, 5), (0, 10, 1, 6)]


def test_threshold_is_strict():
    heatmap = np.full((4, 4), 60.0)
    heatmap[0, 0] = 61
    assert heatmap_to_boxes(heatmap, 60) == [(0, 0, 1, 1)]


@pytest.mark.parametrize("value", [0.0, 7.5, 255.0])
def test_a_constant_heatmap_gives_no_box_and_no_crash(value):
    scaled = scale_to_255(np.full((8, 8), value))
    assert np.all(scaled == 0)
    assert heatmap_to_boxes(scaled, 60) == [] and heatmap_to_boxes(scaled, 180) == []


def test_scale_to_255_is_min_max():
    scaled = scale_to_255(np.array([[2.0, 4.0], [3.0, 6.0]]))
    np.testing.assert_allclose(scaled, [[0, 127.5], [63.75, 255]])


def test_non_2d_and_non_finite_heatmaps_are_refused():
    with pytest.raises(ValueError, match="2D"):
        heatmap_to_boxes(np.zeros((2, 3, 3)), 60)
    with pytest.raises(ValueError, match="non-finite"):
        scale_to_255(np.array([[0.0, np.nan]]))


@pytest.mark.parametrize(("a", "b", "iou"), [
    ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
    ((0, 0, 10, 10), (5, 0, 10, 10), 50 / 150),  # half overlap
    ((0, 0, 10, 10), (2, 2, 4, 4), 16 / 100),  # contained
    ((0, 0, 10, 10), (10, 0, 10, 10), 0.0),  # touching edges
    ((0, 0, 10, 10), (30, 30, 5, 5), 0.0),  # apart
    ((1.5, 2.5, 3.0, 2.0), (2.5, 3.5, 3.0, 2.0), 2.0 / 10.0),  # fractional coordinates
])
def test_box_iou_on_hand_made_boxes(a, b, iou):
    assert box_iou(a, b) == pytest.approx(iou)
    assert box_iou(b, a) == pytest.approx(iou)


def test_scale_box_maps_heatmap_pixels_to_the_original_image():
    # a 64-px heatmap of a 1024×512 (W×H) image: x scales by 16, y by 8
    assert scale_box((4, 2, 8, 3), 1024 / 64, 512 / 64) == (64, 16, 128, 24)


def test_accuracy_at_each_delta_on_a_hand_computed_example():
    # 4 ground-truth boxes: A has two (ids 0, 1), B two (ids 2, 3); C has none.
    truth = pd.DataFrame({"box_id": [0, 1, 2, 3], "label": ["A", "A", "B", "B"]})
    predicted = pd.DataFrame({
        "box_id": [0, 0, 1, 2, 2, 3],
        "threshold": ["60", "180", "60", "60", "180", "60"],
        "iou": [0.15, 0.45, 0.05, 0.35, np.nan, np.nan],  # box 3: no box at 60; box 2: none at 180
    })
    table = localization_accuracy(truth, predicted, ["A", "B", "C"], thresholds=[60, 180], deltas=[0.1, 0.3, 0.5])
    acc = table.set_index(["label", "threshold", "delta"])["accuracy"]
    # threshold 60: best IoUs 0.15, 0.05 | 0.35, none
    assert acc["A", "60", 0.1] == 0.5 and acc["A", "60", 0.3] == 0.0
    assert acc["B", "60", 0.1] == 0.5 and acc["B", "60", 0.3] == 0.5 and acc["B", "60", 0.5] == 0.0
    # threshold 180: box 0 at 0.45, nothing else
    assert acc["A", "180", 0.3] == 0.5 and acc["B", "180", 0.1] == 0.0
    # either threshold: 0.45, 0.05 | 0.35, none
    assert acc["A", "any", 0.1] == 0.5 and acc["A", "any", 0.5] == 0.0 and acc["B", "any", 0.3] == 0.5
    # mean over the classes with boxes (C has none: nan, left out)
    assert math.isnan(acc["C", "any", 0.1])
    assert acc["mean", "any", 0.1] == pytest.approx((0.5 + 0.5) / 2)
    assert acc["mean", "180", 0.3] == pytest.approx((0.5 + 0.0) / 2)
    counts = table.set_index(["label", "threshold", "delta"])
    assert counts.loc[("mean", "any", 0.3), "n_correct"] == 2 and counts.loc[("mean", "any", 0.3), "n_boxes"] == 4


def test_an_iou_equal_to_delta_counts_despite_float_rounding():
    truth = pd.DataFrame({"box_id": [0], "label": ["A"]})
    iou = box_iou((0, 0, 10, 10), (0, 0, 10, 3))  # 0.3, computed in floats
    predicted = pd.DataFrame({"box_id": [0], "threshold": ["60"], "iou": [iou]})
    table = localization_accuracy(truth, predicted, ["A"], thresholds=[60], deltas=[0.1 + 0.2])  # 0.30000000000000004
    assert table.query("label == 'A' and threshold == '60'")["accuracy"].item() == 1.0
