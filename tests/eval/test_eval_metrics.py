from __future__ import annotations

import math

import numpy as np
import pytest

from dira.eval.metrics import dice_per_image, mean_auc, mean_dice, per_class_auc, pooled_dice, score_predictions

# Column 0: of the 4 (positive, negative) pairs, 3 are ordered correctly -> AUC 0.75.
# Column 1: all negative -> undefined. Column 2: perfectly separated -> 1.0. Column 3: a tie -> 0.5.
Y_TRUE = np.array([[0, 0, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0], [1, 0, 1, 1]], dtype=np.uint8)
Y_SCORE = np.array([[0.1, 0.3, 0.2, 0.5], [0.4, 0.1, 0.9, 0.5], [0.35, 0.2, 0.1, 0.5], [0.8, 0.7, 0.6, 0.5]],
                   dtype=np.float32)


def test_per_class_auc_matches_hand_computed_values():
    aucs = per_class_auc(Y_TRUE, Y_SCORE)
    assert aucs[0] == pytest.approx(0.75)
    assert math.isnan(aucs[1])
    assert aucs[2] == pytest.approx(1.0)
    assert aucs[3] == pytest.approx(0.5)


def test_mean_auc_skips_undefined_classes():
    assert mean_auc(Y_TRUE, Y_SCORE) == pytest.approx((0.75 + 1.0 + 0.5) / 3)


def test_mean_auc_is_nan_when_no_class_has_an_auc():
    assert math.isnan(mean_auc(np.zeros((3, 2), np.uint8), np.random.default_rng(0).random((3, 2))))


def test_score_predictions_uses_the_named_metric():
    predictions = {"y_true": Y_TRUE, "y_score": Y_SCORE, "ids": np.array(list("abcd"))}
    assert score_predictions("auc", predictions) == mean_auc(Y_TRUE, Y_SCORE)
    with pytest.raises(KeyError, match="nosuchmetric"):
        score_predictions("nosuchmetric", predictions)


@pytest.mark.parametrize(("y_true", "y_score", "problem"), [
    (Y_TRUE, Y_SCORE[:, :3], "same shape"),
    (Y_TRUE[:, 0], Y_SCORE[:, 0], "same shape"),
    (Y_TRUE * 2, Y_SCORE, "binary"),
])
def test_malformed_inputs_are_rejected(y_true, y_score, problem):
    with pytest.raises(ValueError, match=problem):
        per_class_auc(y_true, y_score)


def test_unknown_labels_are_left_out_of_their_class_auc():
    # Column 0 over its known rows (0, 1, 3): positives 0.9, 0.2 vs negative 0.5 -> 1 of 2 pairs ordered = 0.5.
    # Column 1 without the nan row is all negative -> undefined.
    y_true = np.array([[1, 0], [0, np.nan], [np.nan, 0], [1, 0]])
    y_score = np.array([[0.9, 0.1], [0.5, 0.8], [0.0, 0.3], [0.2, 0.4]])
    aucs = per_class_auc(y_true, y_score)
    assert aucs[0] == pytest.approx(0.5) and math.isnan(aucs[1])
    with pytest.raises(ValueError, match="binary"):
        per_class_auc(np.array([[0.7], [0.0]]), np.array([[0.1], [0.2]]))


# Image 0: |T| 2, |P| 1, overlap 1 -> 2/3. Image 1: both empty -> 1. Image 2: a false finding -> 0.
# Image 3: a missed finding -> 0. Pooled: overlap 1, |T| 3, |P| 2 -> 2/5.
MASKS_TRUE = np.array([[[1, 1], [0, 0]], [[0, 0], [0, 0]], [[0, 0], [0, 0]], [[0, 0], [0, 1]]], dtype=np.uint8)
MASKS_PRED = np.array([[[1, 0], [0, 0]], [[0, 0], [0, 0]], [[1, 0], [0, 0]], [[0, 0], [0, 0]]], dtype=np.uint8)


def test_dice_per_image_matches_hand_computed_values():
    np.testing.assert_allclose(dice_per_image(MASKS_TRUE, MASKS_PRED), [2 / 3, 1.0, 0.0, 0.0])
    assert mean_dice(MASKS_TRUE, MASKS_PRED) == pytest.approx(5 / 12)
    assert pooled_dice(MASKS_TRUE, MASKS_PRED) == pytest.approx(2 / 5)
    assert mean_dice(MASKS_TRUE[1:2], MASKS_PRED[1:2]) == pooled_dice(MASKS_TRUE[1:2], MASKS_PRED[1:2]) == 1.0


def test_score_predictions_recomputes_the_dice_from_saved_masks():
    predictions = {"ids": np.array(list("abcd")), "y_true": MASKS_TRUE, "y_pred": MASKS_PRED}
    assert score_predictions("dice", predictions) == mean_dice(MASKS_TRUE, MASKS_PRED)


@pytest.mark.parametrize(("y_true", "y_pred", "problem"), [
    (MASKS_TRUE, MASKS_PRED[:, :1], "same shape"),
    (MASKS_TRUE[0], MASKS_PRED[0], "same shape"),
    (MASKS_TRUE[:0], MASKS_PRED[:0], "N > 0"),
    (MASKS_TRUE, MASKS_PRED * 255, "y_pred must be binary"),
])
def test_malformed_masks_are_rejected(y_true, y_pred, problem):
    with pytest.raises(ValueError, match=problem):
        dice_per_image(y_true, y_pred)
