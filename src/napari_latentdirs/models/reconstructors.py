"""Reconstructors R(x, x_shifted) -> (logits over K, alpha_hat) for direction discovery.

Both take the image pair stacked on channels (2 channels for CT slices) and
have two heads, as in Voynov & Babenko's reference code:

- ``lenet`` (``LeNetShiftPredictor`` at width 2): conv 5x5 to 6, 16, 120
  channels, each with BatchNorm and ReLU, max-pooling after the first two;
  a spatial mean; each head Linear(120, 84), BatchNorm1d, ReLU, Linear.
- ``resnet18``: ResNet18 (BasicBlock, [2, 2, 2, 2]) with a 2-channel 7x7
  stem, global average pooling and two linear heads on the 512 features.
  Written here because PyPI's torchvision does not import beside the pinned
  CPU torch; the layout and initialisation follow torchvision's resnet18.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

RECONSTRUCTORS = ("lenet", "resnet18")


def _resized(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Area-average the pair to ``size`` pixels (None: as given). The CPU recipe feeds LeNet 64x64:
    its 5x5 kernels then see four times the anatomy, and it learns several times faster."""
    if size is None or x.shape[-1] <= size:
        return x
    return F.interpolate(x, size=(size, size), mode="area")


class LeNetReconstructor(nn.Module):
    def __init__(self, K: int, channels: int = 1, width: int = 2, input_size: int | None = None) -> None:
        super().__init__()
        self.input_size = input_size
        c1, c2, c3, hid = 3 * width, 8 * width, 60 * width, 42 * width
        self.features = nn.Sequential(
            nn.Conv2d(2 * channels, c1, 5), nn.BatchNorm2d(c1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
            nn.Conv2d(c1, c2, 5), nn.BatchNorm2d(c2), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
            nn.Conv2d(c2, c3, 5), nn.BatchNorm2d(c3), nn.ReLU(inplace=True),
        )
        self.logits = nn.Sequential(nn.Linear(c3, hid), nn.BatchNorm1d(hid), nn.ReLU(inplace=True), nn.Linear(hid, K))
        self.shift = nn.Sequential(nn.Linear(c3, hid), nn.BatchNorm1d(hid), nn.ReLU(inplace=True), nn.Linear(hid, 1))

    def forward(self, x: torch.Tensor, x_shifted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pair = _resized(torch.cat([x, x_shifted], dim=1), self.input_size)
        f = self.features(pair).mean(dim=(-2, -1))
        return self.logits(f), self.shift(f)[:, 0]


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18Reconstructor(nn.Module):
    def __init__(self, K: int, channels: int = 1, input_size: int | None = None) -> None:
        super().__init__()
        self.input_size = input_size
        self.stem = nn.Sequential(
            nn.Conv2d(2 * channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        layers: list[nn.Module] = []
        c_in = 64
        for i, c_out in enumerate((64, 128, 256, 512)):
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.logits = nn.Linear(512, K)
        self.shift = nn.Linear(512, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, x_shifted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pair = _resized(torch.cat([x, x_shifted], dim=1), self.input_size)
        f = self.layers(self.stem(pair)).mean(dim=(-2, -1))
        return self.logits(f), self.shift(f)[:, 0]


def min_input_size(name: str) -> int:
    """Smallest square input the architecture accepts (LeNet's three 5x5 convs and two pools)."""
    return 32 if name == "lenet" else 8


def build_reconstructor(name: str, K: int, channels: int = 1, input_size: int | None = None) -> nn.Module:
    if input_size is not None and input_size < min_input_size(canonical_reconstructor(name)):
        raise ValueError(f"{name} needs inputs of at least {min_input_size(canonical_reconstructor(name))} pixels, "
                         f"got input_size {input_size}")
    if name == "lenet":
        return LeNetReconstructor(K, channels, input_size=input_size)
    if name in ("resnet18", "resnet"):
        return ResNet18Reconstructor(K, channels, input_size=input_size)
    raise ValueError(f"unknown reconstructor {name!r}; choose from {RECONSTRUCTORS}")


def canonical_reconstructor(name: str) -> str:
    if name == "resnet":
        return "resnet18"
    if name not in RECONSTRUCTORS:
        raise ValueError(f"unknown reconstructor {name!r}; choose from {RECONSTRUCTORS}")
    return name
