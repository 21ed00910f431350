"""TMU on a deletion request that may span several classes.

One twin problem per class of the request (its D_a drawn from that class's aux images, Eq. 3 sized with that
class's counts), each with its own features and easy/hard classifier; then one unlearning step from M_o over
the whole request: the retain loss on D_r (what remains after the whole request) and every class's
predicted-easy samples, the forget mechanism on every class's predicted-hard samples. With one class this is,
stage for stage and seed for seed, `tmu.method.run`. The held-out CF network (trained on part of what remains
after the whole request, never on D_a or D_f) does not depend on the class: it is trained once and shared.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..methods.loop import UnlearnTask
from ..tmu.config import TMUConfig
from ..tmu.method import StageClock, ablation, easy_hard_report, predict_easy_hard, unlearn
from .layout import Request


def run_request(task: UnlearnTask, request: Request, cfg: TMUConfig, device, progress=None):
    """(unlearned model, [(ClassPart, TMUReport)] per class, predicted labels of request.whole.ids (1 = easy),
    stage seconds)."""
    clock = StageClock(task, progress)
    reports, held_out = [], None
    for part in request.parts:
        sub = replace(task, forget=part)
        # the held-out CF network trains on what remains of the whole request: the same for every class
        eh = predict_easy_hard(sub, cfg, device, clock, held_out)
        held_out = eh.feature_values.held_out if cfg.scoring.cf_held_out else None
        by_subset = ablation(eh.feature_values, eh.twin, cfg, task.seed)
        clock.lap("ablation")
        reports.append(
            (part, easy_hard_report(sub, eh, by_subset, cfg, dict(clock.seconds)), eh.feature_values.held_out)
        )
    whole = request.whole.ids
    pred = np.ones(len(whole), dtype=np.int64)
    for part, rep, _ in reports:
        pred[np.searchsorted(whole, part.ids)] = rep.forget_pred
    model = unlearn(task, pred, cfg.unlearn, device, clock.sub("unlearn"), reports[0][2])
    clock.lap("unlearn")
    reports[-1][1].stage_seconds.update(
        clock.seconds
    )  # the last report's seconds: every stage, all classes, unlearning
    return model, [(p, r) for p, r, _ in reports], pred, dict(clock.seconds)
