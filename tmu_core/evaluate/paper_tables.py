"""The paper's tables from a list of run results (metrics.json dicts or the store's typed models), as DataFrames,
Markdown and CSV. Each result is read once as a sweep's typed `SweepResult` (store.schema) and by its fields after.

Table 1: per forget class, gold A_test and A_f, then the untouched original's and each method's A_test, A_f,
|delta| and per-sample agreement, then an Avg row and a 95% CI row over classes (evaluate.protocol; per group
when tuning classes are named). The verdict table: each run's verdict above its noise floor (evaluate.verdict). Table 3: activation
distance to the gold model on D_f. Table 4: the easy/hard split's label accuracy with all features and
each subset (ablation). A MIA table rides along; with several runs, the paired comparison of the primary
method against each other method; with K > 1 golds, the gold ensemble; with several |D_f|, the curve. Method names, order and short names
come from the method registry.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..methods import METHODS, REFERENCES, display, ordered, primary_method
from ..store.schema import MetricsFile, SweepResult, TMUSummary
from . import protocol
from .verdict import verdict

NAN = float("nan")


def typed(results) -> list[SweepResult]:
    """The results as sweep results: a results.json dict or a run's MetricsFile is checked and read as one; a
    SweepResult is kept as it is."""
    return [
        r
        if isinstance(r, SweepResult)
        else SweepResult.model_validate(r.model_dump(exclude_unset=True) if isinstance(r, MetricsFile) else r)
        for r in results
    ]


def _or_nan(v):
    return NAN if v is None else v


def _label(name: str) -> str:
    return display(name).short


def easy_hard_summary(result: SweepResult) -> TMUSummary | None:
    """The easy/hard split the primary method reported with its feature ablation (TMU's), or None (no split, or
    the method has no result in this run)."""
    split = result.tmu
    if split is None or split.label_accuracy_by_features is None or primary_method() not in result.models:
        return None
    return split


def _row_label(r: SweepResult, results: list[SweepResult]) -> str:
    """The forget class, with the seed and |D_f| when the sweep has several."""
    cls = r.forget_class if str(r.forget_class) == r.forget_class_name else f"{r.forget_class} ({r.forget_class_name})"
    cls = f"{cls} s{r.seed}" if len({x.seed for x in results}) > 1 else str(cls)
    return f"{cls} n{r.forget_count}" if len({x.forget_count for x in results}) > 1 else cls


def _table1_row(r: SweepResult, cls: str, methods: list[str]) -> dict:
    g = r.models["gold"]
    row = {"class": cls, "gold A_test": g.acc_test, "gold A_f": g.acc_forget}
    for m in ("original", *methods):  # the untouched original is a row of every verdict (EVALUATION.md §5)
        row.update(  # a method that diverged in this run has no results: nan
            {
                f"{_label(m)} A_test": protocol.model_value(r, m, "acc_test"),
                f"{_label(m)} A_f": protocol.model_value(r, m, "acc_forget"),
                f"{_label(m)} |Δ|": protocol.model_value(r, m, "abs_delta"),
                f"{_label(m)} agree": protocol.model_value(r, m, "sample_agreement"),
            }
        )
    return row


def _table4_row(split: TMUSummary, cls: str) -> dict:
    by = split.label_accuracy_by_features
    return {
        "class": cls,
        "NF+AF+CF": split.label_accuracy,
        **{k: v for k, v in by.items() if k != "NF+AF+CF"},
        "AUC p(easy)": _or_nan(split.auc_p_easy),
        "gold hard": split.gold_hard,
        "pred hard": split.pred_hard,
        "D_a hard": split.aux_hard,
        "|D_a|": split.aux_count,
    }


def tables(results: list[dict | MetricsFile | SweepResult], tuning_classes=()) -> dict[str, pd.DataFrame]:
    """Table 1, Table 3, Table 4, MIA and the MIA attack's AUC from a list of run results (results.json's dicts, a
    run's MetricsFile or SweepResults: each read once as a SweepResult, a shape that does not fit raising),
    each with Avg and 95% CI rows over classes (held-out and tuning classes apart when `tuning_classes` is given);
    each run's verdict above its noise floor with a count of them; the paired comparison, the gold ensemble and
    the forgetting-more-data curve where the results allow them."""
    if not results:
        return {}
    results = typed(results)
    methods = ordered(m for m in results[0].models if m not in REFERENCES)
    rows = {"table1": [], "table3": [], "table4": [], "mia": [], "mia_auc": [], "verdict": []}
    split_runs = []  # the runs behind Table 4's rows (a run without TMU has none)
    for r in results:
        cls = _row_label(r, results)
        rows["table1"].append(_table1_row(r, cls, methods))
        rows["table3"].append(
            {
                "class": cls,
                **{_label(m): protocol.model_value(r, m, "activation_distance") for m in ("original", *methods)},
            }
        )
        rows["verdict"].append(_verdict_row(r, cls))
        for key, field in (("mia", "mia"), ("mia_auc", "mia_auc")):
            rows[key].append(
                {
                    "class": cls,
                    **{_label(m): protocol.model_value(r, m, field) for m in ("original", "gold", *methods)},
                }
            )
        split = easy_hard_summary(r)
        if split:
            rows["table4"].append(_table4_row(split, cls))
            split_runs.append(r)
    out = {k: pd.DataFrame(v) for k, v in rows.items() if v}
    ens_runs = [r for r in results if r.gold_ensemble is not None]  # runs with K > 1 golds (a merged file may mix K)
    if ens_runs:
        out["ensemble"] = pd.DataFrame([_ensemble_row(r, _row_label(r, results)) for r in ens_runs])
    for k in [k for k in out if k in SUMMARISED]:  # the class is the unit of every interval
        behind = {"table4": split_runs, "ensemble": ens_runs}.get(k, results)
        out[k] = protocol.with_summary(
            out[k], protocol.row_groups(behind, tuning_classes), [r.forget_class for r in behind]
        )
    out["verdict"] = _verdict_count(out["verdict"])
    groups = protocol.row_groups(results, tuning_classes)
    return {**out, **_protocol_frames(results, methods, groups)}


def _verdict_row(r: SweepResult, cls: str) -> dict:
    """One run's verdict (evaluate.verdict): the floor, the leaders by measure, whether the original ties."""
    v = verdict(r)

    def short(names) -> str:
        return ", ".join(v.short(n) for n in names)

    f = v.floor
    above = ", ".join(f"{display(n).short} {k:g}" for n, k in f.above().items() if n in r.models)
    return {
        "class": cls,
        "noise floor (images)": f.images,
        "floor from": f"gold (K = {f.k})" if f.source == "golds" else "default",
        "rerun floors above it": above,
        "agreement floor (images)": f.agreement_images,
        "agreement floor from": f"gold vs gold (K = {f.k})" if f.agreement_source == "golds" else "default",
        "closest to gold": v.headline(),
        "|Δ| leaders": short(v.leaders),
        "agreement leaders": short(v.agreement_leaders),
        "act. dist. leader": v.short(v.distance_leader) if v.distance_leader else "",
        "original ties": "yes" if v.original_ties else "no",
        **_step_cells(v),
    }


STEP_CHECKED = (
    None,
    "oracle_labels",
)  # the step checks a sweep's verdict table shows: the primary method's, the oracle's


def _step_labels() -> tuple[str, ...]:
    """The step-check columns' labels: the methods' short names from the registry."""
    return tuple(display(primary_method() if n is None else n).short for n in STEP_CHECKED)


def _step_cells(v) -> dict:
    """The gold-free step check: achieved minus asked A_f in images, within the method's floor or not."""
    checks = {c.name: c for c in v.step_checks}
    out = {}
    for name, label in zip(STEP_CHECKED, _step_labels(), strict=True):
        c = checks.get(primary_method() if name is None else name)
        out[f"{label} step: achieved − asked (images)"] = c.gap if c else float("nan")
        out[f"{label} step within floor"] = ("yes" if c.within else "no") if c else ""
    return out


def leader_counts(cells) -> str:
    """'FT 12, TMU 5; tied: 7 runs (FT 5, TMU 4, ...)': how often each name leads alone, and how often it is among
    tied leaders (a tie counts for every name in it, never for the first by list order)."""
    lists = [[n for n in str(c).split(", ") if n] for c in cells]
    alone = pd.Series([x[0] for x in lists if len(x) == 1]).value_counts()
    tied = [x for x in lists if len(x) > 1]
    within = pd.Series([n for x in tied for n in x]).value_counts()
    text = "outright: " + (", ".join(f"{m} {k}" for m, k in alone.items()) or "none")
    if tied:
        text += f"; tied: {len(tied)} runs (" + ", ".join(f"{m} in {k}" for m, k in within.items()) + ")"
    return text


def _verdict_count(df: pd.DataFrame) -> pd.DataFrame:
    """The verdict rows and one last row that counts them: runs with a winner (by method), ties, original ties,
    agreement leaders alone and tied."""
    winners = df.loc[~df["closest to gold"].str.startswith(("tie", "none", "no method")), "closest to gold"]
    named = ", ".join(f"{m} {k}" for m, k in winners.value_counts().items()) or "none"
    sources = df["floor from"].str.split(" ").str[0].value_counts()
    total = {
        "class": f"all {len(df)} runs",
        "noise floor (images)": float(df["noise floor (images)"].median()),
        "floor from": "median; " + ", ".join(f"{s} {k}" for s, k in sources.items()),
        "rerun floors above it": f"{int((df['rerun floors above it'] != '').sum())} runs",
        "agreement floor (images)": float(df["agreement floor (images)"].median()),
        "agreement floor from": "median",
        "closest to gold": f"winner named: {named}; no winner: {len(df) - len(winners)}",
        "|Δ| leaders": "",
        "agreement leaders": leader_counts(df["agreement leaders"]),
        "act. dist. leader": ", ".join(f"{m} {k}" for m, k in df["act. dist. leader"].value_counts().items()),
        "original ties": f"{int((df['original ties'] == 'yes').sum())} of {len(df)}",
    }
    for label in _step_labels():
        within, gap = df[f"{label} step within floor"], df[f"{label} step: achieved − asked (images)"]
        checked = int((within != "").sum())
        total[f"{label} step: achieved − asked (images)"] = float(gap.mean()) if checked else float("nan")
        total[f"{label} step within floor"] = f"{int((within == 'yes').sum())} of {checked}" if checked else ""
    return pd.concat([df, pd.DataFrame([total])], ignore_index=True)


def cost_frame(results: list[dict | MetricsFile | SweepResult], tuning_classes=()) -> pd.DataFrame:
    """TMU's cost ratio per run with Avg and 95% CI rows. Kept out of `tables`: a sweep's tables hold only what
    the same seeds reproduce exactly (the local and Ray executors must print the same tables)."""
    results = typed(results)
    rows = [
        {
            "class": _row_label(r, results),
            "TMU seconds": protocol.model_value(r, primary_method(), "seconds"),
            "gold retrain seconds": _or_nan(r.models["gold"].seconds),
            "cost ratio": _or_nan(r.cost_ratio),
        }
        for r in results
    ]
    return protocol.with_summary(
        pd.DataFrame(rows), protocol.row_groups(results, tuning_classes), [r.forget_class for r in results]
    )


def _ensemble_row(r: SweepResult, cls: str) -> dict:
    e, split = r.gold_ensemble, easy_hard_summary(r)
    return {
        "class": cls,
        "K": e.k,
        "gold-vs-gold agreement": e.gold_agreement,
        "ceiling (plug-in: reads high at small K)": e.ceiling,
        "ceiling (leave-one-gold-out: = gold-vs-gold at K = 3)": _or_nan(e.ceiling_loo),
        "label acc. vs gold": NAN if split is None else _or_nan(split.label_accuracy),
        "label acc. vs p_i": NAN if split is None else _or_nan(split.soft_label_accuracy),
        "AUC vs p_i": NAN if split is None else _or_nan(split.soft_auc_p_easy),
        "gold A_f spread": float(np.ptp(e.gold_acc_forget)),
    }


def _protocol_frames(results: list[SweepResult], methods: list[str], groups) -> dict[str, pd.DataFrame]:
    """The paired comparison (several runs, a primary method and the others, doing nothing first: the original is
    the |Δ| every method must beat) and the curve (several |D_f|)."""
    out = {}
    primary = [m for m in methods if METHODS.get(m).primary]
    others = ["original", *(m for m in methods if m not in primary)]
    controls = [m for m in others if display(m).kind == "control"]
    if len(results) > 1 and primary:
        out["paired"] = protocol.paired_frame(results, primary[0], others, _label, groups, controls)
    if len({r.forget_count for r in results}) > 1:
        out["curve"] = protocol.curve_frame(results, methods, _label)
    return out


TITLES = {
    "table1": "Table 1 — accuracy (%), |Δ| = |A_f(method) − A_f(gold)| and per-sample agreement with gold "
    "on D_f (% both right or both wrong); † marks a control",
    "table3": "Table 3 — activation distance to gold on D_f (mean L2 between softmax outputs; lower is better)",
    "table4": "Table 4 — TMU label accuracy (%) on D_f: all features and each subset",
    "cost": "Cost — TMU's seconds / the gold retrain's seconds, per run (timing: it differs from run to run, so "
    "the sweep's own tables leave it out)",
    "mia": "MIA — % of D_f an entropy-based logistic-regression attack calls members (gold is the target)",
    "mia_auc": "MIA attack quality — its AUC (%) on the D_r-vs-test data it was fitted on (50 = chance: "
    "that model's MIA row says nothing)",
    "ensemble": "Gold ensemble — K golds (training seeds differ): gold-vs-gold agreement; the ceiling "
    "mean(max(p_i, 1 − p_i)) with p_i plugged in from K golds (biased high at small K: 75 where "
    "the true p_i is 0.5 and K = 3, so not a measure of its own) and leave-one-gold-out (each gold "
    "predicted by the other K − 1's majority, a split counting ½: no small-K optimism, a little under "
    "the true ceiling; at K = 3 it equals gold-vs-gold agreement by construction, so it adds no second "
    "measure); TMU's label accuracy against gold and against soft truth p_i (%); the golds' A_f spread (points)",
    "paired": "Paired comparison on |Δ|, the class as the unit — per-class mean |Δ| of the primary method "
    "and each other, the untouched original first (over the runs where both have one); mean difference (primary − method; "
    "negative: the primary method is closer to gold) and its Student-t 95% CI over classes; the smallest "
    "difference the paired t-test detects with 80% power at this n and spread; paired t-test p; classes "
    "where the primary is closer / farther, the exact two-sided sign test p and the exact Wilcoxon "
    "signed-rank p (read them when there are fewer than 10 classes); each p also Holm-corrected over this "
    "group's claims (the primary method against the original and each other method; the controls † are "
    "not claims and stay out of the family); 'significant' only where the t-test and the exact Wilcoxon "
    "test both pass 0.05 after Holm, or the reason no exact test can (with n classes the smallest exact p "
    "is 2 / 2^n)",
    "curve": "Forgetting more data (paper Fig. 3) — |Δ| and per-sample agreement with gold (%) per |D_f|: "
    "mean of the per-class means and Student-t 95% CI half-width over classes",
    "verdict": "Verdict per run (EVALUATION.md §5) — a method is closest to gold only when its |Δ| beats every "
    "other method's and the untouched original's by more than the noise floor: for each pair the larger "
    "of their floors, a method's floor being the larger of gold's spread (the K golds' A_f range, or "
    "the default 1.15 sqrt(|D_f| p (1 − p)) with one gold, p = gold's A_f) and its own measured rerun "
    "spread ('rerun floors above it' lists the methods whose rerun spread is the larger); agreement "
    "leaders are ranked with their own floor, from gold-vs-gold disagreement; the last row counts "
    "agreement leaders alone and tied (a tie counts for every method in it); controls never take "
    "part; 'none' = the original ties the leaders: no method shown to unlearn better than doing nothing. "
    "Step check (no gold needed for TMU): TMU's achieved A_f minus the predicted-easy share its split "
    "asked for, in images, and whether that is within TMU's floor; the oracle's against gold's easy share",
}
SUMMARISED = ("table1", "table3", "table4", "mia", "mia_auc", "ensemble", "cost")  # frames that carry Avg / 95% CI rows


def to_markdown(frames: dict[str, pd.DataFrame], header: str = "") -> str:
    parts = [header] if header else []
    for key, df in frames.items():
        note = f" ({protocol.CI_NOTE})" if key in SUMMARISED else ""
        parts.append(f"### {TITLES.get(key, key)}{note}\n")
        parts.append(md_table(df))
    return "\n\n".join(parts) + "\n"


def md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)

    def fmt(v) -> str:  # a p-value of 1e-5 must not read as 0.000
        if not isinstance(v, float):
            return str(v)
        return f"{v:.1e}" if 0 < abs(v) < 1e-3 else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"

    def esc(text) -> str:  # |Δ| in a header must not split the column
        return str(text).replace("|", "\\|")

    lines = ["| " + " | ".join(esc(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.to_dict("records"):  # per column types: a row of ints and floats stays ints and floats
        lines.append("| " + " | ".join(esc(fmt(row[c])) for c in cols) + " |")
    return "\n".join(lines)
