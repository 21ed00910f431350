"""SalUn (Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency in Both Image
Classification and Generation", ICLR 2024; code: github.com/OPTML-Group/Unlearn-Saliency).

1. Saliency mask: the gradient of the forget loss (cross-entropy on D_f) with respect to every weight of M_o;
   the `mask_ratio` (50%) of weights with the largest |gradient|, over the whole network, are salient.
2. Random-label unlearning updating the salient weights only: D_f relabelled at random, trained together
   with D_r as one pooled loss (their RL concatenates the relabelled D_f with D_r into one loader), SGD.
Their CIFAR-10 setting: 10 epochs, lr 0.013. Deviation: to fit 2 CPU cores each epoch replays a 30% share of
D_r rather than all of it (set --salun-retain-fraction 1 for the authors' full pass).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import opt
from ..data import to_float
from ..train import on_device
from .loop import LoopConfig, retain_forget_tensors, unlearn_loop
from .randlabel import relabel_loss
from .registry import Display, Method, MethodResult, register


@dataclass(frozen=True)
class SalUnConfig(LoopConfig):
    """SalUn: the share of weights it may update, then random-label unlearning on them."""

    mask_ratio: float = opt(0.5, "share of weights (largest |forget-loss gradient|) that are updated", min=0.01, max=1.0)


def saliency_mask(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, ratio: float, device,
                  batch: int = 256) -> dict[str, torch.Tensor]:
    """{parameter name: 0/1 mask}: 1 for the `ratio` share of weights with the largest |d CE(D_f) / d w|."""
    model = copy.deepcopy(model).to(device).eval()  # cached models are shared: not even their .grad is touched
    for i in range(0, len(x), batch):
        xb, yb = to_float(on_device(x[i:i + batch], device)), on_device(y[i:i + batch], device)
        F.cross_entropy(model(xb).float(), yb, reduction="sum").backward()
    grads = {n: p.grad.detach().abs() for n, p in model.named_parameters() if p.grad is not None}
    flat = torch.cat([g.flatten() for g in grads.values()])
    k = max(1, int(round(ratio * len(flat))))
    cut = flat.kthvalue(len(flat) - k + 1).values  # the k-th largest |gradient|
    return {n: (g >= cut).float() for n, g in grads.items()}


def run(task, cfg: SalUnConfig, device, progress=None):
    retain, forget = retain_forget_tensors(task)
    mask = saliency_mask(task.original, forget[0], forget[1], cfg.mask_ratio, device)
    model = unlearn_loop(task.original, retain, forget, relabel_loss(task.data.num_classes, task.seed), cfg, device,
                         seed=task.seed, stage="salun", progress=progress, should_stop=task.should_stop,
                         grad_mask=mask)
    return MethodResult(model)


AUTHORS = {"lr": 0.013, "epochs": 10, "retain_fraction": 0.3, "weighting": "pooled"}

register("salun", "SalUn: random labels on D_f with D_r, updating only the 50% most forget-salient weights",
         Method(SalUnConfig, run, lambda dataset: dict(AUTHORS), Display("SalUn", "SalUn", "#827717", 47)))
