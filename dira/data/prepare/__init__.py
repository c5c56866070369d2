"""Raw dataset -> HDF5 caches ``{train,val,test}.h5``: the one place where images are decoded and resized.

Each dataset has a module here whose ``prepare(root, out_dir, config)`` reads and checks its raw layout
and turns it into split plans; decoding, resizing and writing are shared (``common``). Modules are
imported on demand, so preparing one dataset never imports another's readers.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from dira import registry
from dira.config import validate
from dira.data.prepare.shards import Shard
from dira.errors import InputError

DATASETS = tuple(registry.datasets(prepared=True))


def _module(name: str) -> Any:
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return importlib.import_module(f"dira.data.prepare.{name}")


def prepare_dataset(name: str, root: Path, out_dir: Path, config: dict[str, Any], shard: Shard | None = None) -> None:
    """Read the raw dataset ``name`` under ``root`` and write its split caches into ``out_dir``.

    ``shard`` (K/N) prepares only the K-th block of the scans, for the datasets that can be sharded.
    """
    module = _module(name)
    if shard is None:
        module.prepare(Path(root), Path(out_dir), validate(config))
    elif not registry.DATASETS[name].shardable:
        raise InputError(f"{name} is prepared in one job; --shard applies to {', '.join(shardable())}")
    else:
        module.prepare(Path(root), Path(out_dir), validate(config), shard=shard)


def gather_dataset(name: str, shard_dirs: list[Path], out_dir: Path) -> None:
    """Join the shard outputs of ``prepare_dataset(..., shard=K/N)``, in the order given, into ``out_dir``."""
    module = _module(name)
    if not registry.DATASETS[name].shardable:
        raise InputError(f"{name} is prepared in one job: nothing to gather")
    module.gather([Path(d) for d in shard_dirs], Path(out_dir))


def shardable() -> list[str]:
    return registry.datasets(shardable=True)
