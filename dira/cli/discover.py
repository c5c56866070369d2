"""Visual-word discovery command: ``discover`` (TransVW's pseudo-labelled LUNA16 crops)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dira.cli.settings import add_settings_options, stage_settings
from dira.stages import stage_keys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("discover", help="TransVW self-discovery: autoencoder features, visual-word classes, "
                                        "pseudo-labelled LUNA16 crops")
    p.add_argument("--luna16", required=True, help="LUNA16 raw root (subset0-9/, as `dira prepare luna16` read it)")
    p.add_argument("--splits", required=True, help="splits.json of `dira prepare luna16` (its pretrain_train and "
                                                   "pretrain_val scans)")
    p.add_argument("--out", required=True, help="folder for train.h5, val.h5, autoencoder.pt and discovery.json")
    add_settings_options(p)
    p.set_defaults(func=_discover)


def _discover(args: argparse.Namespace) -> None:
    from dira.discovery.stage import discover

    config = stage_settings(args, stage_keys("discover"))
    discover(Path(args.luna16), Path(args.splits), Path(args.out), config)
