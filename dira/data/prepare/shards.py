"""Preparing a volumetric dataset as shards that run side by side, then one gather into the split caches.

A paper-scale 3D set is hundreds of CT scans; one job reading them all cannot use a cluster and must start over
when it is interrupted. ``dira prepare <name> --shard K/N`` reads the K-th of N contiguous blocks of every split's
scans (in plan order) into caches of its own; ``dira gather <name>`` appends the shards' rows in shard order. The
gathered caches hold exactly the rows, ids, fields and attributes one unsharded job writes (``source_index`` is
renumbered, ``source_ids``, ``splits.json`` and ``bad_samples.csv`` are concatenated), so a rerun redoes only the
shards that are missing, and memory stays one scan per worker while preparing and one scan's rows while gathering.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from dira.data.cache import AppendingCacheWriter, SplitCache
from dira.data.prepare.common import BAD_SAMPLES_CSV
from dira.data.prepare.rows import SOURCE_IDS, SOURCE_INDEX
from dira.errors import InputError
from dira.io import write_json, write_text

SHARD_ATTR = "shard"  # written into each shard's caches; the gathered caches do not carry it
_RESERVED = {"images", "ids", SOURCE_IDS}


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``K/N``, 0 <= K < N, as the CLI takes it."""
        match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
        if not match or not 0 <= int(match[1]) < int(match[2]):
            raise InputError(f"--shard must be K/N with 0 <= K < N, got {text!r}")
        return cls(int(match[1]), int(match[2]))

    def take(self, items: Sequence[Any]) -> list[Any]:
        """This shard's contiguous block of ``items``; the N blocks, in order, are ``items``."""
        bounds = np.linspace(0, len(items), self.count + 1).round().astype(int)
        return list(items[bounds[self.index]:bounds[self.index + 1]])

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _layout(path: Path) -> tuple[tuple[int, ...], np.dtype, dict[str, tuple[np.dtype, tuple[int, ...]]]]:
    with h5py.File(path, "r") as file:
        fields = {name: (file[name].dtype, file[name].shape[1:]) for name in file
                  if name not in _RESERVED}
        return file["images"].shape[1:], file["images"].dtype, fields


def _attrs(cache: SplitCache) -> dict[str, Any]:
    attrs = {key: value for key, value in cache.attrs.items() if key != SHARD_ATTR}
    # the grid's attributes are written again by the writer from ``grid``
    for key in ("axes", "spacing_mm", "intensity", "spacing_field", "dira_version"):
        attrs.pop(key, None)
    return attrs


def _comparable(attrs: dict[str, Any]) -> dict[str, Any]:
    """What must agree between shards: everything but when each was written."""
    provenance = {key: value for key, value in dict(attrs.get("provenance", {})).items() if key != "created"}
    return {**attrs, "provenance": provenance}


def gather_row_caches(shard_dirs: Sequence[Path], out_dir: Path, names: Sequence[str], desc: str) -> None:
    """Append each split cache ``<name>.h5`` of the shards, in the order given, into ``out_dir/<name>.h5``."""
    if not shard_dirs:
        raise InputError("gather: no shard folders given")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        paths = [Path(d) / f"{name}.h5" for d in shard_dirs]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise InputError(f"gather: shard caches missing: {', '.join(missing)} (prepare those shards first)")
        layout = _layout(paths[0])
        for path in paths[1:]:
            if _layout(path) != layout:
                raise InputError(f"{path}: rows or fields differ from {paths[0]}: the shards were prepared with "
                                 "different settings")
        shape, dtype, fields = layout
        with ExitStack() as stack:
            caches = [SplitCache(p) for p in paths]
            for cache in caches:
                stack.callback(cache.close)
            first = caches[0]
            writer = stack.enter_context(AppendingCacheWriter(out_dir / f"{name}.h5", shape, _attrs(first),
                                                              dtype=dtype, fields=fields, grid=first.grid))
            source_ids: list[str] = []
            for cache in tqdm(caches, desc=f"{desc} {name}", unit="shard"):
                if _comparable(_attrs(cache)) != _comparable(_attrs(first)):
                    raise InputError(f"{cache.path}: attributes differ from {first.path}: the shards were "
                                     "prepared with different settings or data")
                _append_shard(writer, cache, offset=len(source_ids), fields=fields)
                source_ids.extend(str(s) for s in cache.array(SOURCE_IDS))
            writer.write_array(SOURCE_IDS, source_ids)


def _append_shard(writer: AppendingCacheWriter, cache: SplitCache, offset: int,
                  fields: dict[str, Any]) -> None:
    """A shard's rows one source at a time, so that memory holds one scan's crops."""
    index = cache.array(SOURCE_INDEX)
    if not len(index):
        return
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    ends = np.r_[starts[1:], len(index)].astype(int)
    ids, file = cache.ids, cache.file
    for start, end in zip(starts, ends, strict=True):
        columns = {name: file[name][start:end] for name in fields}
        columns[SOURCE_INDEX] = columns[SOURCE_INDEX] + offset
        writer.append(file["images"][start:end], list(ids[start:end]), **columns)


def gather_splits_json(shard_dirs: Sequence[Path], out: Path) -> None:
    """One ``splits.json``: the shards' lists of each split concatenated; everything else from the first."""
    parts = [json.loads((Path(d) / out.name).read_text()) for d in shard_dirs]
    merged = dict(parts[0])
    for key, value in parts[0].items():
        if isinstance(value, list):
            merged[key] = [item for part in parts for item in part[key]]
    write_json(out, merged)


def gather_bad_samples(shard_dirs: Sequence[Path], out_dir: Path) -> None:
    """One ``bad_samples.csv`` with every shard's rows, as one job's ``BadSamples.write`` lays it out."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["file", "id", "reason"])
    for shard in shard_dirs:
        with open(Path(shard) / BAD_SAMPLES_CSV, newline="") as file:
            rows = list(csv.reader(file))
        writer.writerows(rows[1:])
    write_text(Path(out_dir) / BAD_SAMPLES_CSV, text.getvalue())
