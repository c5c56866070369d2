"""Cubes/s of one DiRA-TransVW 'dira' training step (3D): this implementation beside the reference's step.

Two measurements, printed as one table (and written with ``--json``):

1. The training step (generator step, then discriminator step) at the paper's settings (the schema's
   defaults: Models Genesis' 3D U-Net at base width 32, 64x64x32 cubes, λ dis / res / adv = 1 / 100 / 1;
   ``--config`` overrides them as for ``dira pretrain``), on synthetic inputs. "This implementation" is the
   package's own model and optimisers driven exactly as one iteration of ``Pretrainer.train_epoch`` (bf16
   autocast, channels_last_3d and cudnn.benchmark on CUDA, as ``dira pretrain`` runs it; fp32 on the CPU).
   "Reference" is the baseline class below, a re-implementation of TransVW's YNet3D step (fhaghighi/TransVW,
   facts in ``shared/reference/anchors-ssl.md`` §3) plus DiRA's 3D adversary, built from the same UNet3D and
   PatchDiscriminator modules so that only the reference's own choices differ: fp32, contiguous (x, y, z)
   tensors, cudnn.benchmark, softmax in the model and the log of it in the loss, the ``.item()`` calls of
   its meters.
2. The per-sample data path on one CPU core: ``VisualWordDataset.__getitem__`` (a uint8 cube from an HDF5
   cache, then ``transvw_view``) beside a reference-style numpy pipeline (float64 elastic deformation, then
   one Models Genesis transform written as the reference's per-sample Python loops).

Speed is measured here, never asserted in tests. Run ``python benchmarks/pretrain_step3d.py --help``.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import platform
import random
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from reference_views import ReferenceSamples, reference_elastic
from scipy.ndimage import gaussian_filter
from torch import nn

from dira.config import ConfigError, deep_merge, load_config, validate
from dira.data import transforms3d
from dira.data.cache import AppendingCacheWriter, SplitCache, VoxelGrid
from dira.data.visual_word_views import VisualWordDataset
from dira.methods.dira import build_dira
from dira.models.discriminator import PatchDiscriminator
from dira.models.unet3d import BatchNorm3d, UNet3D
from dira.train import optim
from dira.train.history import History
from dira.train.pretrain import batch_size, stage_plan
from dira.train.pretrainer import Pretrainer

HostBatch = dict[str, torch.Tensor]
METHOD = "transvw"


def log(message: str) -> None:
    """Progress goes to stderr so that stdout holds only the table."""
    print(message, file=sys.stderr, flush=True)


def _discriminator(unet: UNet3D) -> PatchDiscriminator:
    # The widths build_dira gives D (the reference's 64 ... 512 at base width 32), so both sides get one D.
    return PatchDiscriminator(widths=tuple(2 * w for w, _ in unet.widths), dims=3)


# =====================================================================================================
# BASELINE: a re-implementation of the reference's DiRA-TransVW step (not the package's code path).
# =====================================================================================================
class ReferenceYNet3D(nn.Module):
    """TransVW's YNet3D: the MG U-Net (sigmoid output) + a head on out512 ending in a softmax."""

    def __init__(self, base_width: int, classes: int):
        super().__init__()
        self.unet = UNet3D(1, 1, base_width=base_width, batch_stats_in_eval=True)  # ContBatchNorm3d
        deepest = self.unet.widths[-1][1]
        self.conv = nn.Conv3d(deepest, 2 * deepest, kernel_size=3, padding=1)
        self.bn = BatchNorm3d(2 * deepest, batch_stats_in_eval=True)
        self.fc = nn.Linear(2 * deepest, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.unet.encode(x)
        restored = torch.sigmoid(self.unet.decode(features))
        pooled = F.adaptive_avg_pool3d(F.relu(self.bn(self.conv(features[-1]))), 1).flatten(1)
        return restored, F.softmax(self.fc(pooled), dim=1)


class ReferenceStep:
    """One iteration of the reference's loop: G step (λ-weighted CE + MSE + LSGAN), then D step, fp32.

    Hyper-parameters are the config's, as ours (the paper's: Adam 1e-3 for YNet3D; Adam 2e-4, betas 0.5 / 0.999
    for D; λ 1 / 100 / 1), so that only the reference's implementation choices differ.
    """

    name = "reference step"

    def __init__(self, cfg: dict[str, Any], device: torch.device, classes: int):
        section, d = cfg["pretrain"][METHOD], cfg["pretrain"]["discriminator"]
        self.device, self.weights = device, section["dira_loss_weights"]
        self.model = ReferenceYNet3D(cfg["model3d"]["base_width"], classes).to(device)
        self.discriminator = _discriminator(self.model.unet).to(device)
        g = section["optimizer"]
        self.optimizer_g = torch.optim.Adam(self.model.parameters(), lr=g["lr"], betas=tuple(g["betas"]),
                                            weight_decay=g["weight_decay"])
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=d["lr"], betas=tuple(d["betas"]))
        self.mse = nn.MSELoss()
        self.model.train()

    @staticmethod
    def host_batch(batch: int, crop_zyx: tuple[int, ...], classes: int, pin: bool) -> HostBatch:
        """The reference's channel-first (1, x, y, z) cubes: 64x64x32 with depth last."""
        shape = (batch, 1, *reversed(crop_zyx))
        out = {"view": torch.rand(shape), "target": torch.rand(shape), "label": torch.randint(classes, (batch,))}
        return {k: v.pin_memory() for k, v in out.items()} if pin else out

    def step(self, host: HostBatch, index: int) -> None:
        view, target, label = (host[k].to(self.device, non_blocking=True) for k in ("view", "target", "label"))
        restored, probs = self.model(view)
        rec_loss = self.mse(restored, target)
        cls_loss = F.nll_loss(torch.log(probs), label)  # "CE(log softmax)" of a softmax output
        scores = self.discriminator(restored)
        valid = torch.full(scores.shape, 1.0, device=self.device)
        g_adv = self.mse(scores, valid)
        w = self.weights
        g_loss = w["discrimination"] * cls_loss + w["restoration"] * rec_loss + w["adversarial"] * g_adv
        for value in (rec_loss, cls_loss, g_adv, g_loss):  # the reference's loss meters
            value.item()
        self.optimizer_g.zero_grad()
        g_loss.backward()
        self.optimizer_g.step()

        self.optimizer_d.zero_grad()
        real_loss = self.mse(self.discriminator(target), valid)
        fake_loss = self.mse(self.discriminator(restored.detach()), torch.full(scores.shape, 0.0, device=self.device))
        d_loss = 0.5 * (real_loss + fake_loss)
        d_loss.backward()
        self.optimizer_d.step()
        d_loss.item()


# =====================================================================================================
# THIS IMPLEMENTATION: the package's model and optimisers, driven as one iteration of train_epoch.
# =====================================================================================================
class OurStep:
    """The loop body of ``Pretrainer.train_epoch`` for DiRA-TransVW's 'dira' stage, on the trainer's own step."""

    name = "this implementation"

    def __init__(self, cfg: dict[str, Any], device: torch.device, classes: int, steps_per_epoch: int):
        settings = cfg["pretrain"]
        plan = stage_plan(METHOD, "dira", settings)[-1]  # the adversarial stage and its λ
        self.stage, self.steps_per_epoch, self.epochs = plan.stage, steps_per_epoch, plan.epochs
        self.model = build_dira(METHOD, True, cfg["model3d"], settings, {"classes": classes}).to(device)
        if device.type == "cuda":
            self.model.to(memory_format=torch.channels_last_3d)  # as dira pretrain does
        self._state_dir = tempfile.TemporaryDirectory(prefix="dira-bench3d-")
        # Datasets are never touched: inputs come from host_batch(), so that only the step is timed.
        self.trainer = Pretrainer(self.model, None, None, settings, METHOD, batch_size(METHOD, settings),  # type: ignore[arg-type]
                                  device, History(Path(self._state_dir.name) / "history.csv"), "benchmark")
        self.trainer.start_stage(plan.stage, plan.weights)  # Adam for YNet (optim.py) and Adam for D
        self.model.train()
        self.sums: dict[str, torch.Tensor] = {}

    @staticmethod
    def host_batch(batch: int, crop_zyx: tuple[int, ...], classes: int, pin: bool) -> HostBatch:
        """(1, z, y, x) cubes and int64 labels, as ``VisualWordDataset`` yields them."""
        out = {"view": torch.rand(batch, 1, *crop_zyx), "target": torch.rand(batch, 1, *crop_zyx),
               "label": torch.randint(classes, (batch,))}
        return {k: v.pin_memory() for k, v in out.items()} if pin else out

    def step(self, host: HostBatch, index: int) -> None:
        t = self.trainer
        optim.set_learning_rate(t.optimizer, t.optimizer_settings, 0, index, self.steps_per_epoch, self.epochs)
        terms = t.train_step(self.stage, t.to_device(host), 0, index)
        for name, value in terms.items():
            self.sums[name] = self.sums.get(name, 0.0) + value

    def close(self) -> None:
        self._state_dir.cleanup()


# =====================================================================================================
# Timing of the step
# =====================================================================================================
@dataclass
class StepResult:
    path: str
    batch_size: int
    dtype: str
    memory_format: str
    cudnn_benchmark: bool | None
    status: str = "ok"
    """"ok", "OOM" or "error" (then ``message`` says what)."""
    message: str = ""
    ms_per_step: float | None = None
    """Median over the timed steps; ``cubes_per_s`` = batch / median."""
    min_ms_per_step: float | None = None
    """The least disturbed step: the better estimate on a shared, noisy CPU."""
    cubes_per_s: float | None = None
    step_ms: list[float] = field(default_factory=list)
    peak_memory_gib: float | None = None


OURS_NO_BENCH = "this impl., no cudnn bench"
PATHS = {"reference": ReferenceStep.name, "ours": OurStep.name, "ours-nobench": OURS_NO_BENCH}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and ("out of memory" in str(err) or "can't allocate" in str(err)))


def _new_result(kind: str, device: torch.device, batch: int) -> StepResult:
    cuda, reference = device.type == "cuda", kind == "reference"
    return StepResult(
        path=PATHS[kind], batch_size=batch,
        dtype="fp32" if reference or not cuda else "bf16 autocast",
        memory_format="contiguous xyz" if reference else ("channels_last_3d" if cuda else "contiguous"),
        # TransVW's train.py and dira pretrain both set cudnn.benchmark; "ours-nobench" shows what it gives.
        cudnn_benchmark=(kind != "ours-nobench") if cuda else None,
    )


def _time_group(results: dict[str, StepResult], cfg: dict[str, Any], device: torch.device,
                args: argparse.Namespace) -> None:
    """Build the implementations in ``results``, warm each up, then time them step by step in ABBA order."""
    cuda = device.type == "cuda"
    batch = next(iter(results.values())).batch_size
    runners: dict[str, ReferenceStep | OurStep] = {}
    previous_benchmark = torch.backends.cudnn.benchmark
    label = ", ".join(r.path for r in results.values()) + f", batch {batch}"
    try:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        hosts: dict[str, HostBatch] = {}
        for kind in results:
            torch.manual_seed(0)
            log(f"[{results[kind].path}, batch {batch}] building model")
            runners[kind] = ReferenceStep(cfg, device, args.classes) if kind == "reference" else \
                OurStep(cfg, device, args.classes, args.warmup + args.steps)
            hosts[kind] = runners[kind].host_batch(batch, args.crop, args.classes, pin=cuda)
        rounds = [*(("warm-up", i) for i in range(args.warmup)), *(("step", i) for i in range(args.steps))]
        for n, (phase, i) in enumerate(rounds):
            for kind in (list(results) if n % 2 == 0 else list(reversed(results))):
                torch.backends.cudnn.benchmark = bool(results[kind].cudnn_benchmark)
                _sync(device)
                start = time.perf_counter()
                runners[kind].step(hosts[kind], n)
                _sync(device)
                seconds = time.perf_counter() - start
                if phase == "step":
                    results[kind].step_ms.append(1000.0 * seconds)
                total = args.warmup if phase == "warm-up" else args.steps
                log(f"[{results[kind].path}, batch {batch}] {phase} {i + 1}/{total}: {seconds:.2f} s")
        for result in results.values():
            result.ms_per_step, result.min_ms_per_step = statistics.median(result.step_ms), min(result.step_ms)
            result.cubes_per_s = batch / (result.ms_per_step / 1000.0)
            if cuda and len(results) == 1:
                result.peak_memory_gib = torch.cuda.max_memory_allocated(device) / 2**30
    except Exception as err:  # one failing configuration must not cost the rest of a (rented) GPU run
        status = "OOM" if _is_oom(err) else "error"
        message = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        for result in results.values():
            result.status, result.message, result.step_ms = status, message, []
            result.ms_per_step = result.min_ms_per_step = result.cubes_per_s = result.peak_memory_gib = None
        log(f"[{label}] {status}: {message}")
        if status != "OOM":
            log(traceback.format_exc())
    finally:
        for runner in runners.values():
            if isinstance(runner, OurStep):
                runner.close()
        runners.clear()
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        torch.backends.cudnn.benchmark = previous_benchmark


def measure_steps(cfg: dict[str, Any], device: torch.device, batch: int, args: argparse.Namespace
                  ) -> list[StepResult]:
    """Reference and ours at one batch size; an OOM is reported in the table, not raised."""
    kinds = ["reference", "ours", *(["ours-nobench"] if args.ours_cudnn_benchmark else [])]
    results = {kind: _new_result(kind, device, batch) for kind in kinds}
    if args.order == "interleaved":
        _time_group(results, cfg, device, args)
    else:  # each alone on the device: peak memory per implementation, an OOM of one spares the other
        for kind in kinds:
            _time_group({kind: results[kind]}, cfg, device, args)
    return list(results.values())


# =====================================================================================================
# Timing of the data path (one CPU core)
# =====================================================================================================
@dataclass
class DataResult:
    what: str
    reference_ms: float
    """Mean ms per sample (the mix of choices makes the mean, not the median, the throughput)."""
    ours_ms: float
    reference_min_ms: float
    ours_min_ms: float


def synthetic_cubes(count: int, crop_zyx: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Smooth uint8 (z, y, x) cubes with noise: stand-in CT windows (transform costs barely depend on content)."""
    rng = np.random.default_rng(seed)
    smooth = gaussian_filter(rng.normal(size=(count, *crop_zyx)), sigma=(0, 3, 3, 3))
    smooth = (smooth - smooth.min()) / (np.ptp(smooth) + 1e-12)
    return np.clip(255 * smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)


def write_cache(path: Path, cubes: np.ndarray, labels: np.ndarray) -> None:
    """A visual-word split as ``dira discover`` lays it out: (z, y, x) rows, one chunk each, int64 labels."""
    grid = VoxelGrid("zyx", (1.0, 1.0, 1.0), {"unit": "HU", "window": [-1000, 1000], "scaled_to": [0, 1]})
    attrs = {"dataset": "benchmark", "split": "train", "source": "synthetic", "manifest": {}, "provenance": {}}
    with AppendingCacheWriter(path, cubes.shape[1:], attrs, dtype=cubes.dtype, grid=grid,
                              fields={"labels": (np.int64, ())}) as writer:
        writer.append(cubes, [f"cube{i}" for i in range(len(cubes))], labels=labels)


def _interleaved(reference: Callable[[int], Any], ours: Callable[[int], Any], count: int,
                 warmup: int) -> tuple[list[float], list[float]]:
    """Per-call seconds of both, alternating ABBA call by call so that a drifting load weighs on both alike."""
    times: dict[str, list[float]] = {"ref": [], "ours": []}
    fns = {"ref": reference, "ours": ours}
    for n in range(warmup + count):
        for key in (("ref", "ours") if n % 2 == 0 else ("ours", "ref")):
            start = time.perf_counter()
            fns[key](n)
            if n >= warmup:
                times[key].append(time.perf_counter() - start)
    return times["ref"], times["ours"]


def _result(what: str, ref: list[float], ours: list[float]) -> DataResult:
    return DataResult(what, 1000 * statistics.fmean(ref), 1000 * statistics.fmean(ours), 1000 * min(ref),
                      1000 * min(ours))


def measure_data(args: argparse.Namespace) -> list[DataResult]:
    """Per-sample cost on ONE core: each TransVW choice forced in turn, then the paper's mix as their weighted mean.

    Forcing the choice keeps the mix identical on both sides; a sampled mix of a few dozen cubes would let
    the count of (slow) shuffles decide the ratio.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure_data(args)
    finally:
        torch.set_num_threads(threads)


def _measure_data(args: argparse.Namespace) -> list[DataResult]:
    views = args.cfg["pretrain"][METHOD]["views"]
    count, results = args.data_samples, []
    random.seed(0)
    np.random.seed(0)
    cubes = synthetic_cubes(16, args.crop)
    labels = np.arange(len(cubes), dtype=np.int64) % args.classes
    cubes_xyz = np.ascontiguousarray(cubes.transpose(0, 3, 2, 1)).astype(np.float64) / 255.0  # the npy in RAM
    with tempfile.TemporaryDirectory(prefix="dira-bench3d-") as tmp:
        path = Path(tmp) / "pretrain_train.h5"
        write_cache(path, cubes, labels)
        cache = SplitCache(path)
        try:
            cube, cube_xyz = cubes[0].astype(np.float32) / 255.0, cubes_xyz[0]
            rng = np.random.default_rng(0)
            log(f"[data] elastic deformation alone, {count} cubes")
            e = views["elastic"]
            results.append(_result("elastic deformation alone", *_interleaved(
                lambda _: reference_elastic(cube_xyz, e["alpha"], e["sigma"]),
                lambda _: transforms3d.elastic_deform(cube, rng, **e), count, 2)))
            for index, name in enumerate(transforms3d.TRANSVW_CHOICES):
                forced = {**copy.deepcopy(views), "choice_probs": [float(i == index) for i in range(4)]}
                ours = VisualWordDataset(cache, forced, 0, None)
                ref = ReferenceSamples(cubes_xyz, labels, views, choice=index)
                log(f"[data] sample with {name}, {count} cubes")
                results.append(_result(f"sample: elastic + {name}", *_interleaved(
                    lambda i, ref=ref: ref[i % len(cubes)], lambda i, ours=ours: ours[i % len(cubes)], count, 2)))
        finally:
            cache.close()
    weights = views["choice_probs"]
    per_choice = results[1:]
    mix = {k: sum(w * getattr(r, k) for w, r in zip(weights, per_choice, strict=True))
           for k in ("reference_ms", "ours_ms", "reference_min_ms", "ours_min_ms")}
    results.append(DataResult("sample, paper mix (weighted)", **mix))
    return results


# =====================================================================================================
# Report
# =====================================================================================================
def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def report(args: argparse.Namespace, device: torch.device, steps: list[StepResult], data: list[DataResult]) -> str:
    cuda, cfg = device.type == "cuda", args.cfg
    w = cfg["pretrain"][METHOD]["dira_loss_weights"]
    lines = [
        f"device: {device.type} ({device_name(device)}), torch {torch.__version__}, threads "
        f"{torch.get_num_threads()}, batch {', '.join(map(str, args.batch_size))}, cubes (z, y, x) "
        f"{tuple(args.crop)}, 3D U-Net base width {cfg['model3d']['base_width']}, {args.classes} classes, "
        f"λ dis/res/adv {w['discrimination']:g}/{w['restoration']:g}/{w['adversarial']:g}, "
        "DiRA-TransVW 'dira' stage (G step + D step)",
        f"timing: median of {args.steps} steps after {args.warmup} warm-up, {args.order}"
        + (f"; TF32 conv {torch.backends.cudnn.allow_tf32}, TF32 matmul "
           f"{torch.backends.cuda.matmul.allow_tf32}" if cuda else ""),
        "",
    ]
    header = (f"{'path':<28} {'batch':>5}  {'dtype':<14} {'format':<16} {'cubes/s':>9} {'ms/step':>9} "
              f"{'min ms':>9}")
    lines += [header + (f" {'peak GiB':>9}" if cuda else ""), "-" * (len(header) + (10 if cuda else 0))]
    for r in steps:
        row = (f"{r.path:<28} {r.batch_size:>5}  {r.dtype:<14} {r.memory_format:<16} "
               f"{_fmt(r.cubes_per_s, '9.2f') if r.status == 'ok' else r.status:>9} {_fmt(r.ms_per_step, '9.1f')} "
               f"{_fmt(r.min_ms_per_step, '9.1f')}")
        lines.append(row + (f" {_fmt(r.peak_memory_gib, '9.2f')}" if cuda else ""))
    for batch in args.batch_size:
        rows = {r.path: r for r in steps if r.batch_size == batch}
        ref = rows.get(ReferenceStep.name)
        for path in (OurStep.name, OURS_NO_BENCH):
            ours = rows.get(path)
            if ours is None:
                continue
            ok = bool(ref and ours.cubes_per_s and ref.cubes_per_s)
            ratio = f"{ours.cubes_per_s / ref.cubes_per_s:.2f}" if ok else "-"
            ratio_min = f"{ref.min_ms_per_step / ours.min_ms_per_step:.2f}" if ok else "-"
            name = "this" if path == OurStep.name else "this, no cudnn bench"
            lines.append(f"{f'ratio ({name} / reference), batch {batch}':<68} {ratio:>9} {'':>9} {ratio_min:>9}")
    if data:
        lines += ["", f"{'data path, 1 CPU core, per cube':<40} {'ref ms':>8} {'ours ms':>8} {'ref/s':>7} "
                  f"{'ours/s':>7} {'ratio':>6} {'ref min':>8} {'ours min':>8}", "-" * 100]
        for d in data:
            lines.append(f"{d.what:<40} {d.reference_ms:8.1f} {d.ours_ms:8.1f} {1000 / d.reference_ms:7.1f} "
                         f"{1000 / d.ours_ms:7.1f} {d.reference_ms / d.ours_ms:6.2f} {d.reference_min_ms:8.1f} "
                         f"{d.ours_min_ms:8.1f}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu",
                        help="default: cuda when visible")
    parser.add_argument("--batch-size", type=int, nargs="+", default=None,
                        help="one or more batch sizes (default: 2 on cpu, the paper's pretrain.transvw.batch_size "
                             "on cuda)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 2 on cpu, 20 on cuda)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 1 cpu, 5 cuda)")
    parser.add_argument("--base-width", type=int, default=None,
                        help="model3d.base_width (default: the config's, the paper's 32)")
    parser.add_argument("--classes", type=int, default=44,
                        help="visual-word classes of the head (default 44, the reference's cls_classes)")
    parser.add_argument(
        "--config", action="append", default=[], metavar="FILE|JSON",
        help="pipeline config merged onto the schema's defaults (the paper's settings), as for `dira pretrain`; "
             "repeat to merge, later wins: model3d, pretrain.transvw (optimizer, dira_loss_weights, views), "
             "pretrain.discriminator, datasets.luna16.crop_shape (the cube size of both measurements)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for the step (default: torch's)")
    parser.add_argument("--order", choices=("interleaved", "sequential"), default=None,
                        help="alternate reference and ours step by step (default on cpu) or time each alone "
                             "(default on cuda: peak memory per path)")
    parser.add_argument("--ours-cudnn-benchmark", action="store_true",
                        help="cuda only: add a row of this implementation with cudnn.benchmark OFF, to show what "
                             "the setting dira pretrain turns on gives")
    parser.add_argument("--skip-step", action="store_true", help="only the data path")
    parser.add_argument("--skip-data", action="store_true", help="only the training step")
    parser.add_argument("--data-samples", type=int, default=20, help="cubes timed per data row (default 20)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    overrides = [json.dumps({"model3d": {"base_width": args.base_width}})] if args.base_width else []
    try:
        args.cfg = load_config([*args.config, *overrides])
    except ConfigError as err:
        parser.error(str(err))
    args.crop = tuple(args.cfg["datasets"]["luna16"]["crop_shape"])
    cuda = args.device == "cuda"
    args.batch_size = args.batch_size or [args.cfg["pretrain"][METHOD]["batch_size"] if cuda else 2]
    args.steps = args.steps if args.steps is not None else (20 if cuda else 2)
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    args.order = args.order or ("sequential" if cuda else "interleaved")
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is visible")
    if args.ours_cudnn_benchmark and not cuda:
        parser.error("--ours-cudnn-benchmark needs --device cuda (cuDNN is not used on the CPU)")
    if args.steps < 1 or args.warmup < 0 or min(args.batch_size) < 1 or args.data_samples < 1:
        parser.error("--steps and --data-samples must be >= 1, --warmup >= 0, batch sizes >= 1")
    if args.classes < 2:
        parser.error("--classes must be >= 2")
    if any(s % 8 for s in args.crop):
        parser.error(f"the 3D U-Net's three 2x2x2 pools need cube sides divisible by 8, got {args.crop}")
    args.step_cfgs = {}
    for batch in args.batch_size:  # checked up front, so that no device time is spent on a doomed run
        try:
            args.step_cfgs[batch] = validate(deep_merge(args.cfg, {"device": args.device,
                                                                    "pretrain": {METHOD: {"batch_size": batch}}}))
        except ConfigError as err:
            parser.error(f"--batch-size {batch}: {err}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps: list[StepResult] = []
    if not args.skip_step:
        for batch in args.batch_size:
            steps += measure_steps(args.step_cfgs[batch], device, batch, args)
    data = [] if args.skip_data else measure_data(args)
    print(report(args, device, steps, data), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "device": args.device, "device_name": device_name(device), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "crop_zyx": list(args.crop),
            "base_width": args.cfg["model3d"]["base_width"], "classes": args.classes, "config": args.cfg,
            "steps": args.steps, "warmup": args.warmup, "order": args.order,
            "tf32": {"conv": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32},
            "step": [asdict(r) for r in steps], "data": [asdict(d) for d in data],
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
