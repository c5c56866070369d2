from __future__ import annotations

import math

import numpy as np
import pytest

from dira.eval.metrics import mean_auc, per_class_auc, score_predictions

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
    with pytest.raises(KeyError, match="dice"):
        score_predictions("dice", predictions)


@pytest.mark.parametrize(("y_true", "y_score", "problem"), [
    (Y_TRUE, Y_SCORE[:, :3], "same shape"),
    (Y_TRUE[:, 0], Y_SCORE[:, 0], "same shape"),
    (Y_TRUE * 2, Y_SCORE, "binary"),
])
def test_malformed_inputs_are_rejected(y_true, y_score, problem):
    with pytest.raises(ValueError, match=problem):
        per_class_auc(y_true, y_score)
