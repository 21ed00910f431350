"""Bad Teacher (Chundawat et al., "Can Bad Teaching Induce Forgetting? Unlearning in Deep Networks Using an
Incompetent Teacher", AAAI 2023; code: github.com/vikram2000b/bad-teaching-unlearning, unlearn.py
`blindspot_unlearner` as its notebook calls it).

As their code runs it: the student starts from M_o (in training mode); a randomly initialised "incompetent"
teacher (eval mode) is the target on D_f and the competent M_o (eval mode) on a 30% sample of D_r, drawn once.
The retain sample and all of D_f form one pool, shuffled every epoch and cut into batches of 256 (the last
one partial), so every D_f sample gets the bad teacher's target once per epoch. A step's loss is their
F.kl_div(log_softmax(student / T), softmax(teacher / T)) with its default reduction, the mean over the batch's
samples and classes, so D_f weighs by its share of the pool (100 of ~1,570 on the CIFAR copy). Adam lr 1e-4,
one epoch, T = 1, no schedule, no gradient clipping.

Remaining deviations, and why:
- Model and data: this project's small_cnn on its CIFAR copy (their ResNet-18 on CIFAR-100 super-classes);
  the incompetent teacher is a fresh, untrained network of the same architecture, as theirs is.
- A batch of a single sample (pool size one more than a multiple of 256) is skipped, as batch norm cannot
  train on it; theirs would take the step.
- Random generators (the retain sample, the shuffles, the bad teacher's weights) are seeded from the run's
  seed.

Why its A_f sits below gold's on automobile (48-60 vs 72-80 in the earlier CIFAR files) and truck (50 vs 70): it
forgets the class, not the samples. Measured with this code on the CIFAR copy (500 per class, |D_f| = 100,
seeds 0-2, the cached M_o and class-1 gold): the untrained teacher's output on D_f is uniform (entropy 2.30 =
ln 10, probability of the true class 0.10), so BT pulls D_f toward "no class". D_f looks like the rest of its
class, and in the pool it is matched about one to one by that class's retain images (30% of 400) that keep
M_o's targets, so one epoch moves the whole class half way: forgetting automobile, BT classifies the class's
remaining training images (D_r^c) right 47-48% of the time (M_o 94%, gold trained on them) and automobile test
images 32-33% (M_o 75%, gold 72%), and D_f at the same level (45-48; gold 78). Truck: D_f 50-54, truck test
images 38-39% (M_o 77%). Gold forgets only the samples, so its A_f is what the class's generalisation gives:
high on the classes a model generalises to best (automobile, truck: M_o's test accuracy 75-77%), where BT's
gap is largest, and low on hard ones (dog: M_o's test accuracy 54%, BT's A_f 42-47, near gold's), where BT
happens to land close. Their experiments forget whole classes, where this is the aim; on part of a class it is
over-forgetting, and the method is kept as its authors wrote it.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from ..config import Config, opt
from ..data import to_float
from ..errors import check_finite
from ..references import new_model
from ..train import autocast, generator, on_device
from ..unlearn.loop import end_epoch, retain_forget_tensors
from ..unlearn.registry import Display, Method, MethodResult, register


class BadTeacherConfig(Config):
    """Student-teacher unlearning at the authors' setting: Adam 1e-4, one epoch, T = 1, 30% of D_r, batch 256."""

    epochs: int = opt(1, "passes over the pool (the retain sample and all of D_f)", min=1, max=200)
    lr: float = opt(1e-4, "Adam learning rate (constant)", min=1e-6, max=1.0)
    batch_size: int = opt(256, "samples per step, drawn from the shuffled pool", min=2, max=4096)
    retain_fraction: float = opt(0.3, "share of D_r in the pool (drawn once)", min=0.01, max=1.0)
    temperature: float = opt(1.0, "distillation temperature", min=0.1, max=20.0)


def kl_to(student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float) -> torch.Tensor:
    """Summed KL(teacher || student) at temperature t (zero for an empty batch)."""
    if len(student_logits) == 0:
        return student_logits.sum() * 0.0
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.softmax(teacher_logits / t, 1), reduction="sum")


def bad_teacher(task, device) -> torch.nn.Module:
    """The incompetent teacher: an untrained network of the original's architecture, seeded by the run."""
    torch.manual_seed(task.seed + 17)
    return new_model(task.data, task.train_cfg).to(device).eval()


def targets(bad: torch.nn.Module, good: torch.nn.Module, xb: torch.Tensor, is_forget: torch.Tensor) -> torch.Tensor:
    """The teacher logits of a batch: the bad teacher's for D_f samples, M_o's for retain samples."""
    with torch.no_grad():
        return torch.where(is_forget[:, None], bad(xb).float(), good(xb).float())


def run(task, cfg: BadTeacherConfig, device, progress=None):
    (xr, _), (xf, _) = retain_forget_tensors(task)
    bad = bad_teacher(task, device)
    good = task.original.to(device).eval()
    student = copy.deepcopy(task.original).to(device).train()
    opt_ = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    gen = generator(task.seed)
    n_r = max(1, int(cfg.retain_fraction * len(xr))) if len(xr) else 0
    x = torch.cat([xf, xr[torch.randperm(len(xr), generator=gen)[:n_r]]])  # the pool: D_f first, as in theirs
    is_forget = torch.arange(len(x)) < len(xf)
    n_classes = task.data.num_classes
    for epoch in range(cfg.epochs):
        for idx in torch.randperm(len(x), generator=gen).split(cfg.batch_size):
            if len(idx) < 2:  # batch norm cannot train on a single sample
                continue
            xb, f = to_float(on_device(x[idx], device)), on_device(is_forget[idx], device)
            target = targets(bad, good, xb, f)
            with autocast(device):
                out = student(xb).float()
                loss = kl_to(out, target, cfg.temperature) / (len(idx) * n_classes)  # their kl_div "mean"
            check_finite(loss, "badteacher", epoch)
            opt_.zero_grad(set_to_none=True)
            loss.backward()
            opt_.step()
        end_epoch("badteacher", epoch, cfg.epochs, progress, task.should_stop)
    return MethodResult(student.eval())


register(
    "badteacher",
    "Bad Teacher: KL to a random teacher on D_f and to M_o on 30% of D_r, one shuffled pool",
    Method(
        config_cls=BadTeacherConfig,
        run=run,
        defaults=lambda dataset: {},
        display=Display("Bad Teacher", "BT", "#00838f", 40),
    ),
)
