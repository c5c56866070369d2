"""A job's thread budget binds every pool that computes in it: torch's and OpenCV's (the CPU views, the
segmentation augmentations), since Snakemake runs jobs side by side, each within its cores."""

import cv2
import torch

from dira.runtime.device import configure_threads


def test_configure_threads_caps_torch_and_opencv():
    before = torch.get_num_threads(), cv2.getNumThreads()
    try:
        configure_threads(1)
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])
