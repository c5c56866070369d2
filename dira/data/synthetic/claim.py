"""Which folders `dira synth` may write into: empty ones and its own sets, complete or cut short.

A writer marks its root before the first file and swaps that mark for the completion marker after the last, so
the folder says at every instant whose it is: a writer killed half-way (pre-emption, SIGKILL) leaves the writing
mark, and the rerun recognises its own partial set instead of refusing it as what looks like a real dataset.

The workflow waits on a stamp outside the set (``write_stamp``), never on the set's own marker: Snakemake deletes
the declared output of a job it did not see finish, and losing the completion marker that way (a kill after the
writer finished, before Snakemake recorded it) would leave data files without either mark, refused as a real copy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dira.data.sources.markers import SYNTHETIC_MARKER, WRITING_MARKER
from dira.io import write_json, write_text


def holds_synthetic(root: Path) -> bool:
    """Whether ``root`` holds a set `dira synth` wrote or began to write (either marker)."""
    return (root / SYNTHETIC_MARKER).is_file() or (root / WRITING_MARKER).is_file()


def begin_writing(root: Path) -> None:
    """Mark ``root`` as being written; the completion marker goes only after (never a moment without a mark)."""
    write_text(root / WRITING_MARKER, "dira synth is writing this folder, or was stopped while it did; "
                                      "rerun it to complete the set\n")
    (root / SYNTHETIC_MARKER).unlink(missing_ok=True)


def finish_writing(root: Path, summary: dict[str, Any]) -> None:
    """Write the completion marker (the set's settings and counts), then drop the writing mark."""
    write_json(root / SYNTHETIC_MARKER, summary)
    (root / WRITING_MARKER).unlink(missing_ok=True)


def write_stamp(root: Path, stamp: Path, dataset: str) -> None:
    """Record, in ``stamp`` outside ``root``, that the set there is complete: its completion marker's summary.

    It holds no time, so a rerun over the same set, to the same root, writes the same bytes."""
    summary = json.loads((root / SYNTHETIC_MARKER).read_text())
    write_json(stamp, {"dataset": dataset, "root": str(root), "synthetic": summary})
