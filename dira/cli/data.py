"""Data stage commands: ``synth``, ``download``, ``locate``, ``prepare``."""

from __future__ import annotations

import argparse
from pathlib import Path

from dira import registry
from dira.cli.settings import add_settings_options, stage_settings
from dira.registry import datasets
from dira.stages import stage_keys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a synthetic dataset in the real dataset's on-disk layout")
    p.add_argument("dataset", choices=datasets(prepared=True))
    p.add_argument("--out", required=True, help="folder to write the raw dataset into")
    p.add_argument("--count", "--patients", "--images", type=int,
                   help="patients (chestxray14, chexpert), images (siim, montgomery) or scans (luna16); "
                        "default: the config's")
    p.add_argument("--image-size", type=int, help="side of the written images; default: the config's")
    p.add_argument("--seed", type=int, help="writer seed; default: the config's")
    p.add_argument("--stamp", metavar="JSON", help="once the set is complete, also record it in this file outside "
                                                   "the set (what the workflow waits for)")
    add_settings_options(p)
    p.set_defaults(func=_synth)

    p = sub.add_parser("download", help="download, verify and unpack a public dataset into its root")
    p.add_argument("dataset", choices=datasets())
    p.add_argument("--root", required=True, help="folder the dataset's release layout is unpacked into")
    p.add_argument("--files", nargs="+", metavar="NAME", help="only these catalog files (default: all)")
    p.add_argument("--no-extract", action="store_true", help="download and verify only")
    p.set_defaults(func=_download)

    p = sub.add_parser("locate", help="check that a real dataset is in place (else print how to obtain it)")
    p.add_argument("dataset", choices=datasets())
    p.add_argument("--root", required=True, help="folder holding the dataset in its release layout")
    p.add_argument("--out", required=True, help="marker JSON to write once the dataset is found")
    p.add_argument("--download", action="store_true", help="download the public files first (`dira download`)")
    p.add_argument("--require", nargs="*", default=[], metavar="PATH", help="further files the run needs")
    p.set_defaults(func=_locate)

    p = sub.add_parser("prepare", help="read a raw dataset and write its HDF5 caches (train/val/test)")
    p.add_argument("dataset", choices=datasets(prepared=True))
    p.add_argument("--root", required=True, help="folder holding the raw dataset")
    p.add_argument("--out", required=True, help="folder for {train,val,test}.h5 (luna16: pretrain_{train,val}.h5, "
                                                "fpr_{train,val,test}.h5)")
    p.add_argument("--shard", metavar="K/N", help="only the K-th of N blocks of the scans (3D sets: "
                                                  f"{', '.join(registry.datasets(shardable=True))}); `dira gather` "
                                                  "joins the N outputs")
    add_settings_options(p)
    p.set_defaults(func=_prepare)

    p = sub.add_parser("gather", help="join the outputs of `dira prepare --shard K/N` into the split caches")
    p.add_argument("dataset", choices=registry.datasets(shardable=True))
    p.add_argument("--shards", nargs="+", required=True, metavar="DIR", help="the shards' --out folders, in order")
    p.add_argument("--out", required=True, help="folder for the gathered caches")
    p.set_defaults(func=_gather)


def _synth(args: argparse.Namespace) -> None:
    import importlib

    from dira.registry import DATASETS

    synthetic = stage_settings(args, stage_keys("synth", dataset=args.dataset))["datasets"][args.dataset]["synthetic"]
    count_key = DATASETS[args.dataset].synthetic_count
    # Every synthetic writer module exposes write(out, count, image_size, seed).
    writer = importlib.import_module(f"dira.data.synthetic.{args.dataset}")
    writer.write(Path(args.out),
                 count=args.count if args.count is not None else synthetic[count_key],
                 image_size=args.image_size if args.image_size is not None else synthetic["image_size"],
                 seed=args.seed if args.seed is not None else synthetic["seed"])
    if args.stamp:
        from dira.data.synthetic.claim import write_stamp

        write_stamp(Path(args.out, DATASETS[args.dataset].synthetic_subfolder), Path(args.stamp), args.dataset)


def _download(args: argparse.Namespace) -> None:
    from dira.data.download import download_dataset

    download_dataset(args.dataset, Path(args.root), files=args.files or None, extract=not args.no_extract)


def _locate(args: argparse.Namespace) -> None:
    from dira.data.locate import locate

    locate(args.dataset, Path(args.root), Path(args.out), download=args.download, require=args.require)


def _prepare(args: argparse.Namespace) -> None:
    from dira.data.prepare import prepare_dataset
    from dira.data.prepare.shards import Shard

    config = stage_settings(args, stage_keys("prepare", dataset=args.dataset))
    prepare_dataset(args.dataset, root=Path(args.root), out_dir=Path(args.out), config=config,
                    shard=Shard.parse(args.shard) if args.shard else None)


def _gather(args: argparse.Namespace) -> None:
    from dira.data.prepare import gather_dataset

    gather_dataset(args.dataset, [Path(d) for d in args.shards], Path(args.out))
