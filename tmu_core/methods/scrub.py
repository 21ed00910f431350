"""SCRUB (Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023; code: github.com/meghdadk/SCRUB).

The student starts at M_o, the teacher is M_o. Each epoch first (for the first `msteps` epochs) makes
max-steps over D_f that raise KL(teacher || student), then min-steps over D_r that lower
gamma * CE + alpha * KL(teacher || student); KL at temperature T, scaled by T^2 as in their DistillKL, each
a mean over its own batch. Settings from their large_scale_unlearning.ipynb (the notebook of their CIFAR-10
experiments; its "SCRUB Forgetting" cells): T 4, gamma 0.99, alpha 0.001, msteps 2, 3 epochs, SGD lr 5e-4,
momentum 0.9, weight decay 5e-4 (its decay epochs 3/5/9 fall after the last), no clipping, the whole retain set
each epoch. Batches: that notebook's args cell sets sgda_batch_size 128 and del_batch_size 32, but nothing
reads them; the loaders its SCRUB loop steps through were built earlier with batch 256 (D_r) and 512 (D_f),
so those are the defaults here (--scrub-batch-size 128 --scrub-forget-batch-size 32 gives the args cell's).
Their small_scale_unlearning.ipynb uses other settings (Adam, gamma 1, alpha 0.5, msteps 3, T 2, 10 epochs).
The alternating max/min passes do not fit the shared loop's mixed batches, so SCRUB runs its own two passes
with the loop's helpers. Remaining deviations: this project's small_cnn and CIFAR copy instead of their
ResNet/All-CNN on CIFAR-10; a batch of one sample is skipped (batch norm cannot train on it).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from ..config import opt
from ..data import to_float
from ..train import autocast, generator, on_device
from ..unlearn.loop import LoopConfig, end_epoch, loop_optimizer, retain_forget_tensors
from ..unlearn.registry import Display, Method, MethodResult, register


class ScrubConfig(LoopConfig):
    """SCRUB's settings (the loop's weighting field is unused: its two passes are separate by design)."""

    temperature: float = opt(4.0, "distillation temperature T", min=0.1, max=20.0)
    gamma: float = opt(0.99, "weight of the cross-entropy on D_r in a min-step", min=0.0, max=10.0)
    alpha: float = opt(0.001, "weight of KL(teacher || student) on D_r in a min-step", min=0.0, max=10.0)
    msteps: int = opt(2, "epochs that start with a max-step pass over D_f", min=0, max=100)
    forget_batch_size: int = opt(512, "D_f batch size of a max-step", min=1, max=4096)


def distill_kl(student: torch.Tensor, teacher: torch.Tensor, t: float) -> torch.Tensor:
    """KL(teacher || student) at temperature t, times t^2, averaged over the batch (SCRUB's DistillKL)."""
    return F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1), reduction="batchmean") * t * t


def _pass(student, teacher, opt_, x, y, batch, loss_of, device, gen) -> None:
    for idx in torch.randperm(len(x), generator=gen).split(batch):
        if len(idx) < 2:  # batch norm cannot train on a single sample
            continue
        xb, yb = to_float(on_device(x[idx], device)), on_device(y[idx], device)
        with torch.no_grad():
            t_out = teacher(xb).float()
        with autocast(device):
            loss = loss_of(student(xb).float(), t_out, yb)
        opt_.zero_grad(set_to_none=True)
        loss.backward()
        opt_.step()


def run(task, cfg: ScrubConfig, device, progress=None):
    (xr, yr), (xf, yf) = retain_forget_tensors(task)
    teacher = task.original.to(device).eval()
    student = copy.deepcopy(task.original).to(device).train()
    opt_ = loop_optimizer(student, cfg)
    gen = generator(task.seed + 23)
    t = cfg.temperature
    n_r = max(2, int(round(cfg.retain_fraction * len(xr))))
    for epoch in range(cfg.epochs):
        if epoch < cfg.msteps:
            _pass(
                student,
                teacher,
                opt_,
                xf,
                yf,
                cfg.forget_batch_size,
                lambda s, te, y: -distill_kl(s, te, t),
                device,
                gen,
            )
        keep = torch.randperm(len(xr), generator=gen)[:n_r]
        _pass(
            student,
            teacher,
            opt_,
            xr[keep],
            yr[keep],
            cfg.batch_size,
            lambda s, te, y: cfg.gamma * F.cross_entropy(s, y) + cfg.alpha * distill_kl(s, te, t),
            device,
            gen,
        )
        end_epoch("scrub", epoch, cfg.epochs, progress, task.should_stop)
    return MethodResult(student.eval())


AUTHORS = {"lr": 5e-4, "epochs": 3, "batch_size": 256, "retain_fraction": 1.0, "schedule": "constant"}

register(
    "scrub",
    "SCRUB: max-steps raise KL to M_o on D_f, min-steps keep D_r (CE + KL), teacher M_o",
    Method(
        config_cls=ScrubConfig,
        run=run,
        defaults=lambda dataset: dict(AUTHORS),
        display=Display("SCRUB", "SCRUB", "#5d4037", 45),
    ),
)
