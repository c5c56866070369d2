"""Raw dataset -> HDF5 caches ``{train,val,test}.h5``: the one place where images are decoded and resized.

Each dataset has a module here whose ``prepare(root, out_dir, config)`` reads and checks its raw layout
and turns it into split plans; decoding, resizing and writing are shared (``common``). Modules are
imported on demand, so preparing one dataset never imports another's readers.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from dira.config import validate
from dira.errors import InputError

DATASETS = ("chestxray14", "chexpert", "siim", "montgomery", "luna16")


def prepare_dataset(name: str, root: Path, out_dir: Path, config: dict[str, Any]) -> None:
    """Read the raw dataset ``name`` under ``root`` and write its split caches into ``out_dir``."""
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    module = importlib.import_module(f"dira.data.prepare.{name}")
    module.prepare(Path(root), Path(out_dir), validate(config))
