"""TMU's unlearning step, and the twin problem choosing its settings.

The step starts from a model and keeps the retained images (replayed D_r, then the predicted-easy forget images)
while the forget mechanism acts on the predicted-hard ones (`unlearn_step`). It works on tensors, so the same
step runs on the real problem (M_o; D_r; D_f split by TMU) and on the twin (M_t; D_r ∪ D_f; D_a split by the
classifier's cross-fitted calls), whose gold is known: M_o itself, which never saw D_a.

`choose_step` (step_choice twin) runs each candidate setting on the twin and keeps the one whose result agrees
best, sample by sample, with M_o on D_a (at equal agreement, a clearly lower activation distance to M_o),
without reading the real gold. The candidates change the mechanism, soft targets and learning rate (`CANDIDATES`); the configured step is
always one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data import to_float
from ..evaluate.metrics import activation_distance, sample_agreement
from ..train import Progress, generator, predict
from ..unlearn.loop import ascent_term, ce_sum, random_wrong_labels, saliency_mask, unlearn_loop
from .config import UnlearnConfig

# name -> how the candidate differs from the configured step ("lr_scale" multiplies its learning rate)
CANDIDATES: dict[str, dict] = {
    "configured": {},
    "complement": {"mechanism": "complement"},
    "half lr": {"lr_scale": 0.5},
    "complement + distill": {"mechanism": "complement", "distill": True},
}


CLEARLY_NEARER = 0.10  # at equal agreement, a relative activation-distance gain smaller than this is no reason


@dataclass(frozen=True)
class StepData:
    """What one step sees: the replayed retain images and labels, then the forget images split in two (images
    uint8 or float in [0, 1]; labels int64)."""

    x_remain: torch.Tensor
    y_remain: torch.Tensor
    x_easy: torch.Tensor
    y_easy: torch.Tensor
    x_hard: torch.Tensor
    y_hard: torch.Tensor


def complement_targets(logits: torch.Tensor, y: torch.Tensor, temperature: float) -> torch.Tensor:
    """M_o's softmax at `temperature` with the true class removed and the rest renormalised: a guess that is
    wrong in the way M_o's own second choices are, instead of a uniformly random wrong label."""
    p = torch.softmax(logits.float() / temperature, 1)
    p = p.scatter(1, y.view(-1, 1), 0.0)
    return p / p.sum(1, keepdim=True).clamp_min(1e-12)


def soft_ce_sum(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy toward soft targets (rows of `target` sum to 1); zero for an empty batch."""
    if len(target) == 0:
        return logits.sum() * 0.0
    return -(target * torch.log_softmax(logits, 1)).sum()


def _cat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Two image tensors as one; uint8 and float ones meet as floats in [0, 1]."""
    if a.dtype != b.dtype:
        a, b = to_float(a), to_float(b)
    return torch.cat([a, b])


def unlearn_step(
    model: torch.nn.Module,
    sd: StepData,
    cfg: UnlearnConfig,
    device,
    *,
    num_classes: int,
    seed: int,
    progress=None,
    should_stop=None,
    teacher: torch.nn.Module | None = None,
    easy_temperature: float = 1.0,
    stage: str = "tmu:unlearn",
) -> torch.nn.Module:
    """One unlearning step from `model` (deep-copied, never changed): the retain loss on the replayed images and
    the predicted-easy ones (easy only with keep_easy), the mechanism on the predicted-hard ones.
    - mechanism: randlabel (random wrong labels), neggrad (bounded ascent), heldout_kl (KL toward `teacher`, a
      network that never saw the sample) or complement (`model`'s softmax without the true class, renormalised).
      With stop_when_forgotten a hard sample is pushed only while still right.
    - easy_target twin: predicted-easy images are kept toward softmax(model / easy_temperature); distill: the
      replayed images toward `model`'s softmax.
    - saliency > 0: only that share of the weights moves, those with the largest |gradient| of the forget loss
      on the predicted-hard set (SalUn's mask, computed on the hard set instead of all of D_f)."""
    x_easy, y_easy = (sd.x_easy, sd.y_easy) if cfg.keep_easy else (sd.x_easy[:0], sd.y_easy[:0])
    x_keep, y_keep = _cat(sd.x_remain, x_easy), torch.cat([sd.y_remain, y_easy])
    n_r, gen = len(sd.x_remain), generator(seed + 1)
    soft_keep = cfg.distill or cfg.easy_target == "twin"
    if soft_keep:  # per-sample soft targets of the retained samples
        target_keep = F.one_hot(y_keep, num_classes).float()
        if cfg.distill and n_r:
            target_keep[:n_r] = torch.softmax(predict(model, x_keep[:n_r], device).float(), 1)
        if cfg.easy_target == "twin" and len(x_easy):
            target_keep[n_r:] = torch.softmax(predict(model, x_easy, device).float() / easy_temperature, 1)
        retain = (x_keep, target_keep)
    else:
        retain = (x_keep, y_keep)
    if cfg.mechanism == "complement":  # soft targets fixed from the starting model, the label in the last column
        soft = torch.zeros(0, num_classes)
        if len(sd.x_hard):
            soft = complement_targets(predict(model, sd.x_hard, device).float(), sd.y_hard, cfg.complement_temperature)
        forget_set = (sd.x_hard, torch.cat([soft, sd.y_hard.float().view(-1, 1)], 1))
    else:
        forget_set = (sd.x_hard, sd.y_hard)
    mask = None
    if cfg.saliency > 0 and len(sd.x_hard):
        mask = saliency_mask(model, sd.x_hard, sd.y_hard, cfg.saliency, device)
    if cfg.mechanism == "heldout_kl" and teacher is None:
        raise ValueError("mechanism heldout_kl needs the held-out network as teacher")

    def forget_term(logits: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if cfg.mechanism == "heldout_kl":  # move toward what a network that never saw the sample predicts
            with torch.no_grad():
                target = torch.softmax(teacher(x).float(), 1)
            return F.kl_div(torch.log_softmax(logits, 1), target, reduction="sum")
        y = t[:, -1].long() if t.dim() == 2 else t
        if cfg.stop_when_forgotten and len(y):
            still = logits.detach().argmax(1) == y
            logits, y, t = logits[still], y[still], t[still]
        if cfg.mechanism == "complement":
            return soft_ce_sum(logits, t[:, :-1])
        if cfg.mechanism == "neggrad":
            return ascent_term(logits, y, cfg.max_forget_loss)
        return ce_sum(logits, random_wrong_labels(y, num_classes, gen))

    def loss(logits_r, t_r, logits_h, t_h, x_r, x_h):  # _r: the retained batch, _h: the predicted-hard batch
        retain_sum = soft_ce_sum(logits_r, t_r) if soft_keep else ce_sum(logits_r, t_r)
        return retain_sum, cfg.forget_weight * forget_term(logits_h, t_h, x_h)

    return unlearn_loop(
        model,
        retain,
        forget_set,
        loss,
        cfg,
        device,
        seed=seed,
        stage=stage,
        progress=progress,
        should_stop=should_stop,
        grad_mask=mask,
    )


def pick(scores: dict[str, dict]) -> str:
    """The candidate to use: "configured" unless another agrees with M_o on more D_a samples, or on as many with
    an activation distance more than CLEARLY_NEARER (relative) lower; the first such in `scores`' order wins ties."""
    chosen = "configured"
    for name, sc in scores.items():
        best = scores[chosen]
        if sc["agreement"] > best["agreement"] or (
            sc["agreement"] == best["agreement"]
            and sc["activation_distance"] < (1 - CLEARLY_NEARER) * best["activation_distance"]
        ):
            chosen = name
    return chosen


def candidate_config(cfg: UnlearnConfig, changes: dict) -> UnlearnConfig:
    """The configured step with one candidate's changes (lr_scale multiplies the learning rate)."""
    changes = dict(changes)
    if "lr_scale" in changes:
        changes["lr"] = cfg.lr * changes.pop("lr_scale")
    return cfg.model_copy(update={**changes, "step_choice": "fixed"})


def choose_step(
    original: torch.nn.Module,
    twin_model: torch.nn.Module,
    replay: tuple[torch.Tensor, torch.Tensor],
    x_aux: torch.Tensor,
    pred_aux: np.ndarray,
    class_index: int,
    cfg: UnlearnConfig,
    device,
    *,
    num_classes: int,
    seed: int,
    teacher: torch.nn.Module | None = None,
    easy_temperature: float = 1.0,
    should_stop=None,
    progress=None,
) -> dict:
    """Each candidate step run on the twin: from M_t (`twin_model`), keeping `replay` (M_t's training images
    other than D_a) and D_a's images the classifier called easy (`pred_aux` 1), forgetting those it called hard;
    scored against M_o (`original`, the twin's gold) on D_a: per-sample agreement (%), activation distance, the
    achieved A on D_a beside the asked (predicted-easy) share and M_o's. Returns {"chosen": name, "changes":
    its changes, "candidates": {name: scores}}. The configured step stays unless a candidate agrees with M_o on
    more D_a samples, or on as many with an activation distance over CLEARLY_NEARER lower."""
    y_aux = torch.full((len(x_aux),), class_index, dtype=torch.long)
    easy = torch.as_tensor(np.flatnonzero(pred_aux == 1), dtype=torch.long)
    hard = torch.as_tensor(np.flatnonzero(pred_aux == 0), dtype=torch.long)
    sd = StepData(replay[0], replay[1], x_aux[easy], y_aux[easy], x_aux[hard], y_aux[hard])
    gold_logits = predict(original, x_aux, device).float()
    gold_pred = gold_logits.argmax(1).numpy()
    scores = {}
    for k, (name, changes) in enumerate(CANDIDATES.items()):
        cand = candidate_config(cfg, changes)

        def each(p: Progress, k=k, name=name) -> None:  # one bar over all candidates, never going back
            progress(Progress(p.stage, (k + p.fraction) / len(CANDIDATES), f"{name} · {p.message}"))

        model = unlearn_step(
            twin_model,
            sd,
            cand,
            device,
            num_classes=num_classes,
            seed=seed,
            progress=each if progress else None,
            should_stop=should_stop,
            teacher=teacher,
            easy_temperature=easy_temperature,
            stage="tmu:step choice",
        )
        logits = predict(model, x_aux, device).float()
        pred = logits.argmax(1).numpy()
        scores[name] = {
            "agreement": round(sample_agreement(pred, gold_pred, y_aux.numpy()), 2),
            "activation_distance": round(
                activation_distance(torch.softmax(logits, 1), torch.softmax(gold_logits, 1)), 4
            ),
            "acc_aux": round(100.0 * float((pred == class_index).mean()), 2),
        }
    asked = round(100.0 * float((pred_aux == 1).mean()), 2) if len(pred_aux) else None
    gold_acc = round(100.0 * float((gold_pred == class_index).mean()), 2) if len(gold_pred) else None
    chosen = pick(scores)
    return {
        "chosen": chosen,
        "changes": CANDIDATES[chosen],
        "asked_acc_aux": asked,
        "gold_acc_aux": gold_acc,
        "aux_count": int(len(x_aux)),
        "candidates": scores,
    }
