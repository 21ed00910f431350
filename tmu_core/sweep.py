"""Sweeps over forget classes and the paper's tables built from their results.

Table 1: per forget class, gold A_test and A_f, then each method's A_test, A_f and |delta|, with an Avg
row. Table 3: activation distance to the gold model on D_f. Table 4: TMU's label accuracy with all
features and each subset (ablation). A MIA table rides along. Each is written as Markdown and CSV.
"""
from __future__ import annotations

import datetime as _dt
import platform
from dataclasses import replace

import numpy as np
import pandas as pd

from . import runs
from .config import RunConfig
from .data import load_dataset, resolve_class
from .errors import TMUError
from .pipeline import execute, start

BASELINES = ("finetune", "neggrad", "randlabel", "badteacher")


def parse_classes(spec: str, cfg: RunConfig) -> list[int]:
    data = load_dataset(cfg.data, cfg.seed)
    if spec.strip().lower() == "all":
        return list(range(data.num_classes))
    classes = [resolve_class(data, part) for part in spec.split(",") if part.strip()]
    if not classes:
        raise TMUError("no classes given; use 'all' or a comma-separated list such as 0,3,8")
    return classes


# the paper's short names of the methods; the dashboard uses the same table
SHORT_NAMES = {"finetune": "FT", "neggrad": "NG", "randlabel": "RL", "badteacher": "BT", "tmu": "TMU",
               "tmu_ng": "TMU-NG", "tmu_auto": "TMU-auto"}


def _label(name: str) -> str:
    return SHORT_NAMES.get(name, name)


def tables(results: list[dict]) -> dict[str, pd.DataFrame]:
    """Table 1, Table 3, Table 4 and MIA from a list of run results (metrics.json dicts)."""
    if not results:
        return {}
    methods = [m for m in results[0]["models"] if m not in ("original", "gold")]
    methods = [m for m in BASELINES + ("tmu", "tmu_ng", "tmu_auto") + tuple(sorted(set(methods) - set(BASELINES) - {"tmu", "tmu_ng", "tmu_auto"}))
               if m in methods]
    t1, t3, t4, mia = [], [], [], []
    for r in results:
        cls = r["forget_class"] if str(r["forget_class"]) == r["forget_class_name"] else f"{r['forget_class']} ({r['forget_class_name']})"
        cls = f"{cls} s{r['seed']}" if len({x["seed"] for x in results}) > 1 else str(cls)
        g = r["models"]["gold"]
        row = {"class": cls, "original A_f": r["models"]["original"]["acc_forget"], "gold A_test": g["acc_test"],
               "gold A_f": g["acc_forget"]}
        for m in methods:
            mm = r["models"][m]
            row.update({f"{_label(m)} A_test": mm["acc_test"], f"{_label(m)} A_f": mm["acc_forget"],
                        f"{_label(m)} |Δ|": mm["abs_delta"]})
        t1.append(row)
        t3.append({"class": cls, **{_label(m): r["models"][m]["activation_distance"] for m in methods}})
        mia.append({"class": cls, "original": r["models"]["original"]["mia"], "gold": g["mia"],
                    **{_label(m): r["models"][m]["mia"] for m in methods}})
        if "tmu" in r:
            by = r["tmu"]["label_accuracy_by_features"]
            t4.append({"class": cls, "NF+AF+CF": r["tmu"]["label_accuracy"], **{k: v for k, v in by.items() if k != "NF+AF+CF"},
                       "AUC p(easy)": r["tmu"].get("auc_p_easy", float("nan")),
                       "gold hard": r["tmu"]["gold_hard"], "pred hard": r["tmu"]["pred_hard"],
                       "D_a hard": r["tmu"]["aux_hard"], "|D_a|": r["tmu"]["aux_count"]})
    out = {"table1": pd.DataFrame(t1), "table3": pd.DataFrame(t3), "mia": pd.DataFrame(mia)}
    if t4:
        out["table4"] = pd.DataFrame(t4)
    return {k: with_avg(df) for k, df in out.items()}


def with_avg(df: pd.DataFrame) -> pd.DataFrame:
    """`df` (one row per class) with an 'Avg' row: the mean of every other column, NaNs left out."""
    avg = {"class": "Avg", **{c: float(np.nanmean(df[c].astype(float))) for c in df.columns if c != "class"}}
    return pd.concat([df, pd.DataFrame([avg])], ignore_index=True)


TITLES = {"table1": "Table 1 — accuracy (%) and |Δ| = |A_f(method) − A_f(gold)|",
          "table3": "Table 3 — activation distance to gold on D_f (mean L2 between softmax outputs; lower is better)",
          "table4": "Table 4 — TMU label accuracy (%) on D_f: all features and each subset",
          "mia": "MIA — % of D_f an entropy-based logistic-regression attack calls members (gold is the target)"}


def to_markdown(frames: dict[str, pd.DataFrame], header: str = "") -> str:
    parts = [header] if header else []
    for key, df in frames.items():
        parts.append(f"### {TITLES.get(key, key)}\n")
        parts.append(_md_table(df))
    return "\n\n".join(parts) + "\n"


def _md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    fmt = lambda v: (f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}") if isinstance(v, float) else str(v)
    esc = lambda text: str(text).replace("|", "\\|")  # |Δ| in a header must not split the column
    lines = ["| " + " | ".join(esc(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.to_dict("records"):  # per column types: a row of ints and floats stays ints and floats
        lines.append("| " + " | ".join(esc(fmt(row[c])) for c in cols) + " |")
    return "\n".join(lines)


def sweep(cfg: RunConfig, classes: str = "all", progress=None, sweep_id: str | None = None) -> dict:
    """Run `cfg` once per forget class; write results.json and the tables (Markdown + CSV)."""
    chosen = parse_classes(classes, cfg)
    sweep_id = sweep_id or f"sweep-{cfg.data.dataset}-{cfg.train.model}-n{cfg.forget.forget_count}-s{cfg.seed}-" \
                           f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    folder = runs.sweep_dir(sweep_id)
    results = []
    for c in chosen:
        run_cfg = replace(cfg, forget=replace(cfg.forget, forget_class=str(c)), name=f"{sweep_id}-c{c}")
        results.append(execute(start(run_cfg), progress=progress))
        runs.atomic_write_json(folder / "results.json", {"sweep_id": sweep_id, "classes": chosen, "results": results})
    frames = tables(results)
    header = (f"## Sweep {sweep_id}\n\ndataset {cfg.data.dataset}, model {cfg.train.model}, |D_f| = "
              f"{cfg.forget.forget_count} per class, seed {cfg.seed}, device {results[0]['device']}, "
              f"machine {platform.machine()} / {platform.processor() or 'cpu'}")
    markdown = to_markdown(frames, header)
    runs.atomic_write_bytes(folder / "tables.md", markdown.encode())
    for key, df in frames.items():
        runs.atomic_write_bytes(folder / f"{key}.csv", df.to_csv(index=False).encode())
    return {"sweep_id": sweep_id, "results": results, "tables": frames, "markdown": markdown,
            "markdown_path": str(folder / "tables.md"), "csv_path": str(folder / "table1.csv")}
