"""The easy/hard classifier (paper §4.3): an MLP (64, 32) with ReLU trained on D_a's features and labels.

Easy samples dominate (most forgotten samples are still classified right by the gold model), so the
loss is class-weighted. Its raw outputs are calibrated on held-out twin samples (tmu.forecast) into
p(easy). The decision rule uses only the twin: by default D_f's samples are ranked by p(easy) and the
twin's hard rate decides how many are called hard (on CIFAR-10 the twin's hard rate matched the gold
model's within 3 points while a balanced-accuracy threshold called twice too many hard); never D_f's
truth. `decide` applies a rule to calibrated p(easy); `call_words` says what a call means without ever
contradicting its probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import numpy as np
import torch
import torch.nn as nn

from ..config import Config, opt


class ClassifierConfig(Config):
    """The easy/hard MLP and its training; the paper: (64, 32), SGD 0.01, momentum 0.9, wd 5e-4, 100 epochs."""

    clf_hidden: tuple[int, ...] = opt((64, 32), "classifier: hidden layer sizes")
    clf_epochs: int = opt(100, "classifier epochs", min=1, max=10000)
    clf_lr: float = opt(0.01, "classifier learning rate", min=1e-5, max=1.0)
    clf_batch_size: int = opt(32, "classifier mini-batch size", min=1, max=4096)
    clf_balance: bool = opt(True, "classifier: class-weighted loss (hard samples are rare)")
    clf_threshold: Literal["prior", "auto", "0.5"] = opt(
        "prior",
        "classifier decision: prior (as many hard as the twin's hard rate), auto (balanced accuracy on D_a) or 0.5",
    )
    clf_calibration: Literal["platt", "isotonic"] = opt(
        "platt",
        "calibration of p(easy) on cross-fitted twin samples: platt, or isotonic (Platt with fewer than "
        "20 easy or hard twin samples)",
    )
    clf_folds: int = opt(5, "calibration: cross-fitting folds over D_a's source images", min=2, max=20)


class MLP(nn.Module):
    def __init__(self, n_in: int, hidden: tuple[int, ...]):
        super().__init__()
        layers, prev = [], n_in
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU()]
            prev = h
        layers.append(nn.Linear(prev, 2))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


@dataclass
class EasyHardClassifier:
    model: MLP
    threshold: float

    def p_easy(self, f: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(self.model(torch.as_tensor(f, dtype=torch.float32)), 1)[:, 1].numpy()

    hard_rate: float = 0.0  # the twin's hard rate as the 'prior' rule uses it (a lower confidence bound)
    rule: str = "0.5"

    def predict(self, f: np.ndarray) -> np.ndarray:
        """1 = easy, 0 = hard. Under the 'prior' rule the cut is placed so that the share of hard predictions
        in `f` equals the twin's hard rate (ties broken by order); otherwise at `threshold`."""
        p = self.p_easy(f)
        if self.rule != "prior":
            return (p >= self.threshold).astype(np.int64)
        k = int(round(self.hard_rate * len(p)))
        pred = np.ones(len(p), dtype=np.int64)
        pred[np.argsort(p, kind="stable")[:k]] = 0
        return pred


def hard_rate_estimate(labels: np.ndarray, n_effective: int | None = None, z: float = 1.0) -> float:
    """The twin's hard rate for the 'prior' rule: Wilson lower bound (z standard errors) of the hard share.

    Augmented copies of one aux image are not independent draws, so the bound uses `n_effective` (the
    number of distinct source images) rather than |D_a|. With a full-size twin (CIFAR-10: 102 distinct
    images) the bound sits ~4 points under the observed share; with a capped one (digits: 14 sources, 56
    samples) it shrinks a noisy 6/56 to ~5% instead of calling 11% of D_f hard.
    """
    n = float(n_effective or len(labels))
    if len(labels) == 0 or n <= 0:
        return 0.0
    p = float(1 - np.mean(labels))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half))


def train_classifier(
    f: np.ndarray, labels: np.ndarray, cfg: ClassifierConfig, seed: int = 0, n_effective: int | None = None
) -> EasyHardClassifier:
    """Fit the MLP on features f (N, d) and labels (1 = easy, 0 = hard); `n_effective` = distinct twin images."""
    torch.manual_seed(seed + 61)
    x = torch.as_tensor(f, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.long)
    model = MLP(x.shape[1], tuple(cfg.clf_hidden))
    counts = torch.bincount(y, minlength=2).float()
    weight = (len(y) / (2 * counts.clamp_min(1))) if cfg.clf_balance and counts.min() > 0 else None
    opt = torch.optim.SGD(model.parameters(), lr=cfg.clf_lr, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(seed + 61)
    for _ in range(cfg.clf_epochs):
        perm = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), cfg.clf_batch_size):
            idx = perm[start : start + cfg.clf_batch_size]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    clf = EasyHardClassifier(model, 0.5, hard_rate=hard_rate_estimate(labels, n_effective), rule=cfg.clf_threshold)
    if cfg.clf_threshold == "auto" and 0 < labels.sum() < len(labels):
        clf.threshold = balanced_threshold(clf.p_easy(f), labels)
    return clf


def balanced_threshold(p: np.ndarray, labels: np.ndarray) -> float:
    """The threshold on p(easy) that maximises balanced accuracy on the given (twin) labels."""
    best_t, best = 0.5, -1.0
    for t in np.unique(np.concatenate([p, [0.5]])):
        pred = p >= t
        tpr = pred[labels == 1].mean()
        tnr = (~pred[labels == 0]).mean()
        score = (tpr + tnr) / 2
        if score > best + 1e-12 or (abs(score - best) <= 1e-12 and abs(t - 0.5) < abs(best_t - 0.5)):
            best_t, best = float(t), score
    return best_t


def feature_subsets(names: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every non-empty subset, singletons first: NF, AF, CF, NF+AF, NF+CF, AF+CF, NF+AF+CF."""
    return [c for r in range(1, len(names) + 1) for c in combinations(names, r)]


@dataclass(frozen=True)
class Decision:
    """Calls on D_f (1 = easy) from calibrated p(easy), the cut the rule placed and the rule in words."""

    pred: np.ndarray
    threshold: float
    rule_words: str
    undecided: bool  # the twin had no hard example: no file can be called hard on evidence


def decide(
    p: np.ndarray, p_raw: np.ndarray, rule: str, hard_rate: float, p_twin: np.ndarray, y_twin: np.ndarray
) -> Decision:
    """Apply the rule to calibrated p(easy) `p` of D_f (ties broken by the raw score `p_raw`).

    prior: the round(hard_rate x |D_f|) lowest are hard; 0.5: p < 0.5 is hard; auto: the cut that maximises
    balanced accuracy on the twin's held-out calibrated p(easy) `p_twin` against its labels `y_twin`."""
    n = len(p)
    undecided = bool(len(y_twin)) and int(np.sum(y_twin)) == len(y_twin)
    if rule == "prior":
        k = int(round(hard_rate * n))
        pred = np.ones(n, dtype=np.int64)
        pred[np.lexsort((p_raw, p))[:k]] = 0
        if 0 < k < n:
            t = float((p[pred == 0].max() + p[pred == 1].min()) / 2)
        else:
            t = 1.0 if k == n and n else 0.0
        rate = f"the twin's hard rate {100 * hard_rate:.1f}%, a lower confidence bound, of {n}"
        words = (
            f"prior: the {k} file(s) of lowest p(easy) are hard ({rate}); cut at p(easy) {t:.4f}"
            if k
            else f"prior: no file is called hard ({rate} rounds to 0)"
        )
        if undecided:
            words += "; the twin had no hard example, so no file can be called hard on evidence"
        return Decision(pred, t, words, undecided)
    t = 0.5
    ok = np.isfinite(p_twin)
    if rule == "auto" and 0 < np.sum(y_twin[ok]) < ok.sum():
        t = balanced_threshold(p_twin[ok], y_twin[ok])
    pred = (p >= t).astype(np.int64)
    how = "best balanced accuracy on the held-out twin" if rule == "auto" else "0.5"
    return Decision(pred, float(t), f"{rule}: p(easy) below {t:.4f} ({how}) is hard", undecided)


KEPT = "kept (a retrain would still get it right)"
UNLEARNED = "unlearned (a retrain would get it wrong)"
KEPT_AGAINST = "kept by the rule's quota, although a retrain would more likely get it wrong (p(easy) below 0.5)"
UNLEARNED_AGAINST = (
    "unlearned by the rule's quota, although a retrain would more likely get it right (p(easy) 0.5 or more)"
)
UNDECIDED = "kept: the twin had no hard example, so TMU cannot tell whether a retrain would get it right"


def call_words(p: np.ndarray, pred: np.ndarray, undecided: bool) -> tuple[np.ndarray, np.ndarray]:
    """(verdict, action) per file: 'easy'/'hard'/'undecided' and what TMU did, in words that agree with
    p(easy): "a retrain would still get it right" only where p(easy) >= 0.5."""
    p, pred = np.asarray(p, float), np.asarray(pred)
    if undecided:
        return np.full(len(p), "undecided", dtype=object), np.full(len(p), UNDECIDED, dtype=object)
    verdict = np.where(pred == 1, "easy", "hard").astype(object)
    likely = p >= 0.5
    action = np.where(
        pred == 1, np.where(likely, KEPT, KEPT_AGAINST), np.where(likely, UNLEARNED_AGAINST, UNLEARNED)
    ).astype(object)
    return verdict, action
