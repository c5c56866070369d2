"""How a stage command gets its settings: run config files over the schema's defaults, or the job's slice."""

from __future__ import annotations

import argparse
from typing import Any

from dira.config import load_config, read_config_source, validate
from dira.stages import check_complete


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--config", action="append", default=[], metavar="FILE|JSON",
        help="run config (YAML file or inline JSON object) laid over the schema's defaults, which are the paper's "
             "values; repeat to merge, later wins (as `snakemake --configfile A B`)",
    )
    group.add_argument(
        "--settings", metavar="JSON|FILE",
        help="the job's settings as the workflow hands them: every key this stage reads, nothing filled in "
             "(a missing key is an error naming it)",
    )


def stage_settings(args: argparse.Namespace, keys: list[str]) -> dict[str, Any]:
    """The validated settings of one stage run.

    With ``--settings`` all of ``keys`` must be given and nothing is filled in: the stage sees exactly what the
    workflow handed it, so a key it reads without declaring it fails (a KeyError naming it) instead of quietly
    taking the schema's default.
    """
    if args.settings is None:
        return load_config(args.config)
    given = validate(read_config_source(args.settings), defaults=False)  # types and unknown keys
    check_complete(given, keys)
    return given
