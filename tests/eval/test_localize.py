"""`dira localize` end to end: on a hand-made cache with known answers, and on synthetic ChestX-ray14 via the CLI."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import dira.eval.localize as localize_module
from dira.cli import main
from dira.config import validate
from dira.data.cache import CacheWriter
from dira.data.labels import CHESTXRAY14_LABELS
from dira.data.prepare import prepare_dataset
from dira.data.synthetic.chestxray14 import write_chestxray14
from dira.eval.localization import BOX_CLASSES, accuracy_from_boxes
from dira.eval.localize import localize
from dira.models.classifier import build_classifier

SIDE = 32
ORIGINAL = (320, 160)  # width, height: x scales by 10, y by 5 between cache and original pixels


@pytest.fixture(scope="module")
def config():
    return validate({"device": "cpu", "threads": 1, "model": {"backbone": "resnet18", "input_size": SIDE}})


@pytest.fixture(scope="module")
def model_pt(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.pt"
    torch.manual_seed(0)
    torch.save(build_classifier("resnet18", len(CHESTXRAY14_LABELS), None).state_dict(), path)
    return path


def _write_boxed_test(path, boxes, box_index, box_labels, n_images=3, images=None):
    side = SIDE if images is None else images.shape[-1]
    with CacheWriter(path, n_images, side, attrs={"dataset": "chestxray14", "split": "test"}) as writer:
        for i in range(n_images):
            writer.write_image(i, np.full((side, side), 40 * i, np.uint8) if images is None else images[i], ORIGINAL)
        writer.write_array("ids", [f"img{i}.png" for i in range(n_images)])
        writer.write_array("labels", np.zeros((n_images, 14), np.uint8), label_names=list(CHESTXRAY14_LABELS))
        writer.write_array("boxes", np.asarray(boxes, np.float32))
        writer.write_array("box_index", np.asarray(box_index, np.int64))
        writer.write_array("box_labels", np.asarray(box_labels, np.int64))


def test_heatmaps_lit_on_the_true_boxes_localize_every_box_exactly(tmp_path, config, model_pt, monkeypatch):
    effusion, nodule = CHESTXRAY14_LABELS.index("Effusion"), CHESTXRAY14_LABELS.index("Nodule")
    truth_boxes = [(80, 40, 100, 50), (200, 100, 30, 20), (0, 0, 60, 30)]  # original pixels
    _write_boxed_test(tmp_path / "test.h5", truth_boxes, box_index=[0, 0, 2], box_labels=[effusion, nodule, effusion])
    by_pair = {(0, effusion): truth_boxes[0], (0, nodule): truth_boxes[1], (2, effusion): truth_boxes[2]}

    def oracle_heatmaps(model, layer_name, dataset, pairs, batch_size, device, relu):
        maps = np.zeros((len(pairs), SIDE, SIDE), np.float32)
        for i, pair in enumerate(pairs):
            x, y, w, h = by_pair[pair]
            maps[i, y // 5:(y + h) // 5, x // 10:(x + w) // 10] = 255
        return maps

    monkeypatch.setattr(localize_module, "class_heatmaps", oracle_heatmaps)
    out = tmp_path / "out"
    localize(model_pt, tmp_path, out, init="mocov2_dira", seed=4, config=config)

    boxes = pd.read_csv(out / "boxes.csv")
    assert list(boxes.columns[:4]) == ["box_id", "image", "label", "gt_x"]
    assert {"image", "label", "threshold", "x", "y", "w", "h", "iou"} <= set(boxes.columns)
    # one box per threshold per ground truth, back in original pixels, matching exactly
    assert len(boxes) == 3 * 2
    np.testing.assert_allclose(boxes[["x", "y", "w", "h"]].to_numpy(), np.repeat(truth_boxes, 2, axis=0))
    np.testing.assert_allclose(boxes["iou"], 1.0)
    accuracy = pd.read_csv(out / "accuracy.csv", dtype={"threshold": str})
    table5 = accuracy.query("label == 'mean' and threshold == 'any'")
    assert list(table5["delta"]) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6] and (table5["accuracy"] == 1.0).all()
    assert accuracy.query("label == 'Effusion' and threshold == 'any'")["n_boxes"].iloc[0] == 2

    summary = json.loads((out / "localization.json").read_text())
    assert summary["init"] == "mocov2_dira" and summary["seed"] == 4 and summary["n_boxes"] == 3
    assert summary["mean_accuracy"]["0.6"] == 1.0
    assert summary["provenance"]["config"]["localization"]["layer"] == "layer4"
    with np.load(out / "examples.npz") as examples:
        assert list(examples["labels"]) == ["Effusion", "Nodule"]  # classifier order, first box of each class
        assert list(examples["ids"]) == ["img0.png", "img0.png"]
        np.testing.assert_allclose(examples["boxes"], [(8, 8, 10, 10), (20, 20, 3, 4)])
        assert examples["images"].shape == examples["heatmaps"].shape == (2, SIDE, SIDE)


def test_a_cache_larger_than_the_input_maps_boxes_back_to_the_original(tmp_path, config, model_pt, monkeypatch):
    """Cache 64² of a 320×160 original, network input 32: the real resize and mapping, Grad-CAM = the image."""
    effusion = CHESTXRAY14_LABELS.index("Effusion")
    truth = (80, 40, 100, 50)  # original pixels: cache pixels x·0.2, y·0.4 -> columns 16-36, rows 16-36
    images = np.zeros((3, 64, 64), np.uint8)
    images[0, 16:36, 16:36] = 200
    _write_boxed_test(tmp_path / "test.h5", [truth], box_index=[0], box_labels=[effusion], images=images)
    seen = []

    def image_as_cam(model, layer, inputs, classes, *, relu):
        seen.append(tuple(inputs.shape))
        return inputs[:, 0]  # the network's view of the image: its bright square is the evidence

    monkeypatch.setattr(localize_module, "grad_cam", image_as_cam)
    localize(model_pt, tmp_path, tmp_path / "out", init="random", seed=0, config=config)
    assert seen == [(1, 3, SIDE, SIDE)]
    boxes = pd.read_csv(tmp_path / "out/boxes.csv")
    np.testing.assert_allclose(boxes[["x", "y", "w", "h"]].to_numpy(), [truth, truth])  # both thresholds
    summary = json.loads((tmp_path / "out/localization.json").read_text())
    assert (summary["heatmap_size"], summary["cache_size"]) == (SIDE, 64)
    with np.load(tmp_path / "out/examples.npz") as examples:
        assert examples["images"].shape == examples["heatmaps"].shape == (1, SIDE, SIDE)
        np.testing.assert_allclose(examples["boxes"], [(8, 8, 10, 10)])  # the box at the network's 32 px


def test_a_box_the_heatmap_misses_is_listed_and_counts_as_a_miss(tmp_path, config, model_pt, monkeypatch):
    atelectasis = CHESTXRAY14_LABELS.index("Atelectasis")
    _write_boxed_test(tmp_path / "test.h5", [(0, 0, 50, 50)], box_index=[1], box_labels=[atelectasis])
    blank = np.zeros((1, SIDE, SIDE), np.float32)
    monkeypatch.setattr(localize_module, "class_heatmaps", lambda *args, **kwargs: blank)
    localize(model_pt, tmp_path, tmp_path / "out", init="random", seed=0, config=config)
    boxes = pd.read_csv(tmp_path / "out/boxes.csv")
    assert len(boxes) == 2 and boxes["iou"].isna().all() and boxes["x"].isna().all()
    accuracy = pd.read_csv(tmp_path / "out/accuracy.csv", dtype={"threshold": str})
    assert (accuracy.query("label == 'Atelectasis'")["accuracy"] == 0).all()


def test_bad_inputs_name_the_file(tmp_path, config, model_pt):
    _write_boxed_test(tmp_path / "test.h5", np.zeros((0, 4)), box_index=[], box_labels=[])
    with pytest.raises(Exception, match=r"test\.h5: the test split has no ground-truth boxes"):
        localize(model_pt, tmp_path, tmp_path / "out", init="random", seed=0, config=config)
    _write_boxed_test(tmp_path / "test.h5", [(0, 0, 5, 5)], box_index=[0], box_labels=[0])
    wrong = tmp_path / "wrong.pt"
    torch.save(build_classifier("resnet18", 5, None).state_dict(), wrong)
    with pytest.raises(Exception, match=r"wrong\.pt: not a resnet18 classifier with 14 outputs"):
        localize(wrong, tmp_path, tmp_path / "out", init="random", seed=0, config=config)
    assert not (tmp_path / "out").exists()


def test_cli_on_synthetic_chestxray14_writes_recomputable_results(tmp_path, model_pt):
    raw = tmp_path / "raw"
    write_chestxray14(raw, patients=40, image_size=96, seed=3)
    prepare_dataset("chestxray14", raw, tmp_path / "h5",
                    {"prepare": {"workers": 1}, "datasets": {"chestxray14": {"cache_size": 32}}})
    out = tmp_path / "loc/random/seed0"
    # a network input larger than the cache: heatmaps at 64 px, boxes still in the 96-px originals
    settings = '{"device": "cpu", "threads": 1, "model": {"backbone": "resnet18", "input_size": 64}}'
    code = main(["localize", "--model", str(model_pt), "--data", str(tmp_path / "h5"), "--init", "random",
                 "--seed", "0", "--out", str(out), "--config", settings])
    assert code == 0
    boxes = pd.read_csv(out / "boxes.csv", dtype={"threshold": str})
    bbox_list = pd.read_csv(raw / "BBox_List_2017.csv").iloc[:, :6]
    test_ids = set((raw / "test_list.txt").read_text().split())
    assert boxes["box_id"].nunique() == bbox_list.iloc[:, 0].isin(test_ids).sum() > 0
    assert set(boxes["label"]) <= set(BOX_CLASSES)
    found = boxes.dropna()
    assert ((found["x"] >= 0) & (found["x"] + found["w"] <= 96 + 1e-6)).all()  # original pixels (96² PNGs)
    recomputed = accuracy_from_boxes(boxes, ["60", "180"], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    accuracy = pd.read_csv(out / "accuracy.csv", dtype={"threshold": str})
    np.testing.assert_allclose(recomputed["accuracy"], accuracy["accuracy"])
