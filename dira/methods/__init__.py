"""Self-supervised methods: discriminative bases (MoCo-v2, ...) and DiRA, which wraps any of them."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from dira import registry
from dira.errors import InputError
from dira.methods.base import DiscriminativeMethod
from dira.models.unet import ResNetEncoder


def _implementation(method: registry.Method) -> type[DiscriminativeMethod]:
    module, name = method.implementation.split(":")
    return getattr(importlib.import_module(module), name)


# The registry names each method and where its class lives; this is the one place that imports them.
METHODS: dict[str, type[DiscriminativeMethod]] = {name: _implementation(m) for name, m in registry.METHODS.items()}

# Keys of a method's config section that configure the run around the method (its optimiser, its 'base'
# stage's epochs, its views), read by the trainer and the data pipeline rather than by the method.
# TransVW's section also carries its own batch, loss weights and DiRA stages (the 2D methods share pretrain's).
TRAINER_KEYS = frozenset({"optimizer", "epochs", "views", "batch_size", "loss_weights", "dira_loss_weights",
                          "dira_epochs"})


def build_method(name: str, encoder: ResNetEncoder, feature_dim: int, settings: dict[str, Any],
                 structure: dict[str, Any]) -> DiscriminativeMethod:
    """The method from its validated ``pretrain.<name>`` section; every other key must be one of its settings.

    The methods' settings have no defaults, so a key missing here is an error rather than a silently
    substituted value, and a schema key the method does not take is caught too. ``structure`` adds what the
    data fix (TransVW's ``classes``); it is offered only to methods that take it.
    """
    if name not in METHODS:
        raise ValueError(f"unknown method '{name}' (choose from {', '.join(METHODS)})")
    kwargs = {k: v for k, v in settings.items() if k not in TRAINER_KEYS}
    accepted = inspect.signature(METHODS[name]).parameters
    kwargs.update({k: v for k, v in structure.items() if k in accepted})
    try:
        inspect.signature(METHODS[name]).bind(encoder, feature_dim, **kwargs)
    except TypeError as err:
        raise InputError(f"pretrain.{name}: {err}") from err
    return METHODS[name](encoder, feature_dim, **kwargs)
