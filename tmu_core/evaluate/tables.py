"""The paper's tables from a list of run results (metrics.json dicts), as DataFrames, Markdown and CSV.

Table 1: per forget class, gold A_test and A_f, then each method's A_test, A_f and |delta|, with an Avg
row. Table 3: activation distance to the gold model on D_f. Table 4: the easy/hard split's label accuracy
with all features and each subset (ablation). A MIA table rides along. Method names, order and short names
come from the method registry.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..methods import REFERENCES, display, ordered


def _label(name: str) -> str:
    return display(name).short


def easy_hard_summary(result: dict) -> dict | None:
    """The easy/hard split a run's method reported with its feature ablation (TMU's), or None."""
    for name in result.get("models", {}):
        part = result.get(name)
        if isinstance(part, dict) and "label_accuracy_by_features" in part:
            return part
    return None


def _class_label(r: dict, results: list[dict]) -> str:
    cls = r["forget_class"] if str(r["forget_class"]) == r["forget_class_name"] else f"{r['forget_class']} ({r['forget_class_name']})"
    return f"{cls} s{r['seed']}" if len({x["seed"] for x in results}) > 1 else str(cls)


def _table1_row(r: dict, cls: str, methods: list[str]) -> dict:
    g = r["models"]["gold"]
    row = {"class": cls, "original A_f": r["models"]["original"]["acc_forget"], "gold A_test": g["acc_test"],
           "gold A_f": g["acc_forget"]}
    for m in methods:
        mm = r["models"][m]
        row.update({f"{_label(m)} A_test": mm["acc_test"], f"{_label(m)} A_f": mm["acc_forget"],
                    f"{_label(m)} |Δ|": mm["abs_delta"], f"{_label(m)} agree": mm.get("sample_agreement", float("nan"))})
    return row


def _table4_row(split: dict, cls: str) -> dict:
    by = split["label_accuracy_by_features"]
    return {"class": cls, "NF+AF+CF": split["label_accuracy"], **{k: v for k, v in by.items() if k != "NF+AF+CF"},
            "AUC p(easy)": split.get("auc_p_easy", float("nan")), "gold hard": split["gold_hard"],
            "pred hard": split["pred_hard"], "D_a hard": split["aux_hard"], "|D_a|": split["aux_count"]}


def tables(results: list[dict]) -> dict[str, pd.DataFrame]:
    """Table 1, Table 3, Table 4, MIA and the MIA attack's AUC from a list of run results (metrics.json dicts)."""
    if not results:
        return {}
    methods = ordered(m for m in results[0]["models"] if m not in REFERENCES)
    rows = {"table1": [], "table3": [], "table4": [], "mia": [], "mia_auc": []}
    for r in results:
        cls = _class_label(r, results)
        models = r["models"]
        rows["table1"].append(_table1_row(r, cls, methods))
        rows["table3"].append({"class": cls, **{_label(m): models[m]["activation_distance"] for m in methods}})
        for key, field in (("mia", "mia"), ("mia_auc", "mia_auc")):
            rows[key].append({"class": cls, **{_label(m): models[m].get(field, float("nan"))
                                                for m in ("original", "gold", *methods)}})
        split = easy_hard_summary(r)
        if split:
            rows["table4"].append(_table4_row(split, cls))
    return {k: with_avg(pd.DataFrame(v)) for k, v in rows.items() if v}


def with_avg(df: pd.DataFrame) -> pd.DataFrame:
    """`df` (one row per class) with an 'Avg' row: the mean of every other column, NaNs left out."""
    avg = {"class": "Avg", **{c: float(np.nanmean(df[c].astype(float))) for c in df.columns if c != "class"}}
    return pd.concat([df, pd.DataFrame([avg])], ignore_index=True)


TITLES = {"table1": "Table 1 — accuracy (%), |Δ| = |A_f(method) − A_f(gold)| and per-sample agreement with gold "
                    "on D_f (% both right or both wrong); † marks a control",
          "table3": "Table 3 — activation distance to gold on D_f (mean L2 between softmax outputs; lower is better)",
          "table4": "Table 4 — TMU label accuracy (%) on D_f: all features and each subset",
          "mia": "MIA — % of D_f an entropy-based logistic-regression attack calls members (gold is the target)",
          "mia_auc": "MIA attack quality — its AUC (%) on the D_r-vs-test data it was fitted on (50 = chance: "
                     "that model's MIA row says nothing)"}


def to_markdown(frames: dict[str, pd.DataFrame], header: str = "") -> str:
    parts = [header] if header else []
    for key, df in frames.items():
        parts.append(f"### {TITLES.get(key, key)}\n")
        parts.append(md_table(df))
    return "\n\n".join(parts) + "\n"


def md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    fmt = lambda v: (f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}") if isinstance(v, float) else str(v)
    esc = lambda text: str(text).replace("|", "\\|")  # |Δ| in a header must not split the column
    lines = ["| " + " | ".join(esc(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.to_dict("records"):  # per column types: a row of ints and floats stays ints and floats
        lines.append("| " + " | ".join(esc(fmt(row[c])) for c in cols) + " |")
    return "\n".join(lines)
