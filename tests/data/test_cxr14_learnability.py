"""The synthetic findings are learnable at 64 px: even a linear model on raw pixels beats chance."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from dira.data.cache import SplitCache
from dira.data.prepare import prepare_dataset
from dira.data.synthetic.chestxray14 import write_chestxray14


def pixels_and_labels(path):
    cache = SplitCache(path)
    try:
        images, labels = cache.images(), cache.array("labels")
    finally:
        cache.close()
    return images.reshape(len(images), -1).astype(np.float32) / 255, labels


def test_logistic_regression_on_64px_pixels_beats_chance(tmp_path):
    write_chestxray14(tmp_path / "raw", patients=150, image_size=128, seed=11)
    config = {"prepare": {"workers": 1}, "datasets": {"chestxray14": {"cache_size": 64}}}
    prepare_dataset("chestxray14", tmp_path / "raw", tmp_path / "h5", config)
    x_train, y_train = pixels_and_labels(tmp_path / "h5" / "train.h5")
    x_test, y_test = pixels_and_labels(tmp_path / "h5" / "test.h5")  # held-out patients
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-3
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    aucs = []
    with threadpool_limits(limits=1):  # small problem: BLAS threads would only contend
        for c in range(y_train.shape[1]):
            model = LogisticRegression(C=0.01, max_iter=300).fit(x_train, y_train[:, c])
            if 0 < y_test[:, c].sum() < len(y_test):
                aucs.append(roc_auc_score(y_test[:, c], model.decision_function(x_test)))
    assert len(aucs) == 14  # every class has positives among the held-out images
    assert np.mean(aucs) > 0.7, np.round(aucs, 2)
