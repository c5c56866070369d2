"""Import the released Models Genesis (``Genesis_Chest_CT.pt``) and TransVW (``TransVW_chest_ct.pt``) checkpoints.

Both are ``{"state_dict": {"module.<3D U-Net key>": ...}, ...}`` of Models Genesis' U-Net, TransVW's with its
visual-word head beside it. Our :class:`dira.models.unet3d.UNet3D` uses the same key names, so importing strips
``module.``, keeps the U-Net's tensors and checks that they load strictly; the result is what ``dira pretrain``
exports for TransVW (``unet.pt``, ``encoder.pt``), and the 3D tasks fine-tune from it like any 3D init.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from dira.errors import InputError
from dira.io import save_torch, write_json
from dira.models.unet3d import ENCODER_NAMES, UNet3D, load_released, released_state_dict
from dira.provenance import provenance

FIRST_CONV = "down_tr64.ops.0.conv1.weight"


def is_released_3d(checkpoint: object) -> bool:
    """Whether a loaded file holds the 3D U-Net (its first convolution, with or without ``module.``)."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else {}
    return isinstance(state, Mapping) and any(str(k).removeprefix("module.") == FIRST_CONV for k in state)


def import_released_3d(path: Path, out_dir: Path) -> None:
    """Write ``unet.pt`` (the whole 3D U-Net), ``encoder.pt`` (its four encoder levels) and ``meta.json``."""
    weights = released_state_dict(path)
    if FIRST_CONV not in weights:
        raise InputError(f"{path}: not a Models Genesis / TransVW checkpoint (no {FIRST_CONV})")
    base_width = int(weights[FIRST_CONV].shape[0])
    in_channels = int(weights[FIRST_CONV].shape[1])
    out = weights.get("out_tr.final_conv.weight")
    unet = UNet3D(int(out.shape[0]) if out is not None else 1, in_channels, base_width=base_width,
                  batch_stats_in_eval=True)
    loaded = load_released(unet, path, skip_heads=True)
    if loaded.fresh:
        raise InputError(f"{path}: lacks the 3D U-Net's {', '.join(loaded.fresh)}")
    state = unet.state_dict()
    save_torch(out_dir / "unet.pt", state)
    save_torch(out_dir / "encoder.pt", {k: v for k, v in state.items() if k.split(".", 1)[0] in ENCODER_NAMES})
    write_json(out_dir / "meta.json", {
        "source": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "dims": 3,
        "backbone": f"unet3d (base width {base_width})", "dropped": loaded.dropped,
        "files": ["encoder.pt", "unet.pt"], "provenance": provenance({}),
    })
    print(f"{path}: 3D U-Net, base width {base_width}, dropped {loaded.dropped or 'nothing'} -> {out_dir}")
