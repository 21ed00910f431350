"""Twin Machine Unlearning (the paper's method), one function per stage, read top to bottom in `run`:

1. `twin_problem`: D_a (Eq. 3) from the aux pool, twin model M_t = M_o fine-tuned on D_a with replay;
   D_a's labels are free: easy = M_o classifies it correctly (M_o is the twin's gold model);
2. `features`: NF, AF, CF for D_a (on M_t) and D_f (on M_o);
3. `easy_hard_split`: scaling fitted on D_a; the MLP learns easy/hard on D_a and predicts it for D_f;
   `ablation` repeats it for every feature subset (paper Table 4, an audit extra);
4. `unlearn`: from M_o, retain loss on replayed D_r plus predicted-easy D_f, the forget mechanism
   (random wrong labels or bounded negative gradient) on predicted-hard D_f only.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..config import TrainConfig
from ..data import to_float
from ..methods.loop import UnlearnTask, ce_sum, random_wrong_labels, unlearn_loop
from ..methods.neggrad import ascent_term
from ..methods.registry import MethodResult
from ..references import new_model
from ..train import Progress, generator, predict
from .attacks import adversarial_feature
from .classifier import EasyHardClassifier, feature_subsets, train_classifier
from .config import FeatureConfig, TMUConfig, TwinConfig, UnlearnConfig
from .features import FEATURES, Scaler, curriculum_losses, nearest_distance
from .report import TMUReport
from .twin import AuxSet, build_aux, generalization_labels, train_twin


class StageClock:
    """Per-stage wall time; after each stage reports progress and honours a cancel request."""

    def __init__(self, task: UnlearnTask, progress):
        self.task, self.progress, self.seconds, self.tick = task, progress, {}, time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self.tick
        self.tick = now
        if self.progress:
            self.progress(Progress(f"tmu:{stage}", 1.0, "done"))
        if self.task.should_stop:
            self.task.should_stop()

    def sub(self, stage: str):
        """A progress callback that reports a sub-stage's fractions under `tmu:<stage>`."""
        return (lambda p: self.progress(Progress(f"tmu:{stage}", p.fraction, p.message))) if self.progress else None


@dataclass(frozen=True)
class TwinProblem:
    aux: AuxSet
    model: torch.nn.Module  # M_t
    labels: np.ndarray  # 1 = easy for M_o
    fidelity: dict  # how well M_t fits D_a against how well M_o fits D_f (the twin should mirror the real problem)


def fit_of(model, x, label: int, device) -> tuple[float, float]:
    """(accuracy %, mean cross-entropy) of `model` on images `x`, all of class `label`."""
    logits = predict(model, x, device)
    y = torch.full((len(x),), label, dtype=torch.long)
    return 100.0 * float((logits.argmax(1) == y).float().mean()), float(F.cross_entropy(logits, y))


def twin_fidelity(task: UnlearnTask, twin_model, aux: AuxSet, device) -> dict:
    c = task.forget.class_index
    t_acc, t_loss = fit_of(twin_model, aux.x, c, device)
    o_acc, o_loss = fit_of(task.original, to_float(task.data.x[torch.as_tensor(task.forget.ids)]), c, device)
    return {"twin_acc_aux": t_acc, "twin_loss_aux": t_loss, "original_acc_forget": o_acc, "original_loss_forget": o_loss}


@dataclass(frozen=True)
class Split:
    p_easy_a: np.ndarray
    p_easy_f: np.ndarray
    pred_a: np.ndarray
    pred_f: np.ndarray
    classifier: EasyHardClassifier


def twin_problem(task: UnlearnTask, cfg: TwinConfig, device, progress) -> TwinProblem:
    aux = build_aux(task.data, task.forget, task.seed, cfg.aux_max_factor, allow_flip=task.train_cfg.augment != "none",
                    size_scale=cfg.aux_scale)
    twin_cfg = TrainConfig(model=task.train_cfg.model, epochs=cfg.twin_epochs, batch_size=task.train_cfg.batch_size,
                           lr=cfg.twin_lr, schedule="cosine", augment="none")
    twin = train_twin(task.original, task.data, task.forget, aux, twin_cfg, cfg.twin_replay, device, task.seed,
                      progress=progress)
    return TwinProblem(aux, twin, generalization_labels(task.original, aux.x, task.forget.class_index, device),
                       twin_fidelity(task, twin, aux, device))


def features(task: UnlearnTask, twin: TwinProblem, cfg: FeatureConfig, device, clock: StageClock):
    """Raw NF, AF, CF of D_a (twin problem: M_t, class c of D_r ∪ D_f) and of D_f (real: M_o, class c of D_r)."""
    data, forget, original = task.data, task.forget, task.original
    xf = to_float(data.x[torch.as_tensor(forget.ids)])
    ref_twin = data.x[torch.as_tensor(data.class_ids(forget.class_index))]
    ref_real = data.x[torch.as_tensor(forget.remain_class_ids(data))]
    k = min(cfg.nf_k, len(ref_real))
    embed = lambda model, x: predict(model, x, device, what="embed")
    nf_a = nearest_distance(embed(twin.model, twin.aux.x), embed(twin.model, ref_twin), k, cfg.nf_distance, cfg.nf_normalize)
    nf_f = nearest_distance(embed(original, xf), embed(original, ref_real), k, cfg.nf_distance, cfg.nf_normalize)
    clock.lap("nf")
    step = cfg.pgd_eps * cfg.pgd_step_ratio
    af_a = adversarial_feature(twin.model, twin.aux.x, device, cfg.pgd_eps, cfg.pgd_steps, step)
    af_f = adversarial_feature(original, xf, device, cfg.pgd_eps, cfg.pgd_steps, step)
    clock.lap("af")
    cf_a, cf_f = curriculum_feature(task, twin.aux.x, xf, cfg, device)
    clock.lap("cf")
    return np.stack([nf_a.numpy(), af_a.numpy(), cf_a.numpy()], 1), np.stack([nf_f.numpy(), af_f.numpy(), cf_f.numpy()], 1)


def curriculum_feature(task: UnlearnTask, x_aux: torch.Tensor, xf: torch.Tensor, cfg: FeatureConfig, device):
    """CF: per-sample loss of a briefly trained from-scratch network (on a share of D_r; held out by default)."""
    data, c = task.data, task.forget.class_index
    rng = np.random.default_rng([task.seed, 59])
    remain = task.remain_ids
    part = torch.as_tensor(np.sort(rng.choice(remain, size=max(2, int(cfg.cf_fraction * len(remain))), replace=False)))
    if cfg.cf_held_out:
        x_cf, y_cf = to_float(data.x[part]), data.y[part]
    else:
        x_cf = torch.cat([to_float(data.x[part]), xf, x_aux])
        y_cf = torch.cat([data.y[part], torch.full((len(xf) + len(x_aux),), c, dtype=torch.long)])
    cf_cfg = TrainConfig(model=task.train_cfg.model, epochs=cfg.cf_epochs, batch_size=task.train_cfg.batch_size,
                         lr=cfg.cf_lr, schedule="constant", augment="none")
    return curriculum_losses(lambda: new_model(data, task.train_cfg), x_cf, y_cf, [(x_aux, c), (xf, c)],
                             cf_cfg, device, task.seed)


def _columns(names) -> list[int]:
    return [FEATURES.index(n) for n in names]


def easy_hard_split(sa: np.ndarray, sf: np.ndarray, twin: TwinProblem, cfg: TMUConfig, seed: int) -> Split:
    """Train the MLP on the scaled twin features and predict D_f (1 = easy)."""
    cols = _columns(cfg.features.features)
    n_eff = len(np.unique(twin.aux.source_ids))  # augmented copies of one image are not independent evidence
    clf = train_classifier(sa[:, cols], twin.labels, cfg.classifier, seed, n_eff)
    p_easy_f, p_easy_a = clf.p_easy(sf[:, cols]), clf.p_easy(sa[:, cols])
    pred_f, pred_a = clf.predict(sf[:, cols]), clf.predict(sa[:, cols])
    if clf.rule == "prior" and 0 < pred_f.sum() < len(pred_f):  # report the cut the rule placed on D_f
        clf.threshold = float((p_easy_f[pred_f == 0].max() + p_easy_f[pred_f == 1].min()) / 2)
    return Split(p_easy_a, p_easy_f, pred_a, pred_f, clf)


def ablation(sa: np.ndarray, sf: np.ndarray, twin: TwinProblem, cfg: TMUConfig, seed: int) -> dict:
    """Predicted D_f labels with every feature subset (paper Table 4): an audit extra, not needed to unlearn."""
    n_eff = len(np.unique(twin.aux.source_ids))
    out = {}
    for subset in feature_subsets(FEATURES):
        sub = train_classifier(sa[:, _columns(subset)], twin.labels, cfg.classifier, seed, n_eff)
        out["+".join(subset)] = sub.predict(sf[:, _columns(subset)])
    return out


def unlearn(task: UnlearnTask, pred_f: np.ndarray, cfg: UnlearnConfig, device, progress) -> torch.nn.Module:
    """Keep D_r and predicted-easy D_f (retain loss); apply the forget mechanism to predicted-hard D_f only."""
    data, forget = task.data, task.forget
    keep = torch.as_tensor(np.concatenate([task.remain_ids, forget.ids[pred_f == 1]]))
    hard = torch.as_tensor(forget.ids[pred_f == 0], dtype=torch.long)
    gen = generator(task.seed + 1)

    def forget_term(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if cfg.stop_when_forgotten and len(y):
            still = logits.detach().argmax(1) == y
            logits, y = logits[still], y[still]
        if cfg.mechanism == "neggrad":
            return ascent_term(logits, y, cfg.max_forget_loss)
        return ce_sum(logits, random_wrong_labels(y, data.num_classes, gen))

    loss = lambda lr, yr, lh, yh, xr, xh: (ce_sum(lr, yr), cfg.forget_weight * forget_term(lh, yh))
    return unlearn_loop(task.original, (data.x[keep], data.y[keep]), (data.x[hard], data.y[hard]), loss, cfg, device,
                        seed=task.seed, stage="tmu:unlearn", progress=progress, should_stop=task.should_stop)


def run(task: UnlearnTask, cfg: TMUConfig, device, progress=None) -> MethodResult:
    clock = StageClock(task, progress)
    twin = twin_problem(task, cfg.twin, device, clock.sub("twin"))
    clock.lap("twin")
    raw_a, raw_f = features(task, twin, cfg.features, device, clock)
    scaler = Scaler.fit(raw_a, cfg.features.scale_log, cfg.features.scale_clip)
    sa, sf = scaler.transform(raw_a), scaler.transform(raw_f)
    split = easy_hard_split(sa, sf, twin, cfg, task.seed)
    clock.lap("classifier")
    by_subset = ablation(sa, sf, twin, cfg, task.seed)
    clock.lap("ablation")
    model = unlearn(task, split.pred_f, cfg.unlearn, device, clock.sub("unlearn"))
    clock.lap("unlearn")
    clf = split.classifier
    return MethodResult(model, TMUReport(
        twin.aux, twin.labels, raw_a, raw_f, split.p_easy_a, split.pred_a, split.p_easy_f, split.pred_f,
        clf.threshold, clf.rule, clf.hard_rate, by_subset, list(cfg.features.features), clock.seconds,
        twin.fidelity, evidence_warnings(task, twin, cfg)))


THIN_TWIN = 20  # fewer distinct D_a images than this: the easy/hard classifier learns from too little


def evidence_warnings(task: UnlearnTask, twin: TwinProblem, cfg: TMUConfig) -> list[str]:
    """Plain-words warnings when the twin gives thin evidence, each with what would help."""
    out = []
    distinct = len(np.unique(twin.aux.source_ids))
    sizing = twin.aux.sizing
    if distinct < THIN_TWIN:
        out.append(f"the twin problem has only {distinct} distinct aux images of this class (under {THIN_TWIN}): "
                   "its easy/hard labels are thin evidence; a larger aux fraction (--aux-fraction) or a smaller "
                   "forget set would help")
    if sizing.get("capped"):
        out.append(f"D_a was capped at {sizing['used']} of the {sizing['requested']} samples Eq. 3 asks for "
                   f"({sizing['augmented']} augmented copies): a larger aux fraction or a smaller forget set would help")
    if int(twin.labels.sum()) == len(twin.labels):
        out.append("no aux sample is hard for the original model, so the classifier never saw a hard example: "
                   "TMU cannot call any sample hard on evidence; a larger aux fraction would help")
    n_ref = len(task.forget.remain_class_ids(task.data))
    if cfg.features.nf_k > n_ref:
        out.append(f"NF uses k = {n_ref} nearest neighbours instead of {cfg.features.nf_k}: the class keeps only "
                   f"{n_ref} training samples after forgetting")
    return out
