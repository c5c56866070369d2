"""Import checkpoints of the public DiRA release (fhaghighi/DiRA) for fine-tuning here.

The release's files come in three layouts, all accepted:

- ``unet.pth`` / ``best_checkpoint.pth`` of the ``dir``/``dira`` modes: a plain segmentation_models_pytorch
  ``Unet`` state dict (``encoder.*``, ``decoder.blocks.*``, ``segmentation_head.*``);
- ``checkpoint.pth``: ``{"state_dict": {"module.encoder_q.backbone.<unet key>", "module.encoder_k.*",
  "module.queue", ...}, "epoch": ..., ...}`` (the DDP training state);
- the ``di`` mode's ``best_checkpoint.pth`` / ``resnet50.pth``: a torchvision ResNet with the MoCo MLP
  head as ``fc.0`` / ``fc.2``.

The released 3D checkpoints (Models Genesis, TransVW) are recognised by their keys and imported by
:mod:`dira.models.official3d`.

Because our U-Net uses the same key names, importing is stripping wrappers and checking that every
tensor fits: the result loads strictly into :class:`dira.models.unet.UNet` and its encoder into torchvision.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from dira.errors import InputError
from dira.io import load_torch, save_torch, write_json
from dira.models.official3d import import_released_3d, is_released_3d
from dira.models.resnet import BACKBONES, build_resnet
from dira.models.unet import UNet
from dira.provenance import provenance

UNET_PREFIXES = ("encoder.", "decoder.", "segmentation_head.")
WRAPPERS = ("module.", "encoder_q.backbone.", "encoder_q.", "backbone.")
NOT_WEIGHTS = ("encoder_k.", "encoder_q.fc.", "queue", "fc.")


def unwrap(checkpoint: Any, source: str) -> dict[str, torch.Tensor]:
    """The model weights of a release file, without ``state_dict``/``module.``/MoCo wrappers and heads."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping) or not state:
        raise InputError(f"{source}: no state dict found (expected a mapping of tensors or a 'state_dict' entry)")
    weights = {}
    for key, value in state.items():
        if key.startswith(("module.encoder_q.fc.", "encoder_q.fc.")):
            continue  # the MoCo projection head, not part of the network to fine-tune
        for prefix in WRAPPERS:
            key = key.removeprefix(prefix)
        if key.startswith(NOT_WEIGHTS) or not isinstance(value, torch.Tensor):
            continue
        weights[key] = value
    return weights


def _fits(model: torch.nn.Module, weights: Mapping[str, torch.Tensor]) -> bool:
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError:
        return False
    return True


def split_release(weights: Mapping[str, torch.Tensor], source: str) -> tuple[str, dict, dict | None]:
    """(backbone, torchvision encoder state dict, U-Net state dict or None for encoder-only releases)."""
    if any(k.startswith("decoder.") for k in weights):
        unet = {k: v for k, v in weights.items() if k.startswith(UNET_PREFIXES)}
        decoder_channels = [unet[f"decoder.blocks.{i}.conv1.0.weight"].shape[0] for i in range(5)
                            if f"decoder.blocks.{i}.conv1.0.weight" in unet]
        for backbone in BACKBONES:
            if len(decoder_channels) == 5 and _fits(UNet(backbone, decoder_channels), unet):
                encoder = {k.removeprefix("encoder."): v for k, v in unet.items() if k.startswith("encoder.")}
                return backbone, encoder, unet
        raise InputError(f"{source}: U-Net weights fit no ResNet U-Net ({', '.join(BACKBONES)}) with "
                         f"decoder channels {decoder_channels}")
    encoder = {k.removeprefix("encoder."): v for k, v in weights.items()}
    for backbone in BACKBONES:
        resnet = build_resnet(backbone)
        del resnet.fc
        if _fits(resnet, encoder):
            return backbone, encoder, None
    raise InputError(f"{source}: neither a DiRA U-Net nor a ResNet encoder ({', '.join(BACKBONES)}); "
                     f"first keys: {list(weights)[:4]}")


def import_official(path: Path, out_dir: Path, decoder_channels: Sequence[int]) -> None:
    """Write ``encoder.pt``, ``unet.pt`` and ``meta.json`` to ``out_dir``.

    An encoder-only release (the ``di`` mode) still gets a ``unet.pt``, whose decoder is freshly initialised
    (seed 0) with ``decoder_channels`` (``model.decoder_channels`` of the run, which the fine-tuning U-Net
    has) and says so in ``meta.json``: segmentation then fine-tunes it as any encoder-only init.
    """
    checkpoint = load_torch(path)
    if is_released_3d(checkpoint):  # Models Genesis / TransVW: the 3D U-Net
        import_released_3d(path, out_dir)
        return
    weights = unwrap(checkpoint, str(path))
    backbone, encoder, unet = split_release(weights, str(path))
    decoder = "from the release"
    if unet is None:
        torch.manual_seed(0)
        model = UNet(backbone, decoder_channels)
        model.encoder.load_state_dict(encoder)
        unet, decoder = model.state_dict(), "randomly initialised (seed 0): the release has no decoder"
    save_torch(out_dir / "encoder.pt", encoder)
    save_torch(out_dir / "unet.pt", unet)
    write_json(out_dir / "meta.json", {
        "source": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "backbone": backbone,
        "decoder": decoder, "files": ["encoder.pt", "unet.pt"],
        "provenance": provenance({"model": {"decoder_channels": list(decoder_channels)}}),
    })
    print(f"{path}: {backbone}, decoder {decoder} -> {out_dir}")
