"""Negative Gradient baseline (the TMU paper's Table 1 "NG"): ascend the loss on D_f while replaying D_r to keep
utility. The ascent term is bounded (the forget loss is clamped at `max_forget_loss`), so it cannot blow up.

Weighting: as the TMU paper runs it (its NG drives A_f to about 0: |Δ| 76 on CIFAR-10), the ascent term is the
mean over the step's D_f samples and the replay term the mean over its own ("separate"): one forget sample
weighs about a retain batch. Pooled, D_f would be under 1% of the loss and NG would barely move.
"""

from __future__ import annotations

from ..config import opt
from ..unlearn.loop import LoopConfig, ascent_term, ce_sum, retain_forget_tensors, unlearn_loop
from ..unlearn.registry import Display, Method, MethodResult, register


class NegGradConfig(LoopConfig):
    """Negative gradient on D_f + cross-entropy on replayed D_r."""

    forget_weight: float = opt(1.0, "weight of the ascent term", min=0.0, max=100.0)
    max_forget_loss: float = opt(
        5.0, "the ascent stops pushing a sample once its loss exceeds this", min=0.1, max=100.0
    )


def run(task, cfg: NegGradConfig, device, progress=None):
    retain, forget = retain_forget_tensors(task)

    def loss(logits_r, y_r, logits_f, y_f, x_r, x_f):
        return ce_sum(logits_r, y_r), cfg.forget_weight * ascent_term(logits_f, y_f, cfg.max_forget_loss)

    return MethodResult(
        unlearn_loop(
            task.original,
            retain,
            forget,
            loss,
            cfg,
            device,
            seed=task.seed,
            stage="neggrad",
            progress=progress,
            should_stop=task.should_stop,
        )
    )


register(
    "neggrad",
    "negative gradient: ascend the (bounded) loss on D_f, replay D_r",
    Method(
        config_cls=NegGradConfig,
        run=run,
        defaults=lambda dataset: {},
        display=Display("Negative gradient", "NG", "#6a1b9a", 20),
    ),
)
