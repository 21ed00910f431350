"""Negative Gradient baseline: ascend the loss on D_f while replaying D_r to keep utility.

The ascent term is bounded (the forget loss is clamped at `max_forget_loss`), so it cannot blow up.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import opt
from . import METHODS, Method
from .loop import LoopConfig, batch_ce, retain_forget_tensors, unlearn_loop


@dataclass(frozen=True)
class NegGradConfig(LoopConfig):
    """Negative gradient on D_f + cross-entropy on replayed D_r."""

    forget_weight: float = opt(1.0, "weight of the ascent term", min=0.0, max=100.0)
    max_forget_loss: float = opt(5.0, "the ascent stops pushing a sample once its loss exceeds this", min=0.1, max=100.0)


def ascent_term(model, xf, yf, cap: float) -> torch.Tensor:
    """Minus the forget loss, clamped per sample so the gradient vanishes past `cap`."""
    if len(xf) == 0:
        return torch.zeros((), device=yf.device)
    return -F.cross_entropy(model(xf), yf, reduction="none").clamp(max=cap).mean()


def run(task, cfg: NegGradConfig, device, progress=None):
    retain, forget = retain_forget_tensors(task)
    loss = lambda m, xr, yr, xf, yf: batch_ce(m, xr, yr) + cfg.forget_weight * ascent_term(m, xf, yf, cfg.max_forget_loss)
    return unlearn_loop(task.original, retain, forget, loss, cfg, device, seed=task.seed, stage="neggrad",
                        progress=progress, should_stop=task.should_stop)


METHODS.register("neggrad", "negative gradient: ascend the (bounded) loss on D_f, replay D_r")(
    Method(NegGradConfig, run, lambda dataset: {}))
