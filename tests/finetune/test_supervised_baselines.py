"""Table 2's supervised baselines: the ChestX-ray14 classifier's encoder export, the ImageNet import, check_init."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
import torchvision

from dira import registry
from dira.errors import InputError
from dira.io import load_torch
from dira.models.classifier import build_classifier
from dira.models.supervised import export_encoder, import_imagenet
from dira.stages import select, stage_keys
from dira.train.finetune import BASELINE_WEIGHTS, check_init, finetune


@pytest.fixture(scope="module")
def supervised_run(tiny_chestxray14, finetune_config, tmp_path_factory) -> Path:
    """The supervised ChestX-ray14 model as the workflow trains it: a ChestX-ray14 fine-tuning run folder."""
    run = tmp_path_factory.mktemp("supervised_chestxray14") / "run"
    finetune("chestxray14", tiny_chestxray14, "random", None, 0, run, finetune_config)
    return run


def test_export_keeps_the_classifier_encoder_in_torchvision_layout(supervised_run, tmp_path):
    encoder_pt = export_encoder(supervised_run / "model.pt", tmp_path)
    assert encoder_pt == tmp_path / "encoder.pt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder.pt", "meta.json"]  # no temporaries
    trained, encoder = load_torch(supervised_run / "model.pt"), load_torch(encoder_pt)
    assert set(encoder) == {k for k in trained if not k.startswith("fc.")}
    resnet = torchvision.models.resnet18(weights=None)
    result = resnet.load_state_dict(encoder, strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and not result.unexpected_keys
    for key, value in encoder.items():
        torch.testing.assert_close(resnet.state_dict()[key], value, rtol=0, atol=0)
        torch.testing.assert_close(value, trained[key], rtol=0, atol=0)


def test_export_records_where_the_encoder_comes_from(supervised_run, finetune_config, tmp_path):
    export_encoder(supervised_run / "model.pt", tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    metrics = json.loads((supervised_run / "metrics.json").read_text())
    assert (meta["init"], meta["backbone"]) == ("supervised_chestxray14", "resnet18")
    source = meta["source"]
    assert source["sha256"] == hashlib.sha256((supervised_run / "model.pt").read_bytes()).hexdigest()
    assert (source["task"], source["init"], source["seed"]) == ("chestxray14", "random", 0)
    assert (source["value"], source["best_epoch"]) == (metrics["value"], metrics["best_epoch"])
    assert len(source["trained_classes"]) == 14
    assert meta["provenance"]["config"] == select(finetune_config, stage_keys("finetune", task="chestxray14"))
    assert meta["files"] == {"encoder.pt": "torchvision ResNet state dict without fc"}


def test_exported_encoder_starts_a_fresh_fine_tuning(supervised_run, tiny_siim, segmentation_config, tmp_path):
    encoder_pt = export_encoder(supervised_run / "model.pt", tmp_path / "supervised_chestxray14")
    encoder = load_torch(encoder_pt)
    classifier = build_classifier("resnet18", 5, encoder_pt)
    for key, value in encoder.items():
        torch.testing.assert_close(classifier.state_dict()[key], value, rtol=0, atol=0)
    out = tmp_path / "siim" / "supervised_chestxray14" / "seed0"
    finetune("siim", tiny_siim, "supervised_chestxray14", encoder_pt, 0, out, segmentation_config)
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["init"], metrics["weights_loaded"], metrics["weights"]) == (
        "supervised_chestxray14", "encoder", str(encoder_pt))


def test_export_refuses_what_is_not_a_finished_chestxray14_classifier(supervised_run, tmp_path):
    lone = tmp_path / "lone" / "model.pt"
    lone.parent.mkdir()
    lone.write_bytes((supervised_run / "model.pt").read_bytes())
    with pytest.raises(InputError, match=re.escape(f"{lone.parent / 'metrics.json'}: missing")):
        export_encoder(lone, tmp_path / "out")
    other = json.loads((supervised_run / "metrics.json").read_text()) | {"task": "chexpert"}
    (lone.parent / "metrics.json").write_text(json.dumps(other))
    with pytest.raises(InputError, match="a run of task 'chexpert', but this encoder is trained on 'chestxray14'"):
        export_encoder(lone, tmp_path / "out")
    with pytest.raises(InputError, match="'supervised_imagenet' is not a supervised init trained here"):
        export_encoder(supervised_run / "model.pt", tmp_path / "out", init="supervised_imagenet")
    assert not (tmp_path / "out").exists()


def test_export_refuses_a_segmentation_model(supervised_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text((supervised_run / "metrics.json").read_text())
    encoder = {f"encoder.{k}": v for k, v in load_torch(supervised_run / "model.pt").items() if k != "fc.weight"}
    torch.save(encoder, run / "model.pt")
    with pytest.raises(InputError, match=re.escape(f"{run / 'model.pt'}: no classifier head")):
        export_encoder(run / "model.pt", tmp_path / "out")


def imagenet_file(folder: Path, arch: str = "resnet18") -> tuple[Path, dict[str, torch.Tensor]]:
    """torchvision's state dict saved under torchvision's naming: '<arch>-<first 8 hex digits of sha256>.pth'."""
    torch.manual_seed(11)
    state = getattr(torchvision.models, arch)(weights=None).state_dict()
    draft = folder / "draft.pth"
    torch.save(state, draft)
    path = folder / f"{arch}-{hashlib.sha256(draft.read_bytes()).hexdigest()[:8]}.pth"
    draft.rename(path)
    return path, state


def test_imagenet_import_drops_the_1000_class_head(tmp_path):
    path, state = imagenet_file(tmp_path)
    encoder_pt = import_imagenet(path, tmp_path / "supervised_imagenet", "resnet18")
    encoder = load_torch(encoder_pt)
    assert set(encoder) == {k for k in state if not k.startswith("fc.")}
    for key, value in encoder.items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    meta = json.loads((tmp_path / "supervised_imagenet" / "meta.json").read_text())
    assert meta["source"] == {"weights": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert (meta["init"], meta["backbone"]) == ("supervised_imagenet", "resnet18")


def test_imagenet_import_refuses_a_corrupt_copy_and_another_backbone(tmp_path):
    path, _ = imagenet_file(tmp_path)
    with pytest.raises(InputError, match=re.escape(f"{path}: a resnet18 state dict, but model.backbone is resnet50")):
        import_imagenet(path, tmp_path / "out", "resnet50")
    renamed = path.with_name("resnet18-00000000.pth")
    path.rename(renamed)
    with pytest.raises(InputError, match=re.escape(f"{renamed}: sha256")):
        import_imagenet(renamed, tmp_path / "out", "resnet18")
    with pytest.raises(InputError, match="nothing is downloaded"):
        import_imagenet(tmp_path / "absent.pth", tmp_path / "out", "resnet18")
    assert not (tmp_path / "out").exists()


def test_check_init_knows_the_registry_and_asks_for_each_baselines_weights():
    assert set(BASELINE_WEIGHTS) == set(registry.BASELINE_INITS) - {"random"}
    with pytest.raises(InputError, match="unknown init 'imagenet'"):
        check_init("imagenet", Path("w.pth"))
    with pytest.raises(InputError, match=re.escape("supervised.imagenet_weights")):
        check_init("supervised_imagenet", None)
    with pytest.raises(InputError, match="init 'random' takes no weights"):
        check_init("random", Path("w.pth"))
    check_init("supervised_chestxray14", Path("encoder.pt"))
    check_init("barlowtwins_dira", Path("encoder.pt"))
