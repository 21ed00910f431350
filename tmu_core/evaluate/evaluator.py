"""Logits of every model on the evaluation sets (test, a seeded sample of D_r, D_f), computed once per model,
and the readouts of one model against gold (accuracies, delta, activation distance, MIA)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data import Dataset, ForgetSet
from ..train import predict
from . import metrics as M

REMAIN_EVAL_MAX = 5000  # A_r and the MIA use a seeded sample of D_r of at most this size


class Evaluator:
    def __init__(self, data: Dataset, forget: ForgetSet, device: torch.device, seed: int):
        self.data, self.forget, self.device = data, forget, device
        rng = np.random.default_rng([seed, 83])
        remain = forget.remain_ids(data)
        self.remain_ids = np.sort(rng.choice(remain, min(REMAIN_EVAL_MAX, len(remain)), replace=False))
        self.sets = {
            "test": (data.x_test, data.y_test),
            "remain": (data.x[torch.as_tensor(self.remain_ids)], data.y[torch.as_tensor(self.remain_ids)]),
            "forget": (data.x[torch.as_tensor(forget.ids)], data.y[torch.as_tensor(forget.ids)]),
        }
        self.seed = seed

    def logits(self, model) -> dict[str, torch.Tensor]:
        return {k: predict(model, x, self.device) for k, (x, _) in self.sets.items()}

    def accuracies(self, model, logits=None) -> dict:
        lg = logits or self.logits(model)
        return {f"acc_{k}": M.accuracy_from_logits(lg[k], self.sets[k][1]) for k in self.sets}

    def report(self, logits: dict, gold_logits: dict) -> dict:
        acc = {f"acc_{k}": M.accuracy_from_logits(logits[k], self.sets[k][1]) for k in self.sets}
        gold_af = M.accuracy_from_logits(gold_logits["forget"], self.sets["forget"][1])
        delta = acc["acc_forget"] - gold_af
        mia, mia_auc = M.mia(logits["remain"], logits["test"], logits["forget"], self.seed)
        return {
            **acc,
            "delta": delta,
            "abs_delta": abs(delta),
            "sample_agreement": M.sample_agreement(
                logits["forget"].argmax(1), gold_logits["forget"].argmax(1), self.sets["forget"][1]
            ),
            "activation_distance": M.activation_distance(
                F.softmax(logits["forget"], 1), F.softmax(gold_logits["forget"], 1)
            ),
            "mia": mia,
            "mia_auc": mia_auc,
        }

    def gold_easy(self, gold_logits: dict) -> np.ndarray:
        """1 where the gold model classifies the D_f sample correctly (easy), 0 where not (hard)."""
        return (gold_logits["forget"].argmax(1) == self.sets["forget"][1]).numpy().astype(np.int64)

    def readouts(self, logits: dict, gold_logits: dict | None) -> dict:
        """`report` against gold; without a gold model, what needs none (accuracies, MIA; the rest None)."""
        if gold_logits is not None:
            return self.report(logits, gold_logits)
        mia, mia_auc = M.mia(logits["remain"], logits["test"], logits["forget"], self.seed)
        return {
            **self.accuracies(None, logits),
            **dict.fromkeys(("delta", "abs_delta", "sample_agreement", "activation_distance")),
            "mia": mia,
            "mia_auc": mia_auc,
        }
