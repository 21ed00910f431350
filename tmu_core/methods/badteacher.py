"""Bad Teacher (Chundawat et al. 2023): a student starting from M_o matches, by KL divergence, a randomly
initialised "incompetent" teacher on D_f and the competent M_o on a 30% sample of D_r (T = 1, Adam)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import opt
from ..references import new_model
from .registry import Display, Method, MethodResult, register
from .loop import LoopConfig, retain_forget_tensors, unlearn_loop


@dataclass(frozen=True)
class BadTeacherConfig(LoopConfig):
    """Student-teacher unlearning; the paper's setting is Adam 1e-4, one epoch, T = 1, 30% of D_r."""

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

    def loss(lr, yr, lf, yf, xr, xf):
        with torch.no_grad():
            competent = good(xr).float()
            incompetent = bad(xf).float()
        return kl_to(lr, competent, cfg.temperature), kl_to(lf, incompetent, cfg.temperature)

    return MethodResult(unlearn_loop(task.original, retain, forget, loss, cfg, device, seed=task.seed, stage="badteacher",
                        progress=progress, optimizer="adam", should_stop=task.should_stop))


register("badteacher", "Bad Teacher: KL to a random teacher on D_f and to M_o on 30% of D_r",
         Method(BadTeacherConfig, run, lambda dataset: {"lr": 1e-4, "epochs": 1, "retain_fraction": 0.3}, Display("Bad Teacher", "BT", "#00838f", 40)))
