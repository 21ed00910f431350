"""The training engine: one loop for every model the project trains from scratch or fine-tunes.

SGD with momentum and weight decay, a cosine / step / constant schedule stepped per batch, optional
crop+flip augmentation, mixed precision on CUDA, and a `progress` callback. Data arrive as uint8 or float
tensors; on CUDA they are moved to the GPU once and batches are cut there.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TrainConfig
from .data import to_float
from .errors import TMUError, check_finite

log = logging.getLogger(__name__)

# Denormal floats make CPU convolutions crawl once a network has trained a while (measured: 3x slower
# batches of CIFAR images on 2 cores); flushing them to zero changes no result that matters.
torch.set_flush_denormal(True)


@dataclass(frozen=True)
class Progress:
    """What a long loop reports: stage name, fraction done in [0, 1], a short message."""

    stage: str
    fraction: float
    message: str = ""


ProgressFn = Callable[[Progress], None] | None


def pick_device(preference: str = "auto") -> torch.device:
    """CUDA, then Apple MPS, then CPU; an explicit preference is honoured when available."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TMUError(f"device '{preference}' was asked for but no CUDA GPU is available; use auto or cpu")
        index = preference.partition(":")[2]
        count = torch.cuda.device_count()
        if index and (not index.isdigit() or int(index) >= count):
            raise TMUError(
                f"device '{preference}' is not valid: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}"
            )
    if preference == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise TMUError("device 'mps' was asked for but Apple MPS is not available; use auto or cpu")
    return torch.device(preference)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def on_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return x if x.device == device else x.to(device)


def augment(x: torch.Tensor, mode: str, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip (and 4-pixel pad + crop) of a float batch, seeded by `gen`."""
    if mode == "none":
        return x
    n = len(x)
    flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    if mode == "crop_flip":
        pad = 4 if x.shape[-1] >= 16 else 1
        h, w = x.shape[-2:]
        xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
        x = torch.stack([xp[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    return x


def make_optimizer(model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def make_schedule(opt: torch.optim.Optimizer, schedule: str, total_steps: int):
    """Per-step multiplier: cosine to 0, or /10 at 50% and 75% (the paper's step schedule)."""
    total = max(1, total_steps)
    if schedule == "cosine":

        def fn(s):
            return 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    elif schedule == "step":

        def fn(s):
            return 1.0 if s < 0.5 * total else (0.1 if s < 0.75 * total else 0.01)
    else:

        def fn(s):
            return 1.0

    return torch.optim.lr_scheduler.LambdaLR(opt, fn)


def autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    device: torch.device,
    *,
    seed: int = 0,
    stage: str = "train",
    progress: ProgressFn = None,
    should_stop=None,
    done_when: Callable[[], bool] | None = None,
    check_every: int = 1,
) -> dict:
    """Train `model` in place with cross-entropy on (x, y).

    Args: x uint8 or float images in [0, 1], (N, C, H, W); y int64 labels (N,). `done_when()`, asked every
    `check_every` optimizer steps (the model in eval mode while it looks), ends training early when True.
    Returns: {"loss": last epoch's mean loss, "history": each epoch's mean loss, "epochs": epochs run (after an
    early stop by `done_when`, the epoch it stopped in counts), "steps": optimizer steps taken, "steps_per_epoch",
    "seconds": wall time}.
    """

    t0 = time.perf_counter()
    model.to(device).train()
    x, y = on_device(x, device), on_device(y, device)
    gen = generator(seed)
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    opt = make_optimizer(model, cfg.lr, cfg.momentum, cfg.weight_decay)
    sched = make_schedule(opt, cfg.schedule, cfg.epochs * steps_per_epoch)
    history, steps, finished = [], 0, False
    for epoch in range(cfg.epochs):
        perm = torch.randperm(len(x), generator=gen).to(device)
        total, count = 0.0, 0
        for start in range(0, len(x), cfg.batch_size):
            idx = perm[start : start + cfg.batch_size]
            if len(idx) < 2 and len(x) > 1:
                continue  # batch norm needs two samples
            xb = augment(to_float(x[idx]), cfg.augment, gen)
            with autocast(device):
                loss = F.cross_entropy(model(xb), y[idx], label_smoothing=cfg.label_smoothing)
            check_finite(loss, f"training of the {stage} model", epoch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            steps += 1
            if done_when is not None and steps % check_every == 0:
                finished = done_when()
                model.train()
                if finished:
                    break
        history.append(total / max(count, 1))
        if finished:
            break
        if progress:
            progress(
                Progress(stage, (epoch + 1) / cfg.epochs, f"epoch {epoch + 1}/{cfg.epochs} loss {history[-1]:.3f}")
            )
        if should_stop is not None:
            should_stop()
    model.eval()
    return {
        "loss": history[-1] if history else float("nan"),
        "history": history,
        "epochs": len(history),
        "steps": steps,
        "steps_per_epoch": steps_per_epoch,
        "seconds": time.perf_counter() - t0,
    }


@torch.no_grad()
def predict(
    model: nn.Module, x: torch.Tensor, device: torch.device, batch: int = 1024, what: str = "logits"
) -> torch.Tensor:
    """Logits (or `what="embed"`: penultimate activations) for x, in eval mode, as float32 on the CPU."""
    model.to(device).eval()
    outs = []
    for start in range(0, len(x), batch):
        xb = to_float(on_device(x[start : start + batch], device))
        with autocast(device):
            out = model.embed(xb) if what == "embed" else model(xb)
        outs.append(out.float().cpu())
    if not outs:
        return torch.empty(0)
    return torch.cat(outs)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    """Top-1 accuracy in percent (nan for an empty set)."""
    if len(x) == 0:
        return float("nan")
    return 100.0 * float((predict(model, x, device).argmax(1) == y.cpu()).float().mean())
