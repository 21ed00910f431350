"""Gold ensemble (EVALUATION.md §3): K gold models retrained on the same D_r with different training seeds,
and what they say about how certain a per-sample easy/hard verdict can be.

With correct[k, i] = 1 when gold k classifies D_f sample i correctly:
- p_i = mean_k correct[k, i], the share of golds that get sample i right (soft truth of "easy").
- gold-vs-gold agreement = mean over gold pairs (k < l) of the share of D_f where k and l agree
  (both right or both wrong): how well one gold predicts another.
- ceiling = mean_i max(p_i, 1 − p_i): the best expected label accuracy any predictor of easy/hard can reach
  against a fresh gold drawn like these (predict the majority verdict). Plugging the K-gold estimate of p_i in
  overstates it at small K: where the true p_i is 0.5 for every sample, K = 3 golds read 0.75.
- leave-one-gold-out ceiling = mean over k and i of [the majority of the other K − 1 golds predicts gold k's
  verdict on i] (a split majority counts ½): a predictor scored on a gold it did not see, so it has no small-K
  optimism (true p_i = 0.5 reads 0.5); it is the majority of K − 1 golds, so it sits a little under the true
  ceiling. With K = 2 it is the gold-vs-gold agreement.
- soft label accuracy of a 0/1 prediction (1 = easy) = mean_i (pred_i p_i + (1 − pred_i)(1 − p_i)): its
  expected agreement with a fresh gold.
- soft AUC of a score s (p(easy)) = P(s_i > s_j) (+ ½ for ties) over pairs i ≠ j where i is drawn as easy
  with weight p_i and j as hard with weight 1 − p_j; with 0/1 p it is the ordinary ROC AUC.
All percentages.
"""

from __future__ import annotations

import numpy as np

from ..train import predict


def p_right(correct: np.ndarray) -> np.ndarray:
    """(K, n) 0/1 correctness of K golds -> (n,) share of golds right per sample."""
    return np.asarray(correct, dtype=float).mean(axis=0)


def pairwise_agreement(correct: np.ndarray) -> float:
    """Mean over gold pairs of the share of samples where both are right or both wrong (percent)."""
    c = np.asarray(correct).astype(bool)
    k = len(c)
    if k < 2 or c.shape[1] == 0:
        return float("nan")
    pairs = [(c[a] == c[b]).mean() for a in range(k) for b in range(a + 1, k)]
    return 100.0 * float(np.mean(pairs))


def ceiling(p: np.ndarray) -> float:
    """mean(max(p_i, 1 − p_i)) in percent: the best expected label accuracy against a fresh gold."""
    p = np.asarray(p, dtype=float)
    return 100.0 * float(np.maximum(p, 1 - p).mean()) if len(p) else float("nan")


def ceiling_loo(correct: np.ndarray) -> float:
    """Leave-one-gold-out ceiling (percent) of (K, n) 0/1 correctness: each gold predicted by the majority of the
    other K − 1 (a split majority counts ½), averaged over golds and samples; nan when K < 2."""
    c = np.asarray(correct, dtype=float)
    k = len(c)
    if k < 2 or c.shape[1] == 0:
        return float("nan")
    others = (c.sum(0, keepdims=True) - c) / (k - 1)  # share of the other golds right, per gold and sample
    pred = np.where(others > 0.5, 1.0, np.where(others < 0.5, 0.0, 0.5))  # P(predict "right")
    return 100.0 * float((c * pred + (1 - c) * (1 - pred)).mean())


def soft_label_accuracy(pred_easy: np.ndarray, p: np.ndarray) -> float:
    """Expected agreement (percent) of 0/1 predictions (1 = easy) with a gold that is right on i w.p. p_i."""
    pred, p = np.asarray(pred_easy, dtype=float), np.asarray(p, dtype=float)
    return 100.0 * float((pred * p + (1 - pred) * (1 - p)).mean()) if len(p) else float("nan")


def soft_auc(score: np.ndarray, p: np.ndarray) -> float:
    """AUC (percent) of `score` against soft truth p (see the module docstring); nan when p is all 0 or all 1."""
    s, p = np.asarray(score, dtype=float), np.asarray(p, dtype=float)
    q = 1 - p
    denom = p.sum() * q.sum() - (p * q).sum()  # pairs i != j
    if denom <= 1e-12:
        return float("nan")
    uniq, inv = np.unique(s, return_inverse=True)
    neg = np.bincount(inv, weights=q, minlength=len(uniq))  # hard weight at each distinct score
    below = np.cumsum(neg) - neg
    ties = neg[inv] - q  # same score, other samples
    return 100.0 * float((p * (below[inv] + 0.5 * ties)).sum() / denom)


def summary(correct: np.ndarray, acc_forget: list[float], seeds: list[int]) -> dict:
    """The metrics.json block of a K-gold ensemble (correct: (K, |D_f|), gold 0 being the run's gold)."""
    p = p_right(correct)
    return {
        "k": int(len(correct)),
        "train_seeds": [int(s) for s in seeds],
        "gold_agreement": pairwise_agreement(correct),
        "ceiling": ceiling(p),
        "ceiling_loo": ceiling_loo(correct),
        "gold_acc_forget": [float(a) for a in acc_forget],
        "mean_p": float(p.mean()) if len(p) else float("nan"),
    }


def soft_scores(pred_easy: np.ndarray, p_easy: np.ndarray, p: np.ndarray) -> dict:
    """A method's easy/hard prediction scored against soft truth p: label accuracy and AUC of p(easy)."""
    return {"soft_label_accuracy": soft_label_accuracy(pred_easy, p), "soft_auc_p_easy": soft_auc(p_easy, p)}


def gold_correctness(ev, gold_logits: dict, extra_golds: list) -> tuple[np.ndarray, list[float]]:
    """(K, |D_f|) 0/1 correctness of the run's gold (its logits) and the extra golds on D_f, and each
    gold's A_f (percent). `ev` is the run's Evaluator."""

    x, y = ev.sets["forget"]
    logits = [gold_logits["forget"]] + [predict(m, x, ev.device) for m in extra_golds]
    correct = np.stack([(lg.argmax(1) == y).numpy() for lg in logits]).astype(np.int64)
    return correct, [100.0 * float(c.mean()) if len(y) else float("nan") for c in correct]
