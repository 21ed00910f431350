"""Untargeted PGD (Madry et al. 2017) in pixel units, and the adversarial feature AF built on it.

AF = cross-entropy between the adversarial sample's output and the clean output's softmax: samples near
the decision boundary (hard ones) move further under the same budget.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import to_float
from ..train import on_device


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    target_probs: torch.Tensor,
    eps: float,
    steps: int,
    step_size: float,
    random_start: bool = False,
    gen: torch.Generator | None = None,
) -> torch.Tensor:
    """Maximise CE(model(x_adv), target_probs) with ||x_adv - x||_inf <= eps and x_adv in [0, 1].

    Args: x float images in [0, 1], (N, C, H, W); target_probs (N, K) soft targets (the clean softmax).
    Returns: x_adv, same shape, detached.
    """
    x = x.detach()
    adv = x.clone()
    if random_start and eps > 0:
        noise = (torch.rand(x.shape, generator=gen) * 2 - 1).to(x.device) * eps
        adv = (adv + noise).clamp(0, 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(adv), target_probs)
        (grad,) = torch.autograd.grad(loss, adv)
        adv = adv.detach() + step_size * grad.sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    return adv.detach()


def adversarial_feature(
    model: nn.Module, x: torch.Tensor, device: torch.device, eps: float, steps: int, step_size: float, batch: int = 256
) -> torch.Tensor:
    """AF per sample: CE between the adversarial output and the clean softmax (float32, CPU)."""
    model = model.to(device).eval()
    out = []
    for start in range(0, len(x), batch):
        xb = to_float(on_device(x[start : start + batch], device))
        with torch.no_grad():
            clean = F.softmax(model(xb).float(), 1)
        adv = pgd(model, xb, clean, eps, steps, step_size)
        with torch.no_grad():
            out.append(F.cross_entropy(model(adv).float(), clean, reduction="none").cpu())
    return torch.cat(out) if out else torch.empty(0)
