"""The two BASELINES of ``pretrain_step.py``: re-implementations of the reference training steps (not the package's).

- :class:`ReferenceDiRAStep`: the official DiRA-MoCo-v2 step (fhaghighi/DiRA ``train_dira`` + ``DiRA_MoCo``;
  facts in ``shared/reference/anchors-ssl.md`` §1).
- :class:`ReferenceTransVWStep`: TransVW's YNet3D step (fhaghighi/TransVW ``train.py``, §3) plus DiRA's 3D adversary.

Both are built from the package's U-Net, discriminator and head modules, so that only the reference's own
choices differ: fp32, contiguous memory, ``cudnn.benchmark``, the reference's model structure, input layout and
loss code, and the ``.item()`` calls of its progress meters. Hyper-parameters are the config's, as the package's.
Each holds one batch already on the device, as the package's rows do (the reference's ``.to(device)`` of it is
then a no-op), so that only the step is timed.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dira.models.discriminator import PatchDiscriminator
from dira.models.heads import mlp_head
from dira.models.resnet import feature_dim
from dira.models.unet import UNet
from dira.models.unet3d import BatchNorm3d, UNet3D
from dira.train import optim


# ============================================================================================ DiRA-MoCo-v2 (2D)
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


class ReferenceDiRAStep:
    """One iteration of the reference's ``train_dira``: G step (λ-weighted NCE + MSE + LSGAN), then D step.

    The paper's hyper-parameters come from the config (SGD lr 0.03, momentum 0.9, wd 1e-4; Adam 2e-4, betas
    0.5/0.999; λ 1 / 10 / 0.001). Inputs are RGB views (the reference loads with ``.convert('RGB')``) and a grey
    target.
    """

    name = "reference DiRA step"
    compared_with = ("mocov2", "dira")
    memory_format = "contiguous"

    def __init__(self, cfg: dict[str, Any], device: torch.device, batch: int):
        moco, settings = cfg["pretrain"]["mocov2"], cfg["pretrain"]
        sgd, adam = moco["optimizer"], settings["discriminator"]
        self.device, self.weights, self.flops_per_step = device, settings["loss_weights"], None
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
        size = cfg["model"]["input_size"]
        self.batch = {"view1": torch.rand(batch, 3, size, size, device=device),
                      "view2": torch.rand(batch, 3, size, size, device=device),
                      "target": torch.rand(batch, 1, size, size, device=device)}

    def step(self, index: int) -> None:
        host = self.batch
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

    def close(self) -> None:
        pass


# ============================================================================================ DiRA-TransVW (3D)
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


class ReferenceTransVWStep:
    """One iteration of the reference's loop: G step (λ-weighted CE + MSE + LSGAN), then D step, fp32.

    The paper's hyper-parameters come from the config (Adam 1e-3 for YNet3D; Adam 2e-4, betas 0.5 / 0.999 for D;
    λ 1 / 100 / 1). Inputs are the reference's channel-first (1, x, y, z) cubes: 64x64x32 with depth last.
    """

    name = "reference TransVW step"
    compared_with = ("transvw", "dira")
    memory_format = "contiguous xyz"

    def __init__(self, cfg: dict[str, Any], device: torch.device, batch: int, classes: int):
        section, d = cfg["pretrain"]["transvw"], cfg["pretrain"]["discriminator"]
        self.device, self.weights, self.flops_per_step = device, section["dira_loss_weights"], None
        self.model = ReferenceYNet3D(cfg["model3d"]["base_width"], classes).to(device)
        # The widths build_dira gives D (the reference's 64 ... 512 at base width 32), so both sides get one D.
        widths = tuple(2 * w for w, _ in self.model.unet.widths)
        self.discriminator = PatchDiscriminator(widths=widths, dims=3).to(device)
        g = section["optimizer"]
        self.optimizer_g = torch.optim.Adam(self.model.parameters(), lr=g["lr"], betas=tuple(g["betas"]),
                                            weight_decay=g["weight_decay"])
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=d["lr"], betas=tuple(d["betas"]))
        self.mse = nn.MSELoss()
        self.model.train()
        shape = (batch, 1, *reversed(cfg["datasets"]["luna16"]["crop_shape"]))
        self.batch = {"view": torch.rand(shape, device=device), "target": torch.rand(shape, device=device),
                      "label": torch.randint(classes, (batch,), device=device)}

    def step(self, index: int) -> None:
        view, target, label = (self.batch[k].to(self.device, non_blocking=True) for k in ("view", "target", "label"))
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

    def close(self) -> None:
        pass
