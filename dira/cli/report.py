"""Report commands: ``aggregate``, ``compare``, ``localization-table`` and ``figures`` (tables and PNGs)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("aggregate", help="table of mean ± std over seeds with t-tests against each base")
    p.add_argument("--task", required=True)
    p.add_argument("--runs", nargs="+", required=True, help="run folders .../<init>/seed<n>")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.set_defaults(func=_aggregate)

    p = sub.add_parser("compare", help="study table across tasks beside the paper: transfer, ablation or fraction")
    p.add_argument("--kind", required=True, choices=["transfer", "ablation", "fraction"],
                   help="transfer: inits × tasks (Table 2, Fig. 4); ablation: base/dir/dira per method "
                        "(Table 4); fraction: inits × tasks × label fractions (Table 1)")
    p.add_argument("--table", action="append", required=True, metavar="TASK[:FRACTION]=PATH",
                   help="a CSV written by `dira aggregate`, with its task and label fraction (0.25 or 25%%; "
                        "default 1 = all labels); repeat for every task (and fraction)")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.set_defaults(func=_compare)

    p = sub.add_parser("localization-table", help="Table 5: localization accuracy per IoU threshold, vs the paper")
    p.add_argument("--runs", nargs="+", required=True, help="folders .../<init>/seed<n> written by `dira localize`")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.add_argument("--out-tex", required=True)
    p.set_defaults(func=_localization_table)

    figures = sub.add_parser("figures", help="PNG figures: bars of a task, heatmaps (Fig. 6), label-fraction curves")
    kinds = figures.add_subparsers(dest="figure", required=True, metavar="KIND")
    p = kinds.add_parser("bars", help="bar chart with error bars and significance stars of a task table")
    p.add_argument("--table", required=True, help="CSV written by `dira aggregate`")
    p.set_defaults(func=_figure_bars)
    p = kinds.add_parser("heatmaps", help="Grad-CAM heatmaps, one row per initialisation (appendix Fig. 6)")
    p.add_argument("--examples", action="append", required=True, metavar="INIT=PATH",
                   help="examples.npz written by `dira localize`, one per row, top to bottom")
    p.set_defaults(func=_figure_heatmaps)
    p = kinds.add_parser("fractions", help="label-efficiency curves of one task (paper Table 1)")
    p.add_argument("--table", action="append", required=True, metavar="TASK[:FRACTION]=PATH",
                   help="a CSV written by `dira aggregate` with its label fraction, as for `dira compare`")
    p.set_defaults(func=_figure_fractions)
    for p in kinds.choices.values():
        p.add_argument("--out", required=True, help="PNG to write")
        p.add_argument("--title", default="")


def _aggregate(args: argparse.Namespace) -> None:
    from dira.report.tables import aggregate

    aggregate(task=args.task, run_dirs=[Path(p) for p in args.runs], out_csv=Path(args.out_csv),
              out_md=Path(args.out_md))


def _compare(args: argparse.Namespace) -> None:
    from dira.report.studies import compare, parse_table_spec

    compare(kind=args.kind, specs=[parse_table_spec(spec) for spec in args.table], out_csv=Path(args.out_csv),
            out_md=Path(args.out_md))


def _localization_table(args: argparse.Namespace) -> None:
    from dira.report.localization_table import localization_table

    localization_table([Path(p) for p in args.runs], out_csv=Path(args.out_csv), out_md=Path(args.out_md),
                       out_tex=Path(args.out_tex))


def _figure_bars(args: argparse.Namespace) -> None:
    from dira.report.figures import bar_chart

    bar_chart(table_csv=Path(args.table), out_png=Path(args.out), title=args.title)


def _figure_heatmaps(args: argparse.Namespace) -> None:
    from dira.errors import InputError
    from dira.report.heatmaps import heatmap_figure

    rows = []
    for spec in args.examples:
        init, sep, path = spec.partition("=")
        if not sep:
            raise InputError(f"--examples '{spec}': expected INIT=PATH, e.g. mocov2_dira=results/.../examples.npz")
        rows.append((init, Path(path)))
    heatmap_figure(rows, out_png=Path(args.out), title=args.title)


def _figure_fractions(args: argparse.Namespace) -> None:
    from dira.report.curves import fraction_curves
    from dira.report.studies import parse_table_spec

    fraction_curves([parse_table_spec(spec) for spec in args.table], out_png=Path(args.out), title=args.title)
