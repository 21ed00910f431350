"""The paper's readouts: accuracies (percent), alignment with the gold model, membership inference.

- A_test, A_r, A_f: top-1 accuracy on the test set, D_r (a seeded sample of at most `remain_max`), D_f.
- delta = A_f(method) - A_f(gold); the paper's Table 1 reports |delta|.
- activation distance: mean over D_f of the L2 distance between the softmax outputs of a model and the
  gold model (paper Table 3; SCRUB's code uses L1, we show L2).
- MIA: entropy-based logistic-regression attack (as in Bad Teacher / SCRUB): trained to tell D_r (member)
  from test (non-member) by the entropy of the model's output, then applied to D_f; the score is the
  percentage of D_f it calls members. The gold model's score is the target. The attack's own quality is
  its AUC on the data it was fitted on: near 50 the attack cannot tell members at all, and its verdict on
  D_f means nothing.
- per-sample agreement: the share of D_f where a model and gold are both right or both wrong (the TMU
  paper's Fig. 3 measure); |delta| only compares counts.
- label accuracy: agreement of predicted easy/hard with the gold model's correctness on D_f.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def accuracy_from_logits(logits: torch.Tensor, y: torch.Tensor) -> float:
    if len(y) == 0:
        return float("nan")
    return 100.0 * float((logits.argmax(1) == y).float().mean())


def activation_distance(probs: torch.Tensor, gold_probs: torch.Tensor) -> float:
    """Mean L2 distance between two models' softmax outputs on the same samples."""
    return float((probs - gold_probs).norm(dim=1).mean()) if len(probs) else float("nan")


def sample_agreement(pred_model, pred_gold, label) -> float:
    """Percent of samples where the model and gold are both right or both wrong (predicted class vs label)."""
    pm, pg, y = (np.asarray(v) for v in (pred_model, pred_gold, label))
    return 100.0 * float(((pm == y) == (pg == y)).mean()) if len(y) else float("nan")


def entropy(logits: torch.Tensor) -> np.ndarray:
    p = F.softmax(logits.float(), 1)
    return (-(p * torch.log(p.clamp_min(1e-12))).sum(1)).numpy()


def mia_score(
    remain_logits: torch.Tensor, test_logits: torch.Tensor, forget_logits: torch.Tensor, seed: int = 0
) -> float:
    """Percentage of D_f that an entropy-based logistic-regression attack classifies as training members."""
    return mia(remain_logits, test_logits, forget_logits, seed)[0]


def mia(
    remain_logits: torch.Tensor, test_logits: torch.Tensor, forget_logits: torch.Tensor, seed: int = 0
) -> tuple[float, float]:
    """(% of D_f called members, the attack's AUC in % on the D_r-vs-test data it was fitted on)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng([seed, 71])
    n = min(len(remain_logits), len(test_logits))
    if n < 2 or len(forget_logits) == 0:
        return float("nan"), float("nan")
    r = rng.choice(len(remain_logits), n, replace=False)
    t = rng.choice(len(test_logits), n, replace=False)
    x = np.concatenate([entropy(remain_logits[r]), entropy(test_logits[t])])[:, None]
    y = np.concatenate([np.ones(n), np.zeros(n)])
    attack = LogisticRegression(class_weight="balanced").fit(x, y)
    auc = 100.0 * float(roc_auc_score(y, attack.decision_function(x)))
    return 100.0 * float(attack.predict(entropy(forget_logits)[:, None]).mean()), auc


def label_accuracy(pred_easy: np.ndarray, true_easy: np.ndarray) -> dict:
    """Agreement (percent) of predicted easy/hard with the truth, and the confusion counts."""
    pred_easy, true_easy = np.asarray(pred_easy).astype(bool), np.asarray(true_easy).astype(bool)
    return {
        "accuracy": 100.0 * float((pred_easy == true_easy).mean()) if len(true_easy) else float("nan"),
        "easy_as_easy": int((pred_easy & true_easy).sum()),
        "hard_as_easy": int((pred_easy & ~true_easy).sum()),
        "easy_as_hard": int((~pred_easy & true_easy).sum()),
        "hard_as_hard": int((~pred_easy & ~true_easy).sum()),
    }


def roc_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """AUC of `score` for ranking positives above negatives (nan when a class is missing)."""
    positive = np.asarray(positive).astype(bool)
    if positive.all() or (~positive).all():
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return 100.0 * float(roc_auc_score(positive, score))
