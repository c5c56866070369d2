from __future__ import annotations

import copy
import itertools
import json
import math

import numpy as np
import pytest

from dira.cli import build_parser
from dira.errors import InputError
from dira.train.finetune import finetune
from dira.train.finetune.fractions import select_training, subset_digest, training_subset

FRACTIONS = (0.01, 0.25, 0.5, 1.0)


@pytest.mark.parametrize("n_images", [7, 100, 1013])
def test_subsets_are_nested_and_sized_ceil_fraction_n(n_images):
    subsets = [set(training_subset(n_images, f, seed=0).tolist()) for f in FRACTIONS]
    assert [len(s) for s in subsets] == [max(1, math.ceil(f * n_images)) for f in FRACTIONS]
    assert all(small <= large for small, large in itertools.pairwise(subsets))
    assert subsets[-1] == set(range(n_images))


def test_subsets_depend_only_on_their_seed():
    first, again = training_subset(1000, 0.25, seed=3), training_subset(1000, 0.25, seed=3)
    np.testing.assert_array_equal(first, again)
    assert np.all(np.diff(first) > 0)  # sorted, no repeats: the loader's shuffling stays the run seed's
    assert not np.array_equal(first, training_subset(1000, 0.25, seed=4))


def test_float_noise_does_not_add_an_image():
    assert len(training_subset(100, 0.07, seed=0)) == 7  # 0.07 * 100 = 7.000000000000001


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_fractions_outside_the_unit_interval_are_rejected(fraction):
    with pytest.raises(InputError, match="not in \\(0, 1\\]"):
        training_subset(10, fraction, seed=0)


def test_one_percent_of_a_small_set_trains_on_its_single_image(write_segmentation, segmentation_config, tmp_path):
    """As in the paper's Table 1 (1 % of Montgomery's ~110 training images): one image, one batch per epoch."""
    for seed, (split, n) in enumerate({"train": 30, "val": 6, "test": 6}.items()):
        write_segmentation(tmp_path / f"{split}.h5", n, seed=seed, size=64)
    # At 64 px the deepest feature map is 2×2: batch norm can train on the single image.
    config = copy.deepcopy(segmentation_config)
    config["model"]["input_size"] = 64
    finetune("montgomery", tmp_path, "random", None, 0, tmp_path / "run", config, fraction=0.01)
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert (metrics["n_train"], metrics["n_train_available"]) == (1, 30)
    assert len(metrics["history"]) >= 1 and all(math.isfinite(row["train_loss"]) for row in metrics["history"])


def test_an_empty_training_split_is_rejected():
    with pytest.raises(InputError, match=r"train\.h5: no training images"):
        select_training([], [], 0.01, 0, source="train.h5")


def test_classification_run_records_its_subset(tiny_chestxray14, finetune_config, tmp_path):
    finetune("chestxray14", tiny_chestxray14, "random", None, 0, tmp_path, finetune_config, fraction=0.5)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (metrics["fraction"], metrics["n_train"], metrics["n_train_available"]) == (0.5, 24, 48)
    assert (metrics["n_val"], metrics["n_test"], metrics["fraction_seed"]) == (16, 24, 0)
    ids = [f"train_{i:03d}.png" for i in training_subset(48, 0.5, seed=0)]
    assert metrics["train_subset_digest"] == subset_digest(ids)


def test_cli_passes_the_fraction():
    args = build_parser().parse_args(["finetune", "--task", "chexpert", "--data", "d", "--init", "random",
                                      "--seed", "0", "--out", "o", "--fraction", "0.25"])
    assert args.fraction == 0.25
    assert build_parser().parse_args(["finetune", "--task", "siim", "--data", "d", "--init", "random",
                                      "--seed", "0", "--out", "o"]).fraction == 1.0
