"""What TMU hands back beside its model: the twin problem, the features, the easy/hard split and timings.

`summary` is what metrics.json stores under "tmu" (label accuracy against gold, the twin's sizing, the
rule's cut, the calibrated forecast of a retrain's A_f with its interval and the calibration of p(easy),
and the self-influence peer's answers when it ran); `sample_groups` and `forget_columns` add TMU's columns and D_a's rows to the per-sample
table; `embedding_points` adds D_a to the activation maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..evaluate import ensemble
from ..evaluate import metrics as M
from ..evaluate.artifacts import SampleGroup
from ..unlearn.registry import MethodReport
from .classifier import call_words
from .forecast import Forecast, ece, reliability
from .twin import AuxSet


@dataclass(frozen=True, kw_only=True)  # 22 fields: built by name, never by position
class TMUReport(MethodReport):
    aux: AuxSet  # D_a
    aux_labels: np.ndarray  # (|D_a|,) 1 = easy for M_o (the twin's gold), 0 = hard
    aux_raw: np.ndarray  # (|D_a|, len(feature_names)) NF, AF, CF (and HNF, HM when used) before scaling
    forget_raw: np.ndarray  # (|D_f|, len(feature_names))
    aux_p_easy: np.ndarray
    aux_pred: np.ndarray  # 1 = predicted easy
    forget_p_easy: np.ndarray
    forget_pred: np.ndarray
    threshold: float  # the cut on p(easy) the decision rule placed
    rule: str
    twin_hard_rate: float
    ablation: dict  # "NF+AF" -> predicted labels of D_f with that feature subset
    features_used: list
    stage_seconds: dict = field(default_factory=dict)
    twin_fidelity: dict = field(default_factory=dict)  # M_t on D_a vs M_o on D_f: accuracy %, mean loss
    warnings: list = field(default_factory=list)  # thin evidence, in plain words, with what would help
    feature_names: list = field(default_factory=lambda: ["NF", "AF", "CF"])  # the raw arrays' columns
    forget_p_raw: np.ndarray | None = None  # the classifier's output before calibration
    rule_words: str = ""  # the decision rule as stated to the user
    undecided: bool = False  # the twin had no hard example: no file is called hard on evidence
    forecast: Forecast | None = None  # predicted A_f (%) of a retrain on D_f with its interval
    peer: object = None  # method.Peer: self-influence's p(easy), calls and forecast (when --tmu-peer)

    @property
    def audit_seconds(self) -> float:
        """Seconds spent on audit extras (the ablation, paper Table 4) that unlearning does not need."""
        peer_extra = "SI" not in self.features_used  # SI computed only for the peer, not as a feature
        return self.stage_seconds.get("ablation", 0.0) + (self.stage_seconds.get("peer", 0.0) if peer_extra else 0.0)

    def summary(self, gold_easy: np.ndarray | None) -> dict:
        """What metrics.json stores under the method's name; the scores against gold are None without one."""
        pred, aux = self.forget_pred, self.aux
        return {
            **split_counts(pred),
            **gold_scores(pred, self.ranking, self.ablation, gold_easy),
            "aux_count": int(len(aux.x)),
            "aux_sizing": aux.sizing,
            "aux_easy": int(self.aux_labels.sum()),
            "aux_hard": int(len(self.aux_labels) - self.aux_labels.sum()),
            "threshold": float(self.threshold),
            "rule": self.rule,
            "twin_hard_rate": float(self.twin_hard_rate),
            "features_used": self.features_used,
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "audit_seconds": round(self.audit_seconds, 3),
            "twin_fidelity": self.twin_fidelity,
            "warnings": list(self.warnings),
            **self.forecast_summary(gold_easy),
        }

    @property
    def ranking(self) -> np.ndarray:
        """D_f's order from least to most likely easy, as a score: calibrated p(easy), ties (a calibration map
        that is flat, as when the twin has one label) broken by the classifier's own output."""
        p = self.forget_p_easy
        if self.forget_p_raw is None:
            return p
        rank = np.empty(len(p))
        rank[np.lexsort((self.forget_p_raw, p))] = np.arange(len(p))
        return rank

    def forecast_summary(self, gold_easy: np.ndarray | None = None) -> dict:
        """The calibrated forecast without gold, and with `gold_easy` (1 = easy for gold) its check."""
        out: dict = {"decision_rule": self.rule_words, "undecided": self.undecided}
        if self.forecast is not None:
            out["forecast"] = self.forecast.as_dict()
            ok = np.isfinite(self.aux_p_easy)
            out["reliability_twin"] = reliability(self.aux_p_easy[ok], self.aux_labels[ok])
            out["ece_twin"] = ece(self.aux_p_easy[ok], self.aux_labels[ok])
            if gold_easy is not None:
                out["reliability_gold"] = reliability(self.forget_p_easy, gold_easy)
                out["ece_gold"] = ece(self.forget_p_easy, gold_easy)
        if self.peer is not None:
            peer = {"forecast": self.peer.forecast.as_dict(), "threshold": self.peer.threshold}
            peer["pred_hard"] = int(len(self.peer.pred_f) - self.peer.pred_f.sum())
            if gold_easy is not None:
                peer["auc_p_easy"] = M.roc_auc(self.peer.p_easy_f, gold_easy)
                peer["auc_score"] = M.roc_auc(self.peer.score_f, gold_easy)
                peer["label_accuracy"] = M.label_accuracy(self.peer.pred_f, gold_easy)["accuracy"]
                peer["ece_gold"] = ece(self.peer.p_easy_f, gold_easy)
            out["peer"] = peer
        return out

    def soft_summary(self, p_gold: np.ndarray) -> dict:
        """Label accuracy and AUC of p(easy) against soft truth p_i (share of K golds right on each D_f sample),
        and the calibration error of p(easy) against p_i."""
        out = ensemble.soft_scores(self.forget_pred, self.ranking, p_gold)
        if self.forecast is not None:
            out["ece_soft"] = ece(self.forget_p_easy, p_gold)
        return out

    def forget_columns(self) -> dict:
        cols = _columns(self.feature_names, self.forget_raw, self.forget_p_easy, self.forget_pred)
        if self.forget_p_raw is not None:
            cols["p_easy_raw"] = self.forget_p_raw
            cols["rank_p_easy"] = self.ranking.astype(np.int64) + 1  # 1 = least likely easy
        if self.peer is not None:
            cols["p_easy_peer"] = self.peer.p_easy_f
        cols["verdict"], cols["action"] = call_words(self.forget_p_easy, self.forget_pred, self.undecided)
        return cols

    def sample_groups(self, class_index: int) -> list[SampleGroup]:
        aux = self.aux
        return [
            SampleGroup(
                "aux",
                aux.x,
                np.arange(len(aux.x)),
                aux.source_ids,
                aux.augmented,
                _columns(self.feature_names, self.aux_raw, self.aux_p_easy, self.aux_pred),
                self.aux_labels,
                "original model (twin gold)",
            )
        ]

    def embedding_points(self, class_index: int) -> list[tuple[str, torch.Tensor, np.ndarray, np.ndarray]]:
        n = len(self.aux.x)
        return [("aux", self.aux.x, np.arange(n), np.full(n, class_index))]


def split_counts(pred: np.ndarray) -> dict:
    """The predicted split of D_f, and the A_f it predicts for a retrain (the predicted-easy share)."""
    return {
        "pred_easy": int(pred.sum()),
        "pred_hard": int(len(pred) - pred.sum()),
        "predicted_acc_forget": 100.0 * float(pred.mean()) if len(pred) else None,
    }


def gold_scores(pred: np.ndarray, p_easy: np.ndarray, by_subset: dict, gold_easy: np.ndarray | None) -> dict:
    """The split against gold's (label accuracy, confusion, the ablation's accuracies, AUC of p(easy)); every
    entry None when the run has no gold model."""
    if gold_easy is None:
        keys = ("label_accuracy", "confusion", "label_accuracy_by_features", "auc_p_easy", "gold_easy", "gold_hard")
        return dict.fromkeys(keys)
    la = M.label_accuracy(pred, gold_easy)
    return {
        "label_accuracy": la["accuracy"],
        "confusion": {k: v for k, v in la.items() if k != "accuracy"},
        "label_accuracy_by_features": {n: M.label_accuracy(p, gold_easy)["accuracy"] for n, p in by_subset.items()},
        "auc_p_easy": M.roc_auc(p_easy, gold_easy),
        "gold_hard": int(len(gold_easy) - gold_easy.sum()),
        "gold_easy": int(gold_easy.sum()),
    }


def _columns(names: list, raw: np.ndarray, p_easy: np.ndarray, pred: np.ndarray) -> dict:
    return {
        **{n: raw[:, i] for i, n in enumerate(names)},
        "p_easy": p_easy,
        "pred_label": np.where(pred == 1, "easy", "hard"),
    }
