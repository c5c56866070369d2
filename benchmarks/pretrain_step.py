"""Images/s of one DiRA-MoCo-v2 'dira' training step: this implementation beside the reference's step.

Two measurements, printed as one table (and written with ``--json``):

1. The training step (generator step, then discriminator step) at the paper's settings (the schema's
   defaults, ``dira.config.load_config([])``: ResNet-50 U-Net, 224 px, queue 65536; ``--config`` overrides
   them as for ``dira pretrain``), on synthetic inputs. "This implementation" is the package's own model and
   optimisers driven exactly as one iteration of ``Pretrainer.train_epoch`` (bf16 autocast and
   channels_last on CUDA, fp32 on the CPU). "Reference" is the baseline class below, a re-implementation
   of the official DiRA step (fhaghighi/DiRA, facts in ``shared/reference/anchors-ssl.md`` §1) built
   from the same U-Net, discriminator and head modules, so that only the reference's own choices differ:
   fp32, contiguous memory, ``cudnn.benchmark``, a momentum copy of the WHOLE U-Net (decoder and
   segmentation head included) updated parameter by parameter, a key forward that runs that decoder,
   RGB (3-channel) inputs, the single-rank equivalent of its batch shuffle and gathers, and the
   ``.item()`` calls of its progress meters.
2. The per-image data path on one CPU core: ``dira.data.views.make_views`` with restoration
   distortions on a cached grey image, beside the reference's PIL/torchvision transform plus its numpy
   distortion loops on an RGB-converted image.

Speed is measured here, never asserted in tests. Run ``python benchmarks/pretrain_step.py --help``.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import math
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
import torchvision
from PIL import Image
from reference_views import ReferenceTransform
from torch import nn

from dira.config import ConfigError, deep_merge, load_config, validate
from dira.data.view_recipe import ViewRecipe
from dira.data.views import Restoration, make_views
from dira.methods.dira import STAGES, LossWeights, build_dira
from dira.models.discriminator import PatchDiscriminator
from dira.models.heads import mlp_head
from dira.models.resnet import feature_dim
from dira.models.unet import UNet
from dira.train import optim
from dira.train.history import History
from dira.train.pretrainer import Pretrainer

HostBatch = dict[str, torch.Tensor]


def log(message: str) -> None:
    """Progress goes to stderr so that stdout holds only the table."""
    print(message, file=sys.stderr, flush=True)


# =====================================================================================================
# BASELINE: a re-implementation of the reference's DiRA-MoCo-v2 step (not the package's code path).
# =====================================================================================================
class ReferenceDiRAUNet(nn.Module):
    """The reference's ``DiRA_UNet``: every forward runs encoder, decoder and sigmoid head, plus the MLP."""

    def __init__(self, backbone: str, decoder_channels: list[int], hidden_dim: int, out_dim: int):
        super().__init__()
        self.backbone = UNet(backbone, decoder_channels)
        # The reference's --mlp head, 2048→2048→ReLU→128 for ResNet-50 (hidden = our config's, so that the
        # heads also match for the smaller backbones, which the reference's hard-coded 2048 cannot run).
        self.fc = mlp_head(feature_dim(backbone), hidden_dim, out_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone.encoder(x)
        restored = torch.sigmoid(self.backbone.decode(features))  # smp Unet(activation='sigmoid')
        embedding = self.fc(torch.flatten(F.adaptive_avg_pool2d(features[-1], 1), 1))
        return embedding, restored


def _gather_one_rank(tensor: torch.Tensor) -> torch.Tensor:
    """What the reference's all_gather + cat costs on a world of one: a fresh buffer, a copy, a concat."""
    return torch.cat([torch.ones_like(tensor).copy_(tensor)], dim=0)


class ReferenceDiRAMoCo(nn.Module):
    """The reference's ``DiRA_MoCo`` on one rank: key encoder = momentum copy of the whole DiRA U-Net."""

    def __init__(self, backbone: str, decoder_channels: list[int], hidden_dim: int, dim: int, queue_size: int,
                 momentum: float, temperature: float):
        super().__init__()
        self.queue_size, self.momentum, self.temperature = queue_size, momentum, temperature
        self.encoder_q = ReferenceDiRAUNet(backbone, decoder_channels, hidden_dim, dim)
        self.encoder_k = copy.deepcopy(self.encoder_q)
        for p in self.encoder_k.parameters():
            p.requires_grad = False
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def _momentum_update_key_encoder(self) -> None:
        # One Python iteration and two temporaries per parameter, as in the reference.
        for p_q, p_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters(), strict=True):
            p_k.data = p_k.data * self.momentum + p_q.data * (1.0 - self.momentum)

    @torch.no_grad()
    def _batch_shuffle(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gathered = _gather_one_rank(x)
        order = torch.randperm(gathered.shape[0]).to(x.device)  # drawn on the host, then copied over
        return gathered[order], torch.argsort(order)

    @torch.no_grad()
    def _dequeue_and_enqueue(self, keys: torch.Tensor) -> None:
        keys = _gather_one_rank(keys)
        ptr = int(self.queue_ptr)  # a host sync on CUDA, as in the reference
        self.queue[:, ptr:ptr + keys.shape[0]] = keys.T
        self.queue_ptr[0] = (ptr + keys.shape[0]) % self.queue_size

    def forward(self, im_q: torch.Tensor, im_k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, restored = self.encoder_q(im_q)
        q = F.normalize(q, dim=1)
        with torch.no_grad():
            self._momentum_update_key_encoder()
            im_k, unshuffle = self._batch_shuffle(im_k)
            k, _ = self.encoder_k(im_k)  # the key U-Net's decoder runs too; its output is dropped
            k = F.normalize(k, dim=1)
            k = _gather_one_rank(k)[unshuffle]
        positive = torch.einsum("nc,nc->n", q, k).unsqueeze(-1)
        negative = torch.einsum("nc,ck->nk", q, self.queue.clone().detach())
        logits = torch.cat([positive, negative], dim=1)
        logits /= self.temperature
        labels = torch.zeros(logits.shape[0], dtype=torch.long).to(logits.device)
        self._dequeue_and_enqueue(k)
        return logits, labels, restored


class ReferenceStep:
    """One iteration of the reference's ``train_dira``: G step (λ-weighted NCE + MSE + LSGAN), then D step.

    Hyper-parameters are the config's, as ours (the paper's: SGD lr 0.03, momentum 0.9, wd 1e-4; Adam 2e-4,
    betas 0.5/0.999; λ 1 / 10 / 0.001), so that only the reference's implementation choices differ.
    """

    name = "reference step"

    def __init__(self, cfg: dict[str, Any], device: torch.device):
        moco, settings = cfg["pretrain"]["mocov2"], cfg["pretrain"]
        sgd, adam = moco["optimizer"], settings["discriminator"]
        self.device, self.weights = device, settings["loss_weights"]
        self.model = ReferenceDiRAMoCo(cfg["model"]["backbone"], cfg["model"]["decoder_channels"],
                                       moco["hidden_dim"], moco["out_dim"], moco["queue_size"], moco["momentum"],
                                       moco["temperature"]).to(device)
        self.discriminator = PatchDiscriminator().to(device)
        lr = optim.base_learning_rate(sgd["lr"], sgd["lr_scaling"], settings["batch_size"])
        self.optimizer_g = torch.optim.SGD(self.model.parameters(), lr, momentum=sgd["momentum"],
                                           weight_decay=sgd["weight_decay"])
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=adam["lr"], betas=tuple(adam["betas"]))
        self.nce, self.mse, self.adversarial = nn.CrossEntropyLoss(), nn.MSELoss(), nn.MSELoss()
        self.model.train()

    @staticmethod
    def host_batch(batch: int, size: int, pin: bool) -> HostBatch:
        """RGB views (the reference loads with ``.convert('RGB')``) and the grey target."""
        out = {"view1": torch.rand(batch, 3, size, size), "view2": torch.rand(batch, 3, size, size),
               "target": torch.rand(batch, 1, size, size)}
        return {k: v.pin_memory() for k, v in out.items()} if pin else out

    def step(self, host: HostBatch, index: int) -> None:
        patches = math.ceil(host["target"].shape[-1] / 8)  # the hard-coded D_output_shape (1, 28, 28) at 224
        valid = torch.full((host["target"].shape[0], 1, patches, patches), 1.0, device=self.device)
        fake = torch.full((host["target"].shape[0], 1, patches, patches), 0.0, device=self.device)
        images = [host[k].to(self.device, non_blocking=True) for k in ("view1", "view2", "target")]

        logits, labels, restored = self.model(images[0], images[1])
        nce_loss = self.nce(logits, labels)
        mse_loss = self.mse(restored, images[2])
        g_adv = self.adversarial(self.discriminator(restored), valid)
        w = self.weights
        g_loss = w["discrimination"] * nce_loss + w["restoration"] * mse_loss + w["adversarial"] * g_adv
        for value in (nce_loss, mse_loss, g_adv, g_loss):  # the reference's AverageMeter updates
            value.item()
        self.optimizer_g.zero_grad()
        g_loss.backward()
        self.optimizer_g.step()

        self.optimizer_d.zero_grad()
        real_loss = self.adversarial(self.discriminator(images[2]), valid)
        fake_loss = self.adversarial(self.discriminator(restored.detach()), fake)
        d_loss = 0.5 * (real_loss + fake_loss)
        d_loss.backward()
        self.optimizer_d.step()
        d_loss.item()


# =====================================================================================================
# THIS IMPLEMENTATION: the package's model and optimisers, driven as one iteration of train_epoch.
# =====================================================================================================
class OurStep:
    """The loop body of ``Pretrainer.train_epoch`` for the 'dira' stage, on the trainer's own ``train_step``."""

    name = "this implementation"

    def __init__(self, cfg: dict[str, Any], device: torch.device, steps_per_epoch: int):
        self.stage = STAGES["dira"]
        self.steps_per_epoch = steps_per_epoch
        self.model = build_dira("mocov2", True, cfg["model"], cfg["pretrain"]).to(device)
        if device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
        self._state_dir = tempfile.TemporaryDirectory(prefix="dira-bench-")
        # Datasets are never touched: inputs come from host_batch(), so that only the step is timed.
        self.trainer = Pretrainer(self.model, None, None, cfg["pretrain"], "mocov2",  # type: ignore[arg-type]
                                  cfg["pretrain"]["batch_size"], device,
                                  History(Path(self._state_dir.name) / "history.csv"), "benchmark")
        # the stage's SGD (optim.py) and Adam for D, at the 2D λ
        self.trainer.start_stage(self.stage, LossWeights(**cfg["pretrain"]["loss_weights"]))
        self.model.train()
        self.sums: dict[str, torch.Tensor] = {}

    @staticmethod
    def host_batch(batch: int, size: int, pin: bool) -> HostBatch:
        """Grey views and target, as ``TwoViewDataset`` yields them."""
        out = {k: torch.rand(batch, 1, size, size) for k in ("view1", "view2", "target")}
        return {k: v.pin_memory() for k, v in out.items()} if pin else out

    def step(self, host: HostBatch, index: int) -> None:
        t = self.trainer
        optim.set_learning_rate(t.optimizer, t.optimizer_settings, 0, index, self.steps_per_epoch,
                                t.settings["epochs"]["adversarial"])
        terms = t.train_step(self.stage, t.to_device(host), 0, index)
        for name, value in terms.items():
            self.sums[name] = self.sums.get(name, 0.0) + value

    def close(self) -> None:
        self._state_dir.cleanup()


# =====================================================================================================
# Timing
# =====================================================================================================
@dataclass
class StepResult:
    path: str
    batch_size: int
    dtype: str
    memory_format: str
    cudnn_benchmark: bool
    status: str = "ok"
    """"ok", "OOM" or "error" (then ``message`` says what)."""
    message: str = ""
    ms_per_step: float | None = None
    """Median over the timed steps; ``images_per_s`` = batch / median."""
    min_ms_per_step: float | None = None
    """The least disturbed step: the better estimate on a shared, noisy CPU."""
    images_per_s: float | None = None
    step_ms: list[float] = field(default_factory=list)
    peak_memory_gib: float | None = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and ("out of memory" in str(err) or "can't allocate" in str(err)))


OURS_WITH_CUDNN_BENCHMARK = "this impl., no cudnn bench"


def _new_result(kind: str, device: torch.device, batch: int) -> StepResult:
    cuda, reference = device.type == "cuda", kind == "reference"
    path = {"reference": ReferenceStep.name, "ours": OurStep.name, "ours+bench": OURS_WITH_CUDNN_BENCHMARK}[kind]
    return StepResult(
        path=path, batch_size=batch,
        dtype="fp32" if reference or not cuda else "bf16 autocast",
        memory_format="contiguous" if reference or not cuda else "channels_last",
        # main_DiRA_moco.py sets cudnn.benchmark, and so does `dira pretrain` on CUDA; "ours+bench" (the flag
        # --ours-cudnn-benchmark) is kept as the row without it, to show what the setting gives.
        cudnn_benchmark=cuda and kind != "ours+bench",
    )


def _time_group(results: dict[str, StepResult], cfg: dict[str, Any], device: torch.device,
                args: argparse.Namespace) -> None:
    """Build the implementations in ``results``, warm each up, then time them in alternating order.

    With two implementations the order flips every round (ABBA...), so that a background load that
    drifts during the run (a shared CPU) weighs on both alike.
    """
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
            runners[kind] = ReferenceStep(cfg, device) if kind == "reference" else \
                OurStep(cfg, device, args.warmup + args.steps)
            hosts[kind] = runners[kind].host_batch(batch, args.image_size, pin=cuda)
        rounds = [*(("warm-up", i) for i in range(args.warmup)), *(("step", i) for i in range(args.steps))]
        for n, (phase, i) in enumerate(rounds):
            order = list(results) if n % 2 == 0 else list(reversed(results))
            for kind in order:
                torch.backends.cudnn.benchmark = results[kind].cudnn_benchmark
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
            result.ms_per_step = statistics.median(result.step_ms)
            result.min_ms_per_step = min(result.step_ms)
            result.images_per_s = batch / (result.ms_per_step / 1000.0)
            if cuda and len(results) == 1:
                result.peak_memory_gib = torch.cuda.max_memory_allocated(device) / 2**30
    except Exception as err:  # one failing configuration must not cost the rest of a (rented) GPU run
        status = "OOM" if _is_oom(err) else "error"
        message = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        for result in results.values():
            result.status, result.message, result.step_ms = status, message, []
            result.ms_per_step = result.min_ms_per_step = result.images_per_s = result.peak_memory_gib = None
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
    kinds = ["reference", "ours", *(["ours+bench"] if args.ours_cudnn_benchmark else [])]
    results = {kind: _new_result(kind, device, batch) for kind in kinds}
    if args.order == "interleaved":
        _time_group(results, cfg, device, args)
    else:  # each alone on the device: peak memory per implementation, an OOM of one spares the other
        for kind in kinds:
            _time_group({kind: results[kind]}, cfg, device, args)
    return list(results.values())


@dataclass
class DataResult:
    path: str
    source: str
    images_per_s: float
    ms_per_image: float


def _synthetic_grey(size: int, seed: int = 0) -> np.ndarray:
    """A smooth grey image with noise (a stand-in radiograph; transform cost does not depend on content)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = 128 + 80 * np.sin(6 * xx) * np.cos(4 * yy) + rng.normal(0, 12, (size, size))
    return np.clip(image, 0, 255).astype(np.uint8)


def _time_per_image(fn: Callable[[int], Any], count: int, warmup: int) -> float:
    for i in range(warmup):
        fn(i)
    start = time.perf_counter()
    for i in range(count):
        fn(warmup + i)
    return (time.perf_counter() - start) / count


def measure_data(args: argparse.Namespace) -> list[DataResult]:
    """Two views + target per image on ONE core: the reference's PIL path vs ``make_views``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    size = args.image_size
    results: list[DataResult] = []
    try:
        random.seed(0)
        torch.manual_seed(0)
        transform = ReferenceTransform(size)
        for source_size in dict.fromkeys((args.data_source_size, size)):
            grey = Image.fromarray(_synthetic_grey(source_size))
            log(f"[data] reference transform on a {source_size}² source, {args.data_images} images")
            seconds = _time_per_image(lambda _, image=grey: transform(image.convert("RGB")), args.data_images, 5)
            results.append(DataResult("reference transform", f"{source_size}² grey PIL → RGB",
                                      1.0 / seconds, 1000.0 * seconds))
        cached = _synthetic_grey(size)
        pretrain = args.cfg["pretrain"]  # the schema's defaults (load_config([])) unless --config overrides them
        recipe, restoration = ViewRecipe.from_config(pretrain["mocov2"]["views"]), Restoration.from_config(pretrain)
        log(f"[data] make_views on a {size}² cached image, {args.data_images} images")
        seconds = _time_per_image(
            lambda i: make_views(cached, np.random.default_rng(i), recipe, restoration, size), args.data_images, 5)
        results.append(DataResult("make_views", f"{size}² uint8 cache image", 1.0 / seconds, 1000.0 * seconds))
    finally:
        torch.set_num_threads(threads)
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
    cuda = device.type == "cuda"
    lines = [
        f"device: {device.type} ({device_name(device)}), torch {torch.__version__}, torchvision "
        f"{torchvision.__version__}, threads {torch.get_num_threads()}, batch "
        f"{', '.join(map(str, args.batch_size))}, {args.image_size} px, {args.cfg['model']['backbone']} U-Net, "
        f"queue {args.cfg['pretrain']['mocov2']['queue_size']}, DiRA-MoCo-v2 'dira' stage (G step + D step)",
        f"timing: median of {args.steps} steps after {args.warmup} warm-up, {args.order}"
        + (f"; TF32 conv {torch.backends.cudnn.allow_tf32}, TF32 matmul "
           f"{torch.backends.cuda.matmul.allow_tf32}" if cuda else ""),
        "",
    ]
    header = (f"{'path':<24} {'batch':>5}  {'dtype':<14} {'format':<14} {'images/s':>9} {'ms/step':>9} "
              f"{'min ms':>9}")
    lines += [header + (f" {'peak GiB':>9}" if cuda else ""), "-" * (len(header) + (10 if cuda else 0))]
    for r in steps:
        row = (f"{r.path:<24} {r.batch_size:>5}  {r.dtype:<14} {r.memory_format:<14} "
               f"{_fmt(r.images_per_s, '9.2f') if r.status == 'ok' else r.status:>9} {_fmt(r.ms_per_step, '9.1f')} "
               f"{_fmt(r.min_ms_per_step, '9.1f')}")
        lines.append(row + (f" {_fmt(r.peak_memory_gib, '9.2f')}" if cuda else ""))
    for batch in args.batch_size:
        rows = {r.path: r for r in steps if r.batch_size == batch}
        ref = rows.get(ReferenceStep.name)
        for path in (OurStep.name, OURS_WITH_CUDNN_BENCHMARK):
            if path not in rows:
                continue
            ours = rows[path]
            ok = bool(ref and ours.images_per_s and ref.images_per_s)
            ratio = f"{ours.images_per_s / ref.images_per_s:.2f}" if ok else "-"
            ratio_min = f"{ref.min_ms_per_step / ours.min_ms_per_step:.2f}" if ok else "-"
            name = "this" if path == OurStep.name else "this + cudnn bench"
            lines.append(f"{f'ratio ({name} / reference), batch {batch}':<62} {ratio:>9} {'':>9} {ratio_min:>9}")
    if data:
        lines += ["", f"{'data path, 1 CPU core':<22} {'source':<34} {'img/s':>9} {'ms/img':>9}",
                  "-" * 77]
        lines += [f"{d.path:<22} {d.source:<34} {d.images_per_s:9.1f} {d.ms_per_image:9.2f}" for d in data]
        mine = data[-1]
        for base in data[:-1]:
            lines.append(f"{f'ratio (make_views / reference on {base.source.split()[0]})':<57} "
                         f"{mine.images_per_s / base.images_per_s:>9.2f}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu",
                        help="default: cuda when visible")
    parser.add_argument("--batch-size", type=int, nargs="+", default=None,
                        help="one or more batch sizes (default: 4 on cpu, 32 on cuda)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 3 on cpu, 20 on cuda)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 1 cpu, 5 cuda)")
    parser.add_argument(
        "--config", action="append", default=[], metavar="FILE|JSON",
        help="pipeline config merged onto the schema's defaults (the paper's settings), as for `dira pretrain`; "
             "repeat to merge, later wins. It sets the model and method: model.backbone, model.input_size (the "
             "image size of both measurements), pretrain.mocov2.queue_size / bn_splits, optimisers, loss weights",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads for the step (default: torch's)")
    parser.add_argument("--order", choices=("interleaved", "sequential"), default=None,
                        help="alternate reference and ours step by step (default on cpu: robust to a shared, "
                             "drifting CPU) or time each alone (default on cuda: peak memory per path)")
    parser.add_argument("--ours-cudnn-benchmark", action="store_true",
                        help="add a row: ours with cudnn.benchmark off (cuda only; training turns it on)")
    parser.add_argument("--skip-step", action="store_true", help="only the data path")
    parser.add_argument("--skip-data", action="store_true", help="only the training step")
    parser.add_argument("--data-images", type=int, default=100, help="images timed per data path (default 100)")
    parser.add_argument("--data-source-size", type=int, default=1024,
                        help="side of the reference's source image (default 1024, as ChestX-ray14's PNGs)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    try:
        args.cfg = load_config(args.config)  # device and batch size are this script's options, set per run
    except ConfigError as err:
        parser.error(str(err))
    args.image_size = args.cfg["model"]["input_size"]
    queue_size, bn_splits = (args.cfg["pretrain"]["mocov2"][k] for k in ("queue_size", "bn_splits"))
    cuda = args.device == "cuda"
    args.batch_size = args.batch_size or [32 if cuda else 4]
    args.steps = args.steps if args.steps is not None else (20 if cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    args.order = args.order or ("sequential" if cuda else "interleaved")
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is visible")
    if args.ours_cudnn_benchmark and not cuda:
        parser.error("--ours-cudnn-benchmark needs --device cuda (cuDNN is not used on the CPU)")
    if args.steps < 1 or args.warmup < 0 or min(args.batch_size) < 1:
        parser.error("--steps must be >= 1, --warmup >= 0, batch sizes >= 1")
    for batch in args.batch_size:  # checked up front so that no device time is spent on a doomed run
        if queue_size % batch:
            parser.error(f"the reference asserts queue % batch == 0: {queue_size} % {batch} != 0")
        if batch % bn_splits:
            parser.error(f"batch {batch} cannot be split into {bn_splits} batch-norm groups")
    if not args.skip_data and args.image_size < 80:
        parser.error("the reference's distortions use fixed 10-70 px blocks: model.input_size >= 80 or --skip-data")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps: list[StepResult] = []
    if not args.skip_step:
        for batch in args.batch_size:
            cfg = validate(deep_merge(args.cfg, {"device": args.device, "pretrain": {"batch_size": batch}}))
            steps += measure_steps(cfg, device, batch, args)
    data = [] if args.skip_data else measure_data(args)
    print(report(args, device, steps, data), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "device": args.device, "device_name": device_name(device), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "threads": torch.get_num_threads(),
            "image_size": args.image_size, "backbone": args.cfg["model"]["backbone"],
            "queue_size": args.cfg["pretrain"]["mocov2"]["queue_size"],
            "bn_splits": args.cfg["pretrain"]["mocov2"]["bn_splits"], "config": args.cfg,
            "steps": args.steps, "warmup": args.warmup, "order": args.order,
            "step": [asdict(r) for r in steps], "data": [asdict(d) for d in data],
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
