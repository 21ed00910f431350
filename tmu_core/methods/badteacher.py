"""Bad Teacher (Chundawat et al., "Can Bad Teaching Induce Forgetting? Unlearning in Deep Networks Using an
Incompetent Teacher", AAAI 2023; code: github.com/vikram2000b/bad-teaching-unlearning).

A student starting from M_o matches, by KL divergence, a randomly initialised "incompetent" teacher on D_f
and the competent M_o on a 30% sample of D_r, at temperature 1; Adam 1e-4, one epoch, batch 256. As in the
authors' code the retain sample and D_f form one shuffled pool and the loss is one mean of per-sample KL
terms over the batch ("pooled" weighting), so D_f is well under 1% of the loss. The loop spreads D_f evenly
over the steps instead of shuffling it into the pool, and keeps a constant learning rate, as Adam there does.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import opt
from ..references import new_model
from .loop import LoopConfig, retain_forget_tensors, unlearn_loop
from .registry import Display, Method, MethodResult, register


@dataclass(frozen=True)
class BadTeacherConfig(LoopConfig):
    """Student-teacher unlearning; the authors' setting is Adam 1e-4, one epoch, T = 1, 30% of D_r, batch 256."""

    temperature: float = opt(1.0, "distillation temperature", min=0.1, max=20.0)


def kl_to(student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float) -> torch.Tensor:
    """Summed KL(teacher || student) at temperature t (zero for an empty batch)."""
    if len(student_logits) == 0:
        return student_logits.sum() * 0.0
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.softmax(teacher_logits / t, 1), reduction="sum")


def run(task, cfg: BadTeacherConfig, device, progress=None):
    retain, forget = retain_forget_tensors(task)
    torch.manual_seed(task.seed + 17)
    bad = new_model(task.data, task.train_cfg).to(device).eval()
    good = task.original.to(device).eval()

    def loss(logits_r, y_r, logits_f, y_f, x_r, x_f):
        with torch.no_grad():
            competent = good(x_r).float()
            incompetent = bad(x_f).float()
        return kl_to(logits_r, competent, cfg.temperature), kl_to(logits_f, incompetent, cfg.temperature)

    return MethodResult(unlearn_loop(task.original, retain, forget, loss, cfg, device, seed=task.seed,
                                     stage="badteacher", progress=progress, should_stop=task.should_stop))


AUTHORS = {"lr": 1e-4, "epochs": 1, "retain_fraction": 0.3, "batch_size": 256, "weighting": "pooled",
           "optimizer": "adam", "schedule": "constant"}

register("badteacher", "Bad Teacher: KL to a random teacher on D_f and to M_o on 30% of D_r, one pooled mean",
         Method(BadTeacherConfig, run, lambda dataset: dict(AUTHORS), Display("Bad Teacher", "BT", "#00838f", 40)))
