"""The 3D segmentation score (pooled IoU) against an independent computation, its Dice, and the packing of
variable-size volumes into predictions.npz."""

from __future__ import annotations

import numpy as np
import pytest

from dira.eval.metrics import iou, pack_volumes, score_predictions, unpack_volumes, voxel_dice
from dira.train.finetune.outputs import save_predictions


def voxel_sets(mask: np.ndarray, tag: int = 0) -> set[tuple[int, ...]]:
    return {(tag, *map(int, index)) for index in np.argwhere(mask)}


def set_iou(truths: list[np.ndarray], preds: list[np.ndarray]) -> float:
    """|T ∩ P| / |T ∪ P| over sets of (volume, voxel index) tuples: no arithmetic shared with the code."""
    t = set().union(*(voxel_sets(m, i) for i, m in enumerate(truths)))
    p = set().union(*(voxel_sets(m, i) for i, m in enumerate(preds)))
    return len(t & p) / len(t | p)


@pytest.mark.parametrize("shape", [(5, 4, 6, 6), (3, 8, 8), (200,)])
def test_iou_is_intersection_over_union_of_all_voxels(shape):
    rng = np.random.default_rng(len(shape))
    truth = (rng.random(shape) < 0.3).astype(np.uint8)
    pred = (rng.random(shape) < 0.4).astype(np.uint8)
    assert iou(truth, pred) == pytest.approx(set_iou([truth], [pred]), abs=1e-12)
    value = iou(truth, pred)
    assert voxel_dice(truth, pred) == pytest.approx(2 * value / (1 + value))  # the same overlap, as Dice


def test_iou_pools_rather_than_averages():
    truth = np.zeros((2, 4, 4, 4), np.uint8)
    pred = np.zeros_like(truth)
    truth[0, :2] = 1                       # crop 0: 32 true voxels, all found
    pred[0, :2] = 1
    truth[1, 0, 0, 0] = 1                  # crop 1: one true voxel, missed, one false positive
    pred[1, 3, 3, 3] = 1
    assert iou(truth, pred) == pytest.approx(32 / 34)  # per-crop mean would be 0.5


def test_iou_edge_cases_and_bad_input():
    empty = np.zeros((2, 3, 3), np.uint8)
    assert iou(empty, empty) == 1.0 and voxel_dice(empty, empty) == 1.0
    assert iou(empty, 1 - empty) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        iou(empty, empty[0])
    with pytest.raises(ValueError, match="binary"):
        iou(empty + 2, empty)
    with pytest.raises(ValueError, match="binary"):
        iou(empty, np.full((2, 3, 3), 0.7))  # probabilities must be binarised first


def test_volumes_of_different_shapes_pack_into_plain_arrays_and_score_the_same(tmp_path):
    rng = np.random.default_rng(7)
    shapes = [(4, 5, 6), (2, 3, 3), (7, 1, 2)]
    truths = [(rng.random(s) < 0.4).astype(np.uint8) for s in shapes]
    preds = [(rng.random(s) < 0.5).astype(np.uint8) for s in shapes]
    packed = pack_volumes(["a", "b", "c"], truths, preds)
    save_predictions(tmp_path / "predictions.npz", packed)
    with np.load(tmp_path / "predictions.npz", allow_pickle=False) as npz:
        loaded = {name: npz[name] for name in npz.files}
    assert loaded["y_true"].dtype == loaded["y_pred"].dtype == np.uint8 and loaded["y_true"].ndim == 1
    assert score_predictions("iou", loaded) == pytest.approx(set_iou(truths, preds), abs=1e-12)
    back = list(unpack_volumes(loaded))
    assert [case for case, _, _ in back] == ["a", "b", "c"]
    for (_, truth, pred), t, p in zip(back, truths, preds, strict=True):
        assert np.array_equal(truth, t) and np.array_equal(pred, p)
    with pytest.raises(ValueError, match="differ in shape"):
        pack_volumes(["a"], truths[:1], preds[1:2])


def test_score_predictions_names_the_arrays_a_metric_needs():
    with pytest.raises(KeyError, match=r"iou.*y_pred"):
        score_predictions("iou", {"y_true": np.zeros(3, np.uint8), "y_score": np.zeros(3)})
