"""The timing harness of ``pretrain_step.py``: rows, ABBA timing, failures per row, FLOPs, peaks and formatting.

A row is one training-step implementation at one setting. Rows of a group are built together and timed in
alternating order step by step (A B, B A, ...), so that a background load that drifts during the run (a shared
CPU) weighs on all of them alike; a group of one row alone on the device gives that row's peak memory. A row
that fails (out of memory, a compile error) is reported in its row and the others of its group carry on.
"""

from __future__ import annotations

import gc
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from cost import GPUS, Gpu, count, peak


def log(message: str) -> None:
    """Progress goes to stderr so that stdout holds only the table."""
    print(message, file=sys.stderr, flush=True)


class StepRunner(Protocol):
    """One implementation, built with its batch already on the device; ``step`` is what is timed."""

    flops_per_step: float | None
    """Matrix FLOPs of one step when known up front (counted on the meta device); None: count the first step."""

    def step(self, index: int) -> None: ...

    def close(self) -> None: ...


@dataclass
class StepResult:
    row: str
    """``method/variant`` for this implementation, the baseline's name for a reference step."""
    implementation: str
    """"this implementation" or "reference"."""
    method: str
    variant: str
    stage: str
    """The stage timed: the last of the variant's ``stage_plan``."""
    dims: int
    batch_size: int
    dtype: str
    """"fp32" or "bf16" (autocast)."""
    memory_format: str
    fused: str
    """"yes", "no", or "D only" (LARS has no fused kernel; the discriminator's Adam has)."""
    compiled: bool
    cudnn_benchmark: bool | None
    status: str = "ok"
    """"ok", "OOM" or "error" (then ``message`` says what)."""
    message: str = ""
    ms_per_step: float | None = None
    """Median over the timed steps; ``samples_per_s`` = batch / median."""
    min_ms_per_step: float | None = None
    """The least disturbed step: the better estimate on a shared, noisy CPU."""
    samples_per_s: float | None = None
    first_step_s: float | None = None
    """The first warm-up step (the first timed one without warm-up); with ``compiled`` it holds the compilation."""
    step_ms: list[float] = field(default_factory=list)
    peak_memory_gib: float | None = None
    gflop_per_step: float | None = None
    """Matrix products and convolutions at 2 FLOP per multiply-add (``torch.utils.flop_counter``)."""
    achieved_tflops: float | None = None
    """gflop_per_step / median step time."""
    peak_tflops: float | None = None
    mfu: float | None = None
    """achieved / peak: model FLOP utilisation."""


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall time of one call, the device's queue drained before and after."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and ("out of memory" in str(err) or "can't allocate" in str(err)))


def _fail(result: StepResult, err: BaseException) -> None:
    result.status = "OOM" if is_oom(err) else "error"
    result.message = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    result.step_ms = []
    log(f"[{result.row}, batch {result.batch_size}] {result.status}: {result.message}")
    if result.status != "OOM":
        log(traceback.format_exc())


def time_group(results: dict[str, StepResult], builders: dict[str, Callable[[], StepRunner]],
               device: torch.device, warmup: int, steps: int) -> None:
    """Build every row of the group, then warm up and time them step by step in alternating order."""
    cuda = device.type == "cuda"
    runners: dict[str, StepRunner] = {}
    previous_benchmark = torch.backends.cudnn.benchmark

    def drop(key: str, err: BaseException) -> None:
        _fail(results[key], err)
        runner = runners.pop(key, None)
        if runner is not None:
            runner.close()
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()

    try:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        for key, build in builders.items():
            torch.manual_seed(0)
            log(f"[{results[key].row}, batch {results[key].batch_size}] building")
            try:
                runners[key] = build()
            except Exception as err:  # one failing row must not cost the rest of a (rented) GPU run
                drop(key, err)
        for key, runner in list(runners.items()):
            if runner.flops_per_step is None:  # counted on an extra, untimed step (a reference's .item() needs data)
                try:
                    _step(results[key], runner, device, 0, count_flops=True)
                except Exception as err:
                    drop(key, err)
        rounds = [*(("warm-up", i) for i in range(warmup)), *(("step", i) for i in range(steps))]
        for n, (phase, i) in enumerate(rounds):
            for key in (list(runners) if n % 2 == 0 else list(reversed(runners))):
                result, runner = results[key], runners[key]
                try:
                    seconds = _step(result, runner, device, n, count_flops=False)
                except Exception as err:
                    drop(key, err)
                    continue
                if n == 0:
                    result.first_step_s = seconds
                if phase == "step":
                    result.step_ms.append(1000.0 * seconds)
                total = warmup if phase == "warm-up" else steps
                log(f"[{result.row}, batch {result.batch_size}] {phase} {i + 1}/{total}: {seconds:.2f} s")
        for key, runner in runners.items():
            result = results[key]
            result.ms_per_step, result.min_ms_per_step = statistics.median(result.step_ms), min(result.step_ms)
            result.samples_per_s = result.batch_size / (result.ms_per_step / 1000.0)
            if runner.flops_per_step is not None:
                result.gflop_per_step = runner.flops_per_step / 1e9
                result.achieved_tflops = result.gflop_per_step / result.ms_per_step
            if cuda and len(results) == 1:
                result.peak_memory_gib = torch.cuda.max_memory_allocated(device) / 2**30
    finally:
        for runner in runners.values():
            runner.close()
        runners.clear()
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        torch.backends.cudnn.benchmark = previous_benchmark


def _step(result: StepResult, runner: StepRunner, device: torch.device, index: int, count_flops: bool) -> float:
    """Seconds of one step, bracketed by device syncs; a counted step records its FLOPs on the runner."""
    torch.backends.cudnn.benchmark = bool(result.cudnn_benchmark)
    sync(device)
    start = time.perf_counter()
    if count_flops:
        runner.flops_per_step = count(lambda: runner.step(index))
    else:
        runner.step(index)
    sync(device)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------- device peaks
def known_gpu(name: str) -> Gpu | None:
    """The row of ``cost.GPUS`` a CUDA device name belongs to (SXM peaks: a PCIe card's are lower)."""
    return next((g for g in GPUS if any(part in name for part in g.name.split("/"))), None)


def peak_tflops(device: torch.device, dtype: str, override: float | None) -> float | None:
    """Dense peak for a row's precision: ``--peak-tflops``, else the GPU's from cost.py, else unknown (CPU)."""
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    gpu = known_gpu(torch.cuda.get_device_name(device))
    return None if gpu is None else peak(gpu, dtype, "as_is") / 1e12


def add_utilisation(result: StepResult, device: torch.device, override: float | None) -> None:
    result.peak_tflops = peak_tflops(device, result.dtype, override)
    if result.achieved_tflops is not None and result.peak_tflops:
        result.mfu = result.achieved_tflops / result.peak_tflops


# ---------------------------------------------------------------------------------------------- report helpers
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


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def environment(device: torch.device) -> dict[str, Any]:
    """What the numbers depend on besides the rows' own settings."""
    out: dict[str, Any] = {"device": device.type, "device_name": device_name(device), "torch": torch.__version__,
                           "threads": torch.get_num_threads()}
    if device.type == "cuda":
        out["tf32"] = {"conv": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32}
    return out
