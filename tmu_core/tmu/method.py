"""Twin Machine Unlearning (the paper's method), one function per stage (`request.run` runs them per class):

1. `twin_problem`: D_a (Eq. 3) from the aux pool, twin model M_t = M_o fine-tuned on D_a with replay;
   D_a's labels are free: easy = M_o classifies it correctly (M_o is the twin's gold model);
   (optionally several twins, `twin_bags`, pooled);
2. `compute_features`: NF, AF, CF for D_a (on M_t) and D_f (on M_o); optionally HNF, HM from the held-out network;
3. `easy_hard_split`: scaling fitted on D_a; the MLP learns easy/hard on D_a and predicts it for D_f; its
   outputs are calibrated on cross-fitted twin samples into p(easy), which forecasts a retrain's A_f with an
   interval (tmu.forecast) (`predict_easy_hard` runs stages 1-3, for TMU and for the random_k control);
   `ablation` repeats it for every feature subset (paper Table 4, an audit extra);
4. `unlearn`: from M_o, retain loss on replayed D_r plus predicted-easy D_f, the forget mechanism
   (random wrong labels, bounded negative gradient, complement targets, or KL toward the held-out network) on
   predicted-hard D_f (`step.unlearn_step`); with step_choice twin, `step_on_twin` first picks the step's
   settings on the twin problem, whose gold M_o is known.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..config import TrainConfig
from ..data import to_float
from ..references import new_model
from ..train import Progress, predict
from ..unlearn.loop import UnlearnTask
from .attacks import adversarial_feature
from .classifier import Decision, EasyHardClassifier, balanced_threshold, decide, feature_subsets, train_classifier
from .config import FeatureConfig, TMUConfig, TwinConfig, UnlearnConfig
from .features import (
    ALL_FEATURES,
    FEATURES,
    HELD_OUT_FEATURES,
    PEER_FEATURES,
    Scaler,
    class_margin,
    curriculum_losses,
    nearest_distance,
)
from .forecast import Forecast, cross_fit, fit_calibrator, logit, predict_accuracy
from .influence import peer_score, self_influence
from .report import TMUReport
from .step import StepData, choose_step, unlearn_step
from .twin import AuxSet, build_aux, concat_aux, fit_of, generalization_labels, train_twin


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
    aux: AuxSet  # D_a: every bag's samples, concatenated
    models: list  # M_t of each bag
    bag: np.ndarray  # (|D_a|,) which bag (and so which M_t) each D_a sample belongs to
    labels: np.ndarray  # 1 = easy for M_o
    fidelity: dict  # how well M_t fits D_a against how well M_o fits D_f (the twin should mirror the real problem)


def twin_fidelity(task: UnlearnTask, twins: list, bags: list[AuxSet], epochs: list[int], device) -> dict:
    """M_t's accuracy and loss on its D_a (averaged over bags) beside M_o's on D_f, and the twin's epochs."""
    c = task.forget.class_index
    fits = np.array([fit_of(m, b.x, c, device) for m, b in zip(twins, bags)])
    o_acc, o_loss = fit_of(task.original, to_float(task.data.x[torch.as_tensor(task.forget.ids)]), c, device)
    return {
        "twin_acc_aux": float(fits[:, 0].mean()),
        "twin_loss_aux": float(fits[:, 1].mean()),
        "original_acc_forget": o_acc,
        "original_loss_forget": o_loss,
        "twin_epochs": float(np.mean(epochs)),
        "bags": len(bags),
    }


@dataclass(frozen=True)
class FeatureValues:
    """Raw (unscaled) features of D_a and D_f, one column per name, and the held-out network they may use."""

    names: tuple[str, ...]
    a: np.ndarray
    f: np.ndarray
    held_out: torch.nn.Module | None = None

    def columns(self, chosen) -> list[int]:
        return [self.names.index(n) for n in chosen]


@dataclass(frozen=True)
class Split:
    p_easy_a: np.ndarray  # calibrated, from held-out (cross-fitted) scores of D_a
    p_easy_f: np.ndarray  # calibrated
    pred_a: np.ndarray
    pred_f: np.ndarray
    classifier: EasyHardClassifier
    raw_f: np.ndarray | None = None  # the MLP's own output on D_f, before calibration
    decision: Decision | None = None
    forecast: Forecast | None = None  # predicted A_f of a retrain on D_f
    calibration: str = ""


def twin_problem(task: UnlearnTask, cfg: TwinConfig, device, progress) -> TwinProblem:
    """`cfg.twin_bags` twins: each an Eq. 3-sized D_a (later bags avoid earlier ones' images while the pool
    allows) and M_o fine-tuned on it; their samples and labels pooled."""
    c = task.forget.class_index
    xf = to_float(task.data.x[torch.as_tensor(task.forget.ids)])
    until = fit_of(task.original, xf, c, device)[1] if cfg.twin_fit == "match" else None
    twin_cfg = TrainConfig(
        model=task.train_cfg.model,
        epochs=cfg.twin_max_epochs if until is not None else cfg.twin_epochs,
        batch_size=task.train_cfg.batch_size,
        lr=cfg.twin_lr,
        schedule="cosine",
        augment="none",
    )
    bags, models, epochs = [], [], []
    for b in range(cfg.twin_bags):
        seed = task.seed + 1000 * b
        used = np.concatenate([x.source_ids for x in bags]) if bags else None
        bags.append(
            build_aux(
                task.data,
                task.forget,
                seed,
                cfg.aux_max_factor,
                size_scale=cfg.aux_scale,
                allow_flip=task.train_cfg.augment != "none",
                exclude=used,
            )
        )
        model, n = train_twin(
            task.original,
            task.data,
            task.forget,
            bags[-1],
            twin_cfg,
            cfg.twin_replay,
            device,
            seed,
            progress=progress,
            until_loss=until,
        )
        models.append(model)
        epochs.append(n)
    aux = concat_aux(bags)
    bag = np.concatenate([np.full(len(x.x), i) for i, x in enumerate(bags)])
    return TwinProblem(
        aux,
        models,
        bag,
        generalization_labels(task.original, aux.x, c, device),
        twin_fidelity(task, models, bags, epochs, device),
    )


def _per_bag(twin: TwinProblem, fn) -> torch.Tensor:
    """fn(M_t, x) on each bag's D_a with that bag's twin model, back in D_a's order."""
    out = torch.empty(len(twin.aux.x))
    for i, model in enumerate(twin.models):
        rows = torch.as_tensor(np.flatnonzero(twin.bag == i))
        out[rows] = fn(model, twin.aux.x[rows]).float()
    return out


def compute_features(
    task: UnlearnTask,
    twin: TwinProblem,
    cfg: FeatureConfig,
    device,
    clock: StageClock,
    held_out: torch.nn.Module | None = None,
) -> FeatureValues:
    """Raw NF, AF, CF of D_a (twin problem: M_t, class c of D_r ∪ D_f) and of D_f (real: M_o, class c of D_r),
    plus the held-out network's HNF and HM when asked for."""
    data, forget, original = task.data, task.forget, task.original
    xf = to_float(data.x[torch.as_tensor(forget.ids)])
    ref_twin = data.x[torch.as_tensor(data.class_ids(forget.class_index))]
    ref_real = data.x[torch.as_tensor(forget.remain_class_ids(data))]
    k = min(cfg.nf_k, len(ref_real))

    def embed(model, x):
        return predict(model, x, device, what="embed")

    def nf(model, x, ref):
        return nearest_distance(embed(model, x), embed(model, ref), k, cfg.nf_distance, cfg.nf_normalize)

    cols = {"NF": (_per_bag(twin, lambda m, x: nf(m, x, ref_twin)), nf(original, xf, ref_real))}
    clock.lap("nf")
    step = cfg.pgd_eps * cfg.pgd_step_ratio

    def af(model, x):
        return adversarial_feature(model, x, device, cfg.pgd_eps, cfg.pgd_steps, step)

    cols["AF"] = (_per_bag(twin, af), af(original, xf))
    clock.lap("af")
    cf_a, cf_f, held_out = curriculum_feature(task, twin.aux.x, xf, cfg, device, held_out)
    cols["CF"] = (cf_a, cf_f)
    if set(cfg.features) & set(HELD_OUT_FEATURES):
        ref = data.x[torch.as_tensor(forget.remain_class_ids(data))]  # D_a and D_f are both unseen by this network
        cols["HNF"] = (nf(held_out, twin.aux.x, ref), nf(held_out, xf, ref))

        def margin(x):
            return class_margin(predict(held_out, x, device), forget.class_index)

        cols["HM"] = (margin(twin.aux.x), margin(xf))
    clock.lap("cf")
    if cfg.peer or set(cfg.features) & set(PEER_FEATURES):
        c = forget.class_index

        def si(model, x):
            return torch.as_tensor(self_influence(model, x, torch.full((len(x),), c), device))

        cols["SI"] = (_per_bag(twin, si), si(original, xf))
        clock.lap("peer")
    names = tuple(n for n in ALL_FEATURES if n in cols)

    def stack(i):
        return np.stack([cols[n][i].numpy() for n in names], 1)

    return FeatureValues(names, stack(0), stack(1), held_out)


def curriculum_feature(
    task: UnlearnTask,
    x_aux: torch.Tensor,
    xf: torch.Tensor,
    cfg: FeatureConfig,
    device,
    held_out: torch.nn.Module | None = None,
):
    """CF: per-sample loss of a briefly trained from-scratch network (on a share of D_r; held out by default),
    and that network (with cf_held_out it never saw D_a or D_f)."""
    c = task.forget.class_index
    if held_out is not None and cfg.cf_held_out:  # already trained (it depends on D_r only, not on the class)
        return (
            *(
                F.cross_entropy(
                    predict(held_out, x, device), torch.full((len(x),), c, dtype=torch.long), reduction="none"
                )
                for x in (x_aux, xf)
            ),
            held_out,
        )
    x_cf, y_cf, cf_cfg = _cf_training(task, cfg, torch.cat([xf, x_aux]) if not cfg.cf_held_out else None)
    (cf_a, cf_f), net = curriculum_losses(
        lambda: new_model(task.data, task.train_cfg), x_cf, y_cf, [(x_aux, c), (xf, c)], cf_cfg, device, task.seed
    )
    return cf_a, cf_f, net


def held_out_network(task: UnlearnTask, cfg: FeatureConfig, device) -> torch.nn.Module:
    """The held-out CF network alone (what `compute_features` trains; the same seed gives the same network)."""
    x_cf, y_cf, cf_cfg = _cf_training(task, cfg, None)
    return curriculum_losses(lambda: new_model(task.data, task.train_cfg), x_cf, y_cf, [], cf_cfg, device, task.seed)[1]


def _cf_training(task: UnlearnTask, cfg: FeatureConfig, scored: torch.Tensor | None):
    """The CF network's training images, labels and schedule: a share of D_r, plus `scored` (class c) if given."""
    data, c = task.data, task.forget.class_index
    rng = np.random.default_rng([task.seed, 59])
    remain = task.remain_ids
    part = torch.as_tensor(np.sort(rng.choice(remain, size=max(2, int(cfg.cf_fraction * len(remain))), replace=False)))
    x_cf, y_cf = to_float(data.x[part]), data.y[part]
    if scored is not None:
        x_cf = torch.cat([x_cf, scored])
        y_cf = torch.cat([y_cf, torch.full((len(scored),), c, dtype=torch.long)])
    cf_cfg = TrainConfig(
        model=task.train_cfg.model,
        epochs=cfg.cf_epochs,
        batch_size=task.train_cfg.batch_size,
        lr=cfg.cf_lr,
        schedule="constant",
        augment="none",
    )
    return x_cf, y_cf, cf_cfg


def scaled(feats: FeatureValues, cfg: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """The chosen features of D_a and D_f, scaled: D_a's statistics for both, or each its own."""
    cols = feats.columns(cfg.features)
    a, f = feats.a[:, cols], feats.f[:, cols]
    signed = np.array([n == "HM" for n in cfg.features])  # a margin is signed: no log1p
    scaler = Scaler.fit(a, cfg.scale_log, cfg.scale_clip, signed)
    other = Scaler.fit(f, cfg.scale_log, cfg.scale_clip, signed) if cfg.scale_per_problem else scaler
    return scaler.transform(a), other.transform(f)


def easy_hard_split(sa: np.ndarray, sf: np.ndarray, twin: TwinProblem, cfg: TMUConfig, seed: int) -> Split:
    """Train the MLP on the scaled twin features (columns in cfg.scoring.features' order), calibrate its outputs
    on cross-fitted twin samples, forecast a retrain's A_f and call D_f easy (1) or hard by the rule."""
    ccfg, labels, groups = cfg.classifier, twin.labels, twin.aux.source_ids
    n_eff = len(np.unique(groups))  # augmented copies of one image are not independent evidence
    clf = train_classifier(sa, labels, ccfg, seed, n_eff)
    raw_f = clf.p_easy(sf)

    def fit_score(x, y):
        held = train_classifier(x, y, ccfg, seed)
        return lambda q: logit(held.p_easy(q))

    z_a = cross_fit(sa, labels, groups, fit_score, ccfg.clf_folds, seed)  # held-out scores of D_a
    ok = np.isfinite(z_a)
    cal = fit_calibrator(z_a[ok], labels[ok], ccfg.clf_calibration, n_eff)
    p_f, p_a = cal(logit(raw_f)), np.where(ok, cal(np.nan_to_num(z_a)), np.nan)
    forecast = predict_accuracy(logit(raw_f), z_a, labels, groups, ccfg.clf_calibration, seed)
    dec = decide(p_f, raw_f, ccfg.clf_threshold, clf.hard_rate, p_a, labels)
    clf.threshold = dec.threshold
    pred_a = (np.nan_to_num(p_a, nan=1.0) >= dec.threshold).astype(np.int64)
    return Split(p_a, p_f, pred_a, dec.pred, clf, raw_f, dec, forecast, forecast.calibration)


@dataclass(frozen=True)
class Peer:
    """Self-influence's own answer to TMU's question: its score (minus log SI), calibrated p(easy) and forecast."""

    score_f: np.ndarray
    p_easy_f: np.ndarray
    pred_f: np.ndarray  # 1 = easy: at the cut of best balanced accuracy on the twin
    threshold: float  # on p(easy)
    forecast: Forecast


def peer_split(feats: FeatureValues, twin: TwinProblem, cfg: TMUConfig, seed: int) -> Peer | None:
    """The peer: self-influence ranks D_a and D_f alone; a monotone map fitted on the twin turns it into p(easy)
    (one feature and no fitted model, so the twin's own scores are already held out)."""
    if "SI" not in feats.names:
        return None
    i = feats.names.index("SI")
    z_a, z_f, labels = peer_score(feats.a[:, i]), peer_score(feats.f[:, i]), twin.labels
    cal = fit_calibrator(z_a, labels, cfg.classifier.clf_calibration, len(np.unique(twin.aux.source_ids)))
    p_a, p_f = cal(z_a), cal(z_f)
    t = 0.5
    if 0 < labels.sum() < len(labels):
        t = balanced_threshold(p_a, labels)
    fc = predict_accuracy(z_f, z_a, labels, twin.aux.source_ids, cfg.classifier.clf_calibration, seed)
    return Peer(z_f, p_f, (p_f >= t).astype(np.int64), float(t), fc)


def ablation(feats: FeatureValues, twin: TwinProblem, cfg: TMUConfig, seed: int) -> dict:
    """Predicted D_f labels with every subset of the paper's features (Table 4): an audit extra."""
    n_eff = len(np.unique(twin.aux.source_ids))
    out = {}
    for subset in feature_subsets(FEATURES):
        sa, sf = scaled(feats, cfg.scoring.model_copy(update={"features": subset}))
        out["+".join(subset)] = train_classifier(sa, twin.labels, cfg.classifier, seed, n_eff).predict(sf)
    return out


TEMPERATURE_GRID = np.exp(np.linspace(np.log(0.5), np.log(20.0), 41))


def non_member_temperature(task: UnlearnTask, twin: TwinProblem, device) -> float:
    """The temperature T that gives a member a non-member's confidence, fitted on the twin: on D_a's easy samples
    (M_o right), M_t has learned them (members) and M_o never saw them (non-members), so T minimises the mean
    KL(softmax(M_o) || softmax(M_t / T)) over a log grid from 0.5 to 20. The real step gives predicted-easy D_f
    the target softmax(M_o / T). 1.0 when the twin has no easy sample."""
    easy = np.flatnonzero(twin.labels == 1)
    if len(easy) == 0:
        return 1.0
    x = twin.aux.x[torch.as_tensor(easy)]
    outsider = torch.log_softmax(predict(task.original, x, device).float(), 1)
    member = torch.empty_like(outsider)
    for b, model in enumerate(twin.models):
        rows = np.flatnonzero(twin.bag[easy] == b)
        if len(rows):
            member[torch.as_tensor(rows)] = predict(model, x[torch.as_tensor(rows)], device).float()

    def kl(t: float) -> float:
        return float((outsider.exp() * (outsider - torch.log_softmax(member / t, 1))).sum(1).mean())

    return float(min(TEMPERATURE_GRID, key=kl))


def step_teacher(task: UnlearnTask, cfg: UnlearnConfig, device, held_out: torch.nn.Module | None):
    """heldout_kl's teacher (`held_out`, or the held-out CF network trained here with default settings); None for
    the other mechanisms."""
    if cfg.mechanism != "heldout_kl":
        return None
    return (held_out or held_out_network(task, FeatureConfig(), device)).to(device).eval()


def unlearn(
    task: UnlearnTask,
    pred_f: np.ndarray,
    cfg: UnlearnConfig,
    device,
    progress,
    held_out: torch.nn.Module | None = None,
    easy_temperature: float = 1.0,
) -> torch.nn.Module:
    """TMU's step (`step.unlearn_step`) on the real problem: from M_o, keep D_r and the D_f samples `pred_f`
    calls easy (1), forget those it calls hard. heldout_kl's teacher is `held_out`, trained here with default CF
    settings when None."""
    data, forget = task.data, task.forget
    r = torch.as_tensor(task.remain_ids)
    e = torch.as_tensor(forget.ids[pred_f == 1], dtype=torch.long)
    h = torch.as_tensor(forget.ids[pred_f == 0], dtype=torch.long)
    teacher = step_teacher(task, cfg, device, held_out)
    return unlearn_step(
        task.original,
        StepData(data.x[r], data.y[r], data.x[e], data.y[e], data.x[h], data.y[h]),
        cfg,
        device,
        num_classes=data.num_classes,
        seed=task.seed,
        progress=progress,
        should_stop=task.should_stop,
        teacher=teacher,
        easy_temperature=easy_temperature,
    )


def step_on_twin(
    task: UnlearnTask,
    twin: TwinProblem,
    pred_a: np.ndarray,
    cfg: UnlearnConfig,
    device,
    held_out: torch.nn.Module | None = None,
    easy_temperature: float = 1.0,
    progress=None,
) -> dict:
    """`step.choose_step` on the first twin (bag 0): M_t, its D_a split by the classifier's cross-fitted calls,
    replay from D_r ∪ D_f (what M_t trained on besides D_a), gold M_o."""
    rows = np.flatnonzero(twin.bag == 0)
    replay = torch.as_tensor(np.concatenate([task.remain_ids, task.forget.ids]))
    teacher = step_teacher(task, cfg, device, held_out)
    return choose_step(
        task.original,
        twin.models[0],
        (task.data.x[replay], task.data.y[replay]),
        twin.aux.x[torch.as_tensor(rows)],
        np.asarray(pred_a)[rows],
        task.forget.class_index,
        cfg,
        device,
        num_classes=task.data.num_classes,
        seed=task.seed,
        teacher=teacher,
        easy_temperature=easy_temperature,
        should_stop=task.should_stop,
        progress=progress,
    )


@dataclass(frozen=True)
class EasyHard:
    twin: TwinProblem
    feature_values: FeatureValues
    split: Split
    peer: Peer | None = None


def predict_easy_hard(
    task: UnlearnTask, cfg: TMUConfig, device, clock: StageClock, held_out: torch.nn.Module | None = None
) -> EasyHard:
    """Stages 1-3: the twin problem, the features, and the easy/hard split of D_f."""
    twin = twin_problem(task, cfg.twin, device, clock.sub("twin"))
    clock.lap("twin")
    feats = compute_features(task, twin, cfg.scoring, device, clock, held_out)
    split = easy_hard_split(*scaled(feats, cfg.scoring), twin, cfg, task.seed)
    clock.lap("classifier")
    peer = peer_split(feats, twin, cfg, task.seed) if cfg.scoring.peer else None
    return EasyHard(twin, feats, split, peer)


def easy_hard_report(task: UnlearnTask, eh: EasyHard, by_subset: dict, cfg: TMUConfig, seconds: dict) -> TMUReport:
    """TMU's report of one forget set's easy/hard split (its twin, features, labels and `seconds` per stage)."""
    twin, feats, split = eh.twin, eh.feature_values, eh.split
    clf = split.classifier
    return TMUReport(
        aux=twin.aux,
        aux_labels=twin.labels,
        aux_raw=feats.a,
        forget_raw=feats.f,
        aux_p_easy=split.p_easy_a,
        aux_pred=split.pred_a,
        forget_p_easy=split.p_easy_f,
        forget_pred=split.pred_f,
        threshold=clf.threshold,
        rule=clf.rule,
        twin_hard_rate=clf.hard_rate,
        forget_p_raw=split.raw_f,
        rule_words=split.decision.rule_words if split.decision else rule_words_fallback(clf),
        undecided=bool(split.decision and split.decision.undecided),
        forecast=split.forecast,
        peer=eh.peer,
        ablation=by_subset,
        features_used=list(cfg.scoring.features),
        stage_seconds=seconds,
        twin_fidelity=twin.fidelity,
        warnings=evidence_warnings(task, twin, cfg),
        feature_names=list(feats.names),
    )


def rule_words_fallback(clf: EasyHardClassifier) -> str:
    return f"{clf.rule}: cut at p(easy) {clf.threshold:.3f}"


MORE_AUX = "more aux images of this class (a larger --aux-fraction; on your own data, more files in aux/)"
THIN_TWIN = 20  # fewer distinct D_a images than this: the easy/hard classifier learns from too little


def evidence_warnings(task: UnlearnTask, twin: TwinProblem, cfg: TMUConfig) -> list[str]:
    """Plain-words warnings when the twin gives thin evidence, each with what would help."""
    out = []
    distinct = len(np.unique(twin.aux.source_ids))
    sizing = twin.aux.sizing
    if distinct < THIN_TWIN:
        out.append(
            f"the twin problem has only {distinct} distinct aux images of this class (under {THIN_TWIN}): "
            f"its easy/hard labels are thin evidence; {MORE_AUX} or a smaller forget set would help"
        )
    if sizing.get("capped"):
        out.append(
            f"D_a was capped at {sizing['used']} of the {sizing['requested']} samples Eq. 3 asks for "
            f"({sizing['augmented']} augmented copies): {MORE_AUX} or a smaller forget set would help"
        )
    if int(twin.labels.sum()) == len(twin.labels):
        out.append(
            "no aux sample is hard for the original model, so the classifier never saw a hard example: "
            "TMU cannot tell which files a retrain would get wrong (it calls none hard; the ranking by "
            f"p(easy) is still shown); {MORE_AUX} would help"
        )
    n_ref = len(task.forget.remain_class_ids(task.data))
    if cfg.scoring.nf_k > n_ref:
        out.append(
            f"NF uses k = {n_ref} nearest neighbours instead of {cfg.scoring.nf_k}: the class keeps only "
            f"{n_ref} training samples after forgetting"
        )
    return out
