"""Twin Machine Unlearning (the paper's method) as a registered method.

1. twin problem: D_a (Eq. 3) from the aux pool, twin model M_t = M_o fine-tuned on D_a with replay;
   D_a's labels are free: easy = M_o classifies it correctly (M_o is the twin's gold model);
2. features NF, AF, CF for D_a (on M_t) and D_f (on M_o); scaling fitted on D_a;
3. the MLP learns easy/hard on D_a and predicts it for D_f;
4. unlearning from M_o: retain loss on replayed D_r plus predicted-easy D_f, the forget mechanism
   (random wrong labels or bounded negative gradient) on predicted-hard D_f only.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, fields

import numpy as np
import torch

from ..attacks import adversarial_feature
from ..classifier import ClassifierConfig, feature_subsets, train_classifier
from ..config import TrainConfig, check_bounds, opt
from ..data import to_float
from ..features import FEATURES, Scaler, curriculum_losses, nearest_distance
from ..references import new_model
from ..train import Progress, generator, predict
from ..twin import build_aux, generalization_labels, train_twin
from . import METHODS, Method
from .loop import LoopConfig, ce_sum, random_wrong_labels, unlearn_loop
from .neggrad import ascent_term


@dataclass(frozen=True)
class TMUConfig(LoopConfig):
    """All of TMU's settings; the loop fields (epochs, lr, ...) drive the final unlearning step."""

    mechanism: str = opt("randlabel", "forget mechanism on predicted-hard samples", choices=("randlabel", "neggrad"))
    features: tuple[str, ...] = opt(FEATURES, "features the classifier uses (any of NF AF CF)")
    aux_scale: float = opt(1.0, "multiplier on Eq. 3's |D_a|", min=0.05, max=20.0)
    aux_max_factor: float = opt(4.0, "cap on augmentation: |D_a| <= factor x the aux pool of the class", min=1.0, max=100.0)
    twin_epochs: int = opt(4, "epochs fine-tuning M_o into the twin model", min=1, max=200)
    twin_lr: float = opt(0.01, "twin fine-tuning learning rate", min=1e-6, max=1.0)
    twin_replay: float = opt(3.0, "replayed D_r ∪ D_f samples per D_a sample while fine-tuning the twin", min=0.0, max=100.0)
    nf_k: int = opt(5, "NF: number of nearest neighbours averaged", min=1, max=1000)
    nf_distance: str = opt("euclidean", "NF distance", choices=("euclidean", "cosine"))
    nf_normalize: bool = opt(True, "NF: L2-normalise activations first")
    pgd_eps: float = opt(4 / 255, "AF: PGD budget in pixel units ([0,1] scale)", min=0.0, max=1.0)
    pgd_steps: int = opt(5, "AF: PGD steps", min=1, max=1000)
    pgd_step_ratio: float = opt(1 / 3, "AF: PGD step size as a share of eps", min=0.01, max=2.0)
    cf_epochs: int = opt(2, "CF: epochs of the from-scratch curriculum network", min=1, max=50)
    cf_fraction: float = opt(0.3, "CF: share of D_r it trains on (plus D_f and D_a unless held out)", min=0.01, max=1.0)
    cf_lr: float = opt(0.05, "CF: learning rate", min=1e-6, max=1.0)
    cf_held_out: bool = opt(True, "CF: train the curriculum network on D_r only, so it never sees D_f or D_a "
                                   "(its loss then measures how well the sample is predicted without being learned)")
    scale_log: bool = opt(True, "feature scaling: log1p before standardising")
    scale_clip: float = opt(5.0, "feature scaling: clip standardised values at +-this", min=0.5, max=100.0)
    clf_epochs: int = opt(100, "classifier epochs", min=1, max=10000)
    clf_lr: float = opt(0.01, "classifier learning rate", min=1e-5, max=1.0)
    clf_balance: bool = opt(True, "classifier: class-weighted loss")
    clf_threshold: str = opt("prior", "classifier decision: prior (as many hard as the twin's hard rate), auto "
                                      "(balanced accuracy on D_a) or 0.5", choices=("prior", "auto", "0.5"))
    forget_weight: float = opt(1.0, "weight of the forget term", min=0.0, max=100.0)
    max_forget_loss: float = opt(5.0, "neggrad mechanism: per-sample loss cap", min=0.1, max=100.0)
    stop_when_forgotten: bool = opt(True, "push a hard sample only while the model still classifies it correctly "
                                          "(the aim is gold's accuracy, not maximal damage)")

    def __post_init__(self):
        super().__post_init__()
        from ..errors import TMUError

        object.__setattr__(self, "features", tuple(self.features))
        bad = [f for f in self.features if f not in FEATURES]
        if bad or not self.features:
            raise TMUError(f"unknown feature(s) {bad}; choose from {', '.join(FEATURES)}")

    def classifier(self) -> ClassifierConfig:
        return ClassifierConfig(epochs=self.clf_epochs, lr=self.clf_lr, balance=self.clf_balance,
                                threshold=self.clf_threshold)


def _defaults(dataset: str) -> dict:
    if dataset == "digits":
        return {"pgd_eps": 16 / 255, "twin_epochs": 3, "epochs": 3, "retain_fraction": 0.5}
    if dataset in ("mnist", "fashion-mnist"):
        return {"pgd_eps": 8 / 255}
    return {}


def run(task, cfg: TMUConfig, device, progress=None):
    data, forget, seed = task.data, task.forget, task.seed
    c = forget.class_index
    stage_seconds: dict[str, float] = {}
    report = task.report
    tick = time.perf_counter()

    def lap(stage: str):
        nonlocal tick
        now = time.perf_counter()
        stage_seconds[stage] = stage_seconds.get(stage, 0.0) + now - tick
        tick = now
        if progress:
            progress(Progress(f"tmu:{stage}", 1.0, "done"))
        if task.should_stop:
            task.should_stop()

    # 1. twin problem
    aux = build_aux(data, forget, seed, cfg.aux_max_factor, allow_flip=task.train_cfg.augment != "none",
                    size_scale=cfg.aux_scale)
    twin_cfg = TrainConfig(model=task.train_cfg.model, epochs=cfg.twin_epochs, batch_size=task.train_cfg.batch_size,
                           lr=cfg.twin_lr, schedule="cosine", augment="none")
    twin = train_twin(task.original, data, forget, aux, twin_cfg, cfg.twin_replay, device, seed,
                      progress=(lambda p: progress(Progress("tmu:twin", p.fraction, p.message))) if progress else None)
    aux_labels = generalization_labels(task.original, aux.x, c, device)
    lap("twin")

    # 2. features
    xf = to_float(data.x[torch.as_tensor(forget.ids)])
    ref_twin = data.x[torch.as_tensor(data.class_ids(c))]  # class c of D_r ∪ D_f
    ref_real = data.x[torch.as_tensor(forget.remain_class_ids(data))]  # class c of D_r
    k = min(cfg.nf_k, len(ref_real))
    nf_a = nearest_distance(predict(twin, aux.x, device, what="embed"), predict(twin, ref_twin, device, what="embed"),
                            k, cfg.nf_distance, cfg.nf_normalize)
    nf_f = nearest_distance(predict(task.original, xf, device, what="embed"),
                            predict(task.original, ref_real, device, what="embed"), k, cfg.nf_distance, cfg.nf_normalize)
    lap("nf")
    step = cfg.pgd_eps * cfg.pgd_step_ratio
    af_a = adversarial_feature(twin, aux.x, device, cfg.pgd_eps, cfg.pgd_steps, step)
    af_f = adversarial_feature(task.original, xf, device, cfg.pgd_eps, cfg.pgd_steps, step)
    lap("af")
    rng = np.random.default_rng([seed, 59])
    remain = task.remain_ids
    part = torch.as_tensor(np.sort(rng.choice(remain, size=max(2, int(cfg.cf_fraction * len(remain))), replace=False)))
    if cfg.cf_held_out:
        x_cf, y_cf = to_float(data.x[part]), data.y[part]
    else:
        x_cf = torch.cat([to_float(data.x[part]), xf, aux.x])
        y_cf = torch.cat([data.y[part], torch.full((len(xf) + len(aux.x),), c, dtype=torch.long)])
    cf_cfg = TrainConfig(model=task.train_cfg.model, epochs=cfg.cf_epochs, batch_size=task.train_cfg.batch_size,
                         lr=cfg.cf_lr, schedule="constant", augment="none")
    cf_a, cf_f = curriculum_losses(lambda: new_model(data, task.train_cfg), x_cf, y_cf, [(aux.x, c), (xf, c)],
                                   cf_cfg, device, seed)
    lap("cf")

    # 3. classifier, trained on D_a, applied to D_f; plus the ablation over feature subsets
    raw_a = np.stack([nf_a.numpy(), af_a.numpy(), cf_a.numpy()], 1)
    raw_f = np.stack([nf_f.numpy(), af_f.numpy(), cf_f.numpy()], 1)
    scaler = Scaler.fit(raw_a, cfg.scale_log, cfg.scale_clip)
    sa, sf = scaler.transform(raw_a), scaler.transform(raw_f)
    cols = lambda names: [FEATURES.index(n) for n in names]
    clf_cfg = cfg.classifier()
    ablation = {}
    n_eff = len(np.unique(aux.source_ids))  # augmented copies of one image are not independent evidence
    clf = train_classifier(sa[:, cols(cfg.features)], aux_labels, clf_cfg, seed, n_eff)
    p_easy_f = clf.p_easy(sf[:, cols(cfg.features)])
    p_easy_a = clf.p_easy(sa[:, cols(cfg.features)])
    pred_f = clf.predict(sf[:, cols(cfg.features)])
    pred_a = clf.predict(sa[:, cols(cfg.features)])
    if clf.rule == "prior" and 0 < pred_f.sum() < len(pred_f):  # report the cut the rule placed on D_f
        clf.threshold = float((p_easy_f[pred_f == 0].max() + p_easy_f[pred_f == 1].min()) / 2)
    lap("classifier")
    for subset in feature_subsets(FEATURES):  # the audit's ablation (paper Table 4): not needed to unlearn
        sub = train_classifier(sa[:, cols(subset)], aux_labels, clf_cfg, seed, n_eff)
        ablation["+".join(subset)] = sub.predict(sf[:, cols(subset)])
    lap("ablation")

    # 4. unlearning: keep D_r and predicted-easy D_f, forget predicted-hard D_f
    easy_ids = forget.ids[pred_f == 1]
    hard_ids = forget.ids[pred_f == 0]
    keep = torch.as_tensor(np.concatenate([remain, easy_ids]))
    hard = torch.as_tensor(hard_ids, dtype=torch.long)
    retain = (data.x[keep], data.y[keep])
    forget_xy = (data.x[hard], data.y[hard])
    gen = generator(seed + 1)

    def forget_term(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if cfg.stop_when_forgotten and len(y):
            still = logits.detach().argmax(1) == y
            logits, y = logits[still], y[still]
        if cfg.mechanism == "neggrad":
            return ascent_term(logits, y, cfg.max_forget_loss)
        return ce_sum(logits, random_wrong_labels(y, data.num_classes, gen))

    loss = lambda lr, yr, lh, yh, xr, xh: (ce_sum(lr, yr), cfg.forget_weight * forget_term(lh, yh))
    sub_progress = (lambda p: progress(Progress("tmu:unlearn", p.fraction, p.message))) if progress else None
    model = unlearn_loop(task.original, retain, forget_xy, loss, cfg, device, seed=seed, stage="tmu:unlearn",
                         progress=sub_progress, should_stop=task.should_stop)
    lap("unlearn")

    report.update({
        "aux": aux, "aux_labels": aux_labels, "aux_raw": raw_a, "forget_raw": raw_f, "aux_p_easy": p_easy_a,
        "aux_pred": pred_a, "forget_p_easy": p_easy_f, "forget_pred": pred_f,
        "threshold": clf.threshold, "rule": clf.rule, "twin_hard_rate": clf.hard_rate, "ablation": ablation, "stage_seconds": stage_seconds,
        "features_used": list(cfg.features),
    })
    return model


METHODS.register("tmu", "Twin Machine Unlearning: predict easy/hard from a twin problem, unlearn only the hard samples")(
    Method(TMUConfig, run, _defaults))
