"""Fine-tuning command: ``finetune`` (one initialisation on one task with one seed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dira.cli.settings import add_settings_options, stage_settings
from dira.registry import TASKS
from dira.stages import stage_keys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune one initialisation on one task with one seed")
    p.add_argument("--task", required=True, choices=list(TASKS))
    p.add_argument("--data", required=True, help="folder with the task's {train,val,test}.h5")
    p.add_argument("--init", required=True,
                   help="name of the initialisation ('random', 'supervised_imagenet', 'mocov2_dira', ...)")
    p.add_argument("--weights", help="encoder.pt to start from, or unet.pt (encoder and decoder) for "
                                     "segmentation tasks; omit for 'random'")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--fraction", type=float, default=1.0, metavar="F",
                   help="share of the training labels to fine-tune on, in (0, 1]; the subsets are nested and "
                        "drawn with finetune.fraction_seed (default: 1, all)")
    p.add_argument("--out", required=True, help="folder for metrics.json, predictions.npz and model.pt")
    add_settings_options(p)
    p.set_defaults(func=_finetune)


def _finetune(args: argparse.Namespace) -> None:
    from dira.train.finetune import finetune

    keys = stage_keys("finetune", task=args.task, fraction=args.fraction < 1)
    finetune(
        task=args.task, data_dir=Path(args.data), init=args.init,
        weights=Path(args.weights) if args.weights else None, seed=args.seed,
        out_dir=Path(args.out), config=stage_settings(args, keys), fraction=args.fraction,
    )
