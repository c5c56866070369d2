"""``dira config``: the effective, validated configuration of a workflow run, as YAML."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print the effective configuration of a run (config files over the schema's "
                                      "defaults; the demo when none is given), as snakemake would run it")
    p.add_argument("--configfile", nargs="+", default=[], metavar="FILE",
                   help="the run's config files, in order (as `snakemake --configfile`); none: config/demo.yaml")
    p.add_argument("--workflow-dir", type=Path, help="checkout holding config/demo.yaml (default: here, then the "
                                                      "package's checkout)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> None:
    import yaml

    from dira.config import run_config

    config = run_config(args.configfile, workflow_dir=args.workflow_dir)
    sys.stdout.write(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
