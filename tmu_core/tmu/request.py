"""TMU as a run calls it, on a forget set of one class or a deletion request over several (`task.parts`).

One twin problem per class of the request (its D_a drawn from that class's aux images, Eq. 3 sized with that
class's counts), each with its own features and easy/hard classifier; then one unlearning step from M_o over
the whole request: the retain loss on D_r (what remains after the whole request) and every class's
predicted-easy samples, the forget mechanism on every class's predicted-hard samples. With one class this is
the paper's method stage by stage (`tmu.method`). The held-out CF network (trained on part of what remains
after the whole request, never on D_a or D_f) does not depend on the class: it is trained once and shared.
The feature ablation (paper Table 4) runs only when `scoring.ablation` asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..evaluate.artifacts import SampleGroup
from ..train import Progress
from ..unlearn.loop import UnlearnTask
from ..unlearn.registry import MethodReport, MethodResult
from .config import TMUConfig
from .forecast import combine, ece, reliability
from .method import (
    StageClock,
    ablation,
    easy_hard_report,
    non_member_temperature,
    predict_easy_hard,
    step_on_twin,
    unlearn,
)
from .report import gold_scores, split_counts
from .step import candidate_config

# Where each of TMU's per-class stages ends, as a share of one class's work (the twin's fine-tuning dominates);
# the unlearning step over the whole request takes UNLEARN_SHARE of the method.
STAGE_END = {"twin": 0.5, "nf": 0.6, "af": 0.8, "cf": 0.95, "classifier": 0.98, "ablation": 1.0}
UNLEARN_SHARE = 0.25


class ByClass:
    """TMU's progress over a request of several classes: each class's share weighted by its expected cost (its
    D_a and its D_f grow with its number of files), reported as the method's own stage with "class 2 of 3"."""

    def __init__(self, progress, parts, stage: str = "tmu"):
        n = np.array([len(p.ids) for p in parts], dtype=float)
        w = n + n.mean()  # a fixed part per class (twin fit, classifier) plus one growing with its files
        self.share = w / w.sum()
        self.start = np.concatenate([[0.0], np.cumsum(self.share)[:-1]])
        self.progress, self.parts, self.stage, self.i = progress, parts, stage, 0

    def __call__(self, p: Progress) -> None:
        sub = p.stage.split(":", 1)[-1]
        if sub == "unlearn":
            frac = 1.0 - UNLEARN_SHARE + UNLEARN_SHARE * p.fraction
            message = f"unlearning the whole request · {p.message}"
        elif sub == "step choice":  # between the last class's split and the unlearning
            frac = 1.0 - UNLEARN_SHARE
            message = f"choosing the step on class {self.parts[0].class_name}'s twin · {p.message}"
        else:
            end = STAGE_END.get(sub, 1.0)
            begin = max([0.0, *(e for e in STAGE_END.values() if e < end)])
            local = begin + (end - begin) * min(max(p.fraction, 0.0), 1.0)
            frac = (1.0 - UNLEARN_SHARE) * (self.start[self.i] + self.share[self.i] * local)
            name = self.parts[self.i].class_name
            message = f"class {name} ({self.i + 1} of {len(self.parts)}) · {sub}"
        self.progress(Progress(self.stage, min(1.0, frac), message))


def run(task: UnlearnTask, cfg: TMUConfig, device, progress=None) -> MethodResult:
    parts = tuple(task.parts) or (task.forget,)
    by_class = ByClass(progress, parts) if progress and len(parts) > 1 else None
    clock = StageClock(task, by_class or progress)
    reports, twins, held_out, first_held_out = [], [], None, None
    for i, part in enumerate(parts):
        if by_class:
            by_class.i = i
        sub = replace(task, forget=part, parts=())
        eh = predict_easy_hard(sub, cfg, device, clock, held_out)
        twins.append(eh.twin)
        held_out = eh.feature_values.held_out if cfg.scoring.cf_held_out else None
        first_held_out = first_held_out or eh.feature_values.held_out
        by_subset = {}
        if cfg.scoring.ablation:
            by_subset = ablation(eh.feature_values, eh.twin, cfg, task.seed)
            clock.lap("ablation")
        reports.append(easy_hard_report(sub, eh, by_subset, cfg, dict(clock.seconds)))
    whole = task.forget.ids
    pred = np.ones(len(whole), dtype=np.int64)
    for part, rep in zip(parts, reports):
        pred[np.searchsorted(whole, part.ids)] = rep.forget_pred
    temperature = 1.0
    if cfg.unlearn.easy_target == "twin":  # fitted on the first class's twin; reported with it (controls reuse it)
        temperature = non_member_temperature(replace(task, forget=parts[0], parts=()), twins[0], device)
        twins[0].fidelity["non_member_temperature"] = temperature
    step = cfg.unlearn
    if step.step_choice == "twin":  # chosen on the first class's twin; reported with it (the controls follow it)
        first = replace(task, forget=parts[0], parts=())
        choice = step_on_twin(
            first, twins[0], reports[0].aux_pred, step, device, first_held_out, temperature, clock.sub("step choice")
        )
        twins[0].fidelity["step_choice"] = choice
        step = candidate_config(step, choice["changes"])
        clock.lap("step choice")
    model = unlearn(task, pred, step, device, clock.sub("unlearn"), first_held_out, temperature)
    clock.lap("unlearn")
    reports[-1].stage_seconds.update(clock.seconds)  # the last report's seconds: every stage, all classes
    report = reports[0] if len(parts) == 1 else RequestReport(parts=parts, reports=tuple(reports), whole=whole)
    return MethodResult(model, report)


@dataclass(frozen=True, kw_only=True)
class RequestReport(MethodReport):
    """TMU's reports of a request over several classes (one per class) as one report: its D_f arrays follow
    the request's ids (`whole`), its summary adds every class's split under `per_class`."""

    parts: tuple
    reports: tuple
    whole: np.ndarray

    def _joined(self, attr: str) -> np.ndarray:
        out = np.empty(len(self.whole), dtype=getattr(self.reports[0], attr).dtype)
        for part, rep in zip(self.parts, self.reports):
            out[np.searchsorted(self.whole, part.ids)] = getattr(rep, attr)
        return out

    @property
    def forget_pred(self) -> np.ndarray:
        return self._joined("forget_pred")

    @property
    def forget_p_easy(self) -> np.ndarray:
        return self._joined("forget_p_easy")

    @property
    def ranking(self) -> np.ndarray:
        """The whole request from least to most likely easy (`TMUReport.ranking`): calibrated p(easy), ties broken
        by the classifiers' own outputs."""
        p = self.forget_p_easy
        if any(rep.forget_p_raw is None for rep in self.reports):
            return p
        rank = np.empty(len(p))
        rank[np.lexsort((self._joined("forget_p_raw"), p))] = np.arange(len(p))
        return rank

    @property
    def twin_fidelity(self) -> dict:
        return self.reports[0].twin_fidelity  # the first class's twin carries what the unlearning step fitted on it

    @property
    def stage_seconds(self) -> dict:
        return self.reports[-1].stage_seconds

    @property
    def audit_seconds(self) -> float:
        return self.reports[-1].audit_seconds

    def _gold_of(self, part, gold_easy):
        return None if gold_easy is None else gold_easy[np.searchsorted(self.whole, part.ids)]

    @property
    def ablation(self) -> dict:
        """Each feature subset's predicted labels over the whole request (empty when the ablation did not run)."""
        names = set.intersection(*(set(rep.ablation) for rep in self.reports))
        out = {}
        for name in sorted(names):
            joined = np.empty(len(self.whole), dtype=np.int64)
            for part, rep in zip(self.parts, self.reports):
                joined[np.searchsorted(self.whole, part.ids)] = rep.ablation[name]
            out[name] = joined
        return out

    def summary(self, gold_easy: np.ndarray | None) -> dict:
        per_class = {}
        for part, rep in zip(self.parts, self.reports):
            truth = None if gold_easy is None else gold_easy[np.searchsorted(self.whole, part.ids)]
            per_class[part.class_name] = {
                "class_index": int(part.class_index),
                "forget_count": len(part.ids),
                **rep.summary(truth),
            }
        blocks = list(per_class.values())
        pred = self.forget_pred
        first = self.reports[0]
        forecasts, names = [rep.forecast for rep in self.reports], [part.class_name for part in self.parts]
        return {
            **({"forecast": combine(forecasts, names=names).as_dict()} if all(forecasts) else {}),
            **(self._pooled_reliability(gold_easy) if all(forecasts) else {}),
            **split_counts(pred),
            **gold_scores(pred, self.ranking, self.ablation, gold_easy),
            **{k: sum(b[k] for b in blocks) for k in ("aux_count", "aux_easy", "aux_hard")},
            "aux_sizing": None,  # each class sizes its own D_a: see per_class
            "threshold": None,  # each class's classifier places its own cut: see per_class
            "rule": first.rule,
            "twin_hard_rate": None,
            "features_used": first.features_used,
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "audit_seconds": round(self.audit_seconds, 3),
            "twin_fidelity": None,
            "warnings": [f"class {name}: {w}" for name, b in per_class.items() for w in b["warnings"]],
            "per_class": per_class,
        }

    def _pooled_reliability(self, gold_easy: np.ndarray | None) -> dict:
        """The reliability of p(easy) over every class of the request pooled: held-out twin samples of each
        class's twin, and with gold D_f against gold's verdicts (each class's own curve is in per_class)."""
        p_aux = np.concatenate([rep.aux_p_easy for rep in self.reports])
        y_aux = np.concatenate([rep.aux_labels for rep in self.reports])
        ok = np.isfinite(p_aux)
        out = {"reliability_twin": reliability(p_aux[ok], y_aux[ok]), "ece_twin": ece(p_aux[ok], y_aux[ok])}
        if gold_easy is not None:
            out["reliability_gold"] = reliability(self.forget_p_easy, gold_easy)
            out["ece_gold"] = ece(self.forget_p_easy, gold_easy)
        return out

    def soft_summary(self, p_gold: np.ndarray) -> dict:
        from ..evaluate import ensemble

        return ensemble.soft_scores(self.forget_pred, self.forget_p_easy, p_gold)

    def forget_columns(self) -> dict:
        cols = [rep.forget_columns() for rep in self.reports]
        out = {}
        for name in cols[0]:
            values = np.concatenate([np.asarray(c[name]) for c in cols])
            joined = np.empty(len(self.whole), dtype=values.dtype)
            start = 0
            for part in self.parts:
                n = len(part.ids)
                joined[np.searchsorted(self.whole, part.ids)] = values[start : start + n]
                start += n
            out[name] = joined
        return out

    def sample_groups(self, class_index: int) -> list[SampleGroup]:
        out, offset = [], 0
        for part, rep in zip(self.parts, self.reports):
            for g in rep.sample_groups(part.class_index):
                out.append(replace(g, ids=g.ids + offset, labels=np.full(len(g.ids), part.class_index)))
                offset += len(g.ids)
        return out

    def embedding_points(self, class_index: int) -> list[tuple[str, torch.Tensor, np.ndarray, np.ndarray]]:
        out, offset = [], 0
        for part, rep in zip(self.parts, self.reports):
            for role, x, ids, labels in rep.embedding_points(part.class_index):
                out.append((role, x, ids + offset, labels))
                offset += len(ids)
        return out
