"""Evaluation command: ``localize`` (Grad-CAM boxes of a ChestX-ray14 classifier, Table 5)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dira.cli.settings import add_settings_options, stage_settings
from dira.stages import stage_keys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("localize", help="Grad-CAM boxes of a fine-tuned ChestX-ray14 classifier vs BBox_List")
    p.add_argument("--model", required=True, help="model.pt of a chestxray14 fine-tuning run")
    p.add_argument("--data", required=True, help="folder with the prepared chestxray14 test.h5 (with boxes)")
    p.add_argument("--init", required=True, help="name of the run's initialisation (recorded in the output)")
    p.add_argument("--seed", type=int, required=True, help="the run's fine-tuning seed (recorded in the output)")
    p.add_argument("--out", required=True, help="folder for boxes.csv, accuracy.csv, examples.npz, localization.json")
    add_settings_options(p)
    p.set_defaults(func=_localize)


def _localize(args: argparse.Namespace) -> None:
    from dira.eval.localize import localize

    localize(model_pt=Path(args.model), data_dir=Path(args.data), out_dir=Path(args.out), init=args.init,
             seed=args.seed, config=stage_settings(args, stage_keys("localize")))
