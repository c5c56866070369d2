"""Which device this process computes on and how many threads it may use."""

from __future__ import annotations

import contextlib

import torch


def resolve_device(name: str) -> torch.device:
    """'auto' takes CUDA when visible; asking for 'cuda' without a GPU is an error, not a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA device is visible (use 'auto' or 'cpu')")
    return torch.device(name)


def configure_threads(threads: int) -> None:
    """Cap torch's and OpenCV's threads: Snakemake runs jobs side by side, each within its cores (the CPU views
    and the segmentation augmentations call OpenCV, whose own pool would take every core)."""
    import cv2  # here, not at the top: most stages never touch it

    cv2.setNumThreads(threads)
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set in this process (tests run several commands)
        torch.set_num_interop_threads(max(1, min(threads, 2)))
