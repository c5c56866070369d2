"""Each 3D runner end to end on tiny caches: outputs, the metric recomputed from predictions.npz, weights, errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dira.data.crop_datasets import CropDataset
from dira.errors import InputError
from dira.eval.metrics import iou, score_predictions, unpack_volumes
from dira.models.unet3d import DECODER_NAMES, UNet3D
from dira.train.finetune import finetune


def run(task: str, data: Path, out: Path, config: dict, init: str = "random", weights: Path | None = None,
        seed: int = 0) -> tuple[dict, dict]:
    finetune(task, data, init, weights, seed, out, config)
    metrics = json.loads((out / "metrics.json").read_text())
    with np.load(out / "predictions.npz", allow_pickle=False) as npz:
        predictions = {name: npz[name] for name in npz.files}
    assert (out / "model.pt").is_file()
    assert score_predictions(metrics["metric"], predictions) == pytest.approx(metrics["value"], abs=1e-12)
    return metrics, predictions


def test_candidate_classification_end_to_end(candidate_dir, config3d, tmp_path):
    metrics, predictions = run("luna16", candidate_dir, tmp_path / "run", config3d)
    assert metrics["metric"] == "auc" and 0 <= metrics["value"] <= 1
    assert predictions["y_true"].shape == predictions["y_score"].shape == (12, 1)
    assert predictions["y_true"].dtype == np.uint8 and list(predictions["class_names"]) == ["nodule"]
    assert metrics["n_test_positive"] == 4 and metrics["weights_loaded"] is None
    assert metrics["epochs_trained"] <= 2 and metrics["provenance"]["config"]["finetune3d"]["luna16"]["lr"] == 0.01


def test_crop_segmentation_is_scored_on_the_test_crops(lidc_dir, config3d, tmp_path):
    metrics, predictions = run("lidc", lidc_dir, tmp_path / "run", config3d)
    assert predictions["y_true"].shape == predictions["y_pred"].shape == (4, 8, 16, 16)
    assert predictions["y_pred"].dtype == np.uint8 and metrics["scored_on"] == "test crops"
    assert metrics["dice"] == pytest.approx(2 * metrics["value"] / (1 + metrics["value"]))


def test_whole_volumes_are_segmented_by_the_sliding_window(lits_dir, config3d, tmp_path):
    metrics, predictions = run("lits", lits_dir, tmp_path / "run", config3d)
    volumes = list(unpack_volumes(predictions))
    assert [(case, truth.shape) for case, truth, _ in volumes] == [("volume-0", (12, 20, 24)),
                                                                  ("volume-1", (6, 16, 18))]
    assert set(metrics["test_volumes"]) == {"volume-0", "volume-1"} and metrics["n_test"] == 2
    for case, truth, pred in volumes:
        assert metrics["test_volumes"][case]["iou"] == pytest.approx(iou(truth, pred))


def test_brats_fine_tunes_on_the_configured_modality(brats_dir, config3d, tmp_path):
    metrics, predictions = run("brats", brats_dir, tmp_path / "run", config3d)
    assert metrics["modality"] == "flair" and predictions["shapes"].tolist() == [[10, 20, 20]]
    flair = CropDataset(brats_dir / "train.h5", target="masks", channel=3, augmentation=None)
    with pytest.raises(InputError, match="channel 4"):
        CropDataset(brats_dir / "train.h5", target="masks", channel=4, augmentation=None)
    assert flair[0][0].shape == (1, 8, 16, 16)
    image, mask = flair[0]
    assert image[0][mask.bool()].mean() > image[0][~mask.bool()].mean() + 0.3  # the channel that shows the tumour


def test_a_modality_the_cache_does_not_name_is_an_error(config3d, tmp_path, write_crops):
    config = copy.deepcopy(config3d)
    write_crops(tmp_path / "train.h5", 2, 0, channels=2)  # names only t2 and flair
    config["finetune3d"]["brats"]["modality"] = "t1"
    with pytest.raises(InputError, match=r"train\.h5.*'t1'"):
        finetune("brats", tmp_path, "random", None, 0, tmp_path / "run", config)


def test_pretrained_weights_load_and_the_skipped_modules_are_recorded(candidate_dir, lidc_dir, config3d, tmp_path):
    unet = UNet3D(1, 1, base_width=2, batch_stats_in_eval=True)
    torch.save(unet.state_dict(), tmp_path / "unet.pt")
    encoder = {k: v for k, v in unet.state_dict().items() if k.startswith("down_tr")}
    torch.save(encoder, tmp_path / "encoder.pt")
    metrics, _ = run("pe", candidate_dir, tmp_path / "pe", config3d, init="transvw_dira", weights=tmp_path / "unet.pt")
    assert metrics["weights_loaded"] == {"dropped": sorted([*DECODER_NAMES, "out_tr"]),
                                         "fresh": ["dense_1", "dense_2"]}
    metrics, _ = run("lidc", lidc_dir, tmp_path / "lidc", config3d, init="transvw_base",
                     weights=tmp_path / "encoder.pt")
    assert metrics["weights_loaded"] == {"dropped": [], "fresh": sorted([*DECODER_NAMES, "out_tr"])}
    assert metrics["weights"] == str(tmp_path / "encoder.pt")


def test_weights_of_another_width_are_an_error_naming_the_file(lidc_dir, config3d, tmp_path):
    torch.save(UNet3D(1, 1, base_width=4, batch_stats_in_eval=True).state_dict(), tmp_path / "wide.pt")
    with pytest.raises(InputError, match=r"wide\.pt.*shape"):
        finetune("lidc", lidc_dir, "transvw_dira", tmp_path / "wide.pt", 0, tmp_path / "run", config3d)


@pytest.mark.parametrize(("init", "task"), [("mocov2_dira", "lits"), ("supervised_imagenet", "luna16"),
                                            ("transvw_dira", "montgomery")])
def test_an_init_of_the_other_dimensionality_is_refused_naming_both(init, task, config3d, tmp_path):
    with pytest.raises(InputError, match=rf"init '{init}' is \dD and task '{task}' is \dD"):
        finetune(task, tmp_path, init, tmp_path / "weights.pt", 0, tmp_path / "run", config3d)
    assert not (tmp_path / "run").exists()


def test_crops_the_unet_cannot_pool_are_refused(config3d, tmp_path, write_crops):
    for split in ("train", "val", "test"):
        write_crops(tmp_path / f"ncs_{split}.h5", 2, 0, shape=(8, 12, 16))
    with pytest.raises(InputError, match=r"ncs_train.h5.*\(8, 12, 16\).*divisible by 8"):
        finetune("lidc", tmp_path, "random", None, 0, tmp_path / "run", config3d)


def test_a_classification_cache_given_to_a_segmentation_task_is_named(candidate_dir, config3d, tmp_path):
    with pytest.raises(InputError, match=r"fpr_train\.h5: no 'masks'"):
        CropDataset(candidate_dir / "fpr_train.h5", target="masks", channel=None, augmentation=None)


def test_the_same_seed_repeats_the_run(lidc_dir, config3d, tmp_path):
    _, first = run("lidc", lidc_dir, tmp_path / "a", config3d, seed=3)
    _, again = run("lidc", lidc_dir, tmp_path / "b", config3d, seed=3)
    assert np.array_equal(first["y_pred"], again["y_pred"])


def test_a_label_fraction_trains_on_a_nested_subset(candidate_dir, config3d, tmp_path):
    config = copy.deepcopy(config3d)
    finetune("luna16", candidate_dir, "random", None, 0, tmp_path / "run", config, fraction=0.5)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["n_train"] == 12 and metrics["n_train_available"] == 24 and metrics["fraction"] == 0.5
