"""Samples/s and model-FLOP utilisation of one pre-training step of every method × variant, beside the references.

Every row is one training step on a synthetic batch already on the device. "This implementation" is the
package's own model and optimisers (``build_dira``, ``Pretrainer.start_stage``) driven exactly as one
iteration of the loop body of ``Pretrainer.train_epoch`` (lr schedule, ``train_step``, loss sums), in the LAST
stage of each variant's ``stage_plan`` (the one that dominates a run): the 2D methods at the paper's settings
(the schema's defaults, ``load_config([])``: ResNet-50 U-Net, 224 px) and TransVW in 3D (3D U-Net at base
width 32, 64x64x32 cubes, 44 visual-word classes); ``--config`` overrides them as for ``dira pretrain``. Two
rows also run beside a re-implementation of the reference's step (``reference_steps.py``): MoCo-v2 'dira'
beside the DiRA step and TransVW 'dira' beside the TransVW step, with their ratio rows.

Each row's settings (``--precision``, ``--memory-format``, ``--fused``, ``--compile``; several values give one
row each, timed in the same run) default to what ``dira pretrain`` does: bf16 autocast and channels_last on
CUDA, fp32 and contiguous on the CPU. FLOPs per step are counted on the meta device by ``cost.py``'s
``pretrain_costs`` (the references': on their first, untimed step) and divided by the step time and by the
device's dense peak (``cost.GPUS``, or ``--peak-tflops``) for the MFU. Speed is measured here, never asserted
in tests. Run ``python benchmarks/pretrain_step.py --help``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from cost import meta_autocast, pretrain_costs
from reference_steps import ReferenceDiRAStep, ReferenceTransVWStep
from step_harness import StepResult, StepRunner, add_utilisation, environment, fmt, time_group

from dira.config import ConfigError, deep_merge, load_config, validate
from dira.methods import METHODS as METHOD_CLASSES
from dira.methods.dira import DiRA, Stage, build_dira
from dira.registry import METHODS, VARIANTS
from dira.train import optim
from dira.train.history import History
from dira.train.pretrain import batch_size, model_section, stage_plan
from dira.train.pretrainer import Pretrainer

PACKAGE = "this implementation"
REFERENCES = (ReferenceDiRAStep, ReferenceTransVWStep)


@dataclass(frozen=True)
class Settings:
    """How one row of this implementation runs (resolved: no 'auto')."""

    dtype: str           # "fp32" or "bf16" (autocast)
    memory_format: str   # "contiguous" or "channels_last" (channels_last_3d for 3D)
    fused: bool
    compiled: bool


def package_settings(device: torch.device) -> Settings:
    """What ``dira pretrain`` does on this device (the Pretrainer's autocast and fused optimisers, ``_pretrain``'s
    memory format); never compiled."""
    cuda = device.type == "cuda"
    return Settings("bf16" if cuda else "fp32", "channels_last" if cuda else "contiguous", cuda, False)


def memory_format(name: str, dims: int) -> torch.memory_format:
    if name == "contiguous":
        return torch.contiguous_format
    return torch.channels_last_3d if dims == 3 else torch.channels_last


class OurStep:
    """The loop body of ``Pretrainer.train_epoch`` for the last stage of a variant: lr schedule, ``train_step``, sums.

    The views (``make_views``' output) are a synthetic batch made once; ``benchmarks/views.py`` times making them.
    """

    def __init__(self, cfg: dict[str, Any], method: str, variant: str, device: torch.device, batch: int,
                 settings: Settings, classes: int, steps_per_epoch: int, flops_per_sample: float):
        pretrain, dims = cfg["pretrain"], METHODS[method].dims
        plan = stage_plan(method, variant, pretrain)[-1]
        self.stage, self.epochs, self.steps_per_epoch = plan.stage, plan.epochs, steps_per_epoch
        self.flops_per_step: float | None = flops_per_sample * batch
        structure = {"classes": classes} if dims == 3 else {}
        self.model = build_dira(method, variant == "dira", cfg[model_section(method)], pretrain, structure).to(device)
        self.model.to(memory_format=memory_format(settings.memory_format, dims))
        self._state_dir = tempfile.TemporaryDirectory(prefix="dira-bench-")
        # Datasets are never touched: the batch below is made once, so that only the step is timed.
        self.trainer = Pretrainer(self.model, None, None, pretrain, method,  # type: ignore[arg-type]
                                  batch_size(method, pretrain), device,
                                  History(Path(self._state_dir.name) / "history.csv"), "benchmark")
        self.trainer.fused, self.trainer.mixed_precision = settings.fused, settings.dtype == "bf16"
        self.trainer.start_stage(plan.stage, plan.weights)
        if settings.compiled:
            compile_modules(self.model)
        self.model.train()
        # The views as Pretrainer.make_views hands them to train_step: on the device, images and volumes in the
        # row's memory format ('auto' = make_views' own: channels_last on CUDA); labels as they are.
        layout = memory_format(settings.memory_format, dims)
        self.batch = {k: v.to(device).contiguous(memory_format=layout if v.dim() in (4, 5) else torch.contiguous_format)
                      for k, v in synthetic_batch(method, plan.stage, cfg, batch, classes).items()}
        self.sums: dict[str, torch.Tensor] = {}

    def step(self, index: int) -> None:
        t = self.trainer
        optim.set_learning_rate(t.optimizer, t.optimizer_settings, 0, index, self.steps_per_epoch, self.epochs)
        terms = t.train_step(self.stage, self.batch, 0, index)
        for name, value in terms.items():
            self.sums[name] = self.sums.get(name, 0.0) + value

    def close(self) -> None:
        self._state_dir.cleanup()


def synthetic_batch(method: str, stage: Stage, cfg: dict[str, Any], batch: int,
                    classes: int) -> dict[str, torch.Tensor]:
    """The method's inputs (+ the restoration target), shaped as its dataset yields them: grey views or cubes."""
    if METHODS[method].dims == 3:
        shape = (batch, 1, *cfg["datasets"]["luna16"]["crop_shape"])  # (1, z, y, x)
    else:
        shape = (batch, 1, cfg["model"]["input_size"], cfg["model"]["input_size"])
    names = [*METHOD_CLASSES[method].inputs, *(["target"] if stage.restoration else [])]
    return {n: torch.randint(classes, (batch,)) if n == "label" else torch.rand(shape) for n in names}


def compile_modules(model: DiRA) -> None:
    """``torch.compile`` in place (state-dict keys unchanged) of the U-Net's parts (2D: encoder, decoder, head;
    3D: its levels), the method's heads and momentum encoder, and D; losses, optimisers and the momentum update
    stay eager. Compilation happens on the first step (the row's ``1st s``)."""
    parts = [*model.unet.children(), *model.method.children(), *([model.discriminator] if model.discriminator else [])]
    for part in parts:
        part.compile()


def fused_label(optimizer: str, variant: str, fused: bool) -> str:
    if not fused:
        return "no"
    if optimizer == "lars":  # no fused kernel (optim.build_optimizer); the discriminator's Adam has one
        return "D only" if variant == "dira" else "no (LARS)"
    return "yes"


def flops_per_sample(method: str, stage: Stage, cfg: dict[str, Any], classes: int,
                     cache: dict[tuple[str, str], float]) -> float:
    """Training-step FLOPs per sample (forward, backward and D's step), counted once on the meta device.

    Per sample they do not depend on the batch size, so one count serves every batch of a (method, stage)."""
    key = (method, stage.name)
    if key not in cache:
        with meta_autocast():
            cache[key] = pretrain_costs(method, stage, deep_merge(cfg, {"discovery": {"classes": classes}}), 2)["train"]
    return cache[key]


# ---------------------------------------------------------------------------------------------- the run
def run_row_group(method: str, variant: str, batch: int, cfg: dict[str, Any], device: torch.device,
             args: argparse.Namespace, cache: dict[tuple[str, str], float]) -> list[StepResult]:
    """This implementation at each requested setting (and the reference where it has one) at one batch size."""
    dims, stage = METHODS[method].dims, stage_plan(method, variant, cfg["pretrain"])[-1].stage
    cuda = device.type == "cuda"
    results: dict[str, StepResult] = {}
    builders: dict[str, Callable[[], StepRunner]] = {}
    reference = next((r for r in REFERENCES if r.compared_with == (method, variant)), None)
    if reference is not None and not args.no_reference:
        results["reference"] = StepResult(reference.name, "reference", method, variant, stage.name, dims, batch,
                                          "fp32", reference.memory_format, "no", False, True if cuda else None)
        builders["reference"] = ((lambda: ReferenceDiRAStep(cfg, device, batch)) if dims == 2 else
                                 (lambda: ReferenceTransVWStep(cfg, device, batch, args.classes)))
    per_sample = flops_per_sample(method, stage, cfg, args.classes, cache)
    for i, settings in enumerate(args.settings):
        layout = "channels_last_3d" if dims == 3 and settings.memory_format == "channels_last" else \
            settings.memory_format
        fused = fused_label(cfg["pretrain"][method]["optimizer"]["name"], variant, settings.fused)
        results[f"ours{i}"] = StepResult(f"{method}/{variant}", PACKAGE, method, variant, stage.name, dims, batch,
                                         settings.dtype, layout, fused, settings.compiled, True if cuda else None)
        builders[f"ours{i}"] = (lambda s=settings: OurStep(cfg, method, variant, device, batch, s, args.classes,
                                                           args.warmup + args.steps, per_sample))
    if args.order == "interleaved":
        time_group(results, builders, device, args.warmup, args.steps)
    else:  # each alone on the device: peak memory per row, an OOM of one spares the others
        for key in results:
            time_group({key: results[key]}, {key: builders[key]}, device, args.warmup, args.steps)
    for result in results.values():
        add_utilisation(result, device, args.peak_tflops)
    return list(results.values())


# ---------------------------------------------------------------------------------------------- report
COLUMNS = (("row", 26, "<"), ("stage", 5, "<"), ("batch", 5, ">"), ("dtype", 5, "<"), ("format", 16, "<"),
           ("fused", 9, "<"), ("compile", 7, "<"), ("samples/s", 9, ">"), ("ms/step", 9, ">"), ("min ms", 9, ">"),
           ("GFLOP/step", 10, ">"), ("achieved", 9, ">"), ("MFU", 6, ">"), ("1st s", 7, ">"), ("peak GiB", 8, ">"))


def _line(cells: list[str], cuda: bool) -> str:
    columns = COLUMNS if cuda else COLUMNS[:-1]
    return " ".join(format(c, f"{align}{width}") for c, (_, width, align) in zip(cells, columns, strict=True))


def _ratio_line(label: str, ours: StepResult, base: StepResult) -> str | None:
    if not (ours.samples_per_s and base.samples_per_s):
        return None
    width = sum(w + 1 for _, w, _ in COLUMNS[:7]) - 1  # up to samples/s
    return (f"{label:<{width}} {ours.samples_per_s / base.samples_per_s:>9.2f} {'':>9} "
            f"{base.min_ms_per_step / ours.min_ms_per_step:>9.2f}")


def report(args: argparse.Namespace, device: torch.device, results: list[StepResult]) -> str:
    cuda, cfg = device.type == "cuda", args.cfg
    env = environment(device)
    unit = "TFLOP/s" if cuda else "GFLOP/s"
    dims = {METHODS[m].dims for m, _ in args.matrix}
    shapes = []
    if 2 in dims:
        shapes.append(f"2D: {cfg['model']['backbone']} U-Net, {cfg['model']['input_size']} px, MoCo queue "
                      f"{cfg['pretrain']['mocov2']['queue_size']}, batch {', '.join(map(str, args.batch_size))}")
    if 3 in dims:
        shapes.append(f"3D: U-Net base width {cfg['model3d']['base_width']}, cubes (z, y, x) "
                      f"{tuple(cfg['datasets']['luna16']['crop_shape'])}, {args.classes} classes, batch "
                      f"{', '.join(map(str, args.batch_size_3d))}")
    lines = [
        f"device: {device.type} ({env['device_name']}), torch {env['torch']}, threads {env['threads']}",
        "; ".join(shapes),
        f"timing: median of {args.steps} steps after {args.warmup} warm-up, {args.order}; 'achieved' in {unit}; "
        f"peak: {'--peak-tflops ' + format(args.peak_tflops, 'g') if args.peak_tflops else 'cost.GPUS by device name'}"
        + (f"; TF32 conv {env['tf32']['conv']}, matmul {env['tf32']['matmul']}" if cuda else ""),
        "",
    ]
    header = _line([name for name, _, _ in COLUMNS][: len(COLUMNS) if cuda else -1], cuda)
    lines += [header, "-" * len(header)]
    scale = 1.0 if cuda else 1000.0
    for r in results:
        ok = r.status == "ok"
        lines.append(_line([
            r.row, r.stage, str(r.batch_size), r.dtype, r.memory_format, r.fused, "yes" if r.compiled else "no",
            fmt(r.samples_per_s, ".2f") if ok else r.status, fmt(r.ms_per_step, ".1f"), fmt(r.min_ms_per_step, ".1f"),
            fmt(r.gflop_per_step, ".1f"), fmt(None if r.achieved_tflops is None else r.achieved_tflops * scale, ".2f"),
            fmt(None if r.mfu is None else 100 * r.mfu, ".1f") + ("%" if r.mfu is not None else ""),
            fmt(r.first_step_s, ".1f"), fmt(r.peak_memory_gib, ".2f")][: len(COLUMNS) if cuda else -1], cuda))
    groups: dict[tuple[str, str, int], list[StepResult]] = {}
    for r in results:
        groups.setdefault((r.method, r.variant, r.batch_size), []).append(r)
    ratios = []
    for (method, variant, batch), rows in groups.items():
        ours = [r for r in rows if r.implementation == PACKAGE]
        names = {id(r): f"{method}/{variant}" + (f" ({_settings_text(r)})" if len(ours) > 1 else "") for r in ours}
        for base in (r for r in rows if r.implementation == "reference"):
            ratios += [_ratio_line(f"ratio {names[id(r)]} / {base.row}, batch {batch}", r, base) for r in ours]
        ratios += [_ratio_line(f"ratio {names[id(r)]} / ({_settings_text(ours[0])}), batch {batch}", r, ours[0])
                   for r in ours[1:]]
    ratios = [r for r in ratios if r]
    if ratios:
        lines += ["", "ratios: samples/s of the medians (under samples/s), of the minima (under min ms); above 1: "
                      "the first is faster", *ratios]
    failed = [r for r in results if r.status != "ok"]
    lines += [f"{r.row} batch {r.batch_size}: {r.status}: {r.message}" for r in failed]
    return "\n".join(lines)


def _settings_text(r: StepResult) -> str:
    layout = {"contiguous": "contig", "channels_last": "cl", "channels_last_3d": "cl3d"}[r.memory_format]
    return " ".join([r.dtype, layout, *(["fused"] if r.fused != "no" else []), *(["compiled"] if r.compiled else [])])


# ---------------------------------------------------------------------------------------------- arguments
def _on_off(values: list[str] | None, default: bool) -> list[bool]:
    """``--fused`` alone = on; ``--fused off on`` = a row of each; absent = what the package does."""
    return [default] if values is None else [v == "on" for v in (values or ["on"])]


def row_settings(args: argparse.Namespace, device: torch.device) -> list[Settings]:
    """Every combination of the requested settings, 'auto' resolved to the package's, duplicates dropped."""
    default = package_settings(device)
    dtypes = [default.dtype if p == "auto" else p for p in args.precision]
    formats = [default.memory_format if m == "auto" else m for m in args.memory_format]
    combos = itertools.product(dtypes, formats, _on_off(args.fused, default.fused),
                               _on_off(args.compile, default.compiled))
    return list(dict.fromkeys(Settings(*c) for c in combos))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu",
                        help="default: cuda when visible")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS), help="default: all")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="default: all (each method runs those of its variants that are listed)")
    parser.add_argument("--batch-size", type=int, nargs="+", default=None,
                        help="2D batch sizes, and 3D too unless --batch-size-3d (default: 4 on cpu, 32 on cuda)")
    parser.add_argument("--batch-size-3d", type=int, nargs="+", default=None,
                        help="TransVW batch sizes (default: --batch-size if given, else 2 on cpu and the paper's "
                             "pretrain.transvw.batch_size on cuda)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 3 on cpu, 20 on cuda)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 1 cpu, 5 cuda)")
    parser.add_argument(
        "--config", action="append", default=[], metavar="FILE|JSON",
        help="pipeline config merged onto the schema's defaults (the paper's settings), as for `dira pretrain`; "
             "repeat to merge, later wins: model (backbone, input_size), model3d (base_width), pretrain.<method> "
             "(optimizer, queue_size, bn_splits, ...), loss weights, datasets.luna16.crop_shape (the 3D cube)")
    parser.add_argument("--base-width", type=int, default=None, help="model3d.base_width (default: the config's, 32)")
    parser.add_argument("--classes", type=int, default=44,
                        help="TransVW's visual-word classes (default 44, the reference's cls_classes)")
    parser.add_argument("--precision", nargs="+", choices=("auto", "fp32", "bf16"), default=["auto"],
                        help="this implementation's rows: auto = the package's (bf16 autocast on cuda, fp32 on cpu); "
                             "several values: a row each")
    parser.add_argument("--memory-format", nargs="+", choices=("auto", "contiguous", "channels_last"),
                        default=["auto"], help="auto = the package's (channels_last(_3d) on cuda, contiguous on cpu)")
    parser.add_argument("--fused", nargs="*", choices=("off", "on"), default=None,
                        help="torch's fused SGD / Adam (LARS has none); `--fused` = on, `--fused off on` = both; "
                             "default: the package's (on with CUDA)")
    parser.add_argument("--compile", nargs="*", choices=("off", "on"), default=None,
                        help="torch.compile the U-Net parts, heads and D (compile time in '1st s'); as --fused")
    parser.add_argument("--no-reference", action="store_true", help="skip the two reference steps")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="dense peak for the MFU (default: cost.GPUS by CUDA device name; none on cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--order", choices=("interleaved", "sequential"), default=None,
                        help="alternate the rows of a method/variant step by step (default on cpu: robust to a "
                             "shared, drifting CPU) or time each alone (default on cuda: peak memory per row)")
    parser.add_argument("--json", type=Path, default=None, help="also write every row and its settings here")
    args = parser.parse_args(argv)
    overrides = [json.dumps({"model3d": {"base_width": args.base_width}})] if args.base_width else []
    try:
        args.cfg = load_config([*args.config, *overrides])
    except ConfigError as err:
        parser.error(str(err))
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is visible")
    given = args.batch_size
    args.batch_size = given or [32 if cuda else 4]
    args.batch_size_3d = args.batch_size_3d or given or [args.cfg["pretrain"]["transvw"]["batch_size"] if cuda else 2]
    args.steps = args.steps if args.steps is not None else (20 if cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    args.order = args.order or ("sequential" if cuda else "interleaved")
    if args.steps < 1 or args.warmup < 0 or min(args.batch_size + args.batch_size_3d) < 1 or args.classes < 2:
        parser.error("--steps must be >= 1, --warmup >= 0, batch sizes >= 1, --classes >= 2")
    args.settings = row_settings(args, torch.device(args.device))
    args.matrix = [(m, v) for m in args.methods for v in METHODS[m].variants if v in args.variants]
    if not args.matrix:
        parser.error("no method has any of the chosen variants")
    args.cfgs = {}
    for dims, batches in ((2, args.batch_size), (3, args.batch_size_3d)):
        if any(METHODS[m].dims == dims for m, _ in args.matrix):
            for batch in batches:  # checked up front, so that no device time is spent on a doomed run
                args.cfgs[dims, batch] = _batch_config(parser, args, dims, batch)
    return args


def _batch_config(parser: argparse.ArgumentParser, args: argparse.Namespace, dims: int, batch: int) -> dict[str, Any]:
    pretrain = {"batch_size": batch} if dims == 2 else {"transvw": {"batch_size": batch}}
    try:
        cfg = validate(deep_merge(args.cfg, {"device": args.device, "pretrain": pretrain}))
    except ConfigError as err:
        parser.error(f"batch {batch}: {err}")
    if dims == 3 and any(s % 8 for s in cfg["datasets"]["luna16"]["crop_shape"]):
        parser.error("the 3D U-Net's three 2x2x2 pools need cube sides divisible by 8")
    moco = cfg["pretrain"]["mocov2"]
    if dims == 2 and any(m == "mocov2" for m, _ in args.matrix):
        if batch % moco["bn_splits"]:
            parser.error(f"batch {batch} cannot be split into {moco['bn_splits']} batch-norm groups")
        if ("mocov2", "dira") in args.matrix and not args.no_reference and moco["queue_size"] % batch:
            parser.error(f"the reference asserts queue % batch == 0: {moco['queue_size']} % {batch} != 0")
    return cfg


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    results: list[StepResult] = []
    cache: dict[tuple[str, str], float] = {}
    for method, variant in args.matrix:
        dims = METHODS[method].dims
        for batch in (args.batch_size if dims == 2 else args.batch_size_3d):
            results += run_row_group(method, variant, batch, args.cfgs[dims, batch], device, args, cache)
    print(report(args, device, results), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "environment": environment(device), "config": args.cfg, "classes": args.classes, "steps": args.steps,
            "warmup": args.warmup, "order": args.order, "peak_tflops_override": args.peak_tflops,
            "settings": [asdict(s) for s in args.settings], "rows": [asdict(r) for r in results],
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
