"""Random Labeling baseline (Amnesiac unlearning, Graves et al. 2021; the TMU paper's Table 1 "RL"): train D_f on
random wrong labels while replaying D_r.

Weighting: as the TMU paper runs it (A_f near 0, |Δ| 87 on CIFAR-10), the relabelled D_f term and the replay
term are each a mean over their own samples ("separate").
"""

from __future__ import annotations

from ..train import generator
from ..unlearn.loop import LoopConfig, ce_sum, random_wrong_labels, retain_forget_tensors, unlearn_loop
from ..unlearn.registry import Display, Method, MethodResult, register


class RandLabelConfig(LoopConfig):
    """Random wrong labels on D_f (drawn anew each step) + cross-entropy on replayed D_r."""


def relabel_loss(num_classes: int, seed: int):
    gen = generator(seed + 1)

    def loss(logits_r, y_r, logits_f, y_f, x_r, x_f):
        return ce_sum(logits_r, y_r), ce_sum(logits_f, random_wrong_labels(y_f, num_classes, gen))

    return loss


def run(task, cfg: RandLabelConfig, device, progress=None):
    retain, forget = retain_forget_tensors(task)
    return MethodResult(
        unlearn_loop(
            task.original,
            retain,
            forget,
            relabel_loss(task.data.num_classes, task.seed),
            cfg,
            device,
            seed=task.seed,
            stage="randlabel",
            progress=progress,
            should_stop=task.should_stop,
        )
    )


register(
    "randlabel",
    "random labeling (Amnesiac): random wrong labels on D_f, replay D_r",
    Method(
        config_cls=RandLabelConfig,
        run=run,
        defaults=lambda dataset: {},
        display=Display("Random labels", "RL", "#ad1457", 30),
    ),
)
