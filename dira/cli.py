"""The ``dira`` command: one subcommand per pipeline stage, each usable without Snakemake.

Every subcommand takes explicit input and output paths. Settings come from ``--config`` (YAML files
or inline JSON objects, merged in order and validated against the workflow's schema), so a rule and a
person at the shell run the same code with the same defaults. Stage modules are imported lazily to
keep ``dira --help`` fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from dira import __version__

DATASETS = ("chestxray14", "chexpert", "siim", "montgomery")
# Every dataset the catalog knows (the 3D sets too): what `dira download` and `dira locate` accept.
CATALOG_DATASETS = (*DATASETS, "luna16", "lidc", "lits", "brats", "pe")


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", action="append", default=[], metavar="FILE|JSON",
        help="pipeline config (YAML file or inline JSON object); repeat to merge, later wins",
    )


def _settings(args: argparse.Namespace) -> dict:
    from dira.config import load_config

    return load_config(args.config)


def _cmd_synth(args: argparse.Namespace) -> None:
    import importlib

    # Every synthetic writer module exposes write(out, count, image_size, seed).
    writer = importlib.import_module(f"dira.data.synthetic.{args.dataset}")
    writer.write(Path(args.out), count=args.count, image_size=args.image_size, seed=args.seed)


def _cmd_download(args: argparse.Namespace) -> None:
    from dira.data.download import download_dataset

    download_dataset(args.dataset, Path(args.root), files=args.files or None, extract=not args.no_extract)


def _cmd_locate(args: argparse.Namespace) -> None:
    from dira.data.locate import locate

    locate(args.dataset, Path(args.root), Path(args.out), download=args.download, require=args.require)


def _cmd_prepare(args: argparse.Namespace) -> None:
    from dira.data.prepare import prepare_dataset

    prepare_dataset(args.dataset, root=Path(args.root), out_dir=Path(args.out), config=_settings(args))


def _cmd_pretrain(args: argparse.Namespace) -> None:
    from dira.train.pretrain import pretrain

    pretrain(
        method=args.method, variant=args.variant, train_h5=Path(args.train), val_h5=Path(args.val),
        out_dir=Path(args.out), init=Path(args.init) if args.init else None,
        state_dir=Path(args.state_dir) if args.state_dir else None, config=_settings(args),
    )


def _cmd_import_official(args: argparse.Namespace) -> None:
    from dira.models.official import import_official

    import_official(Path(args.checkpoint), Path(args.out))


def _cmd_finetune(args: argparse.Namespace) -> None:
    from dira.train.finetune import finetune

    finetune(
        task=args.task, data_dir=Path(args.data), init=args.init,
        weights=Path(args.weights) if args.weights else None, seed=args.seed,
        out_dir=Path(args.out), config=_settings(args), fraction=args.fraction,
    )


def _cmd_aggregate(args: argparse.Namespace) -> None:
    from dira.report.tables import aggregate

    aggregate(task=args.task, run_dirs=[Path(p) for p in args.runs], out_csv=Path(args.out_csv),
              out_md=Path(args.out_md))


def _cmd_compare(args: argparse.Namespace) -> None:
    from dira.report.studies import compare, parse_table_spec

    compare(kind=args.kind, specs=[parse_table_spec(spec) for spec in args.table], out_csv=Path(args.out_csv),
            out_md=Path(args.out_md))


def _cmd_localize(args: argparse.Namespace) -> None:
    from dira.eval.localize import localize

    localize(model_pt=Path(args.model), data_dir=Path(args.data), out_dir=Path(args.out), init=args.init,
             seed=args.seed, config=_settings(args))


def _cmd_localization_table(args: argparse.Namespace) -> None:
    from dira.report.localization_table import localization_table

    localization_table([Path(p) for p in args.runs], out_csv=Path(args.out_csv), out_md=Path(args.out_md),
                       out_tex=Path(args.out_tex))


def _cmd_figure_bars(args: argparse.Namespace) -> None:
    from dira.report.figures import bar_chart

    bar_chart(table_csv=Path(args.table), out_png=Path(args.out), title=args.title)


def _cmd_figure_heatmaps(args: argparse.Namespace) -> None:
    from dira.errors import InputError
    from dira.report.heatmaps import heatmap_figure

    rows = []
    for spec in args.examples:
        init, sep, path = spec.partition("=")
        if not sep:
            raise InputError(f"--examples '{spec}': expected INIT=PATH, e.g. mocov2_dira=results/.../examples.npz")
        rows.append((init, Path(path)))
    heatmap_figure(rows, out_png=Path(args.out), title=args.title)


def _cmd_figure_fractions(args: argparse.Namespace) -> None:
    from dira.report.curves import fraction_curves
    from dira.report.studies import parse_table_spec

    fraction_curves([parse_table_spec(spec) for spec in args.table], out_png=Path(args.out), title=args.title)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dira", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"dira {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="write a synthetic dataset in the real dataset's on-disk layout")
    p.add_argument("dataset", choices=DATASETS)
    p.add_argument("--out", required=True, help="folder to write the raw dataset into")
    p.add_argument("--count", "--patients", "--images", type=int, default=200,
                   help="patients (chestxray14, chexpert) or images (siim, montgomery)")
    p.add_argument("--image-size", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("download", help="download, verify and unpack a public dataset into its root")
    p.add_argument("dataset", choices=CATALOG_DATASETS)
    p.add_argument("--root", required=True, help="folder the dataset's release layout is unpacked into")
    p.add_argument("--files", nargs="+", metavar="NAME", help="only these catalog files (default: all)")
    p.add_argument("--no-extract", action="store_true", help="download and verify only")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("locate", help="check that a real dataset is in place (else print how to obtain it)")
    p.add_argument("dataset", choices=CATALOG_DATASETS)
    p.add_argument("--root", required=True, help="folder holding the dataset in its release layout")
    p.add_argument("--out", required=True, help="marker JSON to write once the dataset is found")
    p.add_argument("--download", action="store_true", help="download the public files first (`dira download`)")
    p.add_argument("--require", nargs="*", default=[], metavar="PATH", help="further files the run needs")
    p.set_defaults(func=_cmd_locate)

    p = sub.add_parser("prepare", help="read a raw dataset and write its HDF5 caches (train/val/test)")
    p.add_argument("dataset", choices=DATASETS)
    p.add_argument("--root", required=True, help="folder holding the raw dataset")
    p.add_argument("--out", required=True, help="folder for {train,val,test}.h5")
    _add_config(p)
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("pretrain", help="self-supervised pre-training of one method and variant")
    p.add_argument("--method", required=True, choices=["mocov2", "simsiam", "barlowtwins"])
    p.add_argument("--variant", required=True, choices=["base", "dir", "dira"])
    p.add_argument("--train", required=True, help="training split cache (train.h5)")
    p.add_argument("--val", required=True, help="validation split cache (val.h5)")
    p.add_argument("--out", required=True, help="folder for encoder.pt, unet.pt, method.pt, meta.json")
    p.add_argument("--init", help="method.pt of the 'base' run that 'dir'/'dira' continue from")
    p.add_argument("--state-dir", help="where the resumable training state lives (default: OUT/../.state/VARIANT)")
    _add_config(p)
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("import-official", help="convert a checkpoint of the public DiRA release for fine-tuning")
    p.add_argument("checkpoint", help="unet.pth, best_checkpoint.pth or checkpoint.pth of fhaghighi/DiRA")
    p.add_argument("--out", required=True, help="folder for encoder.pt (and unet.pt when it has a decoder)")
    p.set_defaults(func=_cmd_import_official)

    p = sub.add_parser("finetune", help="fine-tune one initialisation on one task with one seed")
    p.add_argument("--task", required=True, choices=DATASETS)
    p.add_argument("--data", required=True, help="folder with the task's {train,val,test}.h5")
    p.add_argument("--init", required=True, help="name of the initialisation ('random', 'mocov2_dira', ...)")
    p.add_argument("--weights", help="encoder.pt to start from, or unet.pt (encoder and decoder) for "
                                     "siim/montgomery; omit for 'random'")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--fraction", type=float, default=1.0, metavar="F",
                   help="share of the training labels to fine-tune on, in (0, 1]; the subsets are nested and "
                        "drawn with finetune.fraction_seed (default: 1, all)")
    p.add_argument("--out", required=True, help="folder for metrics.json and predictions.npz")
    _add_config(p)
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser("aggregate", help="table of mean ± std over seeds with t-tests against each base")
    p.add_argument("--task", required=True)
    p.add_argument("--runs", nargs="+", required=True, help="run folders .../<init>/seed<n>")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.set_defaults(func=_cmd_aggregate)

    p = sub.add_parser("compare", help="study table across tasks beside the paper: transfer, ablation or fraction")
    p.add_argument("--kind", required=True, choices=["transfer", "ablation", "fraction"],
                   help="transfer: inits × tasks (Table 2, Fig. 4); ablation: base/dir/dira per method "
                        "(Table 4); fraction: inits × tasks × label fractions (Table 1)")
    p.add_argument("--table", action="append", required=True, metavar="TASK[:FRACTION]=PATH",
                   help="a CSV written by `dira aggregate`, with its task and label fraction (0.25 or 25%%; "
                        "default 1 = all labels); repeat for every task (and fraction)")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("localize", help="Grad-CAM boxes of a fine-tuned ChestX-ray14 classifier vs BBox_List")
    p.add_argument("--model", required=True, help="model.pt of a chestxray14 fine-tuning run")
    p.add_argument("--data", required=True, help="folder with the prepared chestxray14 test.h5 (with boxes)")
    p.add_argument("--init", required=True, help="name of the run's initialisation (recorded in the output)")
    p.add_argument("--seed", type=int, required=True, help="the run's fine-tuning seed (recorded in the output)")
    p.add_argument("--out", required=True, help="folder for boxes.csv, accuracy.csv, examples.npz, localization.json")
    _add_config(p)
    p.set_defaults(func=_cmd_localize)

    p = sub.add_parser("localization-table", help="Table 5: localization accuracy per IoU threshold, vs the paper")
    p.add_argument("--runs", nargs="+", required=True, help="folders .../<init>/seed<n> written by `dira localize`")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.add_argument("--out-tex", required=True)
    p.set_defaults(func=_cmd_localization_table)

    figures = sub.add_parser("figures", help="PNG figures: bars of a task, heatmaps (Fig. 6), label-fraction curves")
    kinds = figures.add_subparsers(dest="figure", required=True, metavar="KIND")
    p = kinds.add_parser("bars", help="bar chart with error bars and significance stars of a task table")
    p.add_argument("--table", required=True, help="CSV written by `dira aggregate`")
    p.set_defaults(func=_cmd_figure_bars)
    p = kinds.add_parser("heatmaps", help="Grad-CAM heatmaps, one row per initialisation (appendix Fig. 6)")
    p.add_argument("--examples", action="append", required=True, metavar="INIT=PATH",
                   help="examples.npz written by `dira localize`, one per row, top to bottom")
    p.set_defaults(func=_cmd_figure_heatmaps)
    p = kinds.add_parser("fractions", help="label-efficiency curves of one task (paper Table 1)")
    p.add_argument("--table", action="append", required=True, metavar="TASK[:FRACTION]=PATH",
                   help="a CSV written by `dira aggregate` with its label fraction, as for `dira compare`")
    p.set_defaults(func=_cmd_figure_fractions)
    for p in kinds.choices.values():
        p.add_argument("--out", required=True, help="PNG to write")
        p.add_argument("--title", default="")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from dira.errors import InputError

    try:
        args.func(args)
    except (InputError, FileNotFoundError) as err:
        # Bad input is reported as one line naming the file and the problem, not a traceback.
        print(f"dira {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
