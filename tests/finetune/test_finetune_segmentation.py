from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from dira.errors import InputError
from dira.eval.metrics import dice_per_image, mean_dice
from dira.io import save_torch
from dira.models.unet import UNet
from dira.report.tables import aggregate, read_table
from dira.train.finetune import finetune
from dira.train.finetune import segmentation as segmentation_runner

DECODER_KEY = "decoder.blocks.1.conv1.0.weight"
ENCODER_KEY = "encoder.layer2.0.conv1.weight"


def read_outputs(out_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    metrics = json.loads((out_dir / "metrics.json").read_text())
    with np.load(out_dir / "predictions.npz", allow_pickle=False) as npz:
        return metrics, {name: npz[name] for name in npz.files}


@pytest.fixture(scope="module")
def pretrained_unet(segmentation_config, tmp_path_factory) -> tuple[Path, Path, dict[str, torch.Tensor]]:
    """(unet.pt, encoder.pt, the U-Net state) of a 'pre-trained' U-Net: random weights of another seed."""
    folder = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(1234)
    state = UNet("resnet18", segmentation_config["model"]["decoder_channels"]).state_dict()
    save_torch(folder / "unet.pt", state)
    save_torch(folder / "encoder.pt", {k.removeprefix("encoder."): v for k, v in state.items()
                                       if k.startswith("encoder.")})
    return folder / "unet.pt", folder / "encoder.pt", state


@pytest.fixture
def weights_at_start(monkeypatch) -> dict[str, torch.Tensor]:
    """The model's state when the runner hands it to ``fit``, i.e. after initialisation, before training."""
    captured: dict[str, torch.Tensor] = {}
    real_fit = segmentation_runner.fit

    def spy(model, *args, **kwargs):
        captured.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(segmentation_runner, "fit", spy)
    return captured


@pytest.fixture(scope="module")
def random_run(tiny_siim, segmentation_config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("siim_runs") / "random" / "seed0"
    finetune("siim", tiny_siim, "random", None, 0, out, segmentation_config)
    return out


def test_random_init_writes_masks_that_recompute_the_dice(random_run, tiny_siim):
    assert sorted(p.name for p in random_run.iterdir()) == ["metrics.json", "model.pt", "predictions.npz"]
    metrics, predictions = read_outputs(random_run)
    with h5py.File(tiny_siim / "test.h5", "r") as f:
        cached_masks, cached_ids = f["masks"][()], f["ids"].asstr()[()]

    assert sorted(predictions) == ["ids", "y_pred", "y_true"]
    np.testing.assert_array_equal(predictions["ids"], cached_ids)
    np.testing.assert_array_equal(predictions["y_true"], cached_masks)
    assert predictions["y_pred"].dtype == np.uint8 and predictions["y_pred"].shape == (12, 32, 32)
    assert set(np.unique(predictions["y_pred"])) <= {0, 1}

    dice = dice_per_image(predictions["y_true"], predictions["y_pred"])
    assert metrics["value"] == mean_dice(predictions["y_true"], predictions["y_pred"]) == pytest.approx(dice.mean())
    per_image = metrics["per_image"]
    assert (per_image["n_with_finding"], per_image["n_without_finding"]) == (9, 3)  # every fourth disk is missing
    assert per_image["median"] == pytest.approx(np.median(dice))
    assert per_image["min"] <= metrics["value"] <= per_image["max"]
    identity = (metrics["task"], metrics["init"], metrics["seed"], metrics["metric"], metrics["weights_loaded"])
    assert identity == ("siim", "random", 0, "dice", "random")
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"], metrics["fraction"]) == (24, 8, 12, 1.0)


def test_learning_rate_follows_the_cosine_over_max_epochs(random_run, segmentation_config):
    metrics, _ = read_outputs(random_run)
    seg = segmentation_config["finetune"]["segmentation"]
    expected = [seg["lr"] * (1 + math.cos(math.pi * (epoch - 1) / seg["max_epochs"])) / 2
                for epoch in range(1, metrics["epochs_trained"] + 1)]
    assert [row["lr"] for row in metrics["history"]] == pytest.approx(expected, rel=1e-12)
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]  # soft Dice does fall


def test_same_seed_reproduces_the_masks(random_run, tiny_siim, segmentation_config, tmp_path):
    # albumentations keeps its own generator: the run must reseed it, or augmentations differ between runs.
    finetune("siim", tiny_siim, "random", None, 0, tmp_path, segmentation_config)
    again, first = read_outputs(tmp_path), read_outputs(random_run)
    np.testing.assert_array_equal(again[1]["y_pred"], first[1]["y_pred"])
    assert again[0]["history"] == first[0]["history"]


def test_unet_weights_start_encoder_and_decoder(tiny_siim, segmentation_config, pretrained_unet, weights_at_start,
                                                random_run, tmp_path):
    unet_pt, _, state = pretrained_unet
    out = tmp_path / "mocov2_dira" / "seed0"
    finetune("siim", tiny_siim, "mocov2_dira", unet_pt, 0, out, segmentation_config)
    for key in state:
        torch.testing.assert_close(weights_at_start[key], state[key], rtol=0, atol=0)
    metrics, predictions = read_outputs(out)
    assert metrics["weights_loaded"] == "unet" and metrics["weights"] == str(unet_pt)
    assert not np.array_equal(predictions["y_pred"], read_outputs(random_run)[1]["y_pred"])


def test_encoder_weights_leave_the_decoder_random(tiny_siim, segmentation_config, pretrained_unet, weights_at_start,
                                                  tmp_path):
    _, encoder_pt, state = pretrained_unet
    finetune("siim", tiny_siim, "simsiam_base", encoder_pt, 0, tmp_path / "run", segmentation_config)
    torch.testing.assert_close(weights_at_start[ENCODER_KEY], state[ENCODER_KEY], rtol=0, atol=0)
    assert not torch.equal(weights_at_start[DECODER_KEY], state[DECODER_KEY])
    torch.manual_seed(0)  # the run's seed: its decoder is the one a fresh U-Net draws from it
    fresh = UNet("resnet18", segmentation_config["model"]["decoder_channels"]).state_dict()
    torch.testing.assert_close(weights_at_start[DECODER_KEY], fresh[DECODER_KEY], rtol=0, atol=0)
    assert read_outputs(tmp_path / "run")[0]["weights_loaded"] == "encoder"


@pytest.mark.parametrize("content", ["foreign", "other_decoder"])
def test_weights_that_fit_neither_layout_are_rejected(tiny_siim, segmentation_config, tmp_path, content):
    path = tmp_path / "weights.pt"
    if content == "foreign":
        save_torch(path, {"generator.conv.weight": torch.zeros(3)})
        problem = "neither a U-Net state dict"
    else:
        save_torch(path, UNet("resnet18", [64, 32, 16, 16, 8]).state_dict())
        problem = "U-Net weights do not fit"
    with pytest.raises(InputError, match=re.escape(f"{path}: {problem}")):
        finetune("siim", tiny_siim, "mocov2_dira", path, 0, tmp_path / "out", segmentation_config)
    assert not (tmp_path / "out").exists()


def test_label_fraction_trains_on_a_recorded_subset(tiny_siim, segmentation_config, tmp_path):
    config = copy.deepcopy(segmentation_config)
    config["finetune"]["segmentation"]["max_epochs"] = 1
    finetune("montgomery", tiny_siim, "random", None, 0, tmp_path, config, fraction=0.25)
    metrics, predictions = read_outputs(tmp_path)
    assert (metrics["fraction"], metrics["n_train"], metrics["n_train_available"]) == (0.25, 6, 24)
    assert metrics["n_test"] == len(predictions["y_true"]) == 12  # validation and test are unchanged


def test_aggregate_recomputes_the_dice_of_segmentation_runs(random_run, tmp_path):
    value = read_outputs(random_run)[0]["value"]
    aggregate("siim", [random_run], tmp_path / "siim.csv", tmp_path / "siim.md")
    table = read_table(tmp_path / "siim.csv")
    assert (table.loc[0, "metric"], table.loc[0, "init"], table.loc[0, "mean"]) == ("dice", "random", value)
    assert "test Dice (%)" in (tmp_path / "siim.md").read_text()


def test_cache_with_non_binary_masks_is_rejected(tmp_path, segmentation_config, write_segmentation):
    for split in ("train", "val", "test"):
        write_segmentation(tmp_path / f"{split}.h5", 4, seed=0)
    with h5py.File(tmp_path / "val.h5", "r+") as f:
        f["masks"][0, 0, 0] = 255
    with pytest.raises(InputError, match=r"val\.h5: masks must be uint8 0/1"):
        finetune("siim", tmp_path, "random", None, 0, tmp_path / "out", segmentation_config)


def test_a_larger_cache_trains_and_scores_at_the_input_size(tmp_path, segmentation_config, write_segmentation):
    for seed, (split, n) in enumerate((("train", 8), ("val", 4), ("test", 4))):
        write_segmentation(tmp_path / f"{split}.h5", n, seed=seed, size=48)
    config = copy.deepcopy(segmentation_config)
    config["finetune"]["segmentation"]["max_epochs"] = 1
    finetune("siim", tmp_path, "random", None, 0, tmp_path / "run", config)
    metrics, predictions = read_outputs(tmp_path / "run")
    assert (metrics["image_size"], metrics["cache_size"]) == (32, 48)
    assert predictions["y_true"].shape == predictions["y_pred"].shape == (4, 32, 32)
    assert set(np.unique(predictions["y_true"])) == {0, 1}
    assert metrics["value"] == mean_dice(predictions["y_true"], predictions["y_pred"])
