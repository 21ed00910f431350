"""Architectures by name from torchvision and timm (`--model torchvision:resnet18`, `--model timm:NAME`), built
with one output per class folder and without pretrained weights, behind the project's model interface.

`HubNet` takes [0, 1] pixels: it normalises them with its `mean`/`std` buffers (raw pixels unless the user gives
--input-mean/--input-std; a torchvision or timm state dict holds no normalisation), repeats a greyscale channel
when the network's first convolution takes three, and gives `embed(x)`: timm's pre-logits features, or for
torchvision the input of the last linear layer (a network without one embeds with its logits). A state dict of
such a network is its own `state_dict()` (keys as torchvision or timm name them): `inner` loads and saves it.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import TMUError

SOURCES = ("torchvision", "timm")
TIMM_MISSING = "timm is not installed: pip install timm (then --model timm:NAME builds any timm architecture)"


def is_hub(name: str) -> bool:
    return name.partition(":")[0] in SOURCES and ":" in name


class HubNet(nn.Module):
    def __init__(self, inner: nn.Module, channels: int, in_channels: int, source: str):
        super().__init__()
        self.inner, self.source = inner, source
        self.repeat = in_channels // channels if in_channels != channels else 1
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))
        self.head_name = _last_linear(inner) if source == "torchvision" else ""
        self.has_embed = source == "timm" or bool(self.head_name)

    def set_normalization(self, mean, std) -> HubNet:
        self.mean.copy_(torch.tensor(mean, dtype=torch.float32).view_as(self.mean))
        self.std.copy_(torch.tensor(std, dtype=torch.float32).view_as(self.std))
        return self

    def _in(self, x):
        x = (x - self.mean) / self.std
        return x.repeat(1, self.repeat, 1, 1) if self.repeat > 1 else x

    def forward(self, x):
        return self.inner(self._in(x))

    def embed(self, x):
        z = self._in(x)
        if self.source == "timm":
            return self.inner.forward_head(self.inner.forward_features(z), pre_logits=True).flatten(1)
        if not self.head_name:
            return self.inner(z).flatten(1)
        seen = {}
        hook = self.inner.get_submodule(self.head_name).register_forward_pre_hook(
            lambda _m, args: seen.__setitem__("x", args[0])
        )
        try:
            self.inner(z)
        finally:
            hook.remove()
        return seen["x"].flatten(1)


def _last_linear(inner: nn.Module) -> str:
    names = [n for n, m in inner.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else ""


def _first_conv(inner: nn.Module) -> tuple[str, nn.Conv2d] | None:
    return next(((n, m) for n, m in inner.named_modules() if isinstance(m, nn.Conv2d)), None)


def check_name(name: str) -> None:
    """Refuse an architecture name its library does not have (or timm when it is not installed), in one line."""
    source, _, arch = name.partition(":")
    if source == "timm":
        try:
            import timm
        except ImportError:
            raise TMUError(TIMM_MISSING) from None
        if not timm.is_model(arch):
            raise TMUError(f"timm has no model '{arch}'; see timm.list_models() for the valid names")
        return
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if arch not in names:
        some = [n for n in names if n.startswith(("resnet", "mobilenet_v3", "efficientnet_b", "vit_b", "convnext_t"))]
        raise TMUError(
            f"torchvision has no classification model '{arch}'; valid names include {', '.join(some)} "
            f"(all: torchvision.models.list_models())"
        )


def _torchvision(arch: str, num_classes: int) -> nn.Module:
    import torchvision

    check_name(f"torchvision:{arch}")
    kwargs = {"aux_logits": False, "init_weights": False} if arch in ("inception_v3", "googlenet") else {}
    return torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)


def _timm(arch: str, num_classes: int, channels: int) -> nn.Module:
    check_name(f"timm:{arch}")
    import timm

    return timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=channels)


def build_hub(name: str, channels: int, num_classes: int, size: int, in_channels: int | None = None) -> HubNet:
    """`name` (torchvision:ARCH or timm:ARCH) with `num_classes` outputs for `channels`-channel images; the first
    convolution takes `in_channels` (default `channels`; 3 for a greyscale data set fed to an RGB network)."""
    source, _, arch = name.partition(":")
    in_channels = in_channels or channels
    if source == "timm":
        return HubNet(_timm(arch, num_classes, in_channels), channels, in_channels, source)
    inner = _torchvision(arch, num_classes)
    first = _first_conv(inner)
    if first is not None and first[1].in_channels != in_channels:
        path, conv = first
        parent = inner.get_submodule(path.rpartition(".")[0]) if "." in path else inner
        setattr(
            parent,
            path.rpartition(".")[2],
            nn.Conv2d(
                in_channels,
                conv.out_channels,
                conv.kernel_size,
                conv.stride,
                conv.padding,
                conv.dilation,
                conv.groups,
                conv.bias is not None,
            ),
        )
    return HubNet(inner, channels, in_channels, source)


def first_conv_key(net: HubNet) -> str | None:
    """The state-dict key of the network's first convolution weight (its input channels)."""
    first = _first_conv(net.inner)
    return f"{first[0]}.weight" if first else None


def describe() -> list[tuple[str, str]]:
    return [
        (
            "torchvision:NAME",
            "any torchvision classification model by name (e.g. torchvision:resnet18), no pretrained weights",
        ),
        ("timm:NAME", "any timm model by name (needs `pip install timm`)"),
    ]
