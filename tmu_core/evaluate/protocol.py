"""The evaluation protocol over a sweep (EVALUATION.md §4, §6): mean and 95% confidence interval with the class
as the unit, tuning classes reported apart from held-out ones, a paired comparison of the primary method against
every other method with Holm-corrected and exact p values, and the forgetting-more-data curve (Fig. 3).

Runs of one class share its D_f, its gold and its difficulty, so class x seed rows are not independent draws:
every interval here is Student's t over per-class means (each class's mean over its runs, non-finite values left
out): mean ± t_{0.975, k-1} · s / sqrt(k) over k classes. The paired comparison is a paired t-test over the
classes' mean |Δ| (scipy.stats.ttest_rel), two exact two-sided tests over the same classes (the sign test and
Wilcoxon's signed-rank test, exact by enumeration: the tests to read when there are fewer than ten classes), and
Holm's step-down correction of each over the family of claims in one block of the table: the primary method
against the original and each other method. Controls (random_k, oracle_labels) are compared too but stay out of
the family: they are not claims. Beside each comparison: the smallest difference the paired t-test detects with
80% power at this n and spread, and whether it is "significant", which needs the t-test and the exact Wilcoxon
test to agree after Holm, or the reason it cannot be (with n classes an exact test's smallest two-sided p is
2 / 2^n, so with 8 classes and a family of m the smallest Holm p is m / 128).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..store.schema import SweepResult

LEVEL = 0.95
CI_NOTE = (
    "Avg: mean of the per-class means (the class is the unit: runs of one class share its D_f and gold); "
    "95% CI ±: half-width of the Student-t 95% interval over those class means; each row says how many "
    "classes and runs it holds, and a 'non-finite left out' row counts the runs left out per column"
)


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
    return {
        "n": n,
        "mean_a": float(a.mean()) if n else float("nan"),
        "mean_b": float(b.mean()) if n else float("nan"),
        "diff": diff,
        "ci_low": diff - half,
        "ci_high": diff + half,
        "t": t,
        "p": p,
    }


def group_of(result: SweepResult, tuning_classes) -> str:
    """'tuning' for a run of a class used to choose defaults, 'held-out' otherwise."""
    return "tuning" if int(result.forget_class) in {int(c) for c in tuning_classes} else "held-out"


def model_value(result: SweepResult, model: str, field: str) -> float:
    """A model's number in a run (a SweepResult): nan where the model has no result or the number is not stored."""
    m = result.models.get(model)
    v = None if m is None else getattr(m, field)
    return np.nan if v is None else v


def row_groups(results: list[SweepResult], tuning_classes=()) -> list[str] | None:
    """The group of every result row, or None when no tuning classes were named (one summary block)."""
    return [group_of(r, tuning_classes) for r in results] if tuning_classes else None


def class_means(values, units) -> tuple[np.ndarray, int, int]:
    """Per-class means of the finite `values` (one per run, `units` its class): (means, runs used, left out)."""
    x = np.asarray(values, dtype=float)
    u = np.asarray([str(c) for c in units]) if units is not None else np.arange(len(x)).astype(str)
    ok = np.isfinite(x)
    means = [x[ok & (u == c)].mean() for c in dict.fromkeys(u[ok])]
    return np.asarray(means, dtype=float), int(ok.sum()), int((~ok).sum())


def class_ci(values, units, level: float = LEVEL) -> dict:
    """Mean and Student-t half-width over per-class means; classes, runs used and runs left out (non-finite)."""
    means, runs, left_out = class_means(values, units)
    mean, half, k = mean_ci(means, level)
    return {"mean": mean, "half": half, "classes": k, "runs": runs, "left_out": left_out}


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 'es' if word.endswith('s') else 's'}"


def summary_label(kind: str, group: str | None, size: str = "") -> str:
    """'Avg', '95% CI ±' or 'non-finite left out', with the group and the block's size: 'Avg (held-out: 8
    classes, 24 runs)'."""
    base = {"mean": "Avg", "ci": "95% CI ±", "left_out": "non-finite left out"}[kind]
    inside = ": ".join(p for p in (group, size) if p)
    return f"{base} ({inside})" if inside else base


def with_summary(df: pd.DataFrame, groups: list[str] | None = None, units=None) -> pd.DataFrame:
    """`df` (one row per class x seed) followed by an 'Avg' row and a '95% CI ±' row per group, over classes.

    `units` gives each row's class (the unit of the interval: its runs are averaged first); without it each row
    is its own unit. With `groups` (one label per row: 'held-out' / 'tuning'), each group gets its own rows,
    held-out first; without, one block over all rows. Each label says how many classes and runs the block
    holds; a 'non-finite left out' row follows when some column had values left out (their count per column)."""
    cols = [c for c in df.columns if c != "class"]
    per_row = units is None
    units = list(range(len(df))) if per_row else list(units)
    blocks = (
        [(None, np.ones(len(df), bool))]
        if groups is None
        else [(g, np.asarray(groups) == g) for g in ("held-out", "tuning") if g in groups]
    )
    rows = []
    for group, mask in blocks:
        block_units = [u for u, m in zip(units, mask) if m]
        stats = {c: class_ci(pd.to_numeric(df.loc[mask, c], errors="coerce"), block_units) for c in cols}
        size = (
            _count(int(mask.sum()), "row")
            if per_row
            else f"{_count(len(set(map(str, block_units))), 'class')}, {_count(int(mask.sum()), 'run')}"
        )
        rows.append({"class": summary_label("mean", group, size), **{c: s["mean"] for c, s in stats.items()}})
        rows.append({"class": summary_label("ci", group, size), **{c: s["half"] for c, s in stats.items()}})
        if any(s["left_out"] for s in stats.values()):
            rows.append(
                {"class": summary_label("left_out", group), **{c: float(s["left_out"]) for c, s in stats.items()}}
            )
    return pd.concat([df, pd.DataFrame(rows)], ignore_index=True)


def is_summary(label) -> bool:
    """True for the Avg / CI / non-finite rows `with_summary` adds."""
    return str(label).startswith(("Avg", "95% CI", "non-finite left out"))


def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p values of a family (non-finite p values stay nan and are not counted).

    Sorted ascending p_(1) <= ... <= p_(m): adj_(j) = max over i <= j of min(1, (m − i + 1) p_(i))."""
    p = np.asarray(p, dtype=float)
    out = np.full(len(p), np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m, running = len(order), 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * p[i]))
        out[i] = running
    return out


SIGN_TOL = 1e-4  # |differences| (percentage points) up to this are float rounding: ties, left out of the sign test


def sign_test(diff) -> dict:
    """Exact two-sided sign test of the finite, non-zero differences: P(a split at least as uneven | p = 1/2)."""
    d = np.asarray(diff, dtype=float)
    d = d[np.isfinite(d)]
    below, above = int((d < -SIGN_TOL).sum()), int((d > SIGN_TOL).sum())
    n = below + above
    if n == 0:
        return {"below": below, "above": above, "p": float("nan")}
    k = min(below, above)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return {"below": below, "above": above, "p": float(min(1.0, 2 * tail))}


def wilcoxon_exact(diff) -> dict:
    """Exact two-sided Wilcoxon signed-rank test of the finite differences (zeros and float-rounding ties within
    SIGN_TOL left out, equal |differences| given their mid-rank): the null distribution of W+ by enumerating every
    sign pattern (a convolution over the ranks), so it is exact at any n and with ties.

    Returns n (non-zero differences), W+ (sum of the ranks of the positive ones) and the two-sided p: P(|W+ − E| >=
    |observed − E|) under the null that each sign is + or − with probability ½."""
    d = np.asarray(diff, dtype=float)
    d = d[np.isfinite(d) & (np.abs(d) > SIGN_TOL)]
    n = len(d)
    if n == 0:
        return {"n": 0, "w_plus": float("nan"), "p": float("nan")}
    from scipy.stats import rankdata

    ranks2 = np.rint(2 * rankdata(np.abs(d))).astype(int)  # doubled mid-ranks are whole numbers
    counts = np.zeros(int(ranks2.sum()) + 1)
    counts[0] = 1.0
    for r in ranks2:  # each rank joins W+ or not: the distribution of the doubled W+ over 2^n sign patterns
        shifted = np.zeros_like(counts)
        shifted[r:] = counts[: len(counts) - r]
        counts = counts + shifted
    probs = counts / counts.sum()
    w2 = int(ranks2[d > 0].sum())
    centre = ranks2.sum() / 2.0
    values = np.arange(len(counts))
    p = float(probs[np.abs(values - centre) >= abs(w2 - centre) - 1e-9].sum())
    return {"n": n, "w_plus": w2 / 2.0, "p": min(1.0, p)}


def smallest_exact_p(n: int) -> float:
    """The smallest two-sided p an exact sign or signed-rank test can give with n non-zero differences: 2 / 2^n."""
    return min(1.0, 2.0 / 2**n) if n > 0 else float("nan")


POWER = 0.80


def detectable_difference(sd: float, n: int, power: float = POWER, alpha: float = 0.05) -> float:
    """The smallest mean difference a two-sided paired t-test at level `alpha` detects with probability `power`,
    over n pairs whose differences have standard deviation `sd` (noncentral t; nan when n < 2 or sd is not
    positive and finite). With n = 8 and sd 4.72 it is 5.46 (the shortcut (t_{0.975,7} + t_{0.8,7}) sd / sqrt(8)
    gives 5.44)."""
    from scipy import optimize, stats

    if n < 2 or not np.isfinite(sd) or sd <= 0:
        return float("nan")
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(effect: float) -> float:  # effect in SDs of the differences
        nc = effect * math.sqrt(n)
        reach = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
        return (1.0 if not np.isfinite(reach) else reach) - power  # scipy's nct gives nan far in the tail

    effect = optimize.brentq(shortfall, 1e-6, 200.0)
    return float(effect * sd)


def significance(p_holm: float, exact_holm: float, n: int, family: int, classes: int | None = None) -> str:
    """'yes' only where the t-test and the exact test both pass 0.05 after Holm; otherwise 'no', with the reason
    when no exact test could pass with n non-zero differences (of `classes`) and this family size."""
    floor = smallest_exact_p(n) * family if n else float("nan")
    cannot = not (floor < 0.05)
    if np.isfinite(p_holm) and p_holm < 0.05 and np.isfinite(exact_holm) and exact_holm < 0.05:
        return "yes"
    if cannot and n:
        differ = f"{n} classes" if classes in (None, n) else f"{n} of {classes} classes differ"
        why = f"no exact test can: {differ}, {family} comparisons, smallest exact Holm p {min(1.0, floor):.3f}"
        return ("t-test only; " if np.isfinite(p_holm) and p_holm < 0.05 else "no; ") + why
    if np.isfinite(p_holm) and p_holm < 0.05:
        return f"no: the exact test does not agree (Wilcoxon Holm p {exact_holm:.3f})"
    return "no"


def paired_frame(
    results: list[SweepResult], primary: str, others: list[str], label, groups: list[str] | None, controls=()
) -> pd.DataFrame:
    """The primary method against each other method on |Δ|, per group, with the class as the unit: per-class mean
    |Δ| of each (over the runs where both have a finite value), a paired t-test, an exact sign test and an exact
    Wilcoxon signed-rank test over the classes, each Holm-corrected over the group's family of claims (every
    comparison except those with `controls`, which get raw p values only), the smallest difference detectable
    with 80% power, and whether the comparison is significant (t-test and exact test agree) or why it cannot be."""
    groups = groups or ["all"] * len(results)
    rows = []
    for group in [g for g in ("all", "held-out", "tuning") if g in groups]:
        mine = [r for r, g in zip(results, groups) if g == group]
        a = np.array([model_value(r, primary, "abs_delta") for r in mine], dtype=float)
        block = []
        for other in others:
            b = np.array([model_value(r, other, "abs_delta") for r in mine], dtype=float)
            ok = np.isfinite(a) & np.isfinite(b)
            units = [r.forget_class for r, k in zip(mine, ok) if k]
            ca, _, _ = class_means(a[ok], units)
            cb, _, _ = class_means(b[ok], units)
            res, sign, wil = paired_test(ca, cb), sign_test(ca - cb), wilcoxon_exact(ca - cb)
            sd = float(np.std(ca - cb, ddof=1)) if len(ca) > 1 else float("nan")
            block.append(
                {
                    "group": group,
                    "method": label(other),
                    "classes": res["n"],
                    "runs": int(ok.sum()),
                    f"{label(primary)} |Δ|": res["mean_a"],
                    "method |Δ|": res["mean_b"],
                    "mean diff": res["diff"],
                    "CI low": res["ci_low"],
                    "CI high": res["ci_high"],
                    "detectable (80% power)": detectable_difference(sd, res["n"]),
                    "t": res["t"],
                    "p": res["p"],
                    "p Holm": np.nan,
                    "closer / farther": f"{sign['below']}/{sign['above']}",
                    "sign p": sign["p"],
                    "sign p Holm": np.nan,
                    "Wilcoxon p": wil["p"],
                    "Wilcoxon p Holm": np.nan,
                    "significant": "",
                    "_control": other in controls,
                    "_n": wil["n"],
                }
            )
        claims = [r for r in block if not r["_control"]]
        for col, adj in (("p", "p Holm"), ("sign p", "sign p Holm"), ("Wilcoxon p", "Wilcoxon p Holm")):
            for row, v in zip(claims, holm([r[col] for r in claims])):
                row[adj] = float(v)
        for row in block:
            row["significant"] = (
                "control: not a claim (out of the Holm family)"
                if row["_control"]
                else significance(row["p Holm"], row["Wilcoxon p Holm"], row["_n"], len(claims), row["classes"])
            )
            del row["_control"], row["_n"]
        rows += block
    return pd.DataFrame(rows)


def curve_frame(results: list[SweepResult], methods: list[str], label) -> pd.DataFrame:
    """Forgetting more data (paper Fig. 3): per |D_f| and method, |Δ| and per-sample agreement with gold
    (mean of the per-class means and the Student-t 95% CI half-width over classes)."""
    rows = []
    for n in sorted({int(r.forget_count) for r in results}):
        mine = [r for r in results if int(r.forget_count) == n]
        units = [r.forget_class for r in mine]
        for m in methods:
            d = class_ci([model_value(r, m, "abs_delta") for r in mine], units)
            a = class_ci([model_value(r, m, "sample_agreement") for r in mine], units)
            rows.append(
                {
                    "|D_f|": n,
                    "method": label(m),
                    "classes": d["classes"],
                    "runs": d["runs"],
                    "|Δ|": d["mean"],
                    "|Δ| CI ±": d["half"],
                    "agreement": a["mean"],
                    "agreement CI ±": a["half"],
                }
            )
    return pd.DataFrame(rows)
