"""``dira locate``: make sure a real dataset is in place (downloading it first where asked and possible) and
write the small marker that the workflow's prepare step depends on.

The marker lives in the workflow's own tree, never in the dataset's root: a real dataset is only ever read
(its folder may be shared or read-only), and no workflow rule declares its files as outputs, so nothing —
not even ``snakemake --forceall`` — can delete them. The marker records the layout files' sizes and
modification times, so a later look shows which copy of the data a cache was made from.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dira.data.download import check_layout, download_dataset
from dira.data.download.catalog import dataset
from dira.errors import InputError
from dira.io import write_json
from dira.provenance import provenance


def locate(name: str, root: Path, out: Path, *, download: bool = False, require: Sequence[str] = ()) -> None:
    """Check that ``root`` holds dataset ``name`` (plus the ``require``d files) and write the marker ``out``."""
    root = Path(root)
    entry = dataset(name)
    if download:
        if not entry.files:
            raise InputError(f"datasets.{name}.download: {entry.title} cannot be downloaded by script "
                             f"({entry.access}); put it under {root} by hand")
        download_dataset(name, root)
    check_layout(name, root)
    missing = [path for path in require if not (root / path).exists()]
    if missing:
        raise InputError(f"{root}: {entry.title} is there, but the configuration also needs {', '.join(missing)}")
    listed = {}
    for relative in (*entry.layout, *require):
        path = next(root / sub / relative for sub in ("", *entry.also_under) if (root / sub / relative).exists())
        stat = path.stat()
        listed[str(path.relative_to(root))] = {"bytes": stat.st_size if path.is_file() else None,
                                               "mtime_ns": stat.st_mtime_ns}
    write_json(out, {"dataset": name, "root": str(root.resolve()), "downloaded": download, "layout": listed,
                     "provenance": provenance()})
    print(f"{name}: in place under {root} ({', '.join(listed)})")
