"""What the full paper reproduction (``config/paper.yaml``) costs in GPU-hours, estimated from FLOPs; no GPU is used.

Every network is built on the ``meta`` device (shapes, no storage) and one training step (forward + backward, + the
discriminator's step in adversarial stages) and one evaluation forward of a batch of 2 run under
``torch.utils.flop_counter.FlopCounterMode``: matrix products and convolutions at 2 FLOP per multiply-add, the
convention of model-FLOP utilisation (MFU); element-wise work, optimiser steps and data loading are not counted.
Per-sample FLOPs x the samples, epochs and jobs of the effective config (the DAG of ``snakemake --configfile
config/paper.yaml``) give FLOPs, and an assumed MFU of each GPU's dense peak gives GPU-hours. Early-stopped runs
have no known length; their epochs are an assumed range (``BEST_EPOCH``). Run ``python benchmarks/cost.py --json
cost.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dira import registry
from dira.config import load_config
from dira.data.eval_crops import VIEWS
from dira.eval.gradcam import grad_cam
from dira.eval.sliding_window import window_starts
from dira.methods.dira import STAGES, Stage, build_dira
from dira.models.classifier import build_classifier
from dira.models.unet import UNet
from dira.models.unet3d import UNet3D, UNet3DClassifier
from dira.train.finetune.volumes import task_max_epochs
from dira.train.pretrain import batch_size, model_section, stage_plan

LABEL = "estimated from FLOPs (torch.utils.flop_counter on the meta device); nothing here was measured on a GPU"


@dataclass(frozen=True)
class Gpu:
    name: str
    mixed: float  # dense bf16 / fp16 tensor-core peak, FLOP/s
    fp32: float   # what an fp32 run gets: TF32 tensor cores for convolutions (cuDNN's default) where there are any
    bf16: bool    # whether the package's bf16 autocast reaches tensor cores (the V100 has fp16 ones only)


GPUS = (Gpu("V100", 125e12, 15.7e12, False),      # SXM2, the paper's 4 x V100
        Gpu("A100", 312e12, 156e12, True),        # SXM
        Gpu("H100/H200", 989e12, 494e12, True))   # SXM; the H200 has the H100's compute, more and faster memory
TABLE_GPUS = ("V100", "H100/H200")
BATCH = 2  # of the counted steps: FLOPs per sample do not depend on it
FAMILIES = ("pre-training", "discovery", "2D classification", "2D segmentation", "label fractions", "localization",
            "3D tasks")

# Sample counts of the real releases (../shared/reference/datasets.md, the paper's appendix B), split as `dira prepare`
# cuts them (patient-level splits are approximated by image counts).
CXR14 = {"train_val": 86_524, "test": 25_596, "boxes": 984}   # train_val_list / test_list; BBox_List_2017 boxes
CHEXPERT = {"train": 223_414, "test": 234}                      # small train.csv (all views); valid.csv
SIIM_IMAGES = 10_712                                            # stage-1 training DICOMs
MONTGOMERY_IMAGES = 138
LUNA16_SCANS = {"train": 445, "val": 178, "test": 265}          # subsets 0-4 / 5-6 / 7-9 (appendix B)
LUNA16_CANDIDATES, LUNA16_POSITIVES = 754_975, 1_557            # candidates_V2.csv
LIDC_NODULES = {"train": 510, "val": 100, "test": 408}          # Models Genesis' NCS crops (appendix B)
BRATS_CASES = {"train_val": 190, "test": 95}                     # folds 1 + 2 / fold 3
BRATS_VOLUME_ZYX = (155, 240, 240)
LITS_VOLUME_ZYX = (450, 512, 512)   # assumption: a typical LiTS scan (74-987 slices of 512 x 512), native spacing

# Early stopping: the epoch of the lowest validation loss is unknown before a run, so it is assumed (low, typical,
# high) per kind of run, and a run lasts that + its patience epochs, capped at its max_epochs. Assumptions only.
BEST_EPOCH = {
    "classification": (5, 10, 25),            # ChestX-ray14 / CheXpert on all labels (patience 10)
    "classification_fraction": (10, 25, 60),  # fewer labels, more epochs to the best validation loss
    "segmentation": (40, 100, 180),           # SIIM / Montgomery under a 200-epoch cosine schedule (patience 20)
    "volume": (10, 30, 80),                   # the 3D tasks (patience 10-50 per task)
}

# CPU data paths measured in benchmarks/README.md (one core): per second per core. Pre-training's views are made on
# the GPU (issue 14), so a core only reads the stored row and draws the view parameters.
VIEW_RATE_2D = 1 / (1 / 2501 + 1 / 33228)  # 1024² uint8 row (loader.py) + TwoViewBatch.draw (views.py)
FINETUNE_RATE_2D = 594.0      # read + RandomResizedCrop 224 from the 1024-px cache (cache_resolution.py)
CUBE_RATE_3D = 1 / (1 / 21809 + 1.64e-3)  # 32x64x64 uint8 cube (loader.py) + TransVW draws (views3d.py)
# Published single-GPU ResNet-50 v1.5 training rates with AMP (NVIDIA DeepLearningExamples, PyTorch, img/s).
RESNET50_PUBLISHED = {"V100": 1200.0, "A100": 2470.0}


@dataclass
class Item:
    family: str
    name: str
    jobs: int
    epochs: tuple[int, int, int]   # of one job (low, typical, high); equal for fixed schedules
    flops: tuple[float, float, float]  # of all its jobs together at those epochs
    precision: str  # how the package runs it on a GPU today: 'bf16' (autocast) or 'fp32'


# ---------------------------------------------------------------------------------------------- counting
def count(step: Callable[[], Any]) -> float:
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


@contextlib.contextmanager
def meta_autocast() -> Iterator[None]:
    """``torch.autocast`` rejects device type 'meta'; the package's autocast blocks are no-ops for counting."""
    real = torch.autocast

    def autocast(device_type: str, *args: Any, **kwargs: Any) -> Any:
        return contextlib.nullcontext() if device_type == "meta" else real(device_type, *args, **kwargs)

    torch.autocast = autocast
    try:
        yield
    finally:
        torch.autocast = real


def train_eval(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Per-sample FLOPs of forward + backward (all weights trained) and of an evaluation forward."""
    def train() -> None:
        model.train()
        model(x).float().sum().backward()

    @torch.no_grad()
    def evaluate() -> None:
        model.eval()
        model(x)

    return {"train": count(train) / len(x), "eval": count(evaluate) / len(x)}


def pretrain_costs(method: str, stage: Stage, cfg: dict[str, Any], batch: int) -> dict[str, float]:
    """Per-sample FLOPs of one pre-training step of ``stage`` (Pretrainer.train_step) and of its validation pass."""
    settings = copy.deepcopy(cfg["pretrain"])
    if "bn_splits" in settings[method]:
        settings[method]["bn_splits"] = 1  # the same FLOPs; under torchrun each process is one batch-norm group
    classes = cfg["discovery"]["classes"]
    with torch.device("meta"):
        model = build_dira(method, stage.adversarial, cfg[model_section(method)], settings, {"classes": classes})
        if registry.METHODS[method].dims == 3:
            shape = (batch, 1, *cfg["datasets"]["luna16"]["crop_shape"])
            inputs = {"view": torch.rand(shape), "label": torch.randint(classes, (batch,)), "target": torch.rand(shape)}
        else:
            side = cfg["model"]["input_size"]
            inputs = {k: torch.rand(batch, 1, side, side) for k in ("view1", "view2", "target")}

    def train() -> None:
        model.train()
        losses = model.generator_losses(stage, inputs)
        losses.total.backward()
        if stage.adversarial:
            model.discriminator_loss(inputs["target"], losses.restored).backward()

    @torch.no_grad()
    def validate() -> None:
        model.eval()
        model.generator_losses(stage, inputs)

    return {"train": count(train) / batch, "eval": count(validate) / batch}


def network_costs(cfg: dict[str, Any], batch: int) -> dict[str, dict[str, float]]:
    """Per-sample FLOPs of the fine-tuning, evaluation, localization and discovery networks."""
    m, m3, side = cfg["model"], cfg["model3d"], cfg["model"]["input_size"]
    unet3d = {"base_width": m3["base_width"], "batch_stats_in_eval": m3["batch_stats_in_eval"]}
    crop = tuple(cfg["datasets"]["luna16"]["crop_shape"])
    with torch.device("meta"):
        classifier = build_classifier(m["backbone"], 14, None)
        image = torch.rand(batch, 3, side, side)
        nets = {
            "classifier": train_eval(classifier, image),
            "segmentation": train_eval(UNet(m["backbone"], m["decoder_channels"]), torch.rand(batch, 1, side, side)),
            "volume_classifier": train_eval(UNet3DClassifier(1, 1, **unet3d), torch.rand(batch, 1, *crop)),
            "volume_segmentation": train_eval(UNet3D(1, 1, **unet3d), torch.rand(batch, 1, *crop)),
            "autoencoder": train_eval(UNet3D(1, 1, base_width=m3["base_width"], batch_stats_in_eval=False),
                                      torch.rand(batch, 1, *cfg["discovery"]["autoencoder"]["volume_shape"])),
        }
        layer = dict(classifier.named_modules())[cfg["localization"]["layer"]]
        classes = torch.zeros(batch, dtype=torch.long)
        classifier.eval()
        nets["gradcam"] = {"train": count(lambda: grad_cam(classifier, layer, image, classes,
                                                           relu=cfg["localization"]["relu"])) / batch, "eval": 0.0}
    return nets


# ---------------------------------------------------------------------------------------------- workload
def split_images(n: int, test_fraction: float, val_fraction: float) -> dict[str, int]:
    """Split sizes as dira.data.prepare.common.split_images rounds them."""
    test = min(n - 2, max(1, round(test_fraction * n)))
    val = min(n - test - 1, max(1, round(val_fraction * (n - test))))
    return {"train": n - test - val, "val": val, "test": test}


def dataset_sizes(cfg: dict[str, Any]) -> dict[str, dict[str, int]]:
    ds, val = cfg["datasets"], cfg["prepare"]["val_fraction"]

    def train_val(n: int, test: int) -> dict[str, int]:  # a patient-level split, approximated by images
        held_out = min(n - 1, max(1, round(val * n)))
        return {"train": n - held_out, "val": held_out, "test": test}

    scans = sum(LUNA16_SCANS.values())
    negatives = ds["luna16"]["candidates"]["negatives_per_scan"]
    luna = {s: round(LUNA16_CANDIDATES * n / scans) if negatives is None
            else round(LUNA16_POSITIVES * n / scans) + negatives * n for s, n in LUNA16_SCANS.items()}
    lits = {s: (hi - lo + 1) * ds["lits"]["patches"]["per_case"] for s, (lo, hi) in ds["lits"]["splits"].items()}
    brats_val = round(ds["brats"]["val_fraction"] * BRATS_CASES["train_val"])
    per_brats = ds["brats"]["patches"]["per_case"]
    d, resolutions = cfg["discovery"], 3 if cfg["discovery"]["multi_resolution"] else 1
    return {
        "chestxray14": train_val(CXR14["train_val"], CXR14["test"]),
        "chexpert": train_val(CHEXPERT["train"], CHEXPERT["test"]),
        "siim": split_images(SIIM_IMAGES, ds["siim"]["test_fraction"], val),
        "montgomery": split_images(MONTGOMERY_IMAGES, ds["montgomery"]["test_fraction"], val),
        "luna16": luna,
        "lidc": dict(LIDC_NODULES),
        "lits": {**lits, "test": lits["test"] // ds["lits"]["patches"]["per_case"]},  # whole test volumes
        "brats": {"train": (BRATS_CASES["train_val"] - brats_val) * per_brats, "val": brats_val * per_brats,
                  "test": BRATS_CASES["test"]},  # whole test volumes
        "visual_words": {"train": d["classes"] * d["neighbours_train"] * resolutions,
                         "val": d["classes"] * d["neighbours_val"] * resolutions},
        "luna16_scans": dict(LUNA16_SCANS),
    }


def windows(volume: tuple[int, ...], window: tuple[int, ...], overlap: float) -> int:
    return math.prod(len(window_starts(size, side, overlap)) for size, side in zip(volume, window, strict=True))


def pretrainings(cfg: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m, v) for m in cfg["methods"] for v in cfg["variants"] if v in registry.METHODS[m].variants]


def finetune_inits(task: str, cfg: dict[str, Any], imagenet: bool) -> list[str]:
    """The initialisations the workflow fine-tunes ``task`` from (supervised ImageNet only when its file is there)."""
    baselines = [i for i in cfg["inits"] if i != "supervised_imagenet" or imagenet]
    pretrained = [registry.pretrained_init(m, v) for m, v in pretrainings(cfg)]
    return [i for i in (*baselines, *pretrained)
            if registry.init_fits_task(i, task) and registry.SUPERVISED_SOURCE_TASK.get(i) != task]


def early_stopped(kind: str, patience: int, max_epochs: int) -> tuple[int, int, int]:
    return tuple(min(best + patience, max_epochs) for best in BEST_EPOCH[kind])


def run_flops(epochs: tuple[int, ...], train: float, val: float, test: float, jobs: int) -> tuple[float, ...]:
    """FLOPs of ``jobs`` runs: per epoch ``train`` + ``val``, then ``test`` once."""
    return tuple(jobs * (e * (train + val) + test) for e in epochs)


def workload(cfg: dict[str, Any], nets: dict[str, dict[str, float]], pre: dict[tuple[str, str], dict[str, float]],
             imagenet: bool) -> list[Item]:
    sizes, runs, ft, ft3d = dataset_sizes(cfg), len(cfg["runs"]), cfg["finetune"], cfg["finetune3d"]
    items = []
    for method, variant in pretrainings(cfg):
        data = sizes["visual_words" if registry.METHODS[method].dims == 3 else "chestxray14"]
        batch = batch_size(method, cfg["pretrain"])
        plan = stage_plan(method, variant, cfg["pretrain"])
        flops = sum(p.epochs * (data["train"] // batch * batch * pre[method, p.stage.name]["train"]
                                + data["val"] * pre[method, p.stage.name]["eval"]) for p in plan)
        epochs = sum(p.epochs for p in plan)
        stages = " + ".join(f"{p.stage.name} x{p.epochs}" for p in plan)
        items.append(Item("pre-training", f"{method}/{variant} ({stages})", 1, (epochs,) * 3, (flops,) * 3, "bf16"))
    scans, ae, d = sizes["luna16_scans"], nets["autoencoder"], cfg["discovery"]["autoencoder"]
    ae_flops = d["epochs"] * scans["train"] * ae["train"] + (2 * scans["train"] + scans["val"]) * ae["eval"]
    items.append(Item("discovery", "TransVW visual words: autoencoder on whole scans", 1, (d["epochs"],) * 3,
                      (ae_flops,) * 3, "fp32"))

    views = VIEWS[ft["test_crops"]]

    def two_d_item(family: str, name: str, task: str, jobs: int, fraction: float) -> Item:
        classify = registry.TASKS[task].kind == "classification"
        net, schedule = (nets["classifier"], ft) if classify else (nets["segmentation"], ft["segmentation"])
        kind = ("classification_fraction" if fraction < 1 else "classification") if classify else "segmentation"
        n, epochs = sizes[task], early_stopped(kind, schedule["patience"], schedule["max_epochs"])
        train = max(1, math.ceil(round(fraction * n["train"], 9))) * net["train"]  # as fractions.py rounds
        test = n["test"] * net["eval"] * (views if classify else 1)
        return Item(family, name, jobs, epochs, run_flops(epochs, train, n["val"] * net["eval"], test, jobs), "fp32")

    for task in (t for t in cfg["tasks"] if registry.TASKS[t].dims == 2):
        inits, family = finetune_inits(task, cfg, imagenet), f"2D {registry.TASKS[task].kind}"
        items.append(two_d_item(family, f"{task} ({len(inits)} inits x {runs} runs)", task, len(inits) * runs, 1.0))
    if "supervised_chestxray14" in cfg["inits"]:
        items.append(two_d_item("2D classification", "supervised ChestX-ray14 model (Table 2)", "chestxray14", 1, 1.0))
    fraction_inits = [registry.pretrained_init(m, v) for m in cfg["methods"] for v in ("base", "dira")
                      if v in cfg["variants"]]
    for task in ft["label_fraction_tasks"]:
        inits = [i for i in fraction_inits if registry.init_fits_task(i, task)]
        for fraction in ft["label_fractions"]:
            items.append(two_d_item("label fractions", f"{task} {fraction:.0%} ({len(inits)} inits x {runs} runs)",
                                    task, len(inits) * runs, fraction))
    cams = len(finetune_inits("chestxray14", cfg, imagenet)) * runs
    cam_flops = cams * CXR14["boxes"] * nets["gradcam"]["train"]
    items.append(Item("localization", f"Grad-CAM of the ChestX-ray14 classifiers ({CXR14['boxes']} boxes)", cams,
                      (0, 0, 0), (cam_flops,) * 3, "fp32"))

    for task in cfg["tasks"]:
        if registry.TASKS[task].dims != 3 or task not in sizes:  # PE: no public PE-CAD; the DAG skips it
            continue
        inits, settings, n = finetune_inits(task, cfg, imagenet), ft3d[task], sizes[task]
        net = nets["volume_classifier" if registry.TASKS[task].kind == "classification" else "volume_segmentation"]
        test = n["test"]
        if task in ("lits", "brats"):  # whole test volumes, sliding windows of the crop shape
            volume = LITS_VOLUME_ZYX if task == "lits" else BRATS_VOLUME_ZYX
            test *= windows(volume, tuple(cfg["datasets"][task]["crop_shape"]), ft3d["window_overlap"])
        epochs = early_stopped("volume", settings["patience"], task_max_epochs(ft3d, task))
        jobs = len(inits) * runs
        items.append(Item("3D tasks", f"{task} ({len(inits)} inits x {runs} runs)", jobs, epochs,
                          run_flops(epochs, n["train"] * net["train"], n["val"] * net["eval"], test * net["eval"],
                                    jobs), "fp32"))
    return items


# ---------------------------------------------------------------------------------------------- hours
SCENARIOS = {"mixed": "every job under bf16 / fp16 autocast",
             "as_is": "as the package runs today: fine-tuning, localization and discovery in fp32 (TF32 "
                      "convolutions where the GPU has them), and no bf16 tensor cores on the V100"}


def peak(gpu: Gpu, precision: str, scenario: str) -> float:
    return gpu.mixed if scenario == "mixed" or (precision == "bf16" and gpu.bf16) else gpu.fp32


def hours(items: list[Item], which: int, gpu: Gpu, mfu: float, scenario: str) -> float:
    return sum(i.flops[which] / (peak(gpu, i.precision, scenario) * mfu) for i in items) / 3600


def summary(items: list[Item], mfus: list[float], node: int, ddp: float) -> dict[str, Any]:
    """GPU-hours per family (typical epochs at each MFU; range: low epochs at the highest MFU to high epochs at the
    lowest), and the wall clock of a node of ``node`` GPUs: DDP pre-training at efficiency 1 and ``ddp``, the
    single-GPU jobs packed one per GPU."""
    groups = {f: [i for i in items if i.family == f] for f in FAMILIES} | {"total": items}
    pre, rest = groups["pre-training"], [i for i in items if i.family != "pre-training"]
    out: dict[str, Any] = {}
    for scenario in SCENARIOS:
        for g in GPUS:
            per = out.setdefault(scenario, {}).setdefault(g.name, {})
            for fam, group in groups.items():
                per[fam] = {"jobs": sum(i.jobs for i in group),
                            "typical": {f"{m:g}": hours(group, 1, g, m, scenario) for m in mfus},
                            "range": [hours(group, 0, g, max(mfus), scenario), hours(group, 2, g, min(mfus), scenario)]}
            per["wall_clock_h"] = {f"{m:g}": {
                "ideal": hours(items, 1, g, m, scenario) / node,
                f"ddp_{ddp:g}": (hours(pre, 1, g, m, scenario) / ddp + hours(rest, 1, g, m, scenario)) / node}
                for m in mfus}
    return out


def data_loading(pre: dict[tuple[str, str], dict[str, float]], nets: dict[str, dict[str, float]],
                 mfus: list[float]) -> list[dict[str, Any]]:
    """Samples per second one GPU would take at each MFU (mixed precision), and the CPU cores that needs at the
    measured per-core rates of the data paths."""
    feeds = [(f"pre-training {m} {s}", c["train"], CUBE_RATE_3D if registry.METHODS[m].dims == 3 else VIEW_RATE_2D)
             for (m, s), c in pre.items()]
    feeds.append(("2D classification fine-tuning", nets["classifier"]["train"], FINETUNE_RATE_2D))
    return [{"step": name, "gflop": flops / 1e9, "gpu": g.name, "mfu": m, "core_rate": rate,
             "samples_per_s": g.mixed * m / flops, "cores_per_gpu": g.mixed * m / flops / rate}
            for name, flops, rate in feeds for g in GPUS for m in mfus]


# ---------------------------------------------------------------------------------------------- output
def fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:.1f}"


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"## {title}\n\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


def print_tables(items: list[Item], result: dict[str, Any], per_sample: dict[str, Any], loading: list[dict[str, Any]],
                 mfus: list[float], ddp: float) -> None:
    hi, lo = max(mfus), min(mfus)
    gpus = [g for g in GPUS if g.name in TABLE_GPUS]
    print(f"# Cost of the paper reproduction, {LABEL}\n")
    table("FLOPs per sample (GFLOP)", ["network / stage", "training step", "evaluation forward"],
          [[n, f"{c['train'] / 1e9:.1f}", f"{c['eval'] / 1e9:.1f}" if c["eval"] else "— (per box)"]
           for n, c in per_sample.items()])
    table("Jobs (typical epochs, every job under mixed precision)",
          ["family", "item", "jobs", "epochs per job (low / typical / high)", "PFLOP, all jobs",
           *(f"{g.name} GPU-h, all jobs, MFU {hi:.0%} – {lo:.0%}" for g in gpus)],
          [[i.family, i.name, str(i.jobs), "—" if not i.epochs[1] else f"{i.epochs[0]} (fixed)"
            if len(set(i.epochs)) == 1 else " / ".join(map(str, i.epochs)), f"{i.flops[1] / 1e15:,.0f}",
            *(f"{fmt(hours([i], 1, g, hi, 'mixed'))} – {fmt(hours([i], 1, g, lo, 'mixed'))}" for g in gpus)]
           for i in items])
    for scenario, title in SCENARIOS.items():
        per = result[scenario]
        table(f"GPU-hours per family: {title}",
              ["family", "jobs", *(f"{g.name} {k}" for g in GPUS for k in ("typical", "range"))],
              [[f, str(per[GPUS[0].name][f]["jobs"]),
                *(c for g in GPUS for c in (f"{fmt(per[g.name][f]['typical'][f'{hi:g}'])} – "
                                            f"{fmt(per[g.name][f]['typical'][f'{lo:g}'])}",
                                            " – ".join(fmt(x) for x in per[g.name][f]["range"])))]
               for f in [*FAMILIES, "total"] if per[GPUS[0].name][f]["jobs"]])
    table(f"Wall clock on one node of {result['node']} GPUs, typical epochs (hours; days in brackets)",
          ["precision", "GPU", *(f"MFU {m:.0%}, {k}" for m in (hi, lo) for k in ("ideal", f"DDP at {ddp:.0%}"))],
          [[s, g.name, *(f"{fmt(v)} ({v / 24:.1f} d)" for m in (hi, lo)
                         for v in result[s][g.name]["wall_clock_h"][f"{m:g}"].values())]
           for s in SCENARIOS for g in GPUS])
    steps = list(dict.fromkeys(r["step"] for r in loading))
    table("Data loading: samples/s one GPU takes (MFU range, mixed precision) and the CPU cores that needs",
          ["step", "GFLOP / sample", "per-core rate", *(f"{g.name} {k}" for g in gpus for k in ("samples/s", "cores"))],
          [[s, f"{rows[0]['gflop']:.1f}", f"{rows[0]['core_rate']:.0f}/s",
            *(" – ".join(fmt(r[k]) for r in rows if r["gpu"] == g.name) for g in gpus
              for k in ("samples_per_s", "cores_per_gpu"))]
           for s in steps for rows in [[r for r in loading if r["step"] == s]]])


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", action="append", help="config file(s), merged in order (default config/paper.yaml)")
    p.add_argument("--mfu", type=float, nargs="+", default=[0.3, 0.4], help="assumed model-FLOP utilisations")
    p.add_argument("--ddp-efficiency", type=float, default=0.9, help="scaling efficiency of DDP pre-training")
    p.add_argument("--imagenet", action="store_true", help="count the supervised ImageNet runs (its weights present)")
    p.add_argument("--json", type=Path, help="write every number and assumption here")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    start, configs = time.perf_counter(), args.config or ["config/paper.yaml"]
    cfg = load_config(configs)
    pre: dict[tuple[str, str], dict[str, float]] = {}
    with meta_autocast():
        for method, variant in pretrainings(cfg):
            for p in stage_plan(method, variant, cfg["pretrain"]):
                if (method, p.stage.name) not in pre:
                    print(f"counting {method} {p.stage.name}", file=sys.stderr, flush=True)
                    pre[method, p.stage.name] = pretrain_costs(method, STAGES[p.stage.name], cfg, BATCH)
        nets = network_costs(cfg, BATCH)
    items = sorted(workload(cfg, nets, pre, args.imagenet), key=lambda i: FAMILIES.index(i.family))
    result = {"node": cfg["pretrain"]["gpus"], **summary(items, args.mfu, cfg["pretrain"]["gpus"], args.ddp_efficiency)}
    per_sample = {**{f"pre-training {m} {s}": c for (m, s), c in pre.items()}, **nets}
    loading = data_loading(pre, nets, args.mfu)
    print_tables(items, result, per_sample, loading, args.mfu, args.ddp_efficiency)
    implied = {g.name: RESNET50_PUBLISHED[g.name] * nets["classifier"]["train"] / g.mixed
               for g in GPUS if g.name in RESNET50_PUBLISHED}
    print("MFU implied by NVIDIA's published ResNet-50 v1.5 AMP training rates (1 GPU) and these FLOPs: "
          + ", ".join(f"{g} {v:.0%}" for g, v in implied.items()))
    print(f"{sum(i.jobs for i in items)} jobs; counted in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    if args.json:
        assumptions = {"mfu": args.mfu, "ddp_efficiency": args.ddp_efficiency, "gpus_per_node": result["node"],
                       "gpus": [asdict(g) for g in GPUS], "best_epoch": BEST_EPOCH, "sizes": dataset_sizes(cfg),
                       "lits_volume_zyx": LITS_VOLUME_ZYX, "brats_volume_zyx": BRATS_VOLUME_ZYX,
                       "imagenet": args.imagenet, "per_core_rates": [VIEW_RATE_2D, FINETUNE_RATE_2D, CUBE_RATE_3D]}
        args.json.write_text(json.dumps({
            "label": LABEL, "torch": torch.__version__, "python": platform.python_version(), "config": configs,
            "assumptions": assumptions, "flops_per_sample": per_sample, "items": [asdict(i) for i in items],
            "summary": result, "data_loading": loading, "resnet50_implied_mfu": implied}, indent=1) + "\n")


if __name__ == "__main__":
    main()
