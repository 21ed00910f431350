"""Controls that price TMU's parts (EVALUATION.md §2). Both run TMU's own unlearning step (tmu.method.unlearn)
(with step_choice twin, the variant TMU's twin chose) on a chosen set of D_f samples, with TMU's unlearning settings as this run resolves them (its dataset defaults
and whatever flags changed them: --mechanism, --tmu-lr, --tmu-epochs, ...; `settings_of` in the registry), so
a control differs from TMU only in which samples it forgets; a control's own flags (--random-k-lr) come last:

- random_k: as many samples as TMU called hard, chosen at random (seeded). If TMU does not beat it, its
  features chose no better than chance and only its count mattered. Reads TMU's count from TMU's report when
  TMU is in the same run, else computes TMU's split itself.
- oracle_labels: gold's true hard set. It reads the gold model, so it is never a default and never a
  "best aligned" candidate: it is the floor the unlearning step can reach; TMU -> oracle is the price of
  predicting easy/hard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import with_flat
from ..evaluate import metrics as M
from ..tmu import method as tmu_method
from ..tmu.config import TMUConfig, UnlearnConfig, dataset_defaults
from ..tmu.step import candidate_config
from ..train import predict
from ..unlearn.registry import Display, Method, MethodReport, MethodResult, register


@dataclass(frozen=True)
class ChoiceReport(MethodReport):
    """Which D_f samples a control forgot (1 = kept as easy, 0 = forgotten as hard)."""

    name: str
    pred: np.ndarray
    step: str | None = None  # with step_choice twin: the candidate step TMU's twin chose, which this control ran

    def summary(self, gold_easy) -> dict:
        return {
            "forgotten": int(len(self.pred) - self.pred.sum()),
            "choice_agreement": None if gold_easy is None else M.label_accuracy(self.pred, gold_easy)["accuracy"],
            **({"step": self.step} if self.step else {}),
        }

    def forget_columns(self) -> dict:
        return {f"{self.name}_choice": np.where(self.pred == 1, "easy", "hard")}


def tmu_hard_count(task, device) -> int:
    """How many D_f samples TMU calls hard: from TMU's report in this run, else TMU's split computed here."""
    rep = task.earlier.get("tmu")
    if rep is not None:
        return int(len(rep.forget_pred) - rep.forget_pred.sum())

    cfg = with_flat(TMUConfig(), dataset_defaults(task.data_cfg.dataset))
    pred = tmu_method.predict_easy_hard(task, cfg, device, tmu_method.StageClock(task, None)).split.pred_f
    return int(len(pred) - pred.sum())


def step_temperature(task, cfg: UnlearnConfig, device) -> float:
    """The non-member temperature TMU's step gives predicted-easy samples (easy_target twin): TMU's, read from its
    report when TMU ran first in this run, else fitted here on a twin of TMU's settings; 1.0 otherwise."""
    if cfg.easy_target != "twin":
        return 1.0
    rep = task.earlier.get("tmu")
    if rep is not None and "non_member_temperature" in rep.twin_fidelity:
        return float(rep.twin_fidelity["non_member_temperature"])

    tcfg = with_flat(TMUConfig(), dataset_defaults(task.data_cfg.dataset))
    twin = tmu_method.twin_problem(task, tcfg.twin, device, None)
    return tmu_method.non_member_temperature(task, twin, device)


def chosen_step(task, cfg: UnlearnConfig, device) -> tuple[UnlearnConfig, str | None]:
    """TMU's step as TMU ran it: with step_choice twin, the candidate TMU's twin chose (read from TMU's report
    when TMU ran first in this run, else chosen here on a twin of TMU's settings), so a control keeps following
    TMU's step and the oracle stays its floor; with the candidate's name (None for a fixed step)."""
    if cfg.step_choice != "twin":
        return cfg, None
    rep = task.earlier.get("tmu")
    choice = rep.twin_fidelity.get("step_choice") if rep is not None else None
    if choice is None:
        tcfg = with_flat(TMUConfig(), dataset_defaults(task.data_cfg.dataset))
        eh = tmu_method.predict_easy_hard(task, tcfg, device, tmu_method.StageClock(task, None))
        choice = tmu_method.step_on_twin(
            task, eh.twin, eh.split.pred_a, cfg, device, eh.feature_values.held_out, step_temperature(task, cfg, device)
        )
    return candidate_config(cfg, choice["changes"]), choice["chosen"]


def forget_chosen(task, pred: np.ndarray, name: str, cfg: UnlearnConfig, device, progress) -> MethodResult:
    """TMU's step (as TMU ran it) on the samples a control chose."""
    temperature = step_temperature(task, cfg, device)
    step, chosen = chosen_step(task, cfg, device)
    model = tmu_method.unlearn(task, pred, step, device, progress, easy_temperature=temperature)
    return MethodResult(model, ChoiceReport(name, pred, chosen))


def run_random_k(task, cfg: UnlearnConfig, device, progress=None):
    k = tmu_hard_count(task, device)
    rng = np.random.default_rng([task.seed, 97])
    pred = np.ones(len(task.forget.ids), dtype=np.int64)
    pred[rng.choice(len(pred), size=k, replace=False)] = 0
    return forget_chosen(task, pred, "random_k", cfg, device, progress)


def run_oracle(task, cfg: UnlearnConfig, device, progress=None):
    ids = torch.as_tensor(task.forget.ids)
    pred = (predict(task.gold, task.data.x[ids], device).argmax(1) == task.data.y[ids]).numpy().astype(np.int64)
    return forget_chosen(task, pred, "oracle_labels", cfg, device, progress)


register(
    "random_k",
    "control: TMU's unlearning step on as many random D_f samples as TMU called hard",
    Method(
        config_cls=UnlearnConfig,
        run=run_random_k,
        defaults=lambda dataset: {},
        display=Display("Random k (control)", "Rand-k†", "#78909c", 90, "control"),
        after=("tmu",),
        settings_of=("tmu", "unlearn"),
    ),
)
register(
    "oracle_labels",
    "control: TMU's unlearning step on gold's true hard set (uses gold; a floor, not a method)",
    Method(
        config_cls=UnlearnConfig,
        run=run_oracle,
        defaults=lambda dataset: {},
        display=Display("Oracle labels (control)", "Oracle†", "#263238", 91, "control"),
        uses_gold=True,
        settings_of=("tmu", "unlearn"),
    ),
)
