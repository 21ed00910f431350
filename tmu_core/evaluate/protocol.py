"""The evaluation protocol over a sweep (EVALUATION.md §4): mean and 95% confidence interval over the
class x seed rows of a table, tuning classes reported apart from held-out ones, a paired comparison of the
primary method against every other method, and the forgetting-more-data curve (paper Fig. 3).

The interval is Student's t over the rows (each row is one class x seed run, treated as independent
draws): mean ± t_{0.975, n-1} · s / sqrt(n). The paired comparison is a paired t-test on |Δ| over the same
rows (scipy.stats.ttest_rel), with the t interval of the mean difference.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

LEVEL = 0.95
CI_NOTE = "Avg: mean over the class × seed rows; 95% CI ±: half-width of the Student-t 95% interval over them"


def mean_ci(values, level: float = LEVEL) -> tuple[float, float, int]:
    """Mean, half-width of the Student-t `level` interval, and n of the finite values (nan width when n < 2)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return float("nan"), float("nan"), 0
    if n < 2:
        return float(x.mean()), float("nan"), 1
    half = stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return float(x.mean()), float(half), n


SAME_TOL = 1e-4  # spread of the differences, relative to the values' size, below which they count as equal
# (float32 percentages carry noise of about 1e-7 x their size, whatever the size of their difference)


def paired_test(a, b, level: float = LEVEL) -> dict:
    """Paired t-test of a − b over matched rows (non-finite pairs left out).

    Returns n, mean of a and of b, the mean difference, its `level` interval (low, high), t and the
    two-sided p (nan when n < 2, or when every difference is the same, where t is undefined). "The same" allows
    float32 rounding: accuracies stored as 3.9999962 and 4.0000043 differ by noise, and a t of millions would
    claim a certainty the runs do not hold."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    diff, half, n = mean_ci(a - b, level)
    t, p = (float("nan"), float("nan"))
    if n >= 2 and np.ptp(a - b) > SAME_TOL * max(1.0, float(np.abs(a).max()), float(np.abs(b).max())):
        res = stats.ttest_rel(a, b)
        t, p = float(res.statistic), float(res.pvalue)
    return {"n": n, "mean_a": float(a.mean()) if n else float("nan"), "mean_b": float(b.mean()) if n else float("nan"),
            "diff": diff, "ci_low": diff - half, "ci_high": diff + half, "t": t, "p": p}


def group_of(result: dict, tuning_classes) -> str:
    """'tuning' for a run of a class used to choose defaults, 'held-out' otherwise."""
    return "tuning" if int(result["forget_class"]) in {int(c) for c in tuning_classes} else "held-out"


def row_groups(results: list[dict], tuning_classes=()) -> list[str] | None:
    """The group of every result row, or None when no tuning classes were named (one summary block)."""
    return [group_of(r, tuning_classes) for r in results] if tuning_classes else None


def summary_label(kind: str, group: str | None) -> str:
    base = "Avg" if kind == "mean" else "95% CI ±"
    return f"{base} ({group})" if group else base


def with_summary(df: pd.DataFrame, groups: list[str] | None = None) -> pd.DataFrame:
    """`df` (one row per class x seed) followed by an 'Avg' row and a '95% CI ±' row per group.

    With `groups` (one label per row: 'held-out' / 'tuning'), each group gets its own pair of rows, held-out
    first; without, one pair over all rows. NaNs are left out of both."""
    cols = [c for c in df.columns if c != "class"]
    blocks = [(None, np.ones(len(df), bool))] if groups is None else \
        [(g, np.asarray(groups) == g) for g in ("held-out", "tuning") if g in groups]
    rows = []
    for group, mask in blocks:
        stats = {c: mean_ci(df.loc[mask, c].astype(float)) for c in cols}
        rows.append({"class": summary_label("mean", group), **{c: s[0] for c, s in stats.items()}})
        rows.append({"class": summary_label("ci", group), **{c: s[1] for c, s in stats.items()}})
    return pd.concat([df, pd.DataFrame(rows)], ignore_index=True)


def is_summary(label) -> bool:
    """True for the Avg / CI rows `with_summary` adds."""
    return str(label).startswith(("Avg", "95% CI"))


def paired_frame(results: list[dict], primary: str, others: list[str], label, groups: list[str] | None) -> pd.DataFrame:
    """The primary method against each other method on |Δ|, per group: a paired t-test over the runs."""
    groups = groups or ["all"] * len(results)
    rows = []
    for group in [g for g in ("all", "held-out", "tuning") if g in groups]:
        mine = [r for r, g in zip(results, groups) if g == group]
        a = [r["models"][primary]["abs_delta"] for r in mine]
        for other in others:
            res = paired_test(a, [r["models"][other]["abs_delta"] for r in mine])
            rows.append({"classes": group, "method": label(other), "n": res["n"],
                         f"{label(primary)} |Δ|": res["mean_a"], "method |Δ|": res["mean_b"],
                         "mean diff": res["diff"], "CI low": res["ci_low"], "CI high": res["ci_high"],
                         "t": res["t"], "p": res["p"]})
    return pd.DataFrame(rows)


def curve_frame(results: list[dict], methods: list[str], label) -> pd.DataFrame:
    """Forgetting more data (paper Fig. 3): per |D_f| and method, |Δ| and per-sample agreement with gold
    (mean and 95% CI half-width over the class x seed runs of that size)."""
    rows = []
    for n in sorted({int(r["forget_count"]) for r in results}):
        mine = [r for r in results if int(r["forget_count"]) == n]
        for m in methods:
            d = mean_ci([r["models"][m]["abs_delta"] for r in mine])
            a = mean_ci([r["models"][m].get("sample_agreement", float("nan")) for r in mine])
            rows.append({"|D_f|": n, "method": label(m), "runs": d[2], "|Δ|": d[0], "|Δ| CI ±": d[1],
                         "agreement": a[0], "agreement CI ±": a[1]})
    return pd.DataFrame(rows)
