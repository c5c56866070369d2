"""Pre-training commands: ``pretrain`` (one method and variant), ``import-official`` (the public release) and
``export-encoder`` (the supervised ChestX-ray14 baseline's encoder, from a fine-tuning run)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dira.cli.settings import add_settings_options, stage_settings
from dira.registry import METHODS, VARIANTS
from dira.stages import stage_keys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="self-supervised pre-training of one method and variant")
    p.add_argument("--method", required=True, choices=list(METHODS))
    p.add_argument("--variant", required=True, choices=list(VARIANTS))
    p.add_argument("--train", required=True, help="training split cache (train.h5)")
    p.add_argument("--val", required=True, help="validation split cache (val.h5)")
    p.add_argument("--out", required=True, help="folder for encoder.pt, unet.pt, method.pt, meta.json")
    p.add_argument("--init", help="method.pt of the 'base' run that 'dir'/'dira' continue from")
    p.add_argument("--state-dir", help="where the resumable training state lives (default: OUT/../.state/VARIANT)")
    add_settings_options(p)
    p.set_defaults(func=_pretrain)

    p = sub.add_parser("import-official", help="convert a checkpoint of the public DiRA release for fine-tuning")
    p.add_argument("checkpoint", help="unet.pth, best_checkpoint.pth or checkpoint.pth of fhaghighi/DiRA")
    p.add_argument("--out", required=True, help="folder for encoder.pt and unet.pt (an encoder-only release gets a "
                                                "fresh decoder of model.decoder_channels)")
    add_settings_options(p)
    p.set_defaults(func=_import_official)

    p = sub.add_parser("export-encoder", help="encoder.pt of a ChestX-ray14 fine-tuning run: the supervised "
                                              "ChestX-ray14 initialisation (Table 2)")
    p.add_argument("--model", required=True, help="model.pt of a `dira finetune --task chestxray14` run")
    p.add_argument("--out", required=True, help="folder for encoder.pt and meta.json")
    p.set_defaults(func=_export_encoder)


def _pretrain(args: argparse.Namespace) -> None:
    from dira.train.pretrain import pretrain

    config = stage_settings(args, stage_keys("pretrain", method=args.method))
    pretrain(
        method=args.method, variant=args.variant, train_h5=Path(args.train), val_h5=Path(args.val),
        out_dir=Path(args.out), init=Path(args.init) if args.init else None,
        state_dir=Path(args.state_dir) if args.state_dir else None, config=config,
    )


def _import_official(args: argparse.Namespace) -> None:
    from dira.models.official import import_official

    model = stage_settings(args, stage_keys("import"))["model"]
    import_official(Path(args.checkpoint), Path(args.out), model["decoder_channels"])


def _export_encoder(args: argparse.Namespace) -> None:
    from dira.models.supervised import export_encoder

    export_encoder(Path(args.model), Path(args.out))
