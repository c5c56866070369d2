"""Caches whose sources yield many rows each (a CT scan's crops), their number known only once a source is read.

A path of its own beside ``common.write_caches``, because the two differ where it matters: a 2D plan knows every
row and its labels, patients and boxes before any pixel is decoded, so its caches have a fixed length and a
bad sample under 'skip' costs a second decoding pass. Here a source's rows and their per-row values (label,
crop centre) come out of decoding, so the caches grow as the sources are read (``AppendingCacheWriter``) and a
bad source is simply left out, in one pass. What they share comes from ``common``: decoding in worker
processes in order, the bad-sample policy, and split caches that appear together or not at all.

Each split cache gets, beside the declared fields, ``source_index`` int64 (N,) (the row's source) and
``source_ids`` UTF-8 (M,) (the sources read, in plan order, bad ones left out).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import DTypeLike
from tqdm import tqdm

from dira.data.cache import AppendingCacheWriter, VoxelGrid
from dira.data.prepare.common import BadSamples, Failed, decode_in_order
from dira.errors import InputError

SOURCE_INDEX = "source_index"
SOURCE_IDS = "source_ids"


@dataclass(frozen=True)
class Row:
    """One cache row as a source yields it."""

    image: np.ndarray  # the layout's shape and dtype, e.g. float16 (32, 64, 64) z-y-x
    id: str  # unique in the split, e.g. "<seriesuid>/<crop number>"
    fields: Mapping[str, Any] = field(default_factory=dict)  # one value per declared field, e.g. label, centre


class RowSource(Protocol):
    """One input that yields any number of rows (a scan -> its crops). Read in a worker process: it must pickle."""

    @property
    def file(self) -> Path:
        """The file that bad_samples.csv names when reading fails."""

    @property
    def id(self) -> str:
        """The source's identifier (e.g. a LUNA16 seriesuid), stored in ``source_ids``."""

    def rows(self) -> Iterator[Row]:
        """Read the source and yield its rows; raise InputError naming the file when it is unusable."""


@dataclass(frozen=True)
class RowLayout:
    """What every row of every split holds: its shape and dtype, the per-row fields, the voxel grid."""

    shape: tuple[int, ...]
    dtype: DTypeLike
    fields: Mapping[str, tuple[DTypeLike, Sequence[int]]] = field(default_factory=dict)  # name -> (dtype, row shape)
    grid: VoxelGrid | None = None


@dataclass
class RowPlan:
    """The sources of one split, in the order their rows are written."""

    split: str
    sources: list[RowSource]


def _read(source: RowSource, skip: bool) -> list[Row] | Failed:
    """All rows of one source: a source that fails halfway contributes none."""
    try:
        return list(source.rows())
    except InputError as err:
        if not skip:
            raise
        return Failed(err)


def write_row_caches(plans: list[RowPlan], out_dir: Path, layout: RowLayout, workers: int, attrs: dict[str, Any],
                     desc: str, *, bad_samples: BadSamples | None = None) -> list[RowPlan]:
    """Read every source once and append its rows to its split's cache; all caches appear together or none.

    Returns the plans as written. A source that fails to read stops everything under the 'error' policy
    (the default); under 'skip' it is reported to ``bad_samples`` and its rows are left out.
    """
    bad_samples = bad_samples if bad_samples is not None else BadSamples("error")
    if SOURCE_INDEX in layout.fields:
        raise ValueError(f"'{SOURCE_INDEX}' is written by write_row_caches, not declared")
    fields = {**layout.fields, SOURCE_INDEX: (np.int64, ())}
    jobs = [(plan, source) for plan in plans for source in plan.sources]
    results = decode_in_order(partial(_read, skip=bad_samples.skip), [source for _, source in jobs], workers)
    written: dict[str, list[RowSource]] = {plan.split: [] for plan in plans}
    with ExitStack() as stack:
        stack.enter_context(closing(results))  # stops the worker pool on the way out, also on errors
        writers = {plan.split: stack.enter_context(AppendingCacheWriter(
            Path(out_dir) / f"{plan.split}.h5", layout.shape, {**attrs, "split": plan.split}, dtype=layout.dtype,
            fields=fields, grid=layout.grid)) for plan in plans}
        progress = tqdm(results, total=len(jobs), desc=desc, unit="source")
        for (plan, source), result in zip(jobs, progress, strict=True):
            if isinstance(result, Failed):
                bad_samples.report(source.id, source.file, result.error)
                continue
            writer, index = writers[plan.split], len(written[plan.split])
            _append(writer, source, result, index)
            written[plan.split].append(source)
            progress.set_postfix(rows=sum(w.n_rows for w in writers.values()))
        for plan in plans:
            writers[plan.split].write_array(SOURCE_IDS, [str(s.id) for s in written[plan.split]])
    return [RowPlan(plan.split, written[plan.split]) for plan in plans]


def _append(writer: AppendingCacheWriter, source: RowSource, rows: list[Row], index: int) -> None:
    """One batch per source; a row that breaks the layout is a bug in the source's reader, named here."""
    if not rows:
        return
    declared = set(writer.fields) - {SOURCE_INDEX}
    for row in rows:
        if row.image.shape != writer.shape or row.image.dtype != writer.dtype or set(row.fields) != declared:
            raise ValueError(f"{source.file}: row {row.id!r}: expected {writer.dtype} {writer.shape} with fields "
                             f"{sorted(declared)}, got {row.image.dtype} {row.image.shape} with {sorted(row.fields)}")
    columns = {name: np.asarray([row.fields[name] for row in rows]) for name in declared}
    writer.append(np.stack([row.image for row in rows]), [row.id for row in rows],
                  **columns, **{SOURCE_INDEX: np.full(len(rows), index, np.int64)})
