"""Fine-tuning baseline (the TMU paper's Table 1 "FT"; Golatkar et al. 2020): train on D_r only, with a slightly
larger learning rate than the original's last one, so that D_f is forgotten by catastrophic forgetting.
No forget data enters the loss, so the weighting is moot."""

from __future__ import annotations

from ..unlearn.loop import LoopConfig, ce_sum, retain_forget_tensors, unlearn_loop
from ..unlearn.registry import Display, Method, MethodResult, register


class FinetuneConfig(LoopConfig):
    """Fine-tuning: the shared loop with retain loss only."""


def run(task, cfg: FinetuneConfig, device, progress=None):
    retain, forget = retain_forget_tensors(task)
    empty = (forget[0][:0], forget[1][:0])

    def loss(logits_r, y_r, logits_f, t_f, x_r, x_f):
        return ce_sum(logits_r, y_r), ce_sum(logits_f, t_f)

    return MethodResult(
        unlearn_loop(
            task.original,
            retain,
            empty,
            loss,
            cfg,
            device,
            seed=task.seed,
            stage="finetune",
            progress=progress,
            should_stop=task.should_stop,
        )
    )


register(
    "finetune",
    "fine-tune on D_r only with a larger learning rate (catastrophic forgetting)",
    Method(
        config_cls=FinetuneConfig,
        run=run,
        defaults=lambda dataset: {"lr": 0.02, "epochs": 3, "retain_fraction": 0.5},
        display=Display("Fine-tuning", "FT", "#ef6c00", 10),
    ),
)
