"""The discovery autoencoder: the 3D U-Net restoring whole scans, and the per-patient feature it yields.

TransVW's self-discovery trains an autoencoder (MSE, Adam) on whole volumes and describes each patient by the
global average of its deepest encoder level (``depth_7_relu``, 512 channels at base width 32), so that patients
whose scans restore through similar deep codes count as anatomically alike. The network here is the pipeline's
own :class:`~dira.models.unet3d.UNet3D` (Models Genesis' layout, ``16 x base_width`` channels deepest), its
logits passed through a sigmoid before the loss, as the reference's output layer does.

Batch norm uses running statistics in eval whatever ``model3d.batch_stats_in_eval`` says: the reference's
autoencoder is a Keras model, whose inference does so, and a feature taken with the statistics of its own volume
(a batch of one) is normalised per channel over that volume, which strips the very intensity and texture levels
that tell patients apart (on planted groups of distinct anatomy the neighbours then mix groups). After training
the running statistics are recomputed exactly over the training volumes with the final weights (one forward
pass, "precise BN"): an exponential average of a few dozen steps, all a demo takes, still remembers the
initial mean 0 and variance 1, and squeezes every feature towards zero.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dira.discovery.volumes import PROGRESS_SECONDS
from dira.models.unet3d import UNet3D


def build_autoencoder(*, base_width: int, seed: int) -> UNet3D:
    """A one-channel-in, one-channel-out U-Net initialised from ``seed`` alone (the global generators untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet3D(1, 1, base_width=base_width, batch_stats_in_eval=False)


def train_autoencoder(volumes: np.ndarray, *, base_width: int, epochs: int, lr: float, batch_size: int, seed: int,
                      device: torch.device) -> tuple[UNet3D, list[float]]:
    """Train on ``volumes`` (N, z, y, x) in [0, 1]; return the model (on ``device``) and each epoch's mean loss.

    Batches are drawn without replacement from a generator seeded with ``seed``; the last batch of an epoch may be
    smaller, so every scan is seen once per epoch.
    """
    volumes = np.asarray(volumes, np.float32)
    if volumes.ndim != 4 or not len(volumes):
        raise ValueError(f"the autoencoder trains on a stack (N, z, y, x) of N >= 1 volumes, got {volumes.shape}")
    model = build_autoencoder(base_width=base_width, seed=seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    data = torch.from_numpy(volumes).unsqueeze(1)
    order = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    model.train()
    progress = tqdm(range(epochs), desc="discover: autoencoder", unit="epoch", mininterval=PROGRESS_SECONDS)
    for _ in progress:
        total = 0.0
        for batch_index in torch.randperm(len(data), generator=order).split(batch_size):
            batch = data[batch_index].to(device)
            loss = F.mse_loss(torch.sigmoid(model(batch)), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        losses.append(total / len(data))
        progress.set_postfix(mse=f"{losses[-1]:.5f}", refresh=False)
    settle_batch_norm(model, data, batch_size=batch_size, device=device)
    return model, losses


@torch.no_grad()
def settle_batch_norm(model: torch.nn.Module, data: torch.Tensor, *, batch_size: int, device: torch.device) -> None:
    """Set every batch norm's running statistics to their average over ``data`` (N, 1, z, y, x), weights frozen."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: every batch counts alike
    model.train()
    for batch in data.split(batch_size):
        model(batch.to(device))
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.eval()


@torch.no_grad()
def encode_features(model: UNet3D, volumes: np.ndarray, *, device: torch.device) -> np.ndarray:
    """(N, 16 x base_width) float64: each volume's deepest encoder level, averaged over space.

    One volume per forward pass in eval mode (running statistics), so a patient's feature never depends on which
    patients share its batch.
    """
    model.eval()
    features = []
    for volume in tqdm(np.asarray(volumes, np.float32), desc="discover: features", unit="scan",
                       mininterval=PROGRESS_SECONDS):
        x = torch.from_numpy(volume)[None, None].to(device)
        features.append(model.encode(x)[-1].mean(dim=(2, 3, 4))[0].double().cpu().numpy())
    return np.stack(features) if features else np.zeros((0, model.widths[-1][1]))
