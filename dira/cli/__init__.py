"""The ``dira`` command: one subcommand per pipeline stage, each usable without Snakemake.

Every stage has its own module here that registers its subcommands (as nnU-Net has one entry point per
stage), with choices taken from :mod:`dira.registry`. Every subcommand takes explicit input and output paths;
settings come from run config files (``--config``, laid over the schema's defaults) or, from the workflow, from
the job's complete settings (``--settings``). Stage code is imported only when its subcommand runs, so
``dira --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys

from dira import __version__
from dira.cli import config, data, discover, evaluate, finetune, pretrain, report

STAGES = (config, data, discover, pretrain, finetune, evaluate, report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dira", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"dira {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for stage in STAGES:
        stage.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from dira.errors import InputError
    from dira.io import DISK_FULL

    try:
        args.func(args)
    except (InputError, FileNotFoundError) as err:
        # Bad input is reported as one line naming the file and the problem, not a traceback.
        print(f"dira {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno not in DISK_FULL:
            raise
        print(f"dira {args.command}: error: {err}", file=sys.stderr)  # names the file kept as it was
        return 1
    return 0
