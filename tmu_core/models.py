"""Model registry: small_cnn, resnet18 (CIFAR variant), allcnn, vit_tiny.

Every model takes images in [0, 1] (normalisation is its first layer, so attack budgets are in pixel
units), works for 1 or 3 channels at the dataset's size, and exposes `embed(x)` (penultimate
activations, used by NF and the UMAP page) besides `forward(x)` (logits).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .errors import TMUError
from .registry import Registry

# factory(in_channels, num_classes, image_size) -> nn.Module (a Net)
MODELS: Registry = Registry("model")


class Net(nn.Module):
    """body: normalised images -> penultimate vector; head: vector -> logits."""

    def __init__(self, body: nn.Module, head: nn.Module, channels: int):
        super().__init__()
        self.register_buffer("mean", torch.full((1, channels, 1, 1), 0.5))
        self.register_buffer("std", torch.full((1, channels, 1, 1), 0.25))
        self.body, self.head = body, head

    def set_normalization(self, mean, std) -> Net:
        self.mean.copy_(torch.tensor(mean, dtype=torch.float32).view_as(self.mean))
        self.std.copy_(torch.tensor(std, dtype=torch.float32).view_as(self.std))
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def check_model(name: str) -> None:
    """A registered architecture, or one named from torchvision or timm (`torchvision:resnet18`, `timm:NAME`);
    anything else is refused with the valid names."""
    from .ownmodel.hub import check_name, is_hub

    if is_hub(name):
        check_name(name)
    elif name not in MODELS:
        raise TMUError(
            f"unknown model '{name}'; valid: {', '.join(MODELS.names())}, or torchvision:NAME / timm:NAME "
            f"(e.g. torchvision:resnet18)"
        )


def build_model(name: str, channels: int, num_classes: int, size: int, mean=None, std=None) -> Net:
    """A registered architecture, or (`torchvision:NAME`, `timm:NAME`) one built by that library behind the same
    interface (tmu_core.ownmodel.hub)."""
    if ":" in name:
        from .ownmodel.hub import build_hub, is_hub

        if is_hub(name):
            net = build_hub(name, channels, num_classes, size)
            return net.set_normalization(mean, std) if mean is not None else net
    net = MODELS.get(name)(channels, num_classes, size)
    if mean is not None:
        net.set_normalization(mean, std)
    return net


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@MODELS.register(
    "small_cnn", "3-stage CNN (32-64-128 channels, 256-d embedding); the fast CPU default for 8x8 to 32x32"
)
def small_cnn(channels: int, num_classes: int, size: int) -> Net:
    # One conv per stage: on 2 CPU cores a second conv at full resolution tripled the cost of an epoch
    # of 32x32 images. 8x8 inputs skip the later pools so the last stage still sees 4x4.
    def pool():
        return nn.MaxPool2d(2) if size >= 16 else nn.Identity()

    body = nn.Sequential(
        _conv(channels, 32),
        nn.MaxPool2d(2),
        _conv(32, 64),
        pool(),
        _conv(64, 128),
        pool(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(512, 256),
        nn.ReLU(inplace=True),
    )
    return Net(body, nn.Linear(256, num_classes), channels)


@MODELS.register(
    "resnet18", "ResNet-18, CIFAR variant (3x3 stem, no max-pool), 512-d embedding; the paper's main model"
)
def resnet18(channels: int, num_classes: int, size: int) -> Net:
    import torchvision  # late: importing torchvision costs seconds that every other model and command saves

    r = torchvision.models.resnet18(num_classes=num_classes)
    r.conv1 = nn.Conv2d(channels, 64, 3, 1, 1, bias=False)
    r.maxpool = nn.Identity()
    body = nn.Sequential(r.conv1, r.bn1, r.relu, r.layer1, r.layer2, r.layer3, r.layer4, r.avgpool, nn.Flatten())
    return Net(body, r.fc, channels)


@MODELS.register(
    "allcnn", "All-CNN-C (Springenberg et al.) with batch norm, 192-d embedding; one of the paper's models"
)
def allcnn(channels: int, num_classes: int, size: int) -> Net:
    body = nn.Sequential(
        _conv(channels, 96),
        _conv(96, 96),
        _conv(96, 96, stride=2),
        nn.Dropout(0.1),
        _conv(96, 192),
        _conv(192, 192),
        _conv(192, 192, stride=2),
        nn.Dropout(0.1),
        _conv(192, 192),
        nn.Conv2d(192, 192, 1),
        nn.BatchNorm2d(192),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return Net(body, nn.Linear(192, num_classes), channels)


class ViTBody(nn.Module):
    """A small ViT for small images: patch embedding, class token, pre-norm transformer encoder."""

    def __init__(self, channels: int, size: int, dim: int = 192, depth: int = 6, heads: int = 3):
        super().__init__()
        patch = 2 if size <= 8 else 4
        if size % patch:
            patch = 1
        self.patch = nn.Conv2d(channels, dim, patch, patch)
        n = (size // patch) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim * 2, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(len(t), -1, -1), t], dim=1) + self.pos
        return self.norm(self.encoder(t)[:, 0])


@MODELS.register("vit_tiny", "small Vision Transformer for small images (patch 4, 6 layers, 192-d), as the paper's ViT")
def vit_tiny(channels: int, num_classes: int, size: int) -> Net:
    return Net(ViTBody(channels, size), nn.Linear(192, num_classes), channels)
