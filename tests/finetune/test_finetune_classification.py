from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from dira.data.classification import ClassificationDataset, network_input
from dira.data.eval_crops import eval_crops
from dira.data.labels import CHESTXRAY14_LABELS
from dira.errors import InputError
from dira.eval.metrics import mean_auc
from dira.io import load_torch, save_torch
from dira.models.classifier import build_classifier
from dira.models.resnet import build_resnet, strip_fc
from dira.stages import select, stage_keys
from dira.train.finetune import EarlyStopping, finetune, loop
from dira.train.finetune import classification as classification_runner


def read_outputs(out_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    metrics = json.loads((out_dir / "metrics.json").read_text())
    with np.load(out_dir / "predictions.npz", allow_pickle=False) as npz:
        return metrics, {name: npz[name] for name in npz.files}


@pytest.fixture(scope="module")
def random_run(tiny_chestxray14, finetune_config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "random" / "seed3"
    finetune("chestxray14", tiny_chestxray14, "random", None, 3, out, finetune_config)
    return out


def test_random_init_writes_consistent_outputs(random_run, tiny_chestxray14, finetune_config):
    assert sorted(p.name for p in random_run.iterdir()) == ["metrics.json", "model.pt", "predictions.npz"]
    metrics, predictions = read_outputs(random_run)
    with h5py.File(tiny_chestxray14 / "test.h5", "r") as f:
        cached_labels, cached_ids = f["labels"][()], f["ids"].asstr()[()]

    np.testing.assert_array_equal(predictions["ids"], cached_ids)
    np.testing.assert_array_equal(predictions["class_names"], CHESTXRAY14_LABELS)
    assert predictions["y_true"].dtype == np.uint8
    np.testing.assert_array_equal(predictions["y_true"], cached_labels)
    assert predictions["y_score"].dtype == np.float32 and predictions["y_score"].shape == (24, 14)
    assert predictions["y_score"].min() >= 0 and predictions["y_score"].max() <= 1

    assert metrics["value"] == mean_auc(predictions["y_true"], predictions["y_score"])
    assert metrics["per_class"]["Hernia"] is None and metrics["classes_without_auc"] == ["Hernia"]
    defined = [v for v in metrics["per_class"].values() if v is not None]
    assert len(defined) == 13 and metrics["value"] == pytest.approx(np.mean(defined), abs=1e-12)
    identity = (metrics["task"], metrics["init"], metrics["seed"], metrics["metric"])
    assert identity == ("chestxray14", "random", 3, "auc")
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == (48, 16, 24)
    assert metrics["provenance"]["config"] == select(finetune_config, stage_keys("finetune", task="chestxray14"))


def test_training_history_follows_the_recipe(random_run, finetune_config):
    metrics, _ = read_outputs(random_run)
    history, ft = metrics["history"], finetune_config["finetune"]
    val_losses = [row["val_loss"] for row in history]
    assert len(history) == metrics["epochs_trained"]
    assert metrics["epochs_trained"] == min(ft["max_epochs"], metrics["best_epoch"] + ft["patience"])
    assert metrics["best_val_loss"] == min(val_losses)
    assert metrics["best_epoch"] == 1 + int(np.argmin(val_losses))
    assert history[0]["lr"] == ft["lr"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]  # the optimiser does step


def test_same_seed_reproduces_predictions(random_run, tiny_chestxray14, finetune_config, tmp_path):
    finetune("chestxray14", tiny_chestxray14, "random", None, 3, tmp_path, finetune_config)
    again, first = read_outputs(tmp_path)[1], read_outputs(random_run)[1]
    np.testing.assert_array_equal(again["y_score"], first["y_score"])


def test_pretrained_init_starts_from_the_encoder(random_run, tiny_chestxray14, finetune_config, tmp_path):
    torch.manual_seed(123)
    save_torch(tmp_path / "encoder.pt", strip_fc(build_resnet("resnet18").state_dict()))
    out = tmp_path / "mocov2_dira" / "seed3"
    finetune("chestxray14", tiny_chestxray14, "mocov2_dira", tmp_path / "encoder.pt", 3, out, finetune_config)
    metrics, predictions = read_outputs(out)
    assert metrics["init"] == "mocov2_dira" and metrics["weights"] == str(tmp_path / "encoder.pt")
    assert metrics["value"] == mean_auc(predictions["y_true"], predictions["y_score"])
    # Same seed, same data order: only the encoder differs from the random run.
    assert not np.allclose(predictions["y_score"], read_outputs(random_run)[1]["y_score"])


def test_early_stopping_and_lr_decay_honour_their_patience(tiny_chestxray14, finetune_config, tmp_path,
                                                           monkeypatch):
    # Without training steps the validation loss never improves after epoch 1.
    monkeypatch.setattr(loop, "train_one_epoch", lambda *args, **kwargs: 0.0)
    config = copy.deepcopy(finetune_config)
    config["finetune"].update(max_epochs=10, patience=2, lr_patience=0, lr_factor=0.5, lr=1e-3)
    finetune("chestxray14", tiny_chestxray14, "random", None, 0, tmp_path, config)
    metrics, _ = read_outputs(tmp_path)
    assert (metrics["epochs_trained"], metrics["best_epoch"]) == (3, 1)
    assert [row["lr"] for row in metrics["history"]] == [1e-3, 1e-3, 5e-4]


def test_early_stopping_counts_epochs_since_the_best_loss():
    stopper = EarlyStopping(patience=2)
    improved = [stopper.step(epoch, loss) for epoch, loss in enumerate([1.0, 0.9, 0.95, 0.85, 0.9], start=1)]
    assert improved == [True, True, False, True, False] and not stopper.should_stop
    assert not stopper.step(6, math.nan) and stopper.should_stop
    assert (stopper.best_epoch, stopper.best_loss) == (4, 0.85)


@pytest.mark.parametrize(("init", "weights"), [("random", "encoder.pt"), ("mocov2_dira", None)])
def test_init_and_weights_must_agree(tiny_chestxray14, finetune_config, tmp_path, init, weights):
    with pytest.raises(InputError, match="weights"):
        finetune("chestxray14", tiny_chestxray14, init, Path(weights) if weights else None, 0, tmp_path,
                 finetune_config)
    assert not list(tmp_path.iterdir())


def test_cache_with_other_labels_is_rejected(tmp_path, finetune_config, write_split):
    for split in ("train", "val", "test"):
        write_split(tmp_path / f"{split}.h5", 4, seed=0, label_names=("a", "b", "c"))
    with pytest.raises(InputError, match=r"train\.h5: label_names"):
        finetune("chestxray14", tmp_path, "random", None, 0, tmp_path / "out", finetune_config)


def test_test_split_without_a_scorable_class_is_rejected(tmp_path, finetune_config, write_split):
    for split in ("train", "val", "test"):
        write_split(tmp_path / f"{split}.h5", 4, seed=0, absent_classes=range(14) if split == "test" else ())
    with pytest.raises(InputError, match=r"test\.h5: no evaluated class has both positive and negative labels"):
        finetune("chestxray14", tmp_path, "random", None, 0, tmp_path / "out", finetune_config)


def test_unknown_task_is_rejected(tiny_chestxray14, finetune_config, tmp_path):
    with pytest.raises(InputError, match="unknown task 'nosuchtask'"):
        finetune("nosuchtask", tiny_chestxray14, "random", None, 0, tmp_path, finetune_config)


def per_crop_scores(model_pt: Path, test_h5: Path, config: dict, crops: str) -> np.ndarray:
    """Sigmoid scores (N, V, C) of model.pt on each evaluation crop, one image at a time."""
    model = build_classifier("resnet18", len(CHESTXRAY14_LABELS), None)
    model.load_state_dict(load_torch(model_pt))
    test = ClassificationDataset(test_h5)
    resize, size = config["finetune"]["eval_resize"], config["model"]["input_size"]
    with torch.no_grad():
        return np.stack([torch.sigmoid(model.eval()(network_input(eval_crops(test[i][0][None], resize, size,
                                                                             crops)[0]))).numpy()
                         for i in range(len(test))])


def test_test_scores_are_the_mean_of_the_ten_crops_sigmoid_scores(random_run, tiny_chestxray14, finetune_config):
    """model.pt is the best-validation classifier whose crop-averaged scores are the saved test predictions."""
    assert finetune_config["finetune"]["test_crops"] == "ten"  # the schema default, the benchmark's TenCrop
    scores = per_crop_scores(random_run / "model.pt", tiny_chestxray14 / "test.h5", finetune_config, "ten")
    metrics, predictions = read_outputs(random_run)
    assert scores.shape == (24, 10, 14) and predictions["y_score"].shape == (24, 14)
    np.testing.assert_allclose(predictions["y_score"], scores.mean(axis=1), atol=1e-5)
    assert np.abs(scores - scores.mean(axis=1, keepdims=True)).max() > 1e-3  # the crops do differ
    assert (metrics["cache_size"], metrics["test_crops"]) == (32, "ten")


def test_center_test_crops_score_the_validation_view(tiny_chestxray14, finetune_config, tmp_path):
    config = copy.deepcopy(finetune_config)
    config["finetune"].update(test_crops="center", max_epochs=1)
    finetune("chestxray14", tiny_chestxray14, "random", None, 0, tmp_path, config)
    scores = per_crop_scores(tmp_path / "model.pt", tiny_chestxray14 / "test.h5", config, "center")
    np.testing.assert_allclose(read_outputs(tmp_path)[1]["y_score"], scores[:, 0], atol=1e-5)


def test_batches_reach_the_network_at_input_size_from_a_larger_cache(tmp_path, finetune_config, write_split,
                                                                      monkeypatch):
    for split, n in (("train", 8), ("val", 4), ("test", 6)):
        write_split(tmp_path / f"{split}.h5", n, seed=0, size=64)
    shapes: dict[str, tuple[int, ...]] = {}

    def spy(model, train_loader, val_loader, *args, **kwargs):
        for name, loader in (("train", train_loader), ("val", val_loader)):
            shapes[name] = tuple(next(iter(loader))[0].shape)
        return real_fit(model, train_loader, val_loader, *args, **kwargs)

    real_fit = classification_runner.fit
    monkeypatch.setattr(classification_runner, "fit", spy)
    config = copy.deepcopy(finetune_config)
    config["finetune"]["max_epochs"] = 1
    finetune("chestxray14", tmp_path, "random", None, 0, tmp_path / "run", config)
    assert shapes == {"train": (8, 1, 32, 32), "val": (4, 1, 32, 32)}
    metrics, predictions = read_outputs(tmp_path / "run")
    assert metrics["cache_size"] == 64 and predictions["y_score"].shape == (6, 14)


def test_eval_resize_smaller_than_the_input_is_rejected(tiny_chestxray14, finetune_config, tmp_path):
    config = copy.deepcopy(finetune_config)
    config["finetune"]["eval_resize"] = 31
    with pytest.raises(InputError, match=r"finetune\.eval_resize \(31\) is smaller than model\.input_size \(32\)"):
        finetune("chestxray14", tiny_chestxray14, "random", None, 0, tmp_path, config)
