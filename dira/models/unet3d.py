"""3D U-Net with the Models Genesis channel plan, its encoder-only classifier, and a loader for released weights.

The network follows Models Genesis' ``pytorch/unet3d.py`` (also the backbone of TransVW): four encoder levels
of two Conv3d 3x3x3 + BN + ReLU each (1->32->64, 64->64->128, 128->128->256, 256->256->512) with a 2x2x2
max-pool after the first three, and three decoder levels that up-sample with ConvTranspose3d(kernel 2, stride 2),
concatenate the encoder's skip and apply two convs (768->256->256, 384->128->128, 192->64->64), then a 1x1x1
conv to ``n_classes``. Module names reproduce the release's ``state_dict`` layout (``down_tr64.ops.0.conv1.weight``,
``up_tr256.up_conv.bias``, ``out_tr.final_conv.weight``, ...), so ``Genesis_Chest_CT.pt`` and
``TransVW_chest_ct.pt`` load strictly once their DataParallel ``module.`` prefix is stripped
(:func:`load_released`). The module is written here, not vendored, to keep it small, typed and hook-free.

Outputs are logits: the reference ends in a sigmoid, here the caller or the loss applies it (MSE restoration
and Dice/BCE fine-tuning all take probabilities, and ``BCEWithLogits`` is the numerically safe form).

Batch statistics in eval (``batch_stats_in_eval``, required, its default lives in the config schema): the
reference's ``ContBatchNorm3d`` normalises with the statistics of the current batch even in ``eval()``, so the
published fine-tuning numbers were measured that way; ``True`` reproduces them. ``False`` is PyTorch's standard
behaviour (running statistics in eval), which makes a prediction independent of its batch-mates. With ``True``
eval does not update the running statistics (the reference does, but never reads them), so evaluating never
changes the weights a later ``False`` run would load.

``base_width`` scales every level (the release: 32, so 32 ... 512 channels); a smaller one (the demo's 8) keeps
the layout and key names but not the released shapes, so the released files load only at 32.

The pooling needs every spatial size divisible by 8 (three halvings); other sizes raise a ``ValueError`` rather
than being cropped or padded silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from dira.errors import InputError
from dira.io import load_torch

RELEASED_WIDTH = 32  # Models Genesis' first convolution; the released checkpoints need exactly this base width
ENCODER_NAMES = ("down_tr64", "down_tr128", "down_tr256", "down_tr512")
DECODER_NAMES = ("up_tr256", "up_tr128", "up_tr64")  # named after their output width, as in the release
POOLS = 3


def encoder_widths(base_width: int) -> tuple[tuple[int, int], ...]:
    """(first conv, second conv) of each encoder level: 32 gives the release's (32, 64) ... (256, 512)."""
    w = base_width
    return (w, 2 * w), (2 * w, 4 * w), (4 * w, 8 * w), (8 * w, 16 * w)


class BatchNorm3d(nn.BatchNorm3d):
    """``nn.BatchNorm3d`` that, with ``batch_stats_in_eval``, normalises with batch statistics in eval too.

    Parameter and buffer names are ``nn.BatchNorm3d``'s, so checkpoints move freely between both settings.
    """

    def __init__(self, num_features: int, *, batch_stats_in_eval: bool):
        super().__init__(num_features)
        self.batch_stats_in_eval = batch_stats_in_eval

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not self.batch_stats_in_eval:
            return super().forward(x)
        self._check_input_dim(x)
        return F.batch_norm(x, None, None, self.weight, self.bias, training=True, momentum=0.0, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, batch_stats_in_eval={self.batch_stats_in_eval}"


class ConvBnRelu(nn.Module):
    """One Conv3d 3x3x3 (with bias, as released) + BN + ReLU; attribute names give ``conv1`` / ``bn1`` keys."""

    def __init__(self, in_ch: int, out_ch: int, *, batch_stats_in_eval: bool):
        super().__init__()
        self.conv1 = nn.Conv3d(in_ch, out_ch, kernel_size=3, padding=1)
        self.bn1 = BatchNorm3d(out_ch, batch_stats_in_eval=batch_stats_in_eval)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn1(self.conv1(x)))


def _two_convs(in_ch: int, mid_ch: int, out_ch: int, batch_stats_in_eval: bool) -> nn.Sequential:
    return nn.Sequential(
        ConvBnRelu(in_ch, mid_ch, batch_stats_in_eval=batch_stats_in_eval),
        ConvBnRelu(mid_ch, out_ch, batch_stats_in_eval=batch_stats_in_eval),
    )


class Level(nn.Module):
    """Two :class:`ConvBnRelu` under ``ops`` (the release's ``<level>.ops.{0,1}`` keys)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, *, batch_stats_in_eval: bool):
        super().__init__()
        self.ops = _two_convs(in_ch, mid_ch, out_ch, batch_stats_in_eval)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops(x)


class UpLevel(nn.Module):
    """ConvTranspose3d doubling the size (same width), concatenation with the skip, then two convs."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, *, batch_stats_in_eval: bool):
        super().__init__()
        self.up_conv = nn.ConvTranspose3d(in_ch, in_ch, kernel_size=2, stride=2)
        self.ops = _two_convs(in_ch + skip_ch, out_ch, out_ch, batch_stats_in_eval)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.ops(torch.cat([self.up_conv(x), skip], dim=1))


class OutputLevel(nn.Module):
    def __init__(self, in_ch: int, n_classes: int):
        super().__init__()
        self.final_conv = nn.Conv3d(in_ch, n_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_conv(x)


def check_input_size(x: torch.Tensor) -> None:
    """Refuse inputs the three 2x2x2 pools cannot halve exactly (the skips would no longer line up)."""
    if x.dim() != 5:
        raise ValueError(f"3D U-Net input must be (batch, channels, z, y, x); got shape {tuple(x.shape)}")
    factor = 2**POOLS
    if any(s % factor for s in x.shape[2:]):
        raise ValueError(f"3D U-Net input sizes must be divisible by {factor} per axis ({POOLS} max-pools of 2); "
                         f"got (z, y, x) = {tuple(x.shape[2:])}")


class Encoder3D(nn.Module):
    """The four encoder levels, as top-level attributes so that their keys are the release's without a prefix."""

    def __init__(self, in_channels: int, *, base_width: int, batch_stats_in_eval: bool):
        super().__init__()
        self.widths = encoder_widths(base_width)
        widths = [in_channels, *(w[1] for w in self.widths[:-1])]
        for name, in_ch, (mid, out) in zip(ENCODER_NAMES, widths, self.widths, strict=True):
            setattr(self, name, Level(in_ch, mid, out, batch_stats_in_eval=batch_stats_in_eval))

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features of the four levels before pooling: 64, 128, 256 and 512 channels at strides 1, 2, 4, 8."""
        check_input_size(x)
        feats = []
        for i, name in enumerate(ENCODER_NAMES):
            if i:
                x = F.max_pool3d(x, kernel_size=2)
            x = getattr(self, name)(x)
            feats.append(x)
        return feats


class UNet3D(Encoder3D):
    """Models Genesis' 3D U-Net; ``forward`` returns logits of shape (batch, n_classes, z, y, x)."""

    def __init__(self, n_classes: int = 1, in_channels: int = 1, *, base_width: int, batch_stats_in_eval: bool):
        """``n_classes`` and ``in_channels`` are structural (1 = one grey restoration or one mask, as released);
        ``base_width`` (32 = the release) and ``batch_stats_in_eval`` are the config's (``model3d``)."""
        super().__init__(in_channels, base_width=base_width, batch_stats_in_eval=batch_stats_in_eval)
        skips = [w[1] for w in reversed(self.widths[:-1])]  # 256, 128, 64
        ins = [self.widths[-1][1], *skips[:-1]]  # 512, 256, 128
        for name, in_ch, skip in zip(DECODER_NAMES, ins, skips, strict=True):
            setattr(self, name, UpLevel(in_ch, skip, skip, batch_stats_in_eval=batch_stats_in_eval))
        self.out_tr = OutputLevel(skips[-1], n_classes)

    @property
    def encoder(self) -> Callable[[torch.Tensor], list[torch.Tensor]]:
        """What the pre-training methods call (as the 2D U-Net's ``encoder`` module): the encoder's features."""
        return self.encode

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        for name, skip in zip(DECODER_NAMES, reversed(feats[:-1]), strict=True):
            x = getattr(self, name)(x, skip)
        return self.out_tr(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class UNet3DClassifier(Encoder3D):
    """The U-Net's encoder + the Models Genesis README's head; ``forward`` returns (batch, n_classes) logits.

    Head (README ``TargetNet``): global average pooling of the 512-channel deepest features, ``dense_1``
    Linear(512, 1024), ReLU, ``dense_2`` Linear(1024, n_classes), PyTorch's default initialisation (the hidden
    width is twice the deepest features' at any ``base_width``).
    """

    def __init__(self, n_classes: int, in_channels: int = 1, *, base_width: int, batch_stats_in_eval: bool):
        super().__init__(in_channels, base_width=base_width, batch_stats_in_eval=batch_stats_in_eval)
        deepest = self.widths[-1][1]
        self.dense_1 = nn.Linear(deepest, 2 * deepest)
        self.dense_2 = nn.Linear(2 * deepest, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.encode(x)[-1].mean(dim=(2, 3, 4))
        return self.dense_2(F.relu(self.dense_1(pooled)))


class ReleasedLoad(NamedTuple):
    """Top-level modules skipped by :func:`load_released`: the checkpoint's heads and the model's fresh ones."""

    dropped: list[str]  # in the checkpoint, absent from the model (e.g. the decoder when loading a classifier)
    fresh: list[str]  # in the model, absent from the checkpoint (left as initialised, e.g. the classifier head)


def released_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a released file (``{"state_dict": ...}`` or a bare state dict), without ``module.``."""
    checkpoint = load_torch(path)  # weights_only=True: pickled objects are refused with an InputError
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping) or not state:
        raise InputError(f"{path}: no state dict found (expected a 'state_dict' entry or a mapping of tensors)")
    weights = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise InputError(f"{path}: state dict entry {key!r} is a {type(value).__name__}, not a tensor")
        weights[str(key).removeprefix("module.")] = value
    return weights


def _top(key: str) -> str:
    return key.split(".", 1)[0]


def _listing(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} [{shown}{', ...' if len(keys) > limit else ''}]"


def load_released(model: nn.Module, path: Path, *, skip_heads: bool) -> ReleasedLoad:
    """Load ``Genesis_Chest_CT.pt`` / ``TransVW_chest_ct.pt`` (or our own export) into ``model``.

    With ``skip_heads=False`` the load is strict. With ``True``, whole top-level modules present on only one
    side are skipped: the checkpoint's heads the model lacks (the decoder when loading a classifier, TransVW's
    classification head) and the model's own fresh heads. Any other missing, unexpected or misshapen key is an
    :class:`InputError` naming the file, so a wrong file never half-loads.
    """
    weights = released_state_dict(path)
    own = model.state_dict()
    ckpt_tops, own_tops = {_top(k) for k in weights}, {_top(k) for k in own}
    dropped = sorted(ckpt_tops - own_tops) if skip_heads else []
    fresh = sorted(own_tops - ckpt_tops) if skip_heads else []
    weights = {k: v for k, v in weights.items() if _top(k) not in dropped}
    missing = [k for k in own if k not in weights and _top(k) not in fresh]
    unexpected = [k for k in weights if k not in own]
    if missing or unexpected:
        hint = "" if skip_heads else " (skip_heads=True ignores whole modules present on one side only)"
        raise InputError(f"{path}: does not fit {type(model).__name__}: missing keys {_listing(missing)}, "
                         f"unexpected keys {_listing(unexpected)}{hint}")
    for key, value in weights.items():
        if value.shape != own[key].shape:
            raise InputError(f"{path}: {key} has shape {tuple(value.shape)} in the file but "
                             f"{tuple(own[key].shape)} in {type(model).__name__}")
    model.load_state_dict(weights, strict=not fresh)
    return ReleasedLoad(dropped=dropped, fresh=fresh)
