"""Self-supervised methods: discriminative bases (MoCo-v2, ...) and DiRA, which wraps any of them."""

from __future__ import annotations

from typing import Any

from dira.methods.barlow_twins import BarlowTwins
from dira.methods.base import DiscriminativeMethod
from dira.methods.mocov2 import MoCoV2
from dira.methods.simsiam import SimSiam
from dira.models.unet import ResNetEncoder

METHODS: dict[str, type[DiscriminativeMethod]] = {
    method.name: method for method in (MoCoV2, SimSiam, BarlowTwins)
}



def build_method(name: str, encoder: ResNetEncoder, feature_dim: int, settings: dict[str, Any]) -> DiscriminativeMethod:
    if name not in METHODS:
        raise ValueError(f"unknown method '{name}' (choose from {', '.join(METHODS)})")
    kwargs = {k: v for k, v in settings.items() if k != "optimizer"}  # the optimiser is the trainer's
    return METHODS[name](encoder, feature_dim, **kwargs)
