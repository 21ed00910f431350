"""The one unlearning loop every method shares; a method supplies only its loss and its weighting.

Each epoch replays a seeded random share of the retain data and passes over the forget data, both
spread evenly over the same steps (a forget set smaller than the number of steps is cycled, one sample
a step), so every batch mixes the two; the method's loss sees both halves of the batch. The learning rate decays
with a cosine schedule (a constant rate cost A_test). The input model is deep-copied, never mutated.

How the two halves are weighed is part of each method (see `combine`): "separate" averages each half over
its own samples and adds the two means, so one forget sample weighs as much as n_r / n_f retain samples;
"pooled" averages one loss over every sample of the batch, so all samples weigh the same (as a shuffled
pool of the retain share and D_f would).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn as nn

from ..config import Config, DataConfig, TrainConfig, opt
from ..data import Dataset, ForgetSet, to_float
from ..errors import check_finite
from ..train import Progress, ProgressFn, autocast, generator, make_optimizer, make_schedule, on_device


@dataclass
class UnlearnTask:
    """What a method may use: the data, the forget set, the original model (shared: do not mutate)."""

    data: Dataset
    data_cfg: DataConfig
    train_cfg: TrainConfig
    forget: ForgetSet
    original: nn.Module
    seed: int = 0
    should_stop: Callable[[], None] | None = None
    gold: nn.Module | None = None  # only for controls that declare uses_gold
    earlier: dict = field(default_factory=dict)  # reports of the methods run before this one, by name
    parts: tuple = ()  # a request over several classes: one ForgetSet per class (`forget` is then their union)

    @property
    def remain_ids(self) -> np.ndarray:
        return self.forget.remain_ids(self.data)


class LoopConfig(Config):
    """Settings of the shared unlearning loop (embedded in each method's config)."""

    epochs: int = opt(3, "passes over the replayed retain share", min=1, max=200)
    lr: float = opt(0.01, "initial learning rate", min=1e-6, max=1.0)
    batch_size: int = opt(64, "retain samples per step (the forget samples of a step come on top)", min=2, max=4096)
    retain_fraction: float = opt(0.3, "share of D_r replayed per epoch", min=0.01, max=1.0)
    weighting: Literal["separate", "pooled"] = opt(
        "separate",
        "loss weighting: separate (mean of each half, added) or pooled (one mean over every sample of the batch)",
    )
    optimizer: Literal["sgd", "adam"] = opt("sgd", "sgd (momentum 0.9, weight decay 5e-4) or adam")
    schedule: Literal["cosine", "constant"] = opt("cosine", "learning-rate schedule over the steps")


# loss(logits_r, y_r, logits_f, t_f, x_r, x_f) -> (retain sum, forget sum) of per-sample losses: the logits,
# labels and images of the step's retain batch (_r) and of its forget batch (_f, targets t_f: labels or soft
# targets). Both halves go through the model as one batch (batch-norm statistics see the mix); `combine`
# turns the two sums into the step's loss by the method's weighting.
LossFn = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    tuple[torch.Tensor, torch.Tensor],
]


def combine(retain_sum: torch.Tensor, forget_sum: torch.Tensor, n_retain: int, n_forget: int, weighting: str):
    """The step's loss from the summed per-sample losses of its two halves.

    separate: retain_sum / n_r + forget_sum / n_f (a forget sample weighs n_r / n_f retain samples);
    pooled:   (retain_sum + forget_sum) / (n_r + n_f) (every sample weighs the same).
    """
    if weighting == "pooled":
        return (retain_sum + forget_sum) / max(1, n_retain + n_forget)
    return retain_sum / max(1, n_retain) + forget_sum / max(1, n_forget)


def unlearn_loop(
    model: nn.Module,
    retain: tuple[torch.Tensor, torch.Tensor],
    forget: tuple[torch.Tensor, torch.Tensor],
    loss_fn: LossFn,
    cfg,
    device: torch.device,
    *,
    seed: int = 0,
    stage: str = "unlearn",
    progress: ProgressFn = None,
    should_stop=None,
    grad_mask: dict | None = None,
) -> nn.Module:
    """Run the shared loop on a deep copy of `model` and return the copy.

    Args: retain (x uint8/float in [0,1], y int64); forget (x, targets) where targets may be labels or
    soft targets, or empty tensors for methods that use no forget data; grad_mask: {parameter name: 0/1
    tensor} -- only masked-in weights are updated (SalUn).
    """
    model = copy.deepcopy(model).to(device).train()
    xr, yr = on_device(retain[0], device), on_device(retain[1], device)
    xf, tf = on_device(forget[0], device), on_device(forget[1], device)
    gen = generator(seed)
    n_r = max(2, int(math.ceil(cfg.retain_fraction * len(xr)))) if len(xr) else 0
    steps = max(1, math.ceil(max(n_r, len(xf)) / cfg.batch_size))
    opt_ = loop_optimizer(model, cfg)
    sched = make_schedule(opt_, cfg.schedule, cfg.epochs * steps)
    masks = {n: m.to(device) for n, m in (grad_mask or {}).items()}
    f_batch = max(1, math.ceil(len(xf) / steps))  # a small forget set is cycled so every step sees some of it
    f_order, f_pos = torch.randperm(len(xf), generator=gen), 0
    for epoch in range(cfg.epochs):
        r_perm = torch.randperm(len(xr), generator=gen)[:n_r] if len(xr) else torch.empty(0, dtype=torch.long)
        for s in range(steps):
            ri = r_perm[s * n_r // steps : (s + 1) * n_r // steps].to(device)
            if f_pos + f_batch > len(xf):
                f_order, f_pos = torch.randperm(len(xf), generator=gen), 0
            fi = f_order[f_pos : f_pos + f_batch].to(device)
            f_pos += f_batch
            if len(ri) == 1:  # batch norm cannot train on a single sample
                ri = ri[:0]
            if len(ri) == 0 and len(fi) < 2:
                continue
            xb_r, xb_f = to_float(xr[ri]), to_float(xf[fi])
            with autocast(device):
                out = model(torch.cat([xb_r, xb_f])).float()
                retain_sum, forget_sum = loss_fn(out[: len(ri)], yr[ri], out[len(ri) :], tf[fi], xb_r, xb_f)
                loss = combine(retain_sum, forget_sum, len(ri), len(fi), cfg.weighting)
            check_finite(loss, stage, epoch)
            opt_.zero_grad(set_to_none=True)
            loss.backward()
            for name, p in model.named_parameters():
                if name in masks and p.grad is not None:
                    p.grad.mul_(masks[name])
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt_.step()
            sched.step()
        end_epoch(stage, epoch, cfg.epochs, progress, should_stop)
    return model.eval()


def end_epoch(stage: str, epoch: int, epochs: int, progress=None, should_stop=None) -> None:
    """What every unlearning loop does after an epoch: report it, then give a cancel request its chance."""
    if progress:
        progress(Progress(stage, (epoch + 1) / epochs, f"epoch {epoch + 1}/{epochs}"))
    if should_stop is not None:
        should_stop()


def loop_optimizer(model: nn.Module, cfg) -> torch.optim.Optimizer:
    """The unlearning loop's optimizer (cfg.optimizer, cfg.lr): Adam, or SGD as in training (train.make_optimizer:
    momentum 0.9, weight decay 5e-4)."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr)
    return make_optimizer(model, cfg.lr)


def retain_forget_tensors(
    task: UnlearnTask,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(x, y) of D_r and of D_f, as uint8 images and int64 labels."""
    r = torch.as_tensor(task.remain_ids)
    f = torch.as_tensor(task.forget.ids)
    return (task.data.x[r], task.data.y[r]), (task.data.x[f], task.data.y[f])


def random_wrong_labels(y: torch.Tensor, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """A uniformly random label different from y, per sample."""
    shift = torch.randint(1, num_classes, y.shape, generator=gen).to(y.device)
    return (y + shift) % num_classes


def ce_sum(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy (zero for an empty batch)."""
    if len(y) == 0:
        return logits.sum() * 0.0
    return nn.functional.cross_entropy(logits, y, reduction="sum")


def ascent_term(logits: torch.Tensor, y: torch.Tensor, cap: float) -> torch.Tensor:
    """Minus the summed forget loss, clamped per sample so the gradient vanishes past `cap` (negative gradient:
    the NG baseline and TMU's neggrad mechanism)."""
    if len(y) == 0:
        return logits.sum() * 0.0
    return -nn.functional.cross_entropy(logits, y, reduction="none").clamp(max=cap).sum()


def saliency_mask(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, ratio: float, device, batch: int = 256
) -> dict[str, torch.Tensor]:
    """SalUn's weight saliency (its baseline, and TMU's `saliency` option). {parameter name: 0/1 mask}: 1 for the int(ratio * n) weights with the largest |d CE(D_f) / d w|, the CE
    a mean over each batch of `batch` samples, summed over batches (their generate_mask.py, without its sign:
    |gradient| is the same for the loss and its negative)."""
    model = copy.deepcopy(model).to(device).eval()  # cached models are shared: not even their .grad is touched
    for i in range(0, len(x), batch):
        xb, yb = to_float(on_device(x[i : i + batch], device)), on_device(y[i : i + batch], device)
        nn.functional.cross_entropy(model(xb).float(), yb).backward()
    grads = {n: p.grad.detach().abs() for n, p in model.named_parameters() if p.grad is not None}
    flat = torch.cat([g.flatten() for g in grads.values()])
    k = max(1, int(ratio * len(flat)))
    chosen = torch.zeros(len(flat))
    chosen[torch.argsort(flat.cpu(), descending=True, stable=True)[:k]] = 1.0
    out, start = {}, 0
    for n, g in grads.items():
        out[n] = chosen[start : start + g.numel()].reshape(g.shape).to(g.device)
        start += g.numel()
    return out
