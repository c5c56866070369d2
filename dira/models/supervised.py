"""Table 2's supervised baselines as ``encoder.pt`` files in pre-training's layout.

Both end as a torchvision ResNet state dict without ``fc`` plus a ``meta.json``, exactly what a pre-training
leaves in ``results/pretrain/<init>/``, so fine-tuning, localization and the report treat them like any other
initialisation. ``supervised_chestxray14`` is the encoder of a classifier fine-tuned on ChestX-ray14's 14 labels
(its run's ``model.pt``); ``supervised_imagenet`` is torchvision's ImageNet file, checked and stripped of its
1000-class head. Nothing is downloaded: the ImageNet file is named in the config.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch

from dira.errors import InputError
from dira.io import load_torch, save_torch, write_json
from dira.models.resnet import build_resnet, check_state_dict, infer_backbone, load_encoder_weights, strip_fc
from dira.provenance import provenance
from dira.registry import SUPERVISED_SOURCE_TASK

ENCODER_FILE, META_FILE = "encoder.pt", "meta.json"
FILES = {ENCODER_FILE: "torchvision ResNet state dict without fc"}
# torchvision names its files '<arch>-<first hex digits of the file's sha256>.pth'.
HASH_IN_NAME = re.compile(r"-([0-9a-f]{6,64})\.pth?$")


def export_encoder(model_pt: Path, out_dir: Path, init: str = "supervised_chestxray14") -> Path:
    """Write ``out_dir/encoder.pt`` and ``meta.json`` from a finished fine-tuning run's ``model.pt``.

    The run (``metrics.json`` beside ``model.pt``) must be a classification of the task ``init`` is trained on
    (``dira.registry.SUPERVISED_SOURCE_TASK``); its head ``fc`` is dropped and the rest must load strictly into
    the torchvision ResNet of its layout. Returns the written ``encoder.pt``.
    """
    model_pt = Path(model_pt)
    if init not in SUPERVISED_SOURCE_TASK:
        raise InputError(f"'{init}' is not a supervised init trained here (known: {', '.join(SUPERVISED_SOURCE_TASK)})")
    metrics = read_run_metrics(model_pt.parent / "metrics.json", SUPERVISED_SOURCE_TASK[init])
    state = check_state_dict(load_torch(model_pt), str(model_pt))
    head = state.get("fc.weight")
    if head is None:
        raise InputError(f"{model_pt}: no classifier head (fc.weight): not the model.pt of a classification run")
    trained = metrics.get("trained_classes")
    if trained is not None and head.shape[0] != len(trained):
        raise InputError(f"{model_pt}: its head has {head.shape[0]} outputs, but {model_pt.parent / 'metrics.json'} "
                         f"lists {len(trained)} trained classes (model.pt from another run?)")
    backbone, encoder = fitting_encoder(state, str(model_pt))
    return write_encoder(out_dir, encoder, {
        "init": init, "backbone": backbone,
        "source": {"model": str(model_pt), "sha256": sha256(model_pt),
                   **{key: metrics.get(key) for key in ("task", "init", "seed", "metric", "value", "best_epoch",
                                                        "epochs_trained", "trained_classes", "weights")},
                   "provenance": metrics.get("provenance")},
    }, (metrics.get("provenance") or {}).get("config") or {})


def import_imagenet(weights: Path, out_dir: Path, backbone: str) -> Path:
    """Write ``out_dir/encoder.pt`` and ``meta.json`` from a torchvision ImageNet state dict of ``backbone``.

    A torchvision file name carries the start of the file's sha256 (``resnet50-0676ba61.pth``): a file that
    does not match it is a corrupt or partial copy and is refused. Returns the written ``encoder.pt``.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise InputError(f"{weights}: ImageNet weights not found (supervised.imagenet_weights names a local file; "
                         "nothing is downloaded)")
    digest = sha256(weights)
    match = HASH_IN_NAME.search(weights.name)
    if match and not digest.startswith(match.group(1)):
        raise InputError(f"{weights}: sha256 {digest[:12]}… does not start with the {match.group(1)} of its name "
                         "(a corrupt or partial copy of torchvision's file)")
    file_backbone, encoder = fitting_encoder(check_state_dict(load_torch(weights), str(weights)), str(weights))
    if file_backbone != backbone:
        raise InputError(f"{weights}: a {file_backbone} state dict, but model.backbone is {backbone}")
    return write_encoder(out_dir, encoder, {
        "init": "supervised_imagenet", "backbone": backbone,
        "source": {"weights": str(weights), "sha256": digest},
    }, {"model": {"backbone": backbone}})


def read_run_metrics(path: Path, task: str) -> dict[str, Any]:
    """A fine-tuning run's ``metrics.json`` (written last, so its presence means the run finished) of ``task``."""
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: missing; model.pt must lie in a finished `dira finetune` run folder") from None
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: cannot read run metrics ({err})") from err
    if not isinstance(metrics, dict) or metrics.get("task") != task:
        found = metrics.get("task") if isinstance(metrics, dict) else None
        raise InputError(f"{path}: a run of task {found!r}, but this encoder is trained on '{task}'")
    return metrics


def fitting_encoder(state: dict[str, torch.Tensor], source: str) -> tuple[str, dict[str, torch.Tensor]]:
    """(backbone, state dict without ``fc``) after checking that it loads strictly into that ResNet."""
    backbone = infer_backbone(state)
    if backbone is None:
        raise InputError(f"{source}: not a torchvision ResNet state dict; first keys: {list(state)[:4]}")
    encoder = strip_fc(state)
    load_encoder_weights(build_resnet(backbone), encoder, source)
    return backbone, encoder


def write_encoder(out_dir: Path, encoder: dict[str, torch.Tensor], meta: dict[str, Any],
                  config: dict[str, Any]) -> Path:
    """``encoder.pt``, then ``meta.json`` (the completion marker), each written atomically."""
    out_dir = Path(out_dir)
    save_torch(out_dir / ENCODER_FILE, encoder)
    write_json(out_dir / META_FILE, {**meta, "files": FILES, "provenance": provenance(config)})
    return out_dir / ENCODER_FILE


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
