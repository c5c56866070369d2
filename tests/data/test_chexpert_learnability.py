"""The synthetic CheXpert findings are learnable at 64 px: a linear model on raw pixels beats chance."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from dira.data.cache import SplitCache
from dira.data.prepare import prepare_dataset
from dira.data.sources.chexpert import CHEXPERT_LABELS, COMPETITION_LABELS
from dira.data.synthetic.chexpert import write_chexpert


def pixels_and_codes(path):
    cache = SplitCache(path)
    try:
        images, codes = cache.images(), cache.array("labels")
    finally:
        cache.close()
    return images.reshape(len(images), -1).astype(np.float32) / 255, codes


def test_logistic_regression_on_64px_pixels_beats_chance_on_the_competition_labels(tmp_path):
    root = write_chexpert(tmp_path / "raw", patients=150, image_size=96, seed=11)
    prepare_dataset("chexpert", root, tmp_path / "h5",
                    {"prepare": {"workers": 1}, "datasets": {"chexpert": {"cache_size": 64}}})
    x_train, codes_train = pixels_and_codes(tmp_path / "h5" / "train.h5")
    x_test, codes_test = pixels_and_codes(tmp_path / "h5" / "test.h5")  # valid.csv: held-out patients, 0/1 only
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-3
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    aucs = {}
    with threadpool_limits(limits=1):  # small problem: BLAS threads would only contend
        for name in COMPETITION_LABELS:
            column = CHEXPERT_LABELS.index(name)
            model = LogisticRegression(C=0.01, max_iter=300).fit(x_train, codes_train[:, column] == 1)
            aucs[name] = roc_auc_score(codes_test[:, column] == 1, model.decision_function(x_test))
    assert np.mean(list(aucs.values())) > 0.75 and min(aucs.values()) > 0.5, aucs
