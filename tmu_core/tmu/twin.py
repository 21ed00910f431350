"""TMU's twin problem: an auxiliary forget set D_a whose gold model is known (it is M_o itself).

Eq. 3 keeps the forgetting ratio, counted within the forget class c:
    |D_a| / (|D_r^c| + |D_f|) = |D_f| / |D_r^c|   =>   |D_a| = |D_f| (|D_r^c| + |D_f|) / |D_r^c|.
D_a comes from the aux pool of class c (never trained on): sampled when the pool is long, augmented
with mild transforms (that do not change how hard a sample is) when it is short, up to a capped factor.
The twin model M_t is M_o fine-tuned until it has learned D_a, with replay from D_r ∪ D_f: for a fixed number
of epochs, or (twin_fit = match) until, looked at after every step, its loss on D_a is no higher than M_o's on D_f.
Several twins (bags) can be drawn, disjoint while the aux pool allows, and their labelled samples pooled.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..config import TrainConfig
from ..data import Dataset, ForgetSet, to_float
from ..train import ProgressFn, fit, generator, predict


def eq3_size(n_forget: int, n_remain_class: int) -> int:
    """|D_a| from Eq. 3 with within-class counts (n_remain_class = |D_r^c| >= 1)."""
    return int(round(n_forget * (n_remain_class + n_forget) / max(1, n_remain_class)))


@dataclass
class AuxSet:
    """D_a: images (float, [0,1]), the aux id each came from, whether it is an augmented copy."""

    x: torch.Tensor
    source_ids: np.ndarray
    augmented: np.ndarray
    sizing: dict  # requested / available / augmented / used / capped / factor


def mild_augment(x: torch.Tensor, gen: torch.Generator, allow_flip: bool) -> torch.Tensor:
    """Small rotation (<= 4 degrees), sub-pixel shift (<= 0.2 px), light noise; flips only where allowed.

    Measured on digits: stronger transforms (8 degrees, 0.35 px) made M_o wrong on up to 20% of the copies of
    a class it gets 93-100% right, i.e. they changed how hard a sample is; these keep it within ~1 point.
    """
    n, _, h, w = x.shape
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(4)
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (0.2 * 2 / torch.tensor([w, h]))
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    out = out + torch.randn(out.shape, generator=gen) * 0.005
    if allow_flip:
        flip = torch.rand(n, generator=gen) < 0.5
        out = torch.where(flip.view(-1, 1, 1, 1), out.flip(3), out)
    return out.clamp(0, 1)


def build_aux(
    data: Dataset,
    forget: ForgetSet,
    seed: int,
    max_factor: float,
    allow_flip: bool,
    size_scale: float = 1.0,
    exclude: np.ndarray | None = None,
) -> AuxSet:
    """Draw D_a of Eq. 3's size from the aux pool of the forget class (sample or augment); aux ids in `exclude`
    (earlier bags) are left out while the rest of the pool still holds a full-size D_a."""
    pool = data.class_ids(forget.class_index, pool="aux")
    n_rc = len(forget.remain_class_ids(data))
    requested = max(1, int(round(size_scale * eq3_size(len(forget.ids), n_rc))))
    if exclude is not None and len(np.setdiff1d(pool, exclude)) >= requested:
        pool = np.setdiff1d(pool, exclude)
    available = len(pool)
    rng = np.random.default_rng([seed, 31])
    gen = generator(seed + 31)
    if available >= requested:
        ids = np.sort(rng.choice(pool, size=requested, replace=False))
        x = to_float(data.x[torch.as_tensor(ids)])
        aug = np.zeros(len(ids), dtype=bool)
    else:
        target = min(requested, int(math.floor(available * max_factor)))
        extra = target - available
        ids_extra = rng.choice(pool, size=extra, replace=True) if extra > 0 else np.empty(0, dtype=np.int64)
        base = to_float(data.x[torch.as_tensor(pool)])
        x_extra = mild_augment(to_float(data.x[torch.as_tensor(ids_extra)]), gen, allow_flip) if extra > 0 else base[:0]
        x = torch.cat([base, x_extra])
        ids = np.concatenate([pool, ids_extra])
        aug = np.concatenate([np.zeros(available, bool), np.ones(len(ids_extra), bool)])
    sizing = {
        "requested": requested,
        "available": available,
        "augmented": int(aug.sum()),
        "used": int(len(ids)),
        "capped": bool(len(ids) < requested),
        "max_factor": max_factor,
        "remain_class": n_rc,
        "forget": int(len(forget.ids)),
    }
    return AuxSet(x, ids.astype(np.int64), aug, sizing)


def concat_aux(bags: list[AuxSet]) -> AuxSet:
    """One D_a from several bags (the first bag's sizing, plus how many bags and samples in all)."""
    if len(bags) == 1:
        return bags[0]
    sizing = {**bags[0].sizing, "bags": len(bags), "pooled": int(sum(len(b.x) for b in bags))}
    return AuxSet(
        torch.cat([b.x for b in bags]),
        np.concatenate([b.source_ids for b in bags]),
        np.concatenate([b.augmented for b in bags]),
        sizing,
    )


def fit_of(model, x, label: int, device) -> tuple[float, float]:
    """(accuracy %, mean cross-entropy) of `model` on images `x`, all of class `label`."""
    logits = predict(model, x, device)
    y = torch.full((len(x),), label, dtype=torch.long)
    return 100.0 * float((logits.argmax(1) == y).float().mean()), float(F.cross_entropy(logits, y))


def train_twin(
    original: torch.nn.Module,
    data: Dataset,
    forget: ForgetSet,
    aux: AuxSet,
    cfg: TrainConfig,
    replay: float,
    device: torch.device,
    seed: int,
    progress: ProgressFn = None,
    until_loss: float | None = None,
) -> tuple[torch.nn.Module, float]:
    """M_t: M_o fine-tuned on D_a plus `replay` x |D_a| samples of D_r ∪ D_f, so it does not collapse onto c.

    With `until_loss`, one constant-rate run of at most cfg.epochs epochs that stops after the first optimizer
    step at which M_t's mean loss on D_a is at most `until_loss` (M_o's on D_f): on the CIFAR copy one epoch
    already fits D_a at 90% where M_o fits cat's D_f at 67%, and even a quarter epoch (2 steps) reaches 80%, so
    it looks after every step (a forward pass over D_a). Returns M_t and the epochs it took."""
    rng = np.random.default_rng([seed, 41])
    n_replay = min(len(data.train_ids), int(math.ceil(replay * len(aux.x))))
    replay_ids = torch.as_tensor(np.sort(rng.choice(data.train_ids, size=n_replay, replace=False)))
    x = torch.cat([aux.x, to_float(data.x[replay_ids])])
    y = torch.cat([torch.full((len(aux.x),), forget.class_index, dtype=torch.long), data.y[replay_ids]])
    twin = copy.deepcopy(original)
    if until_loss is None:
        fit(twin, x, y, cfg, device, seed=seed, stage="twin", progress=progress)
        return twin, cfg.epochs
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    done = lambda: fit_of(twin, aux.x, forget.class_index, device)[1] <= until_loss  # noqa: E731
    out = fit(
        twin,
        x,
        y,
        cfg.model_copy(update={"schedule": "constant"}),
        device,
        seed=seed,
        stage="twin",
        progress=progress,
        done_when=done,
        check_every=1,
    )
    return twin, round(out["steps"] / steps_per_epoch, 2)


def generalization_labels(model: torch.nn.Module, x: torch.Tensor, label: int, device: torch.device) -> np.ndarray:
    """1 = easy (the model classifies the sample correctly), 0 = hard."""
    return (predict(model, x, device).argmax(1) == label).numpy().astype(np.int64)
